"""The admin's reports, CSV downloads and balance charts (accounts.admin_reports)."""

import csv
import datetime
import io
import re
from decimal import Decimal

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

from accounts import exports
from accounts.models import Transfer

from .factories import AccountFactory, StaffFactory
from .utils import build_report_ledger

pytestmark = pytest.mark.django_db

D = Decimal
#: A finance team member: reports, and seeing accounts and transfers.
FINANCE = [
    "accounts.view_reports",
    "accounts.view_account",
    "accounts.view_transfer",
]


def url(name, *args, query=""):
    return reverse("admin:accounts_%s" % name, args=args) + query


def client_with(permissions, username="finance"):
    client = Client()
    client.force_login(StaffFactory(username=username, permissions=permissions))
    return client


@pytest.fixture
def ledger(db):
    return build_report_ledger()


@pytest.fixture
def finance():
    return client_with(FINANCE)


def read_csv(response):
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="')
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


# The reports in the admin -----------------------------------------------------------------


def test_reports_are_listed_in_the_admin_for_finance_only(finance, clerk_client):
    assert 'href="%s"' % url("report_changelist") in finance.get(reverse("admin:index")).text
    assert url("report_changelist") not in clerk_client.get(reverse("admin:index")).text


@pytest.mark.parametrize(
    "name", ["report_changelist", "report_outstanding", "report_trial_balance", "report_movements"]
)
def test_every_report_needs_the_view_reports_permission(name, clerk_client):
    everything_else = client_with(
        ["accounts.view_account", "accounts.move_money", "accounts.change_account"], "cashier2"
    )

    assert clerk_client.get(url(name)).status_code == 403
    assert everything_else.get(url(name)).status_code == 403
    assert everything_else.get(url(name, query="?format=csv")).status_code == 403
    assert client_with(["accounts.view_reports"]).get(url(name)).status_code == 200


def test_the_reports_page_links_to_each_report(finance):
    page = finance.get(url("report_changelist")).text

    for name in ("report_outstanding", "report_trial_balance", "report_movements"):
        assert 'href="%s"' % url(name) in page


def test_the_report_proxy_has_no_other_admin_page(finance):
    assert finance.get(url("report_changelist") + "1/change/").status_code == 404
    assert finance.get(url("report_changelist") + "add/").status_code == 404


def test_outstanding_balances_page_shows_the_figures_and_a_chart(finance, ledger):
    response = finance.get(url("report_outstanding", query="?at=2026-01-31"))

    assert response.status_code == 200
    table = response.context["table"]
    gift = next(row for row in table["rows"] if row["cells"][0]["value"].endswith("Gift cards"))
    assert [cell["value"] for cell in gift["cells"]][1:4] == [2, 2, Money("94.95", "GBP")]
    totals = [row["cells"][0]["value"] for row in table["rows"] if row["is_total"]]
    assert totals == ["Total EUR", "Total GBP"]
    page = response.text
    assert "£94.95" in page and "Net owed to customers" in page
    # GBP only: EUR and JPY are zero all year, and an empty chart is left out.
    assert page.count('class="accounts-chart bar-chart"') == 1
    assert '<a href="?at=2026-01-31&amp;format=csv" class="csv-link button">' in page


def test_movements_default_to_last_month_shown_in_the_picker(finance, ledger):
    response = finance.get(url("report_movements"))

    period = response.context["report"].period
    assert period["start"].day == 1
    assert (period["end"] + datetime.timedelta(days=1)).day == 1
    assert period["end"] < period["start"] + datetime.timedelta(days=31)
    start = period["start"].date().isoformat()
    assert 'name="start" value="%s"' % start in response.text
    assert "?start=%s&amp;end=" % start in response.text  # the CSV of what is shown


def test_a_report_at_a_date_defaults_to_today(finance, ledger):
    response = finance.get(url("report_trial_balance"))

    assert 'name="at" value="%s"' % timezone.localdate().isoformat() in response.text


def test_movements_page_flags_nothing_in_a_sound_ledger(finance, ledger):
    response = finance.get(url("report_movements", query="?start=2026-01-01&end=2026-03-31"))

    assert response.status_code == 200
    assert "flagged" not in response.text.split('id="report-table"')[1]
    assert "Refunds and reversals" in response.text


