"""
The admin's financial reports, CSV downloads and balance charts.

"Reports" is listed in the admin with the ledger's models (a proxy model,
``accounts.models.Report``) for staff with ``accounts.view_reports``; it
leads to the outstanding balances, the trial balance and the movements
(``accounts.reports``), each with its date or period, table, charts and CSV
download (``?format=csv``). URL names: ``admin:accounts_report_changelist``
(the list of reports), ``admin:accounts_report_outstanding``,
``..._trial_balance`` and ``..._movements``.

``accounts.admin`` hooks the rest in: a statement's CSV
(``admin:accounts_account_statement_csv``, for who may see the statement),
the transfer list's CSV with its filters and search
(``admin:accounts_transfer_export``, for who may see transfers), and the
balance chart on an account's page and statement.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
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
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from . import charts, exports, reports
from .forms import StatementFilterForm
from .models import Account, Report

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin

VIEW_REPORTS_PERMISSION = "accounts.view_reports"


def has_view_reports_permission(request: HttpRequest) -> bool:
    """Whether the user may see the reports and download them (``accounts.view_reports``)."""
    return request.user.has_perm(VIEW_REPORTS_PERMISSION)


# Forms ------------------------------------------------------------------------------------

_DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class ReportDateForm(forms.Form):
    """The day a report is at (its end); today by default."""

    at = forms.DateField(label=_("At the end of"), required=False, widget=_DATE)

    @staticmethod
    def defaults() -> dict[str, datetime.date]:
        return {"at": timezone.localdate()}

    def period(self) -> dict[str, datetime.date]:
        return {"at": self.cleaned_data.get("at") or timezone.localdate()}


class ReportPeriodForm(forms.Form):
    """The days a report covers (both whole, inclusive); last month by default."""

    start = forms.DateField(label=_("From"), required=False, widget=_DATE)
    end = forms.DateField(label=_("To"), required=False, widget=_DATE)

    def clean(self) -> dict[str, Any]:
        super().clean()
        start, end = self.cleaned_data.get("start"), self.cleaned_data.get("end")
        if start and end and start > end:
            raise ValidationError(_("The start date is after the end date."), code="bad_range")
        return self.cleaned_data

    @staticmethod
    def defaults() -> dict[str, datetime.date]:
        this_month = timezone.localdate().replace(day=1)
        last_month = (this_month - datetime.timedelta(days=1)).replace(day=1)
        return {"start": last_month, "end": this_month - datetime.timedelta(days=1)}

    def period(self) -> dict[str, datetime.date]:
        start = self.cleaned_data.get("start")
        end = self.cleaned_data.get("end")
        if start is None and end is None:
            return self.defaults()
        if start is None:
            assert end is not None
            start = end.replace(day=1)
        return {"start": start, "end": end or timezone.localdate()}


@dataclass(frozen=True)
class ReportKind:
    slug: str
    title: Any
    description: Any
    form: type[ReportDateForm] | type[ReportPeriodForm]
    build: Callable[..., reports.Report]


REPORTS = (
    ReportKind(
        "outstanding",
        _("Outstanding balances"),
        _(
            "What customer accounts held at the end of a day, by account type and currency: "
            "what the business owes its customers, and what customers owe it."
        ),
        ReportDateForm,
        reports.outstanding_balances,
    ),
    ReportKind(
        "trial_balance",
        _("Trial balance"),
        _(
            "Every core account and account type with its debit and credit balances at the "
            "end of a day; each currency sums to zero."
        ),
        ReportDateForm,
        reports.trial_balance,
    ),
    ReportKind(
        "movements",
        _("Movements"),
        _(
            "Top-ups, spending, refunds and reversals, expiries and more over a period, by "
            "account type and currency, from the opening to the closing totals."
        ),
        ReportPeriodForm,
        reports.movements,
    ),
)


# The reports' admin --------------------------------------------------------------------------


@admin.register(Report)
class ReportAdmin(_ModelAdmin):
    """The reports: views only, for ``accounts.view_reports``; nothing to add or change."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return has_view_reports_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return has_view_reports_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[Any]:
        info = self.opts.app_label, self.opts.model_name
        view = self.admin_site.admin_view
        urls = [path("", view(self.index_view), name="%s_%s_changelist" % info)]
        for kind in REPORTS:
            urls.append(
                path(
                    "%s/" % kind.slug.replace("_", "-"),
                    view(self.report_view),
                    {"slug": kind.slug},
                    name="%s_%s_%s" % (*info, kind.slug),
                )
            )
        return urls

    def _context(self, request: HttpRequest, title: Any) -> dict[str, Any]:
        request.current_app = self.admin_site.name
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "opts": self.opts,
        }

    def index_view(self, request: HttpRequest) -> HttpResponse:
        if not has_view_reports_permission(request):
            raise PermissionDenied
        info = self.opts.app_label, self.opts.model_name
        context = {
            **self._context(request, _("Reports")),
            "reports": [
                (
                    kind.title,
                    kind.description,
                    reverse(
                        "admin:%s_%s_%s" % (*info, kind.slug), current_app=self.admin_site.name
                    ),
                )
                for kind in REPORTS
            ],
        }
        return TemplateResponse(request, "admin/accounts/report/index.html", context)

    def report_view(self, request: HttpRequest, slug: str) -> HttpResponse | StreamingHttpResponse:
        if not has_view_reports_permission(request):
            raise PermissionDenied
        kind = next(k for k in REPORTS if k.slug == slug)
        data = request.GET.copy()
        if not any(name in data for name in kind.form.base_fields):
            # A first visit: the default date or period, shown in the picker.
            for name, value in kind.form.defaults().items():
                data[name] = value.isoformat()
        form = kind.form(data)
        report = None
        if form.is_valid():
            report = kind.build(**form.period())
            if request.GET.get("format") == "csv":
                return cast(
                    StreamingHttpResponse,
                    exports.streaming_csv(
                        "%s-%s.csv"
                        % (
                            slug.replace("_", "-"),
                            "-to-".join(str(v) for v in form.period().values()),
                        ),
                        exports.report_header(report),
                        exports.report_rows(report),
                    ),
                )
        query = data.copy()
        query["format"] = "csv"
        context = {
            **self._context(request, kind.title),
            "kind": kind,
            "form": form,
            "report": report,
            "table": _table(report) if report else None,
            "charts": charts.bar_charts(report.charts) if report else [],
            "csv_url": "?" + query.urlencode(),
            "reports_url": reverse(
                "admin:%s_%s_changelist" % (self.opts.app_label, self.opts.model_name),
                current_app=self.admin_site.name,
            ),
        }
        return TemplateResponse(request, "admin/accounts/report/report.html", context)


