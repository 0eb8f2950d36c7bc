"""
The admin of debts: their settlements, statement, and the pages that settle or fail them.

* ``admin:accounts_debt_settle`` (``debt/<id>/settle/``): money came back;
* ``admin:accounts_debt_fail`` (``debt/<id>/fail/``): it did not;
* ``admin:accounts_debt_statement`` and ``admin:accounts_debt_statement_csv``:
  the debt's statement, and its CSV streamed row by row.

See :mod:`accounts.collection_admin`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.template.response import TemplateResponse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import collections
from .admin_pages import (
    CONFIRM,
    EDIT,
    form_page_context,
    has_move_money_permission,
    money_cell,
    money_column,
    move_money,
    object_or_refusal,
    own_urls,
    statement_context,
)
from .admin_readonly import ReadOnlyAdmin, ReadOnlyMixin, admin_url, fields_of
from .collection_forms import FailForm, SettleForm
from .collection_models import Debt, Settlement
from .exports import csv_lines

if TYPE_CHECKING:
    from django.urls import URLPattern

    _TabularInline = admin.TabularInline[Settlement, Debt]
else:
    _TabularInline = admin.TabularInline

__all__ = ["DebtAdmin", "SettlementInline"]


class SettlementInline(ReadOnlyMixin, _TabularInline):
    model = Settlement
    fields = ("reference", "transfer_link", "amount", "created")
    readonly_fields = fields
    verbose_name = _("settlement")
    verbose_name_plural = _("money that came back (settlements)")
    extra = 0
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("transfer")

    @admin.display(description=_("transfer"))
    def transfer_link(self, obj: Settlement) -> str:
        url = admin_url(self.admin_site, "transfer_change", obj.transfer_id)
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
    readonly_fields = fields_of(fieldsets)
    inlines = [SettlementInline]
    #: Rows per statement page.
    statement_per_page = 50

    @admin.display(description=_("debt"), ordering="pk")
    def debt_column(self, obj: Debt) -> str:
        return str(obj)

    owed_money = money_column("amount", _("owed"), ordering="amount")

    recovered_money = money_column("recovered", _("recovered"), ordering="recovered")

    still_owed = money_column("remaining", _("still owed"))

    def get_urls(self) -> list[URLPattern]:
        return [
            *own_urls(
                self,
                ("<path:object_id>/settle/", self.settle_view, "settle"),
                ("<path:object_id>/fail/", self.fail_view, "fail"),
                ("<path:object_id>/statement/", self.statement_view, "statement"),
                ("<path:object_id>/statement.csv", self.statement_csv_view, "statement_csv"),
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
        return object_or_refusal(
            self, request, object_id, _("There is no debt with id %(id)s."), moving=moving
        )

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
            success_url=lambda _transfer: admin_url(self.admin_site, "debt_change", debt.pk),
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
                    return HttpResponseRedirect(admin_url(self.admin_site, "debt_change", debt.pk))
            elif EDIT not in request.POST:
                confirming = True
        context = form_page_context(
            self,
            request,
            form,
            title=_("Mark %(debt)s failed") % {"debt": debt},
            submit_label=_("Mark failed"),
            original=debt,
            summary=self._summary(debt),
            confirming=confirming,
        )
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
        context = {
            **statement_context(
                self,
                request,
                statement.transactions,
                debt.account_id,
                original=statement.debt,
                per_page=self.statement_per_page,
            ),
            "title": _("Statement of %(debt)s") % {"debt": debt},
            "debt": statement.debt,
            "run": statement.run,
            "account": statement.account,
            "statement": statement,
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
        rows = statement.rows()
        header = next(rows)
        response = StreamingHttpResponse(
            csv_lines(header, rows), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="debt-%s-%s.csv"' % (
            debt.pk,
            statement.run.reference,
        )
        return response