def test_a_backwards_period_is_a_form_error(finance):
    response = finance.get(url("report_movements", query="?start=2026-03-01&end=2026-02-01"))

    assert response.status_code == 200
    assert response.context["report"] is None
    assert "The start date is after the end date." in response.text


def test_a_malformed_date_is_a_form_error_not_a_crash(finance):
    response = finance.get(url("report_outstanding", query="?at=31/01/2026&format=csv"))

    assert response.status_code == 200
    assert "Enter a valid date." in response.text


# CSV downloads ----------------------------------------------------------------------------


def test_outstanding_csv_parses_back_with_plain_amounts_and_iso_dates(finance, ledger):
    rows = read_csv(finance.get(url("report_outstanding", query="?at=2026-02-28&format=csv")))

    gbp = [row for row in rows if row["currency"] == "GBP"]
    assert [row["account_type"] for row in gbp] == [
        "Customer money / Gift cards",
        "Customer money / Wallets",
        "No account type",
        "Total",
    ]
    assert gbp[0]["at"] == "2026-02-28T23:59:59+00:00"
    assert gbp[0]["row"] == "account type"
    assert gbp[0]["account_type_code"] == "gift-cards"
    assert (gbp[1]["owed_by_customers"], gbp[1]["net"]) == ("30.00", "-30.00")
    assert gbp[-1]["row"] == "total"
    # The total is the exact sum of the lines (SQLite included).
    assert sum(D(row["net"]) for row in gbp[:-1]) == D(gbp[-1]["net"]) == D("65.25")
    euro = next(row for row in rows if row["currency"] == "EUR" and row["row"] == "total")
    assert euro["net"] == "0.30"


def test_trial_balance_csv_balances_per_currency(finance, ledger):
    rows = read_csv(finance.get(url("report_trial_balance", query="?at=2026-03-31&format=csv")))

    for currency in ("GBP", "EUR"):
        lines = [r for r in rows if r["currency"] == currency and r["row"] != "total"]
        total = next(r for r in rows if r["currency"] == currency and r["row"] == "total")
        assert sum(D(r["debit"]) for r in lines) == D(total["debit"])
        assert sum(D(r["credit"]) for r in lines) == D(total["credit"])
        assert D(total["debit"]) == D(total["credit"])
        assert total["balance"] in ("0.00",)
    assert next(r for r in rows if r["code"] == "expired" and r["currency"] == "GBP")[
        "credit"
    ] == ("25.00")


def test_movements_csv_has_a_column_per_kind_and_reconciles(finance, ledger):
    response = finance.get(
        url("report_movements", query="?start=2026-01-01&end=2026-03-31&format=csv")
    )
    rows = read_csv(response)

    assert 'filename="movements-2026-01-01-to-2026-03-31.csv"' in response["Content-Disposition"]
    assert list(rows[0]) == [
        "start",
        "end",
        "row",
        "account_type",
        "account_type_code",
        "currency",
        "opening",
        "top_ups",
        "spending",
        "refunds_and_reversals",
        "expiries",
        "withdrawals",
        "collections",
        "between_accounts",
        "closing",
        "unexplained",
    ]
    kinds = [
        "top_ups",
        "spending",
        "refunds_and_reversals",
        "expiries",
        "withdrawals",
        "collections",
    ]
    for row in rows:
        moved = sum(D(row[k]) for k in [*kinds, "between_accounts"])
        assert D(row["opening"]) + moved == D(row["closing"])
        assert row["unexplained"] == "0.00"
    gift = next(row for row in rows if row["account_type_code"] == "gift-cards")
    assert (gift["start"], gift["end"]) == (
        "2026-01-01T00:00:00+00:00",
        "2026-03-31T23:59:59+01:00",
    )
    assert [gift[k] for k in kinds] == ["130.00", "-40.10", "10.05", "-25.00", "-5.00", "0.00"]


