"""The reports' figures, against a ledger whose history is written out here.

The ledger (``tests.utils.build_report_ledger``), GBP unless said:

=========  ======  ==============================================  =====================
day        amount  what                                            on
=========  ======  ==============================================  =====================
01-05      100.00  top-up                                          gift1 (gift cards)
01-06       30.00  top-up                                          gift2 (gift cards)
01-07       20.00  top-up                                          wallet (wallets)
01-10       40.10  spent (to sales)                                gift1
01-12       10.05  refund: reversal of the spending                gift1
01-15       45.00  spent (within its £50 credit limit)             wallet
01-20        5.00  transfer                                        gift1 -> credit (no type)
02-02  0.10, 0.20  top-ups (EUR)                                   euro (wallets)
02-03, 04  0.10, 0.20  top-ups                                     credit
02-10        5.00  withdrawal (back to the source)                 gift2
02-15        5.00  reversal of the top-up                          wallet
03-01       25.00  expiry sweep (end date 02-28)                   gift2
=========  ======  ==============================================  =====================
"""

import datetime
from decimal import Decimal

import pytest
from django.db import connection

from accounts import collections, facade, reports
from accounts.exceptions import InvalidArgument
from accounts.models import Account, AccountType

from .factories import AccountFactory
from .utils import at, build_report_ledger, ledger_time

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def ledger(db):
    return build_report_ledger()


def lines(report, currency=None, key="account_type"):
    """{label: cells} of the report's lines (the total under "Total")."""
    return {
        row.cells[key]: row.cells
        for row in report.rows
        if currency is None or row.currency == currency
    }


# Movement kinds ---------------------------------------------------------------------------


def test_every_possible_leg_is_exactly_one_kind_of_movement():
    roles = [*Account.Role.values, None]
    for role in roles:
        for incoming in (True, False):
            for reversal in (True, False):
                for collected in (True, False):
                    leg = reports.Leg(role, incoming, reversal, collected)
                    matching = [k.code for k in reports.MOVEMENT_KINDS if k.matches(leg)]
                    assert len(matching) == 1, (leg, matching)


@pytest.mark.parametrize(
    ("leg", "kind"),
    [
        (reports.Leg("source", True, False), "top_ups"),
        (reports.Leg("source", False, False), "withdrawals"),
        (reports.Leg("sales", False, False), "spending"),
        (reports.Leg("sales", True, False), "refunds_and_reversals"),
        (reports.Leg("sales", True, True), "refunds_and_reversals"),
        (reports.Leg("source", False, True), "refunds_and_reversals"),
        (reports.Leg("expired", False, False), "expiries"),
        (reports.Leg(None, True, False), "between_accounts"),
        (reports.Leg(None, False, True), "refunds_and_reversals"),
        (reports.Leg("source", True, False, True), "collections"),
        (reports.Leg(None, True, False, True), "collections"),
        (reports.Leg(None, False, False, True), "collections"),
        (reports.Leg("source", False, True, True), "refunds_and_reversals"),
    ],
)
def test_legs_are_classified_by_counterparty_direction_and_reversal(leg, kind):
    assert reports.classify(leg).code == kind


def test_a_leg_no_kind_claims_is_refused_by_name():
    with pytest.raises(LookupError, match="No movement kind for .*unknown-role"):
        reports.classify(reports.Leg("unknown-role", True, False))


# Outstanding balances ---------------------------------------------------------------------


