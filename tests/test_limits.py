"""Spending limits (accounts.limits): what counts, when periods start, and under concurrency."""

import datetime
import json
import zoneinfo
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import (
    CurrencyMismatch,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    LedgerImmutable,
    ProtectedAccount,
    SpendingLimitExceeded,
)
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType, Hold, SpendingLimit, Transfer

from .factories import AccountFactory
from .utils import (
    TRANSFER_STATEMENTS,
    assert_ledger_consistent,
    ledger_time,
    ledger_totals,
    worker,
)

pytestmark = pytest.mark.django_db

LONDON = zoneinfo.ZoneInfo("Europe/London")
DAY, WEEK, MONTH = SpendingLimit.Period.DAY, SpendingLimit.Period.WEEK, SpendingLimit.Period.MONTH


def london(*args):
    """A moment given as London's wall clock (the suite's TIME_ZONE)."""
    return datetime.datetime(*args, tzinfo=LONDON)


@pytest.fixture
def wallets(db):
    return AccountType.objects.create(name="Wallets", code="wallets")


@pytest.fixture
def shop(db):
    return Account.objects.sales_account()


@pytest.fixture
def wallet(wallets, fund):
    """A card wallet with £1,000 on it: 400.00 a day and 600.00 a month (its type's)."""
    account = AccountFactory(account_type=wallets, credit_limit=Decimal("500.00"))
    fund(account, "1000.00")
    SpendingLimit.objects.create(account=account, period=DAY, amount=Decimal("400.00"))
    SpendingLimit.objects.create(account_type=wallets, period=MONTH, amount=Decimal("600.00"))
    return account


def spent(account, at=None):
    """What ``account.spending()`` says was used per period (at the database's time)."""
    account.refresh_from_db()
    return {entry.period: entry.used.amount for entry in account.spending()}


# What is refused, and what it says ------------------------------------------------


def test_a_debit_past_a_limit_is_refused_naming_the_limit_and_what_is_left(wallet, shop):
    facade.transfer(wallet, shop, Decimal("300.00"))
    before = ledger_totals()
    with pytest.raises(SpendingLimitExceeded, match="daily spending limit is £400.00") as caught:
        facade.transfer(wallet, shop, Decimal("150.00"))
    exc = caught.value
    assert (exc.period, exc.limit, exc.used, exc.available) == (
        "day",
        Money("400.00", "GBP"),
        Money("300.00", "GBP"),
        Money("100.00", "GBP"),
    )
    assert exc.amount == Money("150.00", "GBP")
    assert exc.code == "spending_limit_reached"
    assert exc.user_message == "%s can spend only £100.00 more today." % wallet.name
    assert ledger_totals() == before
    assert spent(wallet) == {"day": Decimal("300.00"), "month": Decimal("300.00")}


def test_the_limit_that_allows_least_is_the_one_reported(wallet, shop):
    with ledger_time(london(2026, 6, 10, 12)):
        facade.transfer(wallet, shop, Decimal("390.00"))
    with ledger_time(london(2026, 6, 11, 12)):
        # A new day: 400 allowed by the day, 210 left in the month.
        with pytest.raises(SpendingLimitExceeded, match="monthly spending limit") as caught:
            facade.transfer(wallet, shop, Decimal("250.00"))
    assert caught.value.period == "month"
    assert caught.value.available == Money("210.00", "GBP")


def test_allow_partial_stops_at_the_limit(wallet, shop):
    facade.transfer(wallet, shop, Decimal("350.00"))
    moved = facade.transfer(wallet, shop, Decimal("80.00"), allow_partial=True)
    assert moved.amount == Money("50.00", "GBP")
    with pytest.raises(SpendingLimitExceeded, match="£0.00 is left") as caught:
        facade.transfer(wallet, shop, Decimal("1.00"), allow_partial=True)
    assert caught.value.user_message == "%s has reached its daily spending limit." % wallet.name


