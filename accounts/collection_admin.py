"""
The admin of collecting debts: collection runs with their totals, and their debts.

Runs and debts are written only by ``accounts.collections``: the admin shows
them, and lets staff with ``accounts.move_money`` record what happened to a
debt, each with the confirmation step of every money form
(``accounts.admin_pages.move_money``):

* ``admin:accounts_debt_settle`` (``debt/<id>/settle/``): money came back.
  The form's external reference is the settlement's idempotency key, so
  confirming twice records it once;
* ``admin:accounts_debt_fail`` (``debt/<id>/fail/``): it did not; what the
  debt still owes is owed again in the next run. No money moves, but what a
  debtor owes changes, so it needs the same permission.

Each debt has a statement (``admin:accounts_debt_statement``) and its CSV
(``admin:accounts_debt_statement_csv``), streamed row by row.

Imported by ``accounts.admin``, which registers everything else. The run
admin is here; the debt admin and its pages in ``accounts.debt_admin``, its
forms in ``accounts.collection_forms`` (both importable from here too).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from .admin_pages import money_column
from .admin_readonly import ReadOnlyAdmin, admin_url, fields_of
from .collection_forms import FailForm, SettleForm
from .collection_models import CollectionRun
from .debt_admin import DebtAdmin, SettlementInline

__all__ = [
    "CollectionRunAdmin",
    "DebtAdmin",
    "SettlementInline",
    "SettleForm",
    "FailForm",
    "ReadOnlyAdmin",
    "RUN_PAGE_DEBTS",
]

#: Debts listed on a run's page (all of them are one click away).
RUN_PAGE_DEBTS = 20


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
    readonly_fields = fields_of(fieldsets)

    @admin.display(description=_("scope"), ordering="scope")
    def scope_column(self, obj: CollectionRun) -> str:
        return obj.scope_label

    @admin.display(description=_("period"), ordering="period_end")
    def period(self, obj: CollectionRun) -> str:
        return "%s – %s" % (
            timezone.localdate(obj.period_start).isoformat(),
            timezone.localdate(obj.period_end).isoformat(),
        )

    owed_money = money_column("total_owed", _("to recover"), ordering="total_owed")

    pending_money = money_column("total_pending", _("not initiated yet"))

    initiated_money = money_column("total_initiated", _("initiated"), ordering="total_initiated")

    recovered_money = money_column("total_recovered", _("recovered"), ordering="total_recovered")

    failed_money = money_column("total_failed", _("failed"), ordering="total_failed")

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
                    admin_url(site, "debt_change", debt.pk),
                    debt,
                    debt.account,
                    debt.amount,
                    debt.recovered,
                    debt.get_status_display(),
                )
                for debt in debts
            ),
        )
        link = admin_url(site, "debt_changelist") + "?run__id__exact=%s" % obj.pk
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