def test_outstanding_balances_at_the_end_of_january(ledger):
    report = reports.outstanding_balances(datetime.date(2026, 1, 31))

    gbp = lines(report, "GBP")
    assert list(gbp) == [
        "Customer money / Gift cards",
        "Customer money / Wallets",
        "No account type",
        "Total",
    ]
    gift = gbp["Customer money / Gift cards"]
    assert (gift["accounts"], gift["accounts_in_credit"], gift["accounts_in_debt"]) == (2, 2, 0)
    assert (gift["owed_to_customers"], gift["owed_by_customers"], gift["net"]) == (
        D("94.95"),
        D(0),
        D("94.95"),
    )
    wallet = gbp["Customer money / Wallets"]
    assert (wallet["accounts_in_debt"], wallet["owed_by_customers"], wallet["net"]) == (
        1,
        D("25.00"),
        D("-25.00"),
    )
    total = gbp["Total"]
    assert (total["accounts"], total["owed_to_customers"], total["owed_by_customers"]) == (
        4,
        D("99.95"),
        D("25.00"),
    )
    assert total["net"] == D("74.95")
    # The euro wallet had no leg yet, but it existed: one account, nothing owed.
    assert lines(report, "EUR")["Total"]["net"] == 0
    assert lines(report, "EUR")["Total"]["accounts"] == 1


def test_outstanding_balances_use_the_balance_at_the_date_not_today(ledger):
    february = lines(reports.outstanding_balances(datetime.date(2026, 2, 28)), "GBP")
    march = lines(reports.outstanding_balances(datetime.date(2026, 3, 31)), "GBP")

    assert february["Customer money / Gift cards"]["net"] == D("89.95")
    assert february["Customer money / Wallets"]["net"] == D("-30.00")
    assert february["No account type"]["net"] == D("5.30")
    # gift2's 25.00 went to the expired account on 03-01.
    assert march["Customer money / Gift cards"]["net"] == D("64.95")
    assert march["Customer money / Gift cards"]["accounts_in_credit"] == 1


def test_outstanding_balances_before_any_account_existed_report_nothing(ledger):
    report = reports.outstanding_balances(datetime.date(2025, 12, 31))

    assert [row.cells["account_type"] for row in report.rows if not row.is_total] == []


def test_outstanding_balances_count_the_last_leg_of_a_moment_with_two(ledger):
    """Two legs at one moment on one account: the later one (by id) is the balance."""
    account = AccountFactory()
    source = Account.objects.source_account()

    with ledger_time(at("03-10")):
        facade.transfer(source, account, D("1.00"))
        facade.transfer(source, account, D("2.00"))

    found = lines(reports.outstanding_balances(datetime.date(2026, 3, 10)), "GBP")

    assert found["No account type"]["net"] == D("5.30") + D("3.00")


def test_outstanding_balance_chart_has_the_net_at_each_month_end(ledger):
    report = reports.outstanding_balances(datetime.date(2026, 3, 31))

    (gbp,) = [chart for chart in report.charts if chart.currency == "GBP"]
    assert len(gbp.bars) == 12
    assert [bar.label for bar in gbp.bars[-3:]] == ["Jan 2026", "Feb 2026", "Mar 2026"]
    assert [bar.values["net"] for bar in gbp.bars[-4:]] == [
        D(0),
        D("74.95"),
        D("65.25"),
        D("40.25"),
    ]


# The trial balance ------------------------------------------------------------------------


def test_trial_balance_lists_core_accounts_and_types_and_sums_to_zero(ledger):
    report = reports.trial_balance(datetime.date(2026, 2, 28))

    gbp = lines(report, "GBP", key="line")
    assert list(gbp) == [
        "Bank (GBP)",
        "Sales (GBP)",
        "Expired accounts (GBP)",
        "Customer money / Gift cards",
        "Customer money / Wallets",
        "No account type",
        "Total",
    ]
    assert gbp["Bank (GBP)"]["debit"] == D("140.30")
    assert gbp["Bank (GBP)"]["balance"] == D("-140.30")
    assert gbp["Sales (GBP)"]["credit"] == D("75.05")
    assert gbp["Customer money / Wallets"]["debit"] == D("30.00")
    total = gbp["Total"]
    assert total["debit"] == total["credit"] == D("170.30")
    assert total["balance"] == 0
    euro = lines(report, "EUR", key="line")
    assert euro["Bank (EUR)"]["balance"] == D("-0.30")
    assert euro["Total"]["balance"] == 0
    assert [row.line for row in report.rows if row.currency == "GBP"][:3] == ["core account"] * 3