def test_statement_csv_follows_the_statement_dates(finance, ledger):
    gift1 = ledger[0]["gift1"]
    response = finance.get(
        url("account_statement_csv", gift1.pk, query="?start=2026-01-06&end=2026-01-31")
    )
    rows = read_csv(response)

    assert list(rows[0]) == exports.STATEMENT_COLUMNS
    assert [(r["created"][:10], r["amount"], r["balance_after"]) for r in rows] == [
        ("2026-01-10", "-40.10", "59.90"),
        ("2026-01-12", "10.05", "69.95"),
        ("2026-01-20", "-5.00", "64.95"),
    ]
    refund = rows[1]
    assert refund["reverses"] == ledger[1]["spend_gift1"].reference
    assert (refund["counterparty"], refund["currency"]) == ("Sales (GBP)", "GBP")
    assert rows[2]["counterparty_id"] == str(ledger[0]["credit"].pk)


def test_statement_page_links_to_its_csv_with_its_dates(finance, ledger):
    gift1 = ledger[0]["gift1"]
    page = finance.get(url("account_statement", gift1.pk, query="?start=2026-01-06&p=2")).text

    link = re.search(r'<a href="([^"]+)" class="csv-link">', page).group(1)
    assert link == url("account_statement_csv", gift1.pk, query="?start=2026-01-06")


def test_statement_csv_needs_view_permission(ledger):
    stranger = client_with(["accounts.view_transfer"], "stranger")

    assert stranger.get(url("account_statement_csv", ledger[0]["gift1"].pk)).status_code == 403
    assert client_with(FINANCE).get(url("account_statement_csv", 999999)).status_code == 404


def test_transfer_list_csv_keeps_the_list_filters_and_search(finance, ledger):
    everything = read_csv(finance.get(url("transfer_export")))
    reversals = read_csv(finance.get(url("transfer_export", query="?kind=reversal")))
    reference = ledger[1]["spend_gift1"].reference
    searched = read_csv(finance.get(url("transfer_export", query="?q=%s" % reference)))

    assert len(everything) == Transfer.objects.count() == 14
    assert [row["created"] for row in everything] == sorted(
        (row["created"] for row in everything), reverse=True
    )
    assert {row["reverses"] for row in reversals} == {
        ledger[1]["spend_gift1"].reference,
        ledger[1]["top_up_wallet"].reference,
    }
    assert [row["reference"] for row in searched] == [reference]
    assert searched[0]["amount"] == "40.10"
    assert list(searched[0]) == exports.TRANSFER_COLUMNS


def test_transfer_list_links_to_its_csv_with_its_filters(finance, ledger):
    page = finance.get(url("transfer_changelist", query="?kind=reversal")).text

    assert 'href="%s?kind=reversal" class="export-link"' % url("transfer_export") in page


def test_transfer_list_csv_needs_view_permission_and_good_filters(finance):
    no_transfers = client_with(["accounts.view_account"], "no-transfers")

    assert no_transfers.get(url("transfer_export")).status_code == 403
    response = finance.get(url("transfer_export", query="?nonsense__field=1"))
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_csv_text_that_a_spreadsheet_would_run_is_neutralised(finance, fund):
    account = AccountFactory(name='=HYPERLINK("http://x")')
    fund(account, "1.00")

    (row,) = read_csv(finance.get(url("account_statement_csv", account.pk)))
    (listed,) = [
        r
        for r in read_csv(finance.get(url("transfer_export")))
        if r["destination_id"] == str(account.pk)
    ]

    assert row["amount"] == "1.00"
    assert listed["destination"] == '\'=HYPERLINK("http://x")'


# Streaming --------------------------------------------------------------------------------


# Balance charts ---------------------------------------------------------------------------


def test_account_page_shows_its_balance_chart_with_period_choices(finance, ledger):
    wallet = ledger[0]["wallet"]

    page = finance.get(url("account_change", wallet.pk)).text
    year = finance.get(url("account_change", wallet.pk, query="?balance=365")).text
    bogus = finance.get(url("account_change", wallet.pk, query="?balance=forever")).text

    assert page.count('class="point"') == 90
    assert year.count('class="point"') == 120  # sampled: the chart never has more points
    assert bogus.count('class="point"') == 90
    assert 'class="credit-limit"' in page
    assert "<strong>90 days</strong>" in page
    assert '<a href="?balance=365">12 months</a>' in page


def test_statement_page_charts_the_statement_period(finance, ledger):
    gift1 = ledger[0]["gift1"]

    page = finance.get(
        url("account_statement", gift1.pk, query="?start=2026-01-01&end=2026-01-31")
    ).text

    assert page.count('class="point"') == 31
    assert "Jan. 31, 2026: £64.95" in page