def test_funds_are_judged_before_the_limit(wallets, shop, fund):
    poor = AccountFactory(account_type=wallets, credit_limit=Decimal("0"))
    fund(poor, "20.00")
    SpendingLimit.objects.create(account=poor, period=DAY, amount=Decimal("10.00"))
    with pytest.raises(InsufficientFunds, match="only £20.00 is available"):
        facade.transfer(poor, shop, Decimal("30.00"))
    assert facade.transfer(poor, shop, Decimal("30.00"), allow_partial=True).amount == Money(
        "10.00", "GBP"
    )


def test_an_accounts_own_limit_replaces_its_types_for_the_same_period(wallets, shop, fund):
    SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("100.00"))
    generous = AccountFactory(account_type=wallets)
    fund(generous, "500.00")
    SpendingLimit.objects.create(account=generous, period=DAY, amount=Decimal("300.00"))
    other = AccountFactory(account_type=wallets)
    fund(other, "500.00")
    facade.transfer(generous, shop, Decimal("300.00"))
    with pytest.raises(SpendingLimitExceeded, match="limit is £100.00"):
        facade.transfer(other, shop, Decimal("100.01"))
    assert generous.spending_available() == Money("0.00", "GBP")
    assert other.spending_available() == Money("100.00", "GBP")


def test_the_limits_of_many_accounts_are_read_in_one_query_as_each_ones_own(wallets, shop):
    SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("100.00"))
    SpendingLimit.objects.create(account_type=wallets, period=MONTH, amount=Decimal("600.00"))
    cards = AccountType.objects.create(name="Cards", code="cards")
    own = AccountFactory(account_type=wallets)
    SpendingLimit.objects.create(account=own, period=DAY, amount=Decimal("300.00"))
    typed = AccountFactory(account_type=wallets)
    card = AccountFactory(account_type=cards)
    SpendingLimit.objects.create(account=card, period=WEEK, amount=Decimal("50.00"))
    free = AccountFactory()
    accounts = [own, typed, card, free, shop]
    with CaptureQueriesContext(connection) as queries:
        found = SpendingLimit.objects.effective_for_many(accounts)
    assert len(queries) == 1
    assert found == {
        own.pk: {DAY: Decimal("300.00"), MONTH: Decimal("600.00")},
        typed.pk: {DAY: Decimal("100.00"), MONTH: Decimal("600.00")},
        card.pk: {WEEK: Decimal("50.00")},
    }
    assert found == {
        account.pk: SpendingLimit.objects.effective_for(account)
        for account in accounts
        if SpendingLimit.objects.effective_for(account)
    }
    assert SpendingLimit.objects.effective_for_many([shop, free]) == {}


def test_core_accounts_are_never_limited(wallets, shop, source):
    with pytest.raises(ProtectedAccount, match="given a spending limit"):
        SpendingLimit.objects.create(account=source, period=DAY, amount=Decimal("1.00"))
    # Even a core account given a limited type spends freely, and is not counted.
    SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("1.00"))
    Account.objects.filter(pk=source.pk).update(account_type=wallets)
    customer = AccountFactory()
    facade.transfer(source, customer, Decimal("50.00"))
    source.refresh_from_db()
    assert source.spending() == []
    assert source.spent_day_from is None


def test_an_unlimited_account_has_nothing_available_to_report(account):
    assert account.spending() == []
    assert account.spending_available() is None


def test_a_type_limit_in_more_places_than_the_currency_stops_at_its_smallest_unit(
    wallets, shop, source
):
    SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("100.5"))
    yen = AccountFactory(account_type=wallets, currency="JPY")
    facade.transfer(Account.objects.source_account("JPY"), yen, Decimal("1000"))
    moved = facade.transfer(
        yen, Account.objects.sales_account("JPY"), Decimal("500"), allow_partial=True
    )
    assert moved.amount == Money("100", "JPY")