def _table(report: reports.Report) -> dict[str, Any]:
    """The report's rows for the template: cells with their kind, money as ``Money``."""
    columns = [column for column in report.columns if column.shown]
    rows = []
    for row in report.rows:
        cells = []
        for column, value in zip(columns, row.values(columns), strict=True):
            flagged = column.key == "unexplained" and getattr(value, "amount", 0) != 0
            cells.append({"value": value, "kind": column.kind, "flagged": flagged})
        if row.is_total:
            # The page has no currency column (the amounts show theirs).
            cells[0]["value"] = _("Total %(currency)s") % {"currency": row.currency}
        rows.append({"line": row.line, "is_total": row.is_total, "cells": cells})
    return {"columns": columns, "rows": rows}


# Hooks for the accounts' and transfers' admins -------------------------------------------------


def statement_dates(
    request: HttpRequest,
) -> tuple[StatementFilterForm, datetime.date | None, datetime.date | None, str]:
    """The statement page's filter form, and the ``start``, ``end`` and date field it asks for.

    A form that is not valid asks for the whole history, by posting date.
    """
    form = StatementFilterForm(request.GET)
    if not form.is_valid():
        return form, None, None, "created"
    data = form.cleaned_data
    return form, data["start"], data["end"], data["date_field"]


def statement_csv(
    model_admin: _ModelAdmin, request: HttpRequest, object_id: str
) -> StreamingHttpResponse:
    """An account's statement as CSV, for the dates of the statement page (``start``, ``end``)."""
    account = model_admin.get_object(request, unquote(object_id))
    if account is None:
        raise Http404(_("There is no account with id %(id)s.") % {"id": object_id})
    if not model_admin.has_view_permission(request, account):
        raise PermissionDenied
    _form, start, end, date_field = statement_dates(request)
    name = "statement-%s%s%s.csv" % (
        account.pk,
        "".join("-%s" % value for value in (start, end) if value),
        "-effective" if date_field == "effective_at" else "",
    )
    return cast(
        StreamingHttpResponse,
        exports.streaming_csv(
            name,
            exports.STATEMENT_COLUMNS,
            exports.statement_rows(account, start, end, date_field=date_field),
        ),
    )


def transfers_csv(
    model_admin: _ModelAdmin, request: HttpRequest
) -> HttpResponse | StreamingHttpResponse:
    """The transfer list as CSV, with the list's filters and search, newest first."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    try:
        changelist = model_admin.get_changelist_instance(request)
    except IncorrectLookupParameters:
        url = reverse(
            "admin:%s_%s_changelist" % (model_admin.opts.app_label, model_admin.opts.model_name),
            current_app=model_admin.admin_site.name,
        )
        return HttpResponseRedirect(url + "?e=1")
    return cast(
        StreamingHttpResponse,
        exports.streaming_csv(
            "transfers-%s.csv" % timezone.localdate().isoformat(),
            exports.TRANSFER_COLUMNS,
            exports.transfer_rows(changelist.get_queryset(request)),
        ),
    )


#: The periods offered above an account's balance chart: (query value, days, label).
CHART_PERIODS = (
    ("30", 30, _("30 days")),
    ("90", 90, _("90 days")),
    ("365", 365, _("12 months")),
    ("all", None, _("Since the first transaction")),
)
DEFAULT_CHART_PERIOD = "90"


def account_chart(request: HttpRequest, account: Account) -> dict[str, Any]:
    """Context for the balance chart of an account's page: the chart and its periods."""
    chosen = request.GET.get("balance", DEFAULT_CHART_PERIOD)
    if chosen not in {value for value, _days, _label in CHART_PERIODS}:
        chosen = DEFAULT_CHART_PERIOD
    days = dict((value, days) for value, days, _label in CHART_PERIODS)[chosen]
    start = None if days is None else timezone.localdate() - datetime.timedelta(days=days - 1)
    periods = []
    for value, _days, label in CHART_PERIODS:
        query = request.GET.copy()
        query["balance"] = value
        periods.append({"label": label, "url": "?" + query.urlencode(), "chosen": value == chosen})
    return {"balance_chart": balance_chart(account, start), "balance_periods": periods}


def balance_chart(
    account: Account,
    start: datetime.datetime | datetime.date | None = None,
    end: datetime.datetime | datetime.date | None = None,
) -> SafeString:
    """The SVG of an account's balance over a period (see ``accounts.charts``)."""
    return charts.balance_chart(reports.balance_history(account, start, end))
