"""
Public views: a gift card's balance from its code, without logging in.

Mount them in your URLconf (they are optional)::

    path("gift-cards/", include("accounts.urls")),

The pages extend ``accounts/base.html``; override that template to put them
in your site's layout (it must define the ``title`` and ``content`` blocks).
Code lookups are throttled per client address (see ``accounts.lookup``).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from .codes import format_code, is_valid_code
from .exceptions import CodeLookupBlocked
from .forms import BalanceCheckForm
from .lookup import LookupThrottle, client_address, lookup_code


def not_found_error(code: str) -> ValidationError:
    """Why ``code`` found no card: a typing mistake the check character caught, or no such card."""
    if not is_valid_code(code):
        return ValidationError(
            _("This is not a valid gift card code: check it for typing mistakes."),
            code="invalid_code",
        )
    return ValidationError(_("No gift card has this code."), code="not_found")


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def balance_check(request: HttpRequest) -> HttpResponse:
    """Show the balance of the gift card whose code is posted.

    A client address that keeps entering codes that match no card is blocked
    for a while and gets 429 Too Many Requests, with ``Retry-After``: from the
    failure that reaches the limit (which also says the code was wrong) until
    the cooldown is over.
    """
    form = BalanceCheckForm(request.POST or None)
    context: dict[str, Any] = {"form": form}
    if form.is_valid():
        code = form.cleaned_data["code"]
        try:
            card = lookup_code(request, code)
        except CodeLookupBlocked as exc:
            return blocked(request, BalanceCheckForm(), exc)
        if card is None:
            form.add_error("code", not_found_error(code))
            retry_after = LookupThrottle(client_address(request)).retry_after()
            if retry_after is not None:
                # This failure was the last one allowed: say so now, not on the next try.
                return blocked(request, form, CodeLookupBlocked(retry_after))
        else:
            # A blank form again, ready for the next card.
            context = {"form": BalanceCheckForm(), "card": card, "code": format_code(code)}
    return render(request, "accounts/balance_check.html", context)


def blocked(request: HttpRequest, form: BalanceCheckForm, exc: CodeLookupBlocked) -> HttpResponse:
    """The 429 page: lookups from this address are paused for ``exc.retry_after`` seconds."""
    context = {"form": form, "blocked": exc}
    response = render(request, "accounts/balance_check.html", context, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response