# Periods -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "last_moment", "first_moment_after"),
    [
        # London's summer time: a day starts at 23:00 UTC.
        (DAY, london(2026, 6, 10, 23, 59, 59, 999999), london(2026, 6, 11)),
        # ISO weeks: Sunday to Monday.
        (WEEK, london(2026, 6, 14, 23, 59, 59, 999999), london(2026, 6, 15)),
        (MONTH, london(2026, 6, 30, 23, 59, 59, 999999), london(2026, 7, 1)),
        # The days the clocks change have 23 and 25 hours.
        (DAY, london(2026, 3, 29, 23, 59, 59), london(2026, 3, 30)),
        (DAY, london(2026, 10, 25, 23, 59, 59), london(2026, 10, 26)),
        (MONTH, london(2026, 12, 31, 23, 59, 59), london(2027, 1, 1)),
    ],
)
def test_a_period_ends_at_its_last_moment_in_the_time_zone(
    period, last_moment, first_moment_after, wallets, shop, fund
):
    card = AccountFactory(account_type=wallets)
    fund(card, "500.00")
    SpendingLimit.objects.create(account=card, period=period, amount=Decimal("100.00"))
    with ledger_time(last_moment - datetime.timedelta(hours=20)):
        facade.transfer(card, shop, Decimal("60.00"))
    with ledger_time(last_moment):
        with pytest.raises(SpendingLimitExceeded, match="£40.00 is left"):
            facade.transfer(card, shop, Decimal("60.00"))
    with ledger_time(first_moment_after):
        facade.transfer(card, shop, Decimal("100.00"))  # a new period: all of it again
        assert card.spending_available() == Money("0.00", "GBP")


def test_the_day_of_the_spring_change_has_23_hours(wallets, shop, fund):
    card = AccountFactory(account_type=wallets)
    fund(card, "500.00")
    SpendingLimit.objects.create(account=card, period=DAY, amount=Decimal("100.00"))
    # 29 March 2026 starts at 00:00 GMT and ends at 23:00 UTC (midnight BST).
    utc = datetime.UTC
    with ledger_time(datetime.datetime(2026, 3, 29, 0, 0, tzinfo=utc)):
        facade.transfer(card, shop, Decimal("100.00"))
        [entry] = card.spending()
        assert entry.resets_at == datetime.datetime(2026, 3, 29, 23, 0, tzinfo=utc)
    with ledger_time(datetime.datetime(2026, 3, 29, 22, 59, 59, tzinfo=utc)):
        with pytest.raises(SpendingLimitExceeded, match="daily"):
            facade.transfer(card, shop, Decimal("0.01"))
    with ledger_time(datetime.datetime(2026, 3, 29, 23, 0, tzinfo=utc)):
        facade.transfer(card, shop, Decimal("100.00"))


def test_periods_follow_accounts_time_zone_not_the_projects(wallets, shop, fund):
    card = AccountFactory(account_type=wallets)
    fund(card, "500.00")
    SpendingLimit.objects.create(account=card, period=DAY, amount=Decimal("100.00"))
    new_york = zoneinfo.ZoneInfo("America/New_York")
    with override_settings(ACCOUNTS_TIME_ZONE="America/New_York"):
        with ledger_time(datetime.datetime(2026, 6, 10, 23, 30, tzinfo=new_york)):
            facade.transfer(card, shop, Decimal("100.00"))
        # 04:30 in London on the 11th, still the 10th in New York.
        with ledger_time(datetime.datetime(2026, 6, 11, 0, 30, tzinfo=new_york) - HOUR):
            with pytest.raises(SpendingLimitExceeded, match="daily"):
                facade.transfer(card, shop, Decimal("0.01"))
        with ledger_time(datetime.datetime(2026, 6, 11, 0, 0, tzinfo=new_york)):
            facade.transfer(card, shop, Decimal("100.00"))
            card.refresh_from_db()
            assert card.spent_day_from == datetime.date(2026, 6, 11)


HOUR = datetime.timedelta(hours=1)