def test_trial_balance_chart_mirrors_the_core_accounts(ledger):
    report = reports.trial_balance(datetime.date(2026, 3, 31))

    (gbp,) = [chart for chart in report.charts if chart.currency == "GBP"]
    march = gbp.bars[-1].values
    assert march == {
        "source": D("-140.30"),
        "sales": D("75.05"),
        "expired": D("25.00"),
        "customers": D("40.25"),
    }
    assert sum(march.values()) == 0


# Movements --------------------------------------------------------------------------------


def test_movements_of_january_reconcile_opening_and_closing(ledger):
    report = reports.movements(datetime.date(2026, 1, 1), datetime.date(2026, 1, 31))

    gbp = lines(report, "GBP")
    gift = gbp["Customer money / Gift cards"]
    assert gift["opening"] == 0
    assert gift["top_ups"] == D("130.00")
    assert gift["spending"] == D("-40.10")
    assert gift["refunds_and_reversals"] == D("10.05")
    assert gift["between_accounts"] == D("-5.00")
    assert gift["closing"] == D("94.95")
    assert gift["unexplained"] == 0
    wallet = gbp["Customer money / Wallets"]
    assert (wallet["top_ups"], wallet["spending"], wallet["closing"]) == (
        D("20.00"),
        D("-45.00"),
        D("-25.00"),
    )
    assert gbp["No account type"]["between_accounts"] == D("5.00")
    total = gbp["Total"]
    assert (
        total["opening"] + sum(total[k.code] for k in reports.MOVEMENT_KINDS) == total["closing"]
    )
    assert total["unexplained"] == 0


def test_money_a_collection_brought_back_is_a_collection_not_a_top_up(db):
    wallets = AccountType.objects.create(name="Card wallets", code="card-wallets")
    card = AccountFactory(account_type=wallets, credit_limit=Decimal("100.00"))
    with ledger_time(at("01-10")):
        facade.transfer(card, Account.objects.sales_account(), Decimal("60.00"))
    run = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )
    with ledger_time(at("02-01")):
        collections.run_collection(run)
    with ledger_time(at("02-06")):
        collections.settle(run.debts.get(), Decimal("45.00"), reference="DD-1")
        facade.transfer(Account.objects.source_account(), card, Decimal("10.00"))

    report = reports.movements(datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))

    wallet = lines(report, "GBP")["Card wallets"]
    assert (wallet["opening"], wallet["collections"], wallet["top_ups"]) == (
        D("-60.00"),
        D("45.00"),
        D("10.00"),
    )
    assert wallet["closing"] == D("-5.00")
    assert wallet["unexplained"] == 0


def test_movements_of_february_and_march(ledger):
    report = reports.movements(datetime.date(2026, 2, 1), datetime.date(2026, 3, 31))

    gbp = lines(report, "GBP")
    gift = gbp["Customer money / Gift cards"]
    assert (gift["opening"], gift["withdrawals"], gift["expiries"], gift["closing"]) == (
        D("94.95"),
        D("-5.00"),
        D("-25.00"),
        D("64.95"),
    )
    wallet = gbp["Customer money / Wallets"]
    assert (wallet["opening"], wallet["refunds_and_reversals"], wallet["closing"]) == (
        D("-25.00"),
        D("-5.00"),
        D("-30.00"),
    )
    assert gbp["No account type"]["top_ups"] == D("0.30")
    assert lines(report, "EUR")["Customer money / Wallets"]["top_ups"] == D("0.30")
    assert all(row.cells["unexplained"] == 0 for row in report.rows)


def test_movements_chart_has_one_bar_per_month_with_each_kind(ledger):
    report = reports.movements(datetime.date(2026, 1, 15), datetime.date(2026, 3, 31))

    (gbp,) = [chart for chart in report.charts if chart.currency == "GBP"]
    assert [bar.label for bar in gbp.bars] == ["Jan 2026", "Feb 2026", "Mar 2026"]
    assert gbp.bars[0].values == {"spending": D("-45.00"), "between_accounts": D("0.00")}
    assert gbp.bars[1].values["withdrawals"] == D("-5.00")
    assert gbp.bars[2].values == {"expiries": D("-25.00")}


