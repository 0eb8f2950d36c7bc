"""
What the admin's pages share: the move_money permission and its refusals, money
columns, an admin's own URLs, a page's object with its 403/404, the statement
page and the confirmation page of a form that moves money.

Used by ``accounts.admin``, ``accounts.debt_admin`` and
``accounts.collection_admin``; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.db.models import Model
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .account_forms import MOVE_MONEY_PERMISSION
from .exceptions import StrOrPromise
from .forms import (
    MoveMoneyForm,
)
from .models import Transfer
from .pagination import UncountedPage

if TYPE_CHECKING:
    from .managers import TransactionQuerySet

    # Django's admin classes take no type arguments at run time.
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin

_M = TypeVar("_M", bound=Model)


def has_move_money_permission(request: HttpRequest) -> bool:
    """Whether the user may move money (``accounts.move_money``)."""
    return request.user.has_perm(MOVE_MONEY_PERMISSION)


def forbidden(
    model_admin: _ModelAdmin, request: HttpRequest, reason: StrOrPromise
) -> HttpResponse:
    """A 403 page in the admin's layout, saying which permission is missing."""
    request.current_app = model_admin.admin_site.name
    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("You may not do this"),
        "reason": reason,
        "opts": model_admin.opts,
    }
    return TemplateResponse(request, "admin/accounts/forbidden.html", context, status=403)


NO_MOVE_MONEY = _(
    "Moving money needs the permission “Can move money” (accounts.move_money). "
    "Ask an administrator if you need it."
)


NO_VIEW = _("You do not have permission to view this.")


def money_cell(value: object) -> SafeString:
    """An amount for a list column: never wrapped after its minus sign."""
    return format_html('<span class="accounts-money">{}</span>', value)


def money_column(
    attribute: str, description: StrOrPromise, *, ordering: str | None = None
) -> Callable[[object, Model], SafeString]:
    """An admin column (a method of the admin) showing ``obj.<attribute>`` by :func:`money_cell`.

    ``ordering``: what the list sorts by when the column's header is clicked
    (none: the column does not sort).
    """

    def column(model_admin: object, obj: Model) -> SafeString:
        return money_cell(getattr(obj, attribute))

    return admin.display(description=description, ordering=ordering)(column)


def own_urls(
    model_admin: _ModelAdmin, *pages: tuple[str, Callable[..., HttpResponseBase], str]
) -> list[URLPattern]:
    """An admin's own pages, each ``(route, view, name)``, behind ``admin_view``.

    Each is named ``<app>_<model>_<name>`` (``admin:accounts_hold_release``);
    ``get_urls()`` puts them before Django's, whose ``<path:object_id>/``
    would match them first.
    """
    info = model_admin.opts.app_label, model_admin.opts.model_name
    view = model_admin.admin_site.admin_view
    return [
        path(route, view(page), name="%s_%s_%s" % (*info, name)) for route, page, name in pages
    ]


def object_or_refusal(
    model_admin: admin.ModelAdmin[_M],
    request: HttpRequest,
    object_id: str,
    missing: StrOrPromise,
    *,
    moving: bool,
) -> _M | HttpResponse:
    """The object of an admin page, or the 403 page saying which permission is missing.

    ``moving``: the page moves money, which needs ``accounts.move_money``
    (checked first). Raises ``Http404`` with ``missing`` (which names
    ``%(id)s``) when the admin has no such object.
    """
    if moving and not has_move_money_permission(request):
        return forbidden(model_admin, request, NO_MOVE_MONEY)
    obj = model_admin.get_object(request, unquote(object_id))
    if obj is None:
        raise Http404(missing % {"id": object_id})
    if not model_admin.has_view_permission(request, obj):
        return forbidden(model_admin, request, NO_VIEW)
    return obj


def statement_context(
    model_admin: _ModelAdmin,
    request: HttpRequest,
    rows: TransactionQuerySet,
    account_id: int,
    *,
    original: Model,
    per_page: int,
) -> dict[str, object]:
    """What the statement pages of accounts and debts show alike: a page of ``rows``, and more.

    Each leg on the page carries its ``counterparty``: the other account of
    its transfer (``account_id`` is the statement's), read in the same
    query, never once per row.
    """
    rows = rows.select_related("transfer__source", "transfer__destination")
    page = UncountedPage(rows, request.GET.get("p"), per_page)
    for row in page.object_list:
        transfer = row.transfer
        row.counterparty = (
            transfer.destination if transfer.source_id == account_id else transfer.source
        )
    request.current_app = model_admin.admin_site.name
    transfers_admin = model_admin.admin_site.get_model_admin(Transfer)
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "transfer_opts": Transfer._meta,
        "original": original,
        "page": page,
        "can_view_transfers": transfers_admin.has_view_permission(request),
    }