def test_changing_the_time_zone_keeps_what_was_spent_on_the_same_date(wallets, shop, fund):
    card = AccountFactory(account_type=wallets)
    fund(card, "500.00")
    SpendingLimit.objects.create(account=card, period=DAY, amount=Decimal("100.00"))
    with ledger_time(london(2026, 6, 10, 20)):
        facade.transfer(card, shop, Decimal("70.00"))
        # 15:00 in New York: the same date, so the same day's spending.
        with override_settings(ACCOUNTS_TIME_ZONE="America/New_York"):
            with pytest.raises(SpendingLimitExceeded, match="£30.00 is left"):
                facade.transfer(card, shop, Decimal("31.00"))
        # In Tokyo it is already the 11th (04:00): a new day.
        with override_settings(ACCOUNTS_TIME_ZONE="Asia/Tokyo"):
            facade.transfer(card, shop, Decimal("100.00"))


# What counts, and what gives back -------------------------------------------------------


def test_a_hold_counts_when_placed_and_its_capture_does_not_count_again(wallet, shop):
    hold = facade.hold(wallet, shop, Decimal("250.00"))
    assert spent(wallet)["day"] == Decimal("250.00")
    with pytest.raises(SpendingLimitExceeded, match="£150.00 is left"):
        facade.hold(wallet, shop, Decimal("150.01"))
    facade.capture(hold, amount=Decimal("250.00"))
    assert spent(wallet)["day"] == Decimal("250.00")


def test_releasing_or_expiring_a_hold_gives_back_what_it_had_not_captured(wallet, shop):
    kept = facade.hold(wallet, shop, Decimal("100.00"))
    released = facade.hold(wallet, shop, Decimal("80.00"))
    lapsing = facade.hold(wallet, shop, Decimal("50.00"))
    facade.release(released)
    assert spent(wallet)["day"] == Decimal("150.00")
    facade.capture(kept, amount=Decimal("30.00"))  # the other 70.00 is given back
    assert spent(wallet)["day"] == Decimal("80.00")
    facade.release(lapsing)
    assert spent(wallet)["day"] == Decimal("30.00")
    assert_ledger_consistent()


def test_a_hold_past_its_expiry_gives_back_when_it_lapses(wallet, shop):
    with ledger_time(london(2026, 6, 10, 9)):
        facade.hold(wallet, shop, Decimal("300.00"), expires_at=london(2026, 6, 10, 10))
    with ledger_time(london(2026, 6, 10, 11)):
        # The debit marks it expired and gives its 300.00 back first.
        facade.transfer(wallet, shop, Decimal("300.00"))
        assert Hold.objects.get().status == Hold.Status.EXPIRED
        assert spent(wallet)["day"] == Decimal("300.00")
    with ledger_time(london(2026, 6, 10, 12)):
        hold = facade.hold(wallet, shop, Decimal("100.00"), expires_at=london(2026, 6, 10, 13))
    with ledger_time(london(2026, 6, 10, 14)):
        assert facade.expire_hold(hold)
        assert spent(wallet) == {"day": Decimal("300.00"), "month": Decimal("300.00")}


def test_a_hold_released_in_a_later_period_gives_back_to_the_running_periods_only(wallet, shop):
    with ledger_time(london(2026, 6, 10, 20)):
        hold = facade.hold(wallet, shop, Decimal("300.00"))
    with ledger_time(london(2026, 6, 11, 9)):
        facade.transfer(wallet, shop, Decimal("100.00"))
        facade.release(hold)
        # Yesterday's hold gives nothing back to today, all of it to the month.
        assert spent(wallet) == {"day": Decimal("100.00"), "month": Decimal("100.00")}