def test_movements_refuse_a_backwards_period():
    with pytest.raises(
        InvalidArgument, match=r"The period starts \(2026-02-01 00:00:00\+00:00\) after"
    ):
        reports.movements(datetime.date(2026, 2, 1), datetime.date(2026, 1, 1))


def test_a_period_over_three_years_is_charted_by_year():
    found = reports.buckets(at("01-01"), at("01-01").replace(year=2030))

    assert [bucket.label for bucket in found] == ["2026", "2027", "2028", "2029", "2030"]
    assert found[0].start == at("01-01")
    assert found[-1].end == at("01-01").replace(year=2030)


def test_buckets_of_a_period_cover_it_without_gaps():
    found = reports.buckets(at("01-15"), at("03-10"))

    assert [bucket.label for bucket in found] == ["Jan 2026", "Feb 2026", "Mar 2026"]
    for before, after in zip(found, found[1:], strict=False):
        assert before.end == after.start


def test_sums_are_exact_where_floating_point_would_not_be(source):
    """0.10 + 0.20 is 0.30000000000000004 in floating point, which SQLite's SUM uses."""
    for amount in ("0.10", "0.20"):
        facade.transfer(source, AccountFactory(), D(amount))
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT SUM(balance) FROM accounts_account WHERE role IS NULL")
            assert cursor.fetchone()[0] != 0.30  # the premise

    report = reports.outstanding_balances(datetime.date.today())
    moved = reports.movements(datetime.date(2000, 1, 1), datetime.date.today())

    assert lines(report, "GBP")["Total"]["net"] == D("0.30")
    assert lines(moved, "GBP")["Total"]["top_ups"] == D("0.30")


# Statement counts -------------------------------------------------------------------------


def test_each_report_costs_a_fixed_number_of_queries(ledger, django_assert_num_queries):
    # The core accounts, the report's statement, the chart's core balances
    # and the types' names; PostgreSQL adds the two statements that turn
    # just-in-time compilation off and back on.
    extra = 2 if connection.vendor == "postgresql" else 0
    with django_assert_num_queries(4 + extra):
        reports.outstanding_balances(datetime.date(2026, 2, 28))
    with django_assert_num_queries(4 + extra):
        reports.trial_balance(datetime.date(2026, 2, 28))
    with django_assert_num_queries(2 + extra):
        reports.movements(datetime.date(2026, 1, 1), datetime.date(2026, 3, 31))


# One account's balance over time ----------------------------------------------------------


def test_balance_history_has_one_point_per_day(ledger):
    history = reports.balance_history(
        ledger[0]["gift1"], datetime.date(2026, 1, 4), datetime.date(2026, 1, 12)
    )

    assert history.step == "day"
    assert len(history.points) == 9
    assert [value for _moment, value in history.points] == [
        D(0),
        D("100.00"),
        D("100.00"),
        D("100.00"),
        D("100.00"),
        D("100.00"),
        D("59.90"),
        D("59.90"),
        D("69.95"),
    ]


def test_balance_history_of_a_long_period_is_sampled(ledger, django_assert_num_queries):
    wallet = ledger[0]["wallet"]

    with django_assert_num_queries(1):
        history = reports.balance_history(
            wallet, datetime.date(2020, 1, 1), datetime.date(2026, 12, 31), max_points=50
        )

    assert history.step == "sample"
    assert len(history.points) == 50
    assert history.points[-1][1] == D("-30.00")
    assert history.credit_limit == D("50.00")


def test_balance_history_starts_at_the_first_leg_by_default(ledger):
    history = reports.balance_history(ledger[0]["euro"], end=datetime.date(2026, 2, 3))

    assert [value for _moment, value in history.points] == [D("0.30"), D("0.30")]
    assert history.start == at("02-02", 0)
