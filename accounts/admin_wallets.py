"""
The admin of card wallets on credit: spending limits, repayments, declined payments.

Spending limits change how much can be spent, so they are moving money:
creating one, raising one and removing one need ``accounts.move_money``
besides the model's own add, change or delete permission; lowering one
needs only the change permission. A limit's owner and period never change
(delete it and create another). Repayments and declines are read-only: the
facade writes them.

An account's page shows its spending (each limit, what was used, what is
left, when it resets) and its latest declined payments
(:func:`account_context`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from . import amounts
from .account_forms import may_move_money
from .admin_readonly import ReadOnlyAdmin
from .amount_fields import AmountTextField
from .models import Account, Decline, Repayment, SpendingLimit

if TYPE_CHECKING:
    # Django's form and admin classes take no type arguments at run time.
    _SpendingLimitForm = forms.ModelForm[SpendingLimit]
    _SpendingLimitAdmin = admin.ModelAdmin[SpendingLimit]
else:
    _SpendingLimitForm = forms.ModelForm
    _SpendingLimitAdmin = admin.ModelAdmin

#: Declines shown on an account's page (the rest: the declines list, filtered).
ACCOUNT_DECLINES = 10


class SpendingLimitForm(_SpendingLimitForm):
    """A spending limit; ``user`` decides what may change (see the module)."""

    amount = AmountTextField(
        label=_("Amount"),
        help_text=_(
            "In the currency of the account it applies to. Raising it, or creating or "
            "removing a limit, needs the permission to move money; lowering it does not."
        ),
    )

    #: Who is editing; the admin sets it per request.
    user: AbstractBaseUser | AnonymousUser | None = None

    class Meta:
        model = SpendingLimit
        fields = ("account", "account_type", "period", "amount")

    def __init__(
        self, *args: Any, user: AbstractBaseUser | AnonymousUser | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.user = user

    def clean_amount(self) -> Decimal:
        value: Decimal | None = self.cleaned_data["amount"]
        if value is None or value < 0:
            raise ValidationError(_("Give zero or a positive amount."), code="invalid")
        return value

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        account = cleaned.get("account") or self.instance.account
        amount = cleaned.get("amount")
        if account is not None and amount is not None and "amount" not in self.errors:
            try:
                amounts.check_places(amount, account.currency, what=_("The limit"))
            except Exception as exc:  # noqa: BLE001 - shown on the field
                self.add_error("amount", ValidationError(str(exc), code="places"))
        if may_move_money(self.user):
            return cleaned
        if self.instance.pk is None:
            raise ValidationError(
                _("Only staff who may move money can create a spending limit."),
                code="move_money",
            )
        stored = SpendingLimit.objects.filter(pk=self.instance.pk).values_list("amount", flat=True)
        old = stored.first()
        if amount is not None and old is not None and amount > old:
            self.add_error(
                "amount",
                ValidationError(
                    _(
                        "Only staff who may move money can raise a spending limit "
                        "(%(old)s now); it may be lowered."
                    ),
                    code="move_money",
                    params={"old": old},
                ),
            )
        return cleaned


@admin.register(SpendingLimit)
class SpendingLimitAdmin(_SpendingLimitAdmin):
    form = SpendingLimitForm
    list_display = ("owner", "period", "amount_column", "changed_at", "created")
    list_filter = ("period", "account_type")
    search_fields = ("account__name", "account__code", "account_type__name")
    raw_id_fields = ("account",)
    list_select_related = ("account", "account_type")

    @admin.display(description=_("applies to"))
    def owner(self, obj: SpendingLimit) -> SafeString:
        if obj.account_id is not None:
            return format_html(str(_("account {}")), obj.account)
        return format_html(str(_("every account of type {}")), obj.account_type)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_column(self, obj: SpendingLimit) -> SafeString:
        return format_html('<span class="accounts-money">{}</span>', obj.amount_display)

    def get_readonly_fields(
        self, request: HttpRequest, obj: SpendingLimit | None = None
    ) -> tuple[str, ...]:
        # A limit's owner and period never change.
        return ("account", "account_type", "period") if obj is not None else ()

    def get_form(
        self,
        request: HttpRequest,
        obj: SpendingLimit | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm[SpendingLimit]]:
        form = super().get_form(request, obj, change, **kwargs)
        user = request.user

        # mypy takes no variable (the form class the admin built) as a base class.
        class WithUser(form):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, user=user, **kw)

        return WithUser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and may_move_money(request.user)

    def has_delete_permission(
        self, request: HttpRequest, obj: SpendingLimit | None = None
    ) -> bool:
        return super().has_delete_permission(request, obj) and may_move_money(request.user)


@admin.register(Repayment)
class RepaymentAdmin(ReadOnlyAdmin):
    list_display = ("created", "destination", "requested", "debt", "repaid", "source", "username")
    list_select_related = ("source", "destination", "transfer")
    search_fields = ("destination__name", "destination__code", "idempotency_key")
    date_hierarchy = "created"


@admin.register(Decline)
class DeclineAdmin(ReadOnlyAdmin):
    list_display = (
        "created",
        "source",
        "amount",
        "reason_column",
        "operation",
        "destination",
        "merchant_reference",
        "username",
    )
    list_filter = ("reason", "operation")
    list_select_related = ("source", "destination")
    search_fields = ("source__name", "source__code", "merchant_reference", "idempotency_key")
    date_hierarchy = "created"

    @admin.display(description=_("reason"), ordering="reason")
    def reason_column(self, obj: Decline) -> SafeString:
        return format_html("{} <small>({})</small>", obj.reason_text, obj.reason)


def account_context(request: HttpRequest, account: Account, site_name: str) -> dict[str, Any]:
    """What an account's admin page shows of its spending and its declined payments."""
    spending = account.spending()
    declines = list(
        Decline.objects.for_account(account.pk).select_related("destination")[:ACCOUNT_DECLINES]
    )
    return {
        "spending": spending,
        "spending_limits_url": reverse(
            "admin:accounts_spendinglimit_changelist", current_app=site_name
        )
        + "?account__id__exact=%s" % account.pk,
        "declines": declines,
        "declines_url": reverse("admin:accounts_decline_changelist", current_app=site_name)
        + "?source__id__exact=%s" % account.pk,
        "can_view_declines": request.user.has_perm("accounts.view_decline"),
    }