def test_reversing_a_debit_gives_back_to_the_periods_it_counted_in_while_they_run(wallet, shop):
    with ledger_time(london(2026, 6, 10, 12)):
        yesterdays = facade.transfer(wallet, shop, Decimal("200.00"))
    with ledger_time(london(2026, 6, 11, 12)):
        todays = facade.transfer(wallet, shop, Decimal("150.00"))
        facade.reverse(todays, amount=Decimal("50.00"))
        assert spent(wallet) == {"day": Decimal("100.00"), "month": Decimal("300.00")}
        facade.reverse(yesterdays, amount=Decimal("120.00"))
        assert spent(wallet) == {"day": Decimal("100.00"), "month": Decimal("180.00")}
    with ledger_time(london(2026, 7, 1, 12)):
        facade.reverse(todays)  # June is over: July's spending stays as it is
        assert spent(wallet) == {"day": Decimal("0"), "month": Decimal("0")}
    assert_ledger_consistent()


def test_reversing_a_capture_gives_back_to_the_period_its_hold_counted_in(wallet, shop):
    with ledger_time(london(2026, 6, 10, 23)):
        hold = facade.hold(wallet, shop, Decimal("300.00"))
    with ledger_time(london(2026, 6, 11, 9)):
        captured = facade.capture(hold)
        facade.transfer(wallet, shop, Decimal("100.00"))
        facade.reverse(captured, amount=Decimal("200.00"))
        # The hold counted on the 10th: today's 100.00 stays counted.
        assert spent(wallet) == {"day": Decimal("100.00"), "month": Decimal("200.00")}


def test_reversals_sweeps_and_money_coming_in_do_not_count(wallet, shop, fund):
    before = spent(wallet)
    top_up = fund(wallet, "10.00")
    facade.reverse(top_up)  # money leaving by a reversal: not spending
    assert spent(wallet) == before == {"day": Decimal("0"), "month": Decimal("0")}
    with ledger_time(london(2027, 1, 2)):
        expiring = AccountFactory(account_type=wallet.account_type, end_date=london(2027, 1, 3))
        facade.transfer(Account.objects.source_account(), expiring, Decimal("900.00"))
    with ledger_time(london(2027, 1, 4)):
        assert facade.expire_account(expiring).transfer.amount == Money("900.00", "GBP")
        assert spent(expiring) == {"month": Decimal("0")}


def test_a_batch_counts_each_transfer_in_order(wallet, shop):
    with pytest.raises(SpendingLimitExceeded, match="£100.00 is left") as caught:
        facade.transfer_many(
            [facade.TransferRequest(wallet, shop, Decimal("150.00"))] * 3, atomic=True
        )
    assert caught.value.index == 2
    assert spent(wallet)["day"] == Decimal("0")
    batch = facade.transfer_many(
        [
            facade.TransferRequest(wallet, shop, Decimal("150.00")),
            facade.TransferRequest(wallet, shop, Decimal("300.00")),
            facade.TransferRequest(wallet, shop, Decimal("150.00")),
            facade.TransferRequest(wallet, shop, Decimal("500.00"), allow_partial=True),
        ],
        atomic=False,
    )
    assert [type(r).__name__ for r in batch.results] == [
        "Transfer",
        "SpendingLimitExceeded",
        "Transfer",
        "Transfer",
    ]
    assert batch.results[3].amount == Money("100.00", "GBP")
    assert spent(wallet)["day"] == Decimal("400.00")
    facade.reverse_batch(batch)
    assert spent(wallet)["day"] == Decimal("0")
    assert_ledger_consistent()


@pytest.mark.parametrize("with_spending", [False, True], ids=["top-ups only", "and a purchase"])
def test_a_batch_keeps_the_usage_of_accounts_it_only_credits(wallets, wallet, shop, with_spending):
    # Top-ups from the source account change no account's spending: the
    # batch writes balances only, and the wallet's usage stays as it was.
    # With a purchase in the batch, every account's usage is written with
    # its balance, the wallet's as it was.
    facade.transfer(wallet, shop, Decimal("150.00"))
    other = AccountFactory(account_type=wallets)  # 600.00 a month
    facade.transfer(Account.objects.source_account(), other, Decimal("50.00"))
    requests = [facade.TransferRequest(Account.objects.source_account(), wallet, Decimal("5.00"))]
    if with_spending:
        requests.append(facade.TransferRequest(other, shop, Decimal("20.00")))
    facade.transfer_many(requests)
    assert spent(wallet)["day"] == Decimal("150.00")
    assert spent(other) == {"month": Decimal("20.00" if with_spending else "0")}
    assert_ledger_consistent()


