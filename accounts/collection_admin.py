"""
The admin of collecting debts: collection runs with their totals, and their debts.

Runs and debts are written only by ``accounts.collections``: the admin shows
them, and lets staff with ``accounts.move_money`` record what happened to a
debt, each with the confirmation step of every money form
(``accounts.admin.move_money``):

* ``admin:accounts_debt_settle`` (``debt/<id>/settle/``): money came back.
  The form's external reference is the settlement's idempotency key, so
  confirming twice records it once;
* ``admin:accounts_debt_fail`` (``debt/<id>/fail/``): it did not; what the
  debt still owes is owed again in the next run. No money moves, but what a
  debtor owes changes, so it needs the same permission.

Each debt has a statement (``admin:accounts_debt_statement``) and its CSV
(``admin:accounts_debt_statement_csv``), streamed row by row.

Imported by ``accounts.admin``, which registers everything else.
"""

from __future__ import annotations

import csv
from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import ValidationError
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from . import collections
from .admin import (
    ADMIN_CSS,
    CONFIRM,
    EDIT,
    NO_MOVE_MONEY,
    NO_VIEW,
    forbidden,
    has_move_money_permission,
    money_cell,
    move_money,
)
from .collection_models import CollectionRun, Debt, Settlement
from .exceptions import (
    AccountException,
    DebtResolved,
    IdempotencyConflict,
    SettlementExceedsDebt,
)
from .forms import AMOUNT_ERRORS, AmountField, MoveMoneyForm
from .models import Transfer
from .pagination import UncountedPage

#: Debts listed on a run's page (all of them are one click away).
RUN_PAGE_DEBTS = 20


def _admin_url(site: admin.AdminSite, name: str, *args: Any) -> str:
    return reverse("admin:accounts_%s" % name, args=args, current_app=site.name)


def _fields_of(fieldsets: Any) -> tuple[str, ...]:
    """Every field of these fieldsets: all of them read only."""
    return tuple(name for _title, options in fieldsets for name in options["fields"])


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by ``accounts.collections`` only: no add, change or actions."""

    actions: Any = None
    show_full_result_count = False

    class Media:
        css = {"all": (ADMIN_CSS,)}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# Runs ------------------------------------------------------------------------------


@admin.register(CollectionRun)
class CollectionRunAdmin(ReadOnlyAdmin):
    # The money first, as on the accounts' list: at 1280 pixels, with the
    # filters beside it, the totals and the status show without scrolling.
    list_display = (
        "reference",
        "owed_money",
        "initiated_money",
        "recovered_money",
        "failed_money",
        "status",
        "period",
        "collect_on",
        "debt_count",
        "scope_column",
    )
    list_select_related = ("account_type",)
    list_filter = ("status", "currency", "account_type")
    search_fields = ("^reference",)
    # The money and the debts first, where finance staff look.
    fieldsets = (
        (None, {"fields": ("reference", "scope_column", "status")}),
        (
            _("Money"),
            {
                "fields": (
                    "currency",
                    "debt_count",
                    "owed_money",
                    "pending_money",
                    "initiated_money",
                    "recovered_money",
                    "failed_money",
                    "source",
                )
            },
        ),
        (_("Debts"), {"fields": ("debts_column",)}),
        (
            _("Dates"),
            {
                "fields": (
                    "period_start",
                    "period_end",
                    "freeze_at",
                    "collect_on",
                    "frozen_at",
                    "finished_at",
                    "created",
                )
            },
        ),
    )
    readonly_fields = _fields_of(fieldsets)

    @admin.display(description=_("scope"), ordering="scope")
    def scope_column(self, obj: CollectionRun) -> str:
        return obj.scope_label

    @admin.display(description=_("period"), ordering="period_end")
    def period(self, obj: CollectionRun) -> str:
        return "%s – %s" % (
            timezone.localdate(obj.period_start).isoformat(),
            timezone.localdate(obj.period_end).isoformat(),
        )

    @admin.display(description=_("to recover"), ordering="total_owed")
    def owed_money(self, obj: CollectionRun) -> Any:
        return money_cell(obj.total_owed)

    @admin.display(description=_("not initiated yet"))
    def pending_money(self, obj: CollectionRun) -> Any:
        return money_cell(obj.total_pending)

    @admin.display(description=_("initiated"), ordering="total_initiated")
    def initiated_money(self, obj: CollectionRun) -> Any:
        return money_cell(obj.total_initiated)

    @admin.display(description=_("recovered"), ordering="total_recovered")
    def recovered_money(self, obj: CollectionRun) -> Any:
        return money_cell(obj.total_recovered)

    @admin.display(description=_("failed"), ordering="total_failed")
    def failed_money(self, obj: CollectionRun) -> Any:
        return money_cell(obj.total_failed)

    @admin.display(description=_("debts"))
    def debts_column(self, obj: CollectionRun) -> Any:
        """The run's first debts, and a link to all of them."""
        site = self.admin_site
        debts = list(obj.debts.select_related("account").order_by("pk")[:RUN_PAGE_DEBTS])
        if not debts:
            return _("None (yet).") if obj.status == obj.Status.PENDING else _("None.")
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td class="accounts-money">{}</td>'
            '<td class="accounts-money">{}</td><td>{}</td></tr>',
            (
                (
                    _admin_url(site, "debt_change", debt.pk),
                    debt,
                    debt.account,
                    debt.amount,
                    debt.recovered,
                    debt.get_status_display(),
                )
                for debt in debts
            ),
        )
        link = _admin_url(site, "debt_changelist") + "?run__id__exact=%s" % obj.pk
        return format_html(
            '<table class="accounts-run-debts"><thead><tr><th>{}</th><th>{}</th><th>{}</th>'
            "<th>{}</th><th>{}</th></tr></thead><tbody>{}</tbody></table>"
            '<p><a href="{}" class="run-debts-link">{}</a></p>',
            _("debt"),
            _("account"),
            _("owed"),
            _("recovered"),
            _("status"),
            rows,
            link,
            _("All %(count)s debts of this run") % {"count": obj.debt_count},
        )


