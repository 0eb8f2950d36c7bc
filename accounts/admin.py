"""
The Django admin for finance and support staff.

Everything that moves money goes through ``accounts.facade`` (so the admin
gets the same checks, row locks and audit trail as code) and needs the
``accounts.move_money`` permission, separate from editing accounts. The
money-moving views are named after what they do, in their URLs and URL
names alike (``admin:accounts_account_top_up``, ``..._withdraw``,
``..._transfer``, ``admin:accounts_transfer_reverse``,
``admin:accounts_hold_release``), so they are easy to find in URLs and
permission audits.

Every money form has two steps: the form, then a confirmation page stating
exactly what will happen ("Move £150.00 from Bank (GBP) to Barry's wallet.");
nothing is written before it is confirmed. The form's one-time token rides
along as the idempotency key, so a double click or a browser's retry of the
confirmation moves the money once. Releasing holds, one or many, is
confirmed the same way.

Transfers, transactions and holds are append-only: their admins only show
them (a hold can be released, through the facade). The one change staff can
make to a transfer or hold is "Mark as notified" (``notified_at``, set once;
see ``NotificationMarks``), which needs ``accounts.mark_notified``: it moves
no money, but it stops the customer's notification from being sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import ManyToManyRawIdWidget
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import ManyToManyField, Model, QuerySet
from django.forms import ModelForm, ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from . import admin_reports, admin_wallets, facade
from .account_forms import AccountForm
from .admin_pages import (
    CONFIRM,
    NO_MOVE_MONEY,
    NO_VIEW,
    forbidden,
    has_move_money_permission,
    money_cell,
    money_column,
    move_money,
    object_or_refusal,
    own_urls,
    statement_context,
    transfer_url,
)
from .admin_readonly import ADMIN_CSS, ReadOnlyMixin
from .codes import format_code, normalize_code
from .conf import conf
from .exceptions import AccountException, HoldResolved, StrOrPromise
from .forms import (
    ReleaseForm,
    ReverseForm,
    TopUpForm,
    TransferForm,
    WithdrawForm,
)
from .lookup import MAX_CODE_LENGTH
from .managers import AccountQuerySet, TransferQuerySet
from .models import Account, AccountType, Batch, Hold, Transaction, Transfer

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec
    from djmoney.money import Money

    # Django's admin classes take no type arguments at run time.
    _ModelAdmin = admin.ModelAdmin[Any]
    _AccountTypeAdmin = admin.ModelAdmin[AccountType]
    _AccountAdmin = admin.ModelAdmin[Account]
    _HoldInline = admin.TabularInline[Hold, Account]
    _TabularInline = admin.TabularInline[Any, Any]
else:
    _ModelAdmin = _AccountTypeAdmin = _AccountAdmin = admin.ModelAdmin
    _HoldInline = _TabularInline = admin.TabularInline

_Q = TypeVar("_Q", bound=QuerySet[Any])


#: Who may mark transfers and holds as notified (the admin's action, the sandbox's page).
MARK_NOTIFIED_PERMISSION = "accounts.mark_notified"


# List filters -------------------------------------------------------------


class NarrowingFilter(admin.SimpleListFilter, Generic[_Q]):
    """A list filter driven by a table: each choice's value, label, and how it narrows the list.

    ``_Q`` is the list's QuerySet class (the one admin that lists the filter).
    """

    narrowings: Sequence[tuple[str, StrOrPromise, Callable[[_Q], _Q]]]

    def lookups(
        self, request: HttpRequest, model_admin: _ModelAdmin
    ) -> list[tuple[str, StrOrPromise]]:
        return [(value, label) for value, label, _narrow in self.narrowings]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        for value, _label, narrow in self.narrowings:
            if self.value() == value:
                return narrow(cast(_Q, queryset))
        return queryset


class ActivityFilter(NarrowingFilter[AccountQuerySet]):
    title = _("activity")
    parameter_name = "activity"
    narrowings = [
        ("active", _("Active (open and inside its dates)"), lambda accounts: accounts.active()),
        ("expired", _("Expired"), lambda accounts: accounts.expired()),
        (
            "not_started",
            _("Not started yet"),
            lambda accounts: accounts.filter(start_date__gt=timezone.now()),
        ),
    ]


class NotifiedFilter(NarrowingFilter[QuerySet[Any]]):
    """Transfers or holds whose notification was sent (``notified_at`` set), or not yet."""

    title = _("notified")
    parameter_name = "notified"
    narrowings = [
        ("yes", _("Yes"), lambda rows: rows.filter(notified_at__isnull=False)),
        ("no", _("No"), lambda rows: rows.filter(notified_at__isnull=True)),
    ]


class CurrencyFilter(admin.SimpleListFilter):
    # From the settings, not SELECT DISTINCT over every account.
    title = _("currency")
    parameter_name = "currency"

    def lookups(
        self, request: HttpRequest, model_admin: _ModelAdmin
    ) -> list[tuple[str, StrOrPromise]]:
        return [(code, code) for code in conf.CURRENCIES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        return queryset.filter(currency=self.value()) if self.value() else queryset


class ReversalFilter(NarrowingFilter[TransferQuerySet]):
    title = _("kind")
    parameter_name = "kind"
    narrowings = [
        ("original", _("Transfers"), lambda transfers: transfers.originals()),
        ("reversal", _("Reversals"), lambda transfers: transfers.reversals()),
    ]


# Accounts -----------------------------------------------------------------


@admin.register(AccountType)
class AccountTypeAdmin(_AccountTypeAdmin):
    list_display = ("name", "code", "parent")
    list_select_related = ("parent",)
    search_fields = ("name", "code")
    prepopulated_fields = {"code": ("name",)}


class PendingHoldInline(ReadOnlyMixin, _HoldInline):
    """The account's active holds: what its ``held`` amount is made of."""

    model = Hold
    fk_name = "source"
    fields = ("reference_link", "created", "destination", "amount", "expires_at", "description")
    readonly_fields = fields
    verbose_name = _("active hold")
    verbose_name_plural = _("active holds (money reserved, not yet moved)")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Hold]:
        return super().get_queryset(request).filter(status=Hold.Status.ACTIVE)

    @admin.display(description=_("reference"))
    def reference_link(self, obj: Hold) -> str:
        url = reverse(
            "admin:accounts_hold_change", args=[obj.pk], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">{}</a>', url, obj.reference)


class UsersRawIdWidget(ManyToManyRawIdWidget):
    """The ids of an account's secondary users, with their names next to them."""

    def label_and_url_for_value(self, value: Sequence[object]) -> tuple[str, str]:
        model = self.rel.model
        try:
            users = list(model._default_manager.using(self.db).filter(pk__in=value))
        except (ValueError, TypeError, ValidationError):
            return "", ""
        return ", ".join(str(user) for user in users), ""


@admin.register(Account)
class AccountAdmin(_AccountAdmin):
    form = AccountForm
    inlines = [PendingHoldInline]
    # The money first: at 1280 pixels, with the filters beside it, the list
    # shows name, balance, held, credit limit and status without scrolling.
    list_display = (
        "account_column",
        "balance_money",
        "held_money",
        "credit_limit_money",
        "status",
        "currency",
        "primary_user",
        "account_type",
        "end_date",
        "code_column",
    )
    list_select_related = ("account_type", "primary_user")
    list_filter = ("status", "account_type", CurrencyFilter, ActivityFilter)
    raw_id_fields = ("primary_user", "secondary_users")
    actions = ["freeze", "thaw", "close"]
    show_full_result_count = False
    # The money near the top, where finance staff look first.
    fieldsets = (
        (None, {"fields": ("name", "code", "account_type")}),
        (
            _("Money"),
            {"fields": ("currency", "balance", "held", "available_amount", "credit_limit")},
        ),
        (_("Users"), {"fields": ("primary_user", "secondary_users")}),
        (_("Status"), {"fields": ("status", "start_date", "end_date", "role", "created")}),
        (_("Notes"), {"fields": ("description", "metadata")}),
        (None, {"fields": ("shown",), "classes": ("hidden",)}),
    )
    #: Rows per statement page.
    statement_per_page = 50

    class Media:
        css = {"all": (ADMIN_CSS,)}

    @admin.display(description=_("account"), ordering="name")
    def account_column(self, obj: Account) -> str:
        # A name may wrap; a card's code, shown as printed, stays on one line.
        if obj.name or not obj.code:
            return str(obj)
        return format_html('<span class="accounts-code">{}</span>', format_code(obj.code))

    balance_money = money_column("balance", _("balance"), ordering="balance")

    held_money = money_column("held", _("held"), ordering="held")

    @admin.display(description=_("credit limit"), ordering="credit_limit")
    def credit_limit_money(self, obj: Account) -> SafeString:
        return money_cell(_("no limit") if obj.credit_limit is None else obj.credit_limit)

    @admin.display(description=_("code"), ordering="code")
    def code_column(self, obj: Account) -> SafeString:
        # As printed on the card, so it can be read out and compared.
        return format_html('<span class="accounts-code">{}</span>', format_code(obj.code or ""))

    @admin.display(description=_("credit limit"))
    def credit_limit_shown(self, obj: Account) -> object:
        return _("no limit") if obj.credit_limit is None else obj.credit_limit

    @admin.display(description=_("available amount"))
    def available_amount(self, obj: Account) -> object:
        available = obj.available_amount
        return _("no limit") if available is None else available

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Read here, not at import: AUTH_USER_MODEL may be any user model.
        username = get_user_model().USERNAME_FIELD
        return ("name", "code", "primary_user__%s" % username, "secondary_users__%s" % username)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Account], search_term: str
    ) -> tuple[QuerySet[Account], bool]:
        """Also find a card by its code as people type or print it.

        ``7kq2-m9xd ht4r`` finds ``7KQ2M9XDHT4RWB3N``: codes are stored
        normalized, so the search term is normalized for the code column
        (the plain search would split it into words and look for the dashes).
        The autocomplete of the transfer form uses this search too.
        """
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        code = normalize_code(search_term)
        if code and len(code) <= MAX_CODE_LENGTH:
            results = results | queryset.filter(code__contains=code)
        return results, may_have_duplicates

    def get_autocomplete_fields(self, request: HttpRequest) -> tuple[str, ...]:
        # Search users as you type where this admin site lets the staff user
        # search them; otherwise ids, with the users' names shown next to them.
        user_admin = self.admin_site._registry.get(get_user_model())
        if (
            user_admin is not None
            and user_admin.get_search_fields(request)
            and user_admin.has_view_permission(request)
        ):
            return ("primary_user", "secondary_users")
        return ()

    def formfield_for_manytomany(
        self, db_field: ManyToManyField[Any, Any], request: HttpRequest, **kwargs: Any
    ) -> ModelMultipleChoiceField[Any] | None:
        if db_field.name == "secondary_users" and db_field.name not in (
            self.get_autocomplete_fields(request)
        ):
            kwargs["widget"] = UsersRawIdWidget(
                db_field.remote_field, self.admin_site, using=kwargs.get("using")
            )
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_form(
        self,
        request: HttpRequest,
        obj: Account | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[ModelForm[Account]]:
        form = super().get_form(request, obj, change, **kwargs)
        # Who edits decides what may change (credit limits, codes of funded cards).
        return type(form.__name__, (form,), {"user": request.user})

    def get_fieldsets(self, request: HttpRequest, obj: Account | None = None) -> _FieldsetSpec:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.is_core:
            # Shown as "no limit" rather than the raw None of a read-only field.
            fieldsets = [
                (
                    name,
                    {
                        **options,
                        "fields": tuple(
                            "credit_limit_shown" if field == "credit_limit" else field
                            for field in options["fields"]
                        ),
                    },
                )
                for name, options in fieldsets
            ]
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> list[str]:
        readonly = ["balance", "held", "available_amount", "status", "role", "created"]
        if obj is not None and obj.is_core:
            # The source must keep its unlimited credit; names follow settings.
            readonly += [
                "name",
                "currency",
                "credit_limit",
                "credit_limit_shown",
                "start_date",
                "end_date",
            ]
        elif obj is not None and obj.transactions.exists():
            # Account.clean() refuses the change too, for a transfer that
            # arrives while the form is open.
            readonly.append("currency")
        return readonly

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        # Core accounts are protected; accounts with transfers are protected
        # by their ledger rows (on_delete=PROTECT), which the admin lists.
        if obj is not None and obj.is_core:
            return False
        return super().has_delete_permission(request, obj)

    def get_urls(self) -> list[URLPattern]:
        return [
            *own_urls(
                self,
                ("transfer/", self.transfer_view, "transfer"),
                ("<path:object_id>/top_up/", self.top_up_view, "top_up"),
                ("<path:object_id>/withdraw/", self.withdraw_view, "withdraw"),
                ("<path:object_id>/statement/", self.statement_view, "statement"),
                (
                    "<path:object_id>/statement/csv/",
                    partial(admin_reports.statement_csv, self),
                    "statement_csv",
                ),
            ),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra_context = {
            "can_move_money": has_move_money_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Account | None = None,
    ) -> HttpResponse:
        context["can_move_money"] = obj is not None and has_move_money_permission(request)
        # Topping up the source from itself is refused anyway: offer transfers only.
        context["is_source"] = obj is not None and obj.role == Account.Role.SOURCE
        if obj is not None:
            context.update(admin_reports.account_chart(request, obj))
            context.update(admin_wallets.account_context(request, obj, self.admin_site.name))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # Status actions: each account is changed under its own row lock and
    # reported on its own, so a refusal is never hidden by the others' success.

    @admin.action(description=_("Freeze selected accounts"), permissions=["change"])
    def freeze(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._change_status(request, queryset, "freeze", _("Account %(account)s is frozen."))

    @admin.action(description=_("Thaw selected accounts"), permissions=["change"])
    def thaw(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._change_status(request, queryset, "thaw", _("Account %(account)s is open again."))

    @admin.action(description=_("Close selected accounts"), permissions=["change"])
    def close(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        self._change_status(request, queryset, "close", _("Account %(account)s is closed."))

    def _change_status(
        self, request: HttpRequest, queryset: QuerySet[Account], method: str, done: StrOrPromise
    ) -> None:
        accounts = list(queryset.order_by("pk"))
        failed = 0
        for account in accounts:
            try:
                getattr(account, method)()
            except AccountException as exc:
                failed += 1
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.log_change(request, account, [{"changed": {"fields": ["status"]}}])
                self.message_user(request, done % {"account": account}, messages.SUCCESS)
        if failed:
            self.message_user(
                request,
                _("%(failed)s of %(total)s accounts were left unchanged; see above why.")
                % {"failed": failed, "total": len(accounts)},
                messages.WARNING,
            )

    # Moving money ---------------------------------------------------------

    def top_up_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._with_source(
            request, object_id, TopUpForm, _("Top up %(account)s"), _("Top up"), _("From")
        )

    def withdraw_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        return self._with_source(
            request,
            object_id,
            WithdrawForm,
            _("Withdraw from %(account)s"),
            _("Withdraw"),
            _("To"),
        )

    def _with_source(
        self,
        request: HttpRequest,
        object_id: str,
        form_class: type[TopUpForm | WithdrawForm],
        title: StrOrPromise,
        submit_label: StrOrPromise,
        source_label: StrOrPromise,
    ) -> HttpResponse:
        """Top up or withdraw: money between the account and the source account."""
        account = self._account(request, object_id, moving=True)
        if isinstance(account, HttpResponse):
            return account
        return move_money(
            self,
            request,
            form_class(request.POST or None, account=account),
            title=title % {"account": account},
            submit_label=submit_label,
            original=account,
            summary=[*account_summary(account), (source_label, source_of(account))],
        )

    def transfer_view(self, request: HttpRequest) -> HttpResponse:
        if not has_move_money_permission(request):
            return forbidden(self, request, NO_MOVE_MONEY)
        if not self.has_view_permission(request):
            return forbidden(self, request, NO_VIEW)
        try:
            # ?source=<id> from an account's page; a malformed id is ignored.
            source = self.opts.pk.to_python(request.GET.get("source"))
        except ValidationError:
            source = None
        form = TransferForm(
            request.POST or None, initial={"source": source}, admin_site=self.admin_site
        )
        return move_money(
            self, request, form, title=_("Transfer money"), submit_label=_("Transfer")
        )

    def _account(
        self, request: HttpRequest, object_id: str, *, moving: bool
    ) -> Account | HttpResponse:
        """The account, or the 403 page saying which permission is missing."""
        return object_or_refusal(
            self, request, object_id, _("There is no account with id %(id)s."), moving=moving
        )

    # Statement ------------------------------------------------------------

    def statement_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        account = self._account(request, object_id, moving=False)
        if isinstance(account, HttpResponse):
            return account
        filter_form, start, end, date_field = admin_reports.statement_dates(request)
        statement = account.statement(start, end, date_field=date_field)
        context = {
            # Newest first.
            **statement_context(
                self,
                request,
                statement.transactions.reverse(),
                account.pk,
                original=account,
                per_page=self.statement_per_page,
            ),
            "title": _("Statement of %(account)s") % {"account": account},
            "account": account,
            "statement": statement,
            "filter_form": filter_form,
            "balance_chart": admin_reports.balance_chart(account, start, end),
        }
        return TemplateResponse(request, "admin/accounts/account/statement.html", context)


def account_summary(account: Account) -> list[tuple[StrOrPromise, object]]:
    available = account.available_amount
    return [
        (_("Account"), account),
        (_("Status"), account.get_status_display()),
        (_("Balance"), account.balance),
        (_("Available"), _("no limit") if available is None else available),
    ]


def source_of(account: Account) -> Account | str:
    """The source account of the account's currency, or why there is none.

    A currency dropped from ACCOUNTS_CURRENCIES has no source; the form then
    shows the facade's error when posted, and this page still renders.
    """
    try:
        return Account.objects.source_account(account.currency)
    except AccountException as exc:
        return str(exc)


# The ledger: read-only ----------------------------------------------------


class LedgerAdmin(_ModelAdmin):
    """Transfers and transactions are append-only: the admin only shows them.

    No add, change or delete, and no actions (so no bulk delete either); the
    models refuse changes too, this keeps the buttons from being offered.
    """

    actions: Any = None
    show_full_result_count = False  # no second COUNT(*) over the whole ledger

    def has_mark_notified_permission(self, request: HttpRequest) -> bool:
        """Whether the user may mark rows as notified (``accounts.mark_notified``)."""
        return request.user.has_perm(MARK_NOTIFIED_PERMISSION)

    @admin.action(description=_("Mark as notified"), permissions=["mark_notified"])
    def mark_as_notified(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        """Set ``notified_at`` (the database's time) on the selected rows that have none."""
        selected = queryset.count()
        marked = queryset.mark_notified()  # type: ignore[attr-defined]
        self.message_user(
            request,
            _(
                "Marked %(marked)s of the %(selected)s selected %(name)s as notified; "
                "the others already were."
            )
            % {"marked": marked, "selected": selected, "name": self.opts.verbose_name_plural},
            messages.SUCCESS,
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    @admin.display(description=_("metadata"))
    def metadata_shown(self, obj: Transfer | Batch | Hold) -> str:
        return metadata_html(obj.metadata)


def metadata_html(value: object) -> str:
    """Metadata as indented JSON, escaped, or a dash when there is none."""
    if not value:
        return "-"
    return format_html(
        '<pre class="accounts-metadata">{}</pre>',
        json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True),
    )


class ReadOnlyInline(ReadOnlyMixin, _TabularInline):
    extra = 0
    can_delete = False


class LegInline(ReadOnlyInline):
    model = Transaction
    fields = ("account", "amount", "balance_after")
    readonly_fields = fields
    verbose_name = _("leg")
    verbose_name_plural = _("legs")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transaction]:
        return super().get_queryset(request).select_related("account")


class ReversalInline(ReadOnlyInline):
    model = Transfer
    fk_name = "parent"
    fields = ("reference_link", "created", "amount", "username", "description")
    readonly_fields = fields
    verbose_name = _("reversal")
    verbose_name_plural = _("reversals")

    @admin.display(description=_("reference"))
    def reference_link(self, obj: Transfer) -> str:
        url = reverse(
            "admin:accounts_transfer_change", args=[obj.pk], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">{}</a>', url, obj.reference)


@admin.register(Transfer)
class TransferAdmin(LedgerAdmin):
    list_display = (
        "reference",
        "amount_money",
        "source",
        "destination",
        "created",
        "parent",
        "batch",
        "merchant_reference",
        "username",
    )
    list_select_related = ("source", "destination", "parent", "batch")
    search_fields = ("^reference", "^merchant_reference")
    list_filter = ("created", ReversalFilter, NotifiedFilter)
    actions = ["mark_as_notified"]
    fields = (
        "reference",
        "created",
        "source",
        "destination",
        "amount",
        "reversed_so_far",
        "left_to_reverse",
        "parent",
        "batch_link",
        "merchant_reference",
        "description",
        "effective_at",
        "metadata_shown",
        "username",
        "idempotency_key",
        "notified_at",
    )
    readonly_fields = fields
    inlines = [LegInline, ReversalInline]

    @admin.display(description=_("batch"))
    def batch_link(self, obj: Transfer) -> str:
        if obj.batch_id is None:
            return "-"
        url = reverse(
            "admin:accounts_batch_change", args=[obj.batch_id], current_app=self.admin_site.name
        )
        return format_html(
            '<a href="{}">{}</a> ({})',
            url,
            obj.batch,
            _("transfer %(position)s of the batch") % {"position": (obj.batch_position or 0) + 1},
        )

    class Media:
        css = {"all": (ADMIN_CSS,)}

    amount_money = money_column("amount", _("amount"), ordering="amount")

    @admin.display(description=_("reversed so far"))
    def reversed_so_far(self, obj: Transfer) -> Money:
        return obj.reversed_amount()

    @admin.display(description=_("left to reverse"))
    def left_to_reverse(self, obj: Transfer) -> Money:
        return obj.reversible_amount()

    def get_urls(self) -> list[URLPattern]:
        return [
            *own_urls(
                self,
                ("<path:object_id>/reverse/", self.reverse_view, "reverse"),
                ("export/", partial(admin_reports.transfers_csv, self), "export"),
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Transfer | None = None,
    ) -> HttpResponse:
        context["can_reverse"] = (
            obj is not None
            and has_move_money_permission(request)
            and obj.reversible_amount().amount > 0
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def reverse_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        transfer = object_or_refusal(
            self, request, object_id, _("There is no transfer with id %(id)s."), moving=True
        )
        if isinstance(transfer, HttpResponse):
            return transfer
        return move_money(
            self,
            request,
            ReverseForm(request.POST or None, transfer=transfer),
            title=_("Reverse transfer %(transfer)s") % {"transfer": transfer},
            submit_label=_("Reverse"),
            original=transfer,
            summary=[
                (_("Money goes back from"), transfer.destination),
                (_("To"), transfer.source),
                (_("Amount of the transfer"), transfer.amount),
                (_("Left to reverse"), transfer.reversible_amount()),
            ],
            # Back to the original: it lists its reversals and what is left.
            success_url=lambda _reversal: transfer_url(self, request, transfer),
        )


class BatchTransferInline(ReadOnlyInline):
    """A batch's transfers, in the order they were requested."""

    model = Transfer
    fk_name = "batch"
    fields = ("reference_link", "position", "source", "destination", "amount", "description")
    readonly_fields = fields
    ordering = ("batch_position",)
    verbose_name = _("transfer")
    verbose_name_plural = _("transfers, in request order")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Transfer]:
        return super().get_queryset(request).select_related("source", "destination")

    @admin.display(description=_("reference"))
    def reference_link(self, obj: Transfer) -> str:
        url = reverse(
            "admin:accounts_transfer_change", args=[obj.pk], current_app=self.admin_site.name
        )
        return format_html('<a href="{}">{}</a>', url, obj.reference)

    @admin.display(description=_("request"))
    def position(self, obj: Transfer) -> int:
        return (obj.batch_position or 0) + 1


@admin.register(Batch)
class BatchAdmin(LedgerAdmin):
    """Batches (``facade.transfer_many``): read only, like the rest of the ledger."""

    list_display = (
        "reference",
        "created",
        "size",
        "atomic",
        "reverses",
        "description",
        "username",
    )
    list_select_related = ("reverses",)
    list_filter = ("created", "atomic")
    search_fields = ("^reference",)
    fields = (
        "reference",
        "created",
        "atomic",
        "size",
        "reverses",
        "description",
        "metadata_shown",
        "username",
        "idempotency_key",
    )
    readonly_fields = fields
    inlines = [BatchTransferInline]


@admin.register(Transaction)
class TransactionAdmin(LedgerAdmin):
    list_display = ("created", "account", "amount_money", "balance_after_money", "transfer")
    list_select_related = ("transfer", "account")
    # Newest first by id, which follows posting order: ``created`` has no
    # index of its own, so sorting the whole ledger by it grows with the ledger.
    ordering = ("-pk",)
    search_fields = ("^transfer__reference", "^transfer__merchant_reference")
    list_filter = ("created",)
    fields = ("transfer", "account", "amount", "balance_after", "created")
    readonly_fields = fields

    class Media:
        css = {"all": (ADMIN_CSS,)}

    amount_money = money_column("amount", _("amount"))

    balance_after_money = money_column("balance_after", _("balance after"))


@admin.register(Hold)
class HoldAdmin(LedgerAdmin):
    """Holds: browse and filter them; release one (or several) through the facade."""

    # What finance staff look for first: how much, whether it still reserves
    # money, and until when.
    list_display = (
        "reference",
        "amount_money",
        "status",
        "expires_at",
        "source",
        "destination",
        "created",
        "merchant_reference",
        "username",
    )
    list_select_related = ("source", "destination")
    list_filter = ("status", "created", "expires_at", NotifiedFilter)
    search_fields = ("^reference", "^merchant_reference")
    actions = ["release_holds", "mark_as_notified"]
    fields = (
        "reference",
        "created",
        "source",
        "destination",
        "amount",
        "status",
        "expires_at",
        "merchant_reference",
        "description",
        "effective_at",
        "metadata_shown",
        "username",
        "idempotency_key",
        "resolved_at",
        "resolved_by",
        "capture",
        "notified_at",
    )
    readonly_fields = fields

    class Media:
        css = {"all": (ADMIN_CSS,)}

    amount_money = money_column("amount", _("amount"), ordering="amount")

    def has_move_money_permission(self, request: HttpRequest) -> bool:
        return has_move_money_permission(request)

    @admin.action(description=_("Release selected holds…"), permissions=["move_money"])
    def release_holds(self, request: HttpRequest, queryset: QuerySet[Hold]) -> HttpResponse | None:
        """First a page listing what releasing would free; releasing once it is confirmed.

        Each hold is released under its account's lock and reported on its
        own. A hold already released (the confirmation posted twice) is
        reported as such, not as a failure.
        """
        holds = list(queryset.select_related("source", "destination").order_by("pk"))
        if request.POST.get("post") != "yes":
            return self._confirm_release(request, holds)
        failed = 0
        for hold in holds:
            try:
                facade.release(hold, user=request.user)
            except HoldResolved as exc:
                if exc.hold.status == Hold.Status.RELEASED:
                    self._report_release(request, hold, already=True, level=messages.INFO)
                    continue
                failed += 1
                self.message_user(request, str(exc), messages.ERROR)
            except AccountException as exc:
                failed += 1
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self._report_release(request, hold, already=False)
        if failed:
            self.message_user(
                request,
                _("%(failed)s of %(total)s holds were left unchanged; see above why.")
                % {"failed": failed, "total": len(holds)},
                messages.WARNING,
            )
        return None

    def _report_release(
        self, request: HttpRequest, hold: Hold, *, already: bool, level: int = messages.INFO
    ) -> None:
        """Say that ``hold`` is released (and log it), or that it already was, at ``level``."""
        if already:
            self.message_user(
                request,
                _("Hold %(hold)s was already released; nothing changed.") % {"hold": hold},
                level,
            )
            return
        self.log_change(request, hold, [{"changed": {"fields": ["status"]}}])
        self.message_user(
            request,
            _("Hold %(hold)s is released: %(amount)s is available again.")
            % {"hold": hold, "amount": hold.amount},
            messages.SUCCESS,
        )

    def _confirm_release(self, request: HttpRequest, holds: list[Hold]) -> HttpResponse:
        active = [hold for hold in holds if hold.is_active]
        totals: dict[str, Money] = {}
        for hold in active:
            total = totals.get(hold.currency)
            totals[hold.currency] = hold.amount if total is None else total + hold.amount
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": _("Confirm: release holds"),
            "opts": self.opts,
            "active": active,
            "others": [hold for hold in holds if not hold.is_active],
            "totals": [totals[currency] for currency in sorted(totals)],
            "selected": [hold.pk for hold in holds],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "media": self.media,
        }
        return TemplateResponse(
            request, "admin/accounts/hold/release_selected_confirmation.html", context
        )

    def get_urls(self) -> list[URLPattern]:
        return [
            *own_urls(self, ("<path:object_id>/release/", self.release_view, "release")),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Hold | None = None,
    ) -> HttpResponse:
        context["can_release"] = (
            obj is not None and obj.is_active and has_move_money_permission(request)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def release_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        hold = object_or_refusal(
            self, request, object_id, _("There is no hold with id %(id)s."), moving=True
        )
        if isinstance(hold, HttpResponse):
            return hold
        # The page is the confirmation: it says what releasing does, and the
        # form has no fields, so its POST is the confirmed request.
        form = ReleaseForm(request.POST if request.method == "POST" else None, hold=hold)
        confirmation = form.confirmation()
        if request.method == "POST" and form.is_valid():
            released = form.save(request.user)
            if released is not None or form.already_released:
                self._report_release(
                    request, hold, already=form.already_released, level=messages.WARNING
                )
                return HttpResponseRedirect(
                    reverse(
                        "admin:accounts_hold_change",
                        args=[hold.pk],
                        current_app=self.admin_site.name,
                    )
                )
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": _("Confirm: release hold %(hold)s") % {"hold": hold},
            "submit_label": _("Release"),
            "opts": self.opts,
            "original": hold,
            "summary": [
                (_("Reserved on"), hold.source),
                (_("For"), hold.destination),
                (_("Amount"), hold.amount),
                (_("Status"), hold.get_status_display()),
            ],
            "form": form,
            "adminform": helpers.AdminForm(cast(Any, form), [(None, {"fields": []})], {}),
            "media": self.media,
            "confirming": True,
            "confirmation": confirmation,
            "carried": [],
            "confirm_name": CONFIRM,
            "can_confirm": hold.is_active,
        }
        return TemplateResponse(request, "admin/accounts/move_money.html", context)


# Collecting debts: runs and debts have their own module, registered with the rest.
from . import collection_admin  # noqa: E402, F401