@pytest.mark.parametrize("others", [0, 20], ids=["few accounts", "many accounts"])
def test_a_batch_reads_the_limits_of_the_accounts_it_debits_whatever_else_they_do(
    wallet, shop, others
):
    # The batch's locking read fetches limits for its sources only: an
    # account both credited and debited in one batch is a source, and its
    # limit holds; one only credited has no limit to meet.
    bank = Account.objects.source_account()
    payees = [AccountFactory() for _ in range(others)]
    requests = [facade.TransferRequest(bank, wallet, Decimal("10.00"))]
    requests += [facade.TransferRequest(bank, payee, Decimal("1.00")) for payee in payees]
    requests += [facade.TransferRequest(wallet, shop, Decimal("400.00"))] * 2
    with pytest.raises(SpendingLimitExceeded, match="£0.00 is left") as caught:
        facade.transfer_many(requests)
    assert caught.value.index == len(requests) - 1
    batch = facade.transfer_many(requests[:-1])
    assert len(batch.transfers.all()) == len(requests) - 1
    assert spent(wallet)["day"] == Decimal("400.00")
    # Debited only, on credit, past its own daily limit.
    debited_only = AccountFactory(account_type=wallet.account_type, credit_limit=Decimal("50"))
    SpendingLimit.objects.create(account=debited_only, period=DAY, amount=Decimal("5.00"))
    with pytest.raises(SpendingLimitExceeded, match="£5.00 is left") as caught:
        facade.transfer_many(
            [*requests[1:-2], facade.TransferRequest(debited_only, shop, Decimal("6"))]
        )
    assert caught.value.index == others
    credited_only = AccountFactory(account_type=wallet.account_type)
    SpendingLimit.objects.create(account=credited_only, period=DAY, amount=Decimal("0.00"))
    facade.transfer_many([facade.TransferRequest(bank, credited_only, Decimal("5.00"))] * 3)
    assert Account.objects.get(pk=credited_only.pk).balance.amount == Decimal("15.00")
    assert_ledger_consistent()


# Cost ------------------------------------------------------------------------------------


def test_a_limited_transfer_costs_no_more_statements_than_an_unlimited_one(wallet, shop, fund):
    free = AccountFactory()
    fund(free, "100.00")
    counts = []
    for account in (free, wallet):
        with CaptureQueriesContext(connection) as queries:
            facade.transfer(account, shop, Decimal("1.00"))
        control = ("SAVEPOINT", "RELEASE")
        counts.append(len([q for q in queries if q["sql"].split()[0].upper() not in control]))
    assert counts == [TRANSFER_STATEMENTS, TRANSFER_STATEMENTS]


# check_ledger ----------------------------------------------------------------------------


def test_check_ledger_counts_the_usage_again_from_transfers_and_holds(wallet, shop):
    hold = facade.hold(wallet, shop, Decimal("100.00"))
    facade.transfer(wallet, shop, Decimal("50.00"))
    facade.capture(hold, amount=Decimal("60.00"))
    assert check_ledger().ok
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_account SET spent_day = spent_day - 10 WHERE id = %s", [wallet.pk]
        )
    report = check_ledger()
    [problem] = [p for p in report.problems if p.check == "spending-usage"]
    assert (problem.account, problem.expected, problem.found) == (
        wallet.pk,
        Decimal("110.00"),
        Decimal("100.00"),
    )


# The limits themselves ---------------------------------------------------------------------