#: The button that confirms a money form (its first step only shows what would happen).
CONFIRM = "_confirm"


#: The button that goes back from the confirmation to the form.
EDIT = "_edit"


def move_money(
    model_admin: _ModelAdmin,
    request: HttpRequest,
    form: MoveMoneyForm,
    *,
    title: StrOrPromise,
    submit_label: StrOrPromise,
    original: Model | None = None,
    summary: Sequence[tuple[StrOrPromise, object]] = (),
    success_url: Callable[[Transfer], str] | None = None,
) -> HttpResponse:
    """Show a money form, then what it will do; on confirmation, post it and redirect.

    Three requests: GET shows the form; a valid POST shows the confirmation
    (one sentence saying exactly what will happen, with the form's values
    carried in hidden fields) and writes nothing; a POST with the
    :data:`CONFIRM` button posts the transfer as the staff user. The form's
    token is the idempotency key, so posting the confirmation again (a
    double click, a browser retry) finds the transfer already made and moves
    nothing more. The facade's refusals come back as form errors (see
    ``MoveMoneyForm.save``). ``success_url(transfer)`` defaults to the new
    transfer's page.
    """
    confirming = False
    if request.method == "POST" and form.is_valid():
        if CONFIRM in request.POST:
            done_before = form.existing()
            transfer = form.save(request.user)
            if transfer is not None:
                if done_before is not None and done_before.pk == transfer.pk:
                    model_admin.message_user(
                        request,
                        _(
                            "This form was already confirmed: transfer %(reference)s moved "
                            "%(amount)s from %(source)s to %(destination)s. Nothing was moved "
                            "again."
                        )
                        % transfer_facts(transfer),
                        messages.WARNING,
                    )
                else:
                    model_admin.log_addition(request, transfer, [{"added": {}}])
                    model_admin.message_user(
                        request,
                        _(
                            "Moved %(amount)s from %(source)s to %(destination)s "
                            "(transfer %(reference)s)."
                        )
                        % transfer_facts(transfer),
                        messages.SUCCESS,
                    )
                url = (success_url or partial(transfer_url, model_admin, request))(transfer)
                return HttpResponseRedirect(url)
        elif EDIT not in request.POST:
            confirming = True
    context = form_page_context(
        model_admin,
        request,
        form,
        title=title,
        submit_label=submit_label,
        original=original,
        summary=summary,
        confirming=confirming,
    )
    if confirming:
        context.update(
            title=_("Confirm: %(title)s") % {"title": title},
            confirmation=form.confirmation(),
            details=[
                (form.fields[name].label, form.cleaned_data[name])
                for name in ("description", "merchant_reference")
                if form.cleaned_data.get(name)
            ],
            carried=form.confirmation_data(),
            confirm_name=CONFIRM,
            edit_name=EDIT,
            can_confirm=True,
        )
    return TemplateResponse(request, "admin/accounts/move_money.html", context)


def form_page_context(
    model_admin: _ModelAdmin,
    request: HttpRequest,
    form: Form,
    *,
    title: StrOrPromise,
    submit_label: StrOrPromise,
    original: Model | None,
    summary: Sequence[tuple[StrOrPromise, object]],
    confirming: bool,
) -> dict[str, Any]:
    """The context of ``move_money.html`` for a form with a confirmation step, before its own.

    The money forms (:func:`move_money`) and failing a debt add what their
    confirmation says.
    """
    request.current_app = model_admin.admin_site.name
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "submit_label": submit_label,
        "opts": model_admin.opts,
        "original": original,
        "summary": summary,
        "form": form,
        "adminform": helpers.AdminForm(
            cast(Any, form), [(None, {"fields": list(form.fields)})], {}
        ),
        "media": model_admin.media + form.media,
        "confirming": confirming,
    }


def transfer_facts(transfer: Transfer) -> dict[str, object]:
    return {
        "amount": transfer.amount,
        "source": transfer.source,
        "destination": transfer.destination,
        "reference": transfer.reference,
    }


def transfer_url(model_admin: _ModelAdmin, request: HttpRequest, transfer: Transfer) -> str:
    """A transfer's page, or, for staff who may not view transfers, the accounts."""
    site = model_admin.admin_site
    if site.get_model_admin(Transfer).has_view_permission(request, transfer):
        return reverse("admin:accounts_transfer_change", args=[transfer.pk], current_app=site.name)
    return reverse("admin:accounts_account_changelist", current_app=site.name)