# Debts -----------------------------------------------------------------------------


class SettlementInline(admin.TabularInline):
    model = Settlement
    fields = ("reference", "transfer_link", "amount", "created")
    readonly_fields = fields
    verbose_name = _("settlement")
    verbose_name_plural = _("money that came back (settlements)")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("transfer")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("transfer"))
    def transfer_link(self, obj: Settlement) -> str:
        url = _admin_url(self.admin_site, "transfer_change", obj.transfer_id)
        return format_html('<a href="{}">{}</a>', url, obj.transfer.reference)

    @admin.display(description=_("amount"))
    def amount(self, obj: Settlement) -> Any:
        return money_cell(obj.transfer.amount)


@admin.register(Debt)
class DebtAdmin(ReadOnlyAdmin):
    list_display = (
        "debt_column",
        "account",
        "owed_money",
        "recovered_money",
        "status",
        "run",
        "external_reference",
        "resolved_at",
    )
    list_select_related = ("account", "run")
    list_filter = ("status", "currency", "run")
    search_fields = ("^external_reference", "^run__reference", "account__name")
    fieldsets = (
        (None, {"fields": ("account", "run", "status")}),
        (
            _("Money"),
            {
                "fields": (
                    "owed_money",
                    "recovered_money",
                    "still_owed",
                    "balance_at_freeze",
                    "claimed_elsewhere",
                )
            },
        ),
        (
            _("What happened"),
            {
                "fields": (
                    "external_reference",
                    "failure_reason",
                    "created",
                    "initiated_at",
                    "resolved_at",
                    "resolved_by",
                )
            },
        ),
    )
    readonly_fields = _fields_of(fieldsets)
    inlines = [SettlementInline]
    #: Rows per statement page.
    statement_per_page = 50

    @admin.display(description=_("debt"), ordering="pk")
    def debt_column(self, obj: Debt) -> str:
        return str(obj)

    @admin.display(description=_("owed"), ordering="amount")
    def owed_money(self, obj: Debt) -> Any:
        return money_cell(obj.amount)

    @admin.display(description=_("recovered"), ordering="recovered")
    def recovered_money(self, obj: Debt) -> Any:
        return money_cell(obj.recovered)

    @admin.display(description=_("still owed"))
    def still_owed(self, obj: Debt) -> Any:
        return money_cell(obj.remaining)

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/settle/", view(self.settle_view), name="%s_%s_settle" % info),
            path("<path:object_id>/fail/", view(self.fail_view), name="%s_%s_fail" % info),
            path(
                "<path:object_id>/statement/",
                view(self.statement_view),
                name="%s_%s_statement" % info,
            ),
            path(
                "<path:object_id>/statement.csv",
                view(self.statement_csv_view),
                name="%s_%s_statement_csv" % info,
            ),
            *super().get_urls(),
        ]

    def render_change_form(
        self,
        request: HttpRequest,
        context: Any,
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        context["can_resolve"] = (
            obj is not None and obj.is_open and has_move_money_permission(request)
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _debt(self, request: HttpRequest, object_id: str, *, moving: bool) -> Debt | HttpResponse:
        """The debt, or the 403 page saying which permission is missing."""
        if moving and not has_move_money_permission(request):
            return forbidden(self, request, NO_MOVE_MONEY)
        debt = self.get_object(request, unquote(object_id))
        if debt is None:
            raise Http404(_("There is no debt with id %(id)s.") % {"id": object_id})
        if not self.has_view_permission(request, debt):
            return forbidden(self, request, NO_VIEW)
        return debt

    def _summary(self, debt: Debt) -> list[tuple[Any, Any]]:
        return [
            (_("Debt"), debt),
            (_("Account"), debt.account),
            (_("Collection run"), debt.run),
            (_("Status"), debt.get_status_display()),
            (_("Owed"), debt.amount),
            (_("Recovered"), debt.recovered),
            (_("Still owed"), debt.remaining),
        ]

    def settle_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        debt = self._debt(request, object_id, moving=True)
        if isinstance(debt, HttpResponse):
            return debt
        form = SettleForm(request.POST or None, debt=debt)
        return move_money(
            self,
            request,
            form,
            title=_("Record money received for %(debt)s") % {"debt": debt},
            submit_label=_("Record"),
            original=debt,
            summary=self._summary(debt),
            success_url=lambda _transfer: _admin_url(self.admin_site, "debt_change", debt.pk),
        )

    def fail_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Mark the debt failed, after a confirmation step, as the money forms do."""
        debt = self._debt(request, object_id, moving=True)
        if isinstance(debt, HttpResponse):
            return debt
        form = FailForm(request.POST or None, debt=debt)
        confirming = False
        if request.method == "POST" and form.is_valid():
            if CONFIRM in request.POST:
                done = form.save(request.user)
                if done is not None:
                    if form.already_failed:
                        self.message_user(
                            request,
                            _("%(debt)s was already marked failed; nothing changed.")
                            % {"debt": debt},
                            messages.WARNING,
                        )
                    else:
                        self.log_change(request, debt, [{"changed": {"fields": ["status"]}}])
                        self.message_user(
                            request,
                            _(
                                "%(debt)s is marked failed: %(left)s will be owed again in "
                                "the next run."
                            )
                            % {"debt": debt, "left": form.left},
                            messages.SUCCESS,
                        )
                    return HttpResponseRedirect(
                        _admin_url(self.admin_site, "debt_change", debt.pk)
                    )
            elif EDIT not in request.POST:
                confirming = True
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": _("Mark %(debt)s failed") % {"debt": debt},
            "submit_label": _("Mark failed"),
            "opts": self.opts,
            "original": debt,
            "summary": self._summary(debt),
            "form": form,
            "adminform": helpers.AdminForm(
                cast(Any, form), [(None, {"fields": list(form.fields)})], {}
            ),
            "media": self.media + form.media,
            "confirming": confirming,
        }
        if confirming:
            context.update(
                title=_("Confirm: mark %(debt)s failed") % {"debt": debt},
                confirmation=form.confirmation(),
                details=[(_("Reason"), form.cleaned_data["reason"])],
                carried=[(form.add_prefix("reason"), form.cleaned_data["reason"])],
                confirm_name=CONFIRM,
                edit_name=EDIT,
                can_confirm=True,
            )
        return TemplateResponse(request, "admin/accounts/move_money.html", context)

    def statement_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        debt = self._debt(request, object_id, moving=False)
        if isinstance(debt, HttpResponse):
            return debt
        statement = collections.debt_statement(debt)
        rows = statement.transactions.select_related("transfer__source", "transfer__destination")
        page = UncountedPage(rows, request.GET.get("p"), self.statement_per_page)
        for row in page.object_list:
            transfer = row.transfer
            row.counterparty = (
                transfer.destination if transfer.source_id == debt.account_id else transfer.source
            )
        request.current_app = self.admin_site.name
        context = {
            **self.admin_site.each_context(request),
            "title": _("Statement of %(debt)s") % {"debt": debt},
            "opts": self.opts,
            "transfer_opts": Transfer._meta,
            "original": statement.debt,
            "debt": statement.debt,
            "run": statement.run,
            "account": statement.account,
            "statement": statement,
            "page": page,
            "can_view_transfers": self.admin_site.get_model_admin(Transfer).has_view_permission(
                request
            ),
            "media": self.media,
        }
        return TemplateResponse(request, "admin/accounts/debt/statement.html", context)

    def statement_csv_view(
        self, request: HttpRequest, object_id: str
    ) -> HttpResponse | StreamingHttpResponse:
        """The statement as CSV, streamed: the rows are read in chunks as they are sent."""
        debt = self._debt(request, object_id, moving=False)
        if isinstance(debt, HttpResponse):
            return debt
        statement = collections.debt_statement(debt)
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in statement.rows()),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="debt-%s-%s.csv"' % (
            debt.pk,
            statement.run.reference,
        )
        return response


class _Echo:
    """A file that hands back what is written to it (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


# Forms -----------------------------------------------------------------------------


class SettleForm(MoveMoneyForm):
    """Record money that came back for a debt: a transfer from the run's source into the
    debtor's account. The external reference is the idempotency key."""

    amount = AmountField(
        label=_("Amount received"),
        help_text=_("Less than what is still owed records a partial settlement."),
    )
    reference = forms.CharField(
        label=_("External reference"),
        max_length=collections.REFERENCE_LENGTH,
        help_text=_(
            "The payment provider's reference of this money: recording it twice records it once."
        ),
    )
    merchant_reference = None  # type: ignore[assignment]  # the reference is the merchant's

    field_order = ["amount", "reference", "description"]

    def __init__(self, *args: Any, debt: Debt, **kwargs: Any) -> None:
        self.debt = debt
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("amount", debt.remaining.amount)

    def currency(self) -> str:
        return self.debt.currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.errors or self.existing() is not None:
            # Recorded already (a double click): saving answers with what was recorded.
            return self.cleaned_data
        if not self.debt.is_open:
            raise ValidationError(
                _("%(debt)s is %(status)s: nothing is owed any more."),
                code="resolved",
                params={"debt": self.debt, "status": self.debt.get_status_display().lower()},
            )
        amount = self.cleaned_data.get("amount")
        left = self.debt.remaining
        if amount is not None and amount > left.amount and "amount" not in self.errors:
            self.add_error(
                "amount",
                ValidationError(
                    _("Only %(left)s is still owed."), code="too_much", params={"left": left}
                ),
            )
        return self.cleaned_data

    def idempotency_key(self) -> str | None:
        reference = self.cleaned_data.get("reference")
        return collections.KEY_PREFIX + reference if reference else None

    def accounts(self) -> tuple[Any, Any]:
        return self.debt.run.source, self.debt.account

    def confirmation(self) -> Any:
        amount = self.amount_to_move()
        return _(
            "Record %(amount)s received for %(debt)s (run %(run)s, reference %(reference)s): "
            "move %(amount)s from %(source)s to %(account)s; %(left)s will still be owed."
        ) % {
            "amount": amount,
            "debt": self.debt,
            "run": self.debt.run,
            "reference": self.cleaned_data["reference"],
            "source": self.debt.run.source,
            "account": self.debt.account,
            "left": self.debt.remaining - amount,
        }

    def save(self, user: Any) -> Transfer | None:
        try:
            return self.post(user)
        except IdempotencyConflict:
            self.add_error(
                "reference",
                _(
                    "This external reference was already recorded, for another amount or "
                    "another debt: each payment has its own reference."
                ),
            )
        except AccountException as exc:
            field = "amount" if isinstance(exc, (*AMOUNT_ERRORS, SettlementExceedsDebt)) else None
            self.add_error(field, str(exc))
        return None

    def post(self, user: Any) -> Transfer:
        data = self.cleaned_data
        return collections.settle(
            self.debt,
            data["amount"],
            reference=data["reference"],
            user=user,
            description=data["description"] or None,
        )


class FailForm(forms.Form):
    """Mark a debt failed, with the reason (a payment provider's return code, say)."""

    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the money did not come back; kept on the debt."),
    )

    #: Set by :meth:`save` when the debt turned out to be failed already (the
    #: confirmation posted twice): nothing to do, and nothing wrong.
    already_failed = False

    def __init__(self, *args: Any, debt: Debt, **kwargs: Any) -> None:
        self.debt = debt
        self.left = debt.amount - debt.recovered
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.debt.status == Debt.Status.SUCCEEDED:
            raise ValidationError(
                _("%(debt)s was recovered in full: it cannot fail."),
                code="resolved",
                params={"debt": self.debt},
            )
        return self.cleaned_data

    def confirmation(self) -> Any:
        return _(
            "Mark %(debt)s of %(account)s failed (run %(run)s): %(left)s not recovered will be "
            "owed again in the next run. No money moves."
        ) % {
            "debt": self.debt,
            "account": self.debt.account,
            "run": self.debt.run,
            "left": self.left,
        }

    def save(self, user: Any) -> Debt | None:
        """Fail the debt as ``user``; on a refusal add the reason to the form, return None."""
        try:
            return collections.fail(self.debt, self.cleaned_data["reason"], user=user)
        except DebtResolved as exc:
            if exc.debt.status == Debt.Status.FAILED:
                self.already_failed = True
                return self.debt
            self.add_error(None, str(exc))
        except AccountException as exc:
            self.add_error(None, str(exc))
        return None