def test_a_limit_belongs_to_an_account_or_a_type_exactly(wallets, account):
    before = SpendingLimit.objects.count()
    with pytest.raises(InvalidArgument, match="exactly one"):
        SpendingLimit.objects.create(
            account=account, account_type=wallets, period=DAY, amount=Decimal(1)
        )
    with pytest.raises(InvalidArgument, match="exactly one"):
        SpendingLimit.objects.create(period=DAY, amount=Decimal(1))
    with pytest.raises(InvalidArgument, match="Unknown spending limit period 'year'"):
        SpendingLimit.objects.create(account=account, period="year", amount=Decimal(1))
    assert SpendingLimit.objects.count() == before


@pytest.mark.parametrize(
    ("amount", "error", "message"),
    [
        (Decimal("-1"), InvalidAmount, "give zero or a positive"),
        (1.5, InvalidAmount, "give zero or a positive"),
        (Decimal("NaN"), InvalidAmount, "give zero or a positive"),
        (Decimal("10.001"), InvalidAmount, "more decimal places than GBP"),
        (Decimal("1E+12"), InvalidAmount, "too large"),
        (Money("10.00", "EUR"), CurrencyMismatch, "EUR"),
    ],
)
def test_a_bad_amount_is_refused_and_nothing_is_written(account, amount, error, message):
    with pytest.raises(error, match=message):
        SpendingLimit.objects.create(account=account, period=DAY, amount=amount)
    assert not SpendingLimit.objects.exists()


def test_a_type_limit_may_have_up_to_four_places(wallets):
    with pytest.raises(InvalidAmount, match="more than 4 decimal places"):
        SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("1.00001"))


def test_updates_check_the_amount_and_never_move_a_limit(wallet):
    limits = SpendingLimit.objects.filter(account=wallet)
    with pytest.raises(InvalidAmount, match="give zero or a positive"):
        limits.update(amount=Decimal("-5"))
    with pytest.raises(LedgerImmutable, match="owner and period do not change"):
        limits.update(period=WEEK)
    assert limits.update(amount=Decimal("50.00")) == 1
    changed = limits.get()
    assert changed.amount == Decimal("50.00")
    assert changed.changed_at is not None


def test_saving_a_changed_limit_stamps_the_databases_time(wallet):
    limit = SpendingLimit.objects.get(account=wallet)
    assert limit.changed_at is None
    with ledger_time(london(2026, 6, 10, 12)):
        limit.amount = Decimal("10.00")
        limit.save()
        assert limit.changed_at == london(2026, 6, 10, 12)


def test_a_type_with_limits_cannot_be_deleted_until_they_are_removed(wallets):
    from django.db.models import ProtectedError

    SpendingLimit.objects.create(account_type=wallets, period=DAY, amount=Decimal("5.00"))
    with pytest.raises(ProtectedError, match="protected foreign keys"):
        wallets.delete()


# Concurrency --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite has no row locks")
def test_processes_racing_on_a_limited_wallet_never_pass_its_limits(wallets):
    bank, shop = Account.objects.source_account(), Account.objects.sales_account()
    card = AccountFactory(account_type=wallets, credit_limit=Decimal("800.00"))
    facade.transfer(bank, card, Decimal("100.00"))
    SpendingLimit.objects.create(account=card, period=DAY, amount=Decimal("400.00"))
    SpendingLimit.objects.create(account_type=wallets, period=MONTH, amount=Decimal("600.00"))
    processes = [
        worker("spend", connection.settings_dict["NAME"], 40, seed, card.pk, shop.pk, bank.pk)
        for seed in range(4)
    ]
    summaries = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    refused = {name for summary in summaries for name in summary["refused"]}
    assert "SpendingLimitExceeded" in refused
    card.refresh_from_db()
    usage = {entry.period: entry for entry in card.spending()}
    assert usage["day"].used <= Money("400.00", "GBP")
    assert usage["month"].used <= Money("600.00", "GBP")
    assert card.balance.amount >= Decimal("-800.00")
    debits = Transfer.objects.filter(source=card, parent__isnull=True, hold__isnull=True)
    assert debits.exists()
    assert_ledger_consistent()
