"""Collecting debts (accounts.collections): runs, freezing, initiating, settling, failing."""

import datetime
import io
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from djmoney.money import Money

from accounts import collection_freeze, collections, facade, signals
from accounts.collection_models import CollectionRun, Debt, Settlement
from accounts.exceptions import (
    CollectionBeforeFreeze,
    CollectionRunConflict,
    CollectionRunNotDue,
    CurrencyMismatch,
    DebtResolved,
    FrozenAccount,
    IdempotencyConflict,
    InvalidAmount,
    InvalidArgument,
    InvalidCollectionPeriod,
    InvalidCollectionSource,
    LedgerImmutable,
    MixedCurrencyScope,
    SettlementExceedsDebt,
)
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType, Transfer

from .factories import AccountFactory, UserFactory
from .utils import assert_ledger_consistent, data_statements, ledger_time, moment

pytestmark = pytest.mark.django_db

JAN_START, JAN_END = datetime.date(2026, 1, 1), datetime.date(2026, 1, 31)
FEB_START, FEB_END = datetime.date(2026, 2, 1), datetime.date(2026, 2, 28)


def spend(account, amount, when):
    """A card payment on credit, at ``when`` (the ledger's clock)."""
    with ledger_time(when):
        return facade.transfer(account, Account.objects.sales_account(account.currency),
                               Decimal(amount))  # fmt: skip


def pay_in(account, amount, when):
    """Money paid in by the debtor (a top-up from the source), at ``when``."""
    with ledger_time(when):
        return facade.transfer(Account.objects.source_account(account.currency), account,
                               Decimal(amount))  # fmt: skip


def january(wallets, **kwargs):
    return collections.create_run(
        account_type=wallets,
        period_start=JAN_START,
        period_end=JAN_END,
        collect_on=datetime.date(2026, 2, 5),
        **kwargs,
    )


def february(wallets, **kwargs):
    return collections.create_run(
        account_type=wallets,
        period_start=FEB_START,
        period_end=FEB_END,
        collect_on=datetime.date(2026, 3, 5),
        **kwargs,
    )


def owed(run):
    """{account name: amount owed} of a run's debts."""
    return {
        debt.account.name: debt.amount.amount
        for debt in Debt.objects.filter(run=run).select_related("account")
    }


def snapshot():
    return (
        Transfer.objects.count(),
        sorted(Account.objects.values_list("pk", "balance")),
        sorted(
            CollectionRun.objects.values_list(
                "pk",
                "status",
                "debt_count",
                "total_owed",
                "total_initiated",
                "total_recovered",
                "total_failed",
            )
        ),  # fmt: skip
        sorted(Debt.objects.values_list("pk", "status", "recovered")),
        Settlement.objects.count(),
    )


@pytest.fixture
def world(db):
    """Wallets (and card wallets, a subtype) on credit, with a January of card payments."""
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    cards = AccountType.objects.create(name="Card wallets", code="card-wallets", parent=wallets)
    b2b = AccountType.objects.create(name="Business credit", code="b2b")
    alice = AccountFactory(name="Alice", account_type=wallets, credit_limit=Decimal("200.00"))
    bob = AccountFactory(name="Bob", account_type=cards, credit_limit=Decimal("200.00"))
    carol = AccountFactory(name="Carol", account_type=wallets, credit_limit=Decimal("200.00"))
    dave = AccountFactory(name="Dave", account_type=b2b, credit_limit=Decimal("500.00"))
    spend(alice, "50.00", moment(2026, 1, 5))
    spend(dave, "70.00", moment(2026, 1, 8))
    spend(bob, "30.00", moment(2026, 1, 10))
    pay_in(carol, "20.00", moment(2026, 1, 12))
    pay_in(alice, "10.00", moment(2026, 1, 20))
    spend(alice, "25.00", moment(2026, 2, 3))  # after the freeze: February's
    return SimpleNamespace(
        wallets=wallets, cards=cards, b2b=b2b, alice=alice, bob=bob, carol=carol, dave=dave
    )


# Creating a run ------------------------------------------------------------------------


def test_a_run_is_created_once_per_scope_and_period(world):
    run = january(world.wallets)

    assert run.status == CollectionRun.Status.PENDING
    assert run.currency == "GBP"
    assert run.source == Account.objects.source_account("GBP")
    assert run.freeze_at == moment(2026, 1, 31, 23, 59).replace(second=59, microsecond=999999)
    before = snapshot()
    with CaptureQueriesContext(connection) as queries:
        again = collections.create_run(
            account_type="wallets",  # by its code: the same scope
            period_start=JAN_START,
            period_end=JAN_END,
            collect_on=datetime.date(2026, 2, 5),
        )
    assert again == run
    assert snapshot() == before
    assert not [sql for sql in data_statements(queries) if sql.startswith(("INSERT", "UPDATE"))]
    assert CollectionRun.objects.count() == 1


def test_two_runs_for_the_same_period_with_other_dates_are_refused_and_nothing_is_written(world):
    run = january(world.wallets)
    before = snapshot()

    with pytest.raises(CollectionRunConflict, match="collect_on \\(2026-02-05, not 2026-02-09\\)"):
        collections.create_run(
            account_type=world.wallets,
            period_start=JAN_START,
            period_end=JAN_END,
            collect_on=datetime.date(2026, 2, 9),
        )
    with pytest.raises(CollectionRunConflict, match="already collects account type Wallets"):
        january(world.wallets, freeze_at=moment(2026, 2, 1, 6))

    assert snapshot() == before
    assert CollectionRun.objects.get().pk == run.pk


def test_another_scope_or_period_is_another_run(world):
    wallets_january = january(world.wallets)
    cards_january = january(world.cards)
    wallets_february = february(world.wallets)
    everything_january = collections.create_run(
        period_start=JAN_START, period_end=JAN_END, collect_on=datetime.date(2026, 2, 5)
    )

    runs = {wallets_january, cards_january, wallets_february, everything_january}
    assert len(runs) == 4
    assert everything_january.scope == "all"
    assert everything_january.scope_label == "every account"


def test_a_collection_date_before_the_freeze_is_refused_and_nothing_is_written(world):
    before = snapshot()

    with pytest.raises(CollectionBeforeFreeze, match="is not after the freeze") as info:
        collections.create_run(
            account_type=world.wallets,
            period_start=JAN_START,
            period_end=JAN_END,
            collect_on=datetime.date(2026, 1, 31),  # the freeze's own day ends at the freeze
        )
    assert info.value.collect_on == datetime.date(2026, 1, 31)
    with pytest.raises(CollectionBeforeFreeze, match="is not after the freeze"):
        january(world.wallets, freeze_at=moment(2026, 2, 7, 9))  # collect on 5 February

    assert snapshot() == before


@pytest.mark.parametrize(
    ("start", "end", "freeze_at", "match"),
    [
        (JAN_END, JAN_START, None, "ends .* before it starts"),
        (JAN_START, JAN_END, moment(2026, 1, 31, 9), "comes before the period ends"),
    ],
)
def test_a_period_out_of_order_is_refused_and_nothing_is_written(
    world, start, end, freeze_at, match
):
    before = snapshot()

    with pytest.raises(InvalidCollectionPeriod, match=match):
        collections.create_run(
            account_type=world.wallets,
            period_start=start,
            period_end=end,
            freeze_at=freeze_at,
            collect_on=datetime.date(2026, 2, 5),
        )

    assert snapshot() == before


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        ({"collect_on": datetime.datetime(2026, 2, 5, 9)}, "collect_on must be a date"),
        ({"period_start": "2026-01-01"}, "must be a date or a datetime"),
        ({"period_end": datetime.datetime(2026, 1, 31, 23)}, "must be an aware datetime"),
        ({"account_type": "no-such-type"}, "no account type with code 'no-such-type'"),
        ({"accounts": Account.objects.none()}, "needs a name"),
        ({"name": "vip"}, "name is for a run over the accounts given"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(world, arguments, match):
    call = {
        "account_type": world.wallets,
        "period_start": JAN_START,
        "period_end": JAN_END,
        "collect_on": datetime.date(2026, 2, 5),
        **arguments,
    }
    if "accounts" in arguments:
        del call["account_type"]
    before = snapshot()

    with pytest.raises(InvalidArgument, match=match):
        collections.create_run(**call)

    assert snapshot() == before


def test_a_scope_in_several_currencies_is_refused_without_a_currency_and_nothing_written(world):
    euro = AccountFactory(
        name="Euro wallet", account_type=world.wallets, currency="EUR", credit_limit=Decimal(90)
    )
    spend(euro, "12.00", moment(2026, 1, 14))
    before = snapshot()

    with pytest.raises(
        MixedCurrencyScope, match="account type Wallets are in several currencies \\(EUR, GBP\\)"
    ) as info:
        january(world.wallets)

    assert isinstance(info.value, CurrencyMismatch)
    assert info.value.currencies == ["EUR", "GBP"]
    assert snapshot() == before
    assert collections.scope_currencies(account_type=world.wallets) == ["EUR", "GBP"]


def test_each_currency_of_a_scope_gets_its_own_run_and_its_own_debts(world):
    euro = AccountFactory(
        name="Euro wallet", account_type=world.wallets, currency="EUR", credit_limit=Decimal(90)
    )
    spend(euro, "12.00", moment(2026, 1, 14))

    pounds = january(world.wallets, currency="GBP")
    euros = january(world.wallets, currency="EUR")
    collections.freeze(pounds)
    collections.freeze(euros)

    assert owed(pounds) == {"Alice": Decimal("40.00"), "Bob": Decimal("30.00")}
    assert owed(euros) == {"Euro wallet": Decimal("12.00")}
    assert euros.source == Account.objects.source_account("EUR")
    assert euros.total_owed == Money("12.00", "EUR")
    assert pounds.total_owed == Money("70.00", "GBP")


def test_a_run_over_the_accounts_given_keeps_them_and_is_named(world):
    run = collections.create_run(
        accounts=Account.objects.filter(name__in=["Alice", "Dave"]),
        name="vip",
        period_start=JAN_START,
        period_end=JAN_END,
        collect_on=datetime.date(2026, 2, 5),
    )
    later = AccountFactory(name="Later", credit_limit=Decimal(10))
    spend(later, "5.00", moment(2026, 1, 30))  # not one of the accounts given

    assert run.scope == "accounts:vip"
    assert run.scope_label == "vip"
    with pytest.raises(CollectionRunConflict, match="another set of accounts"):
        collections.create_run(
            accounts=Account.objects.filter(name__in=["Alice"]),
            name="vip",
            period_start=JAN_START,
            period_end=JAN_END,
            collect_on=datetime.date(2026, 2, 5),
        )
    collections.freeze(run)
    assert owed(run) == {"Alice": Decimal("40.00"), "Dave": Decimal("70.00")}


# Where collected money comes from --------------------------------------------------------


def test_the_configured_source_is_where_collected_money_comes_from(world):
    received = AccountFactory(name="Direct debits received", credit_limit=None)
    with override_settings(ACCOUNTS_COLLECTION_SOURCES={"GBP": "Direct debits received"}):
        run = january(world.wallets)
    collections.freeze(run)
    debt = Debt.objects.get(run=run, account=world.bob)

    payment = collections.settle(debt, Decimal("30.00"), reference="DD-1")

    assert run.source == received
    assert payment.source == received and payment.destination == world.bob


@pytest.mark.parametrize(
    ("settings", "make", "match"),
    [
        ({"GBP": "Nobody"}, None, "no account has that name"),
        ({"GBP": "Euro bank"}, {"currency": "EUR", "credit_limit": None}, "is in EUR"),
        ({"GBP": "Euro bank"}, {"credit_limit": Decimal(0)}, "has a credit limit"),
    ],
)
def test_an_unusable_source_is_refused_and_nothing_is_written(world, settings, make, match):
    if make is not None:
        AccountFactory(name="Euro bank", **make)
    before = snapshot()

    with override_settings(ACCOUNTS_COLLECTION_SOURCES=settings):
        with pytest.raises(InvalidCollectionSource, match=match):
            january(world.wallets)

    assert snapshot() == before


# Freezing ------------------------------------------------------------------------------


def test_freezing_takes_each_debt_at_the_freeze_from_the_running_balances(world):
    run = january(world.wallets)

    collections.freeze(run)

    # Alice: -50 + 10 by 31 January (her 25.00 of 3 February is not January's);
    # Bob's card wallet is a subtype; Carol owes nothing; Dave is not a wallet.
    assert owed(run) == {"Alice": Decimal("40.00"), "Bob": Decimal("30.00")}
    alice = Debt.objects.get(run=run, account=world.alice)
    assert alice.balance_at_freeze == Money("-40.00", "GBP")
    assert alice.status == Debt.Status.PENDING
    assert alice.recovered == Money("0.00", "GBP")
    run.refresh_from_db()
    assert run.status == CollectionRun.Status.RUNNING
    assert (run.debt_count, run.total_owed) == (2, Money("70.00", "GBP"))
    assert run.total_pending == Money("70.00", "GBP")
    assert run.frozen_at is not None
    assert_ledger_consistent()


def test_a_frozen_run_is_frozen_once(world):
    run = january(world.wallets)
    collections.freeze(run)
    spend(world.carol, "99.00", moment(2026, 1, 30))  # history changed since: not seen
    before = snapshot()

    assert collections.freeze(run).status == CollectionRun.Status.RUNNING

    assert snapshot() == before


def test_freezing_before_the_freeze_moment_is_refused_and_nothing_is_written(world):
    run = january(world.wallets)
    before = snapshot()

    with ledger_time(moment(2026, 1, 31, 23, 0)):
        with pytest.raises(CollectionRunNotDue, match="cannot be frozen before") as info:
            collections.freeze(run)

    assert info.value.user_message.startswith("The amounts of this collection are not final")
    assert snapshot() == before
    assert not Debt.objects.exists()


def test_a_run_with_no_debt_at_all_succeeds_when_frozen(world):
    run = collections.create_run(
        account_type=world.b2b,
        period_start=datetime.date(2025, 12, 1),
        period_end=datetime.date(2025, 12, 31),
        collect_on=datetime.date(2026, 1, 5),
    )

    collections.freeze(run)

    assert run.status == CollectionRun.Status.SUCCEEDED
    assert run.debt_count == 0 and run.finished_at is not None


def _history(count, legs, when):
    wallets = AccountType.objects.create(name="Long", code="long-%d" % legs)
    accounts = [
        AccountFactory(account_type=wallets, credit_limit=Decimal(1000)) for _ in range(count)
    ]
    for leg in range(legs):
        for account in accounts:
            spend(account, "1.00", when + datetime.timedelta(minutes=leg))
    return wallets


def test_freezing_costs_the_same_statements_whatever_the_history(world):
    counts = {}
    for legs in (2, 12):
        wallets = _history(3, legs, moment(2026, 1, 6))
        run = january(wallets)
        with CaptureQueriesContext(connection) as queries:
            collections.freeze(run)
        counts[legs] = len(data_statements(queries))
        assert set(owed(run).values()) == {Decimal(legs)}

    assert counts[2] == counts[12] == FREEZE_FIXED + FREEZE_PER_BATCH


#: Statements of a freeze besides its batches: read the run, its account type's
#: subtypes; once the accounts run out, look for more, lock the run, (read the
#: database's clock,) write its status, read it back.
FREEZE_FIXED = 6 + (connection.vendor != "sqlite")
#: Statements per batch of accounts: their ids, lock them, lock the run, their
#: balances at the freeze, other runs' open debts and late settlements, insert
#: the debts, update the run, read it again.
FREEZE_PER_BATCH = 9


def test_freezing_reads_the_accounts_in_batches_of_a_bounded_number_of_statements(world):
    wallets = _history(7, 1, moment(2026, 1, 6))
    run = january(wallets)
    with CaptureQueriesContext(connection) as queries:
        collections.freeze(run, batch_size=3)

    statements = data_statements(queries)
    assert len([sql for sql in statements if "balance_after" in sql]) == 3  # 3 + 3 + 1 accounts
    assert len(statements) == FREEZE_FIXED + 3 * FREEZE_PER_BATCH
    assert len(owed(run)) == 7


def test_a_freeze_that_crashed_between_batches_is_finished_by_the_next_one(world, monkeypatch):
    wallets = _history(5, 1, moment(2026, 1, 6))
    run = january(wallets)
    real = collection_freeze._freeze_batch
    calls = {"n": 0}

    def crash_on_second(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("the process died")
        return real(*args, **kwargs)

    monkeypatch.setattr(collection_freeze, "_freeze_batch", crash_on_second)
    with pytest.raises(RuntimeError, match="the process died"):
        collections.freeze(run, batch_size=2)
    run.refresh_from_db()
    assert run.status == CollectionRun.Status.PENDING and run.debt_count == 2

    monkeypatch.setattr(collection_freeze, "_freeze_batch", real)
    collections.freeze(run, batch_size=2)

    assert run.status == CollectionRun.Status.RUNNING
    assert Debt.objects.filter(run=run).count() == run.debt_count == 5
    assert check_ledger().ok


def test_preview_shows_the_debts_freezing_would_write_and_writes_nothing(world):
    run = january(world.wallets)
    before = snapshot()

    preview = collections.preview(run)

    assert {d.account_id: d.amount.amount for d in preview} == {
        world.alice.pk: Decimal("40.00"),
        world.bob.pk: Decimal("30.00"),
    }
    assert all(d.pk is None for d in preview)
    assert snapshot() == before


# Owed again, never twice ----------------------------------------------------------------


def test_a_failed_debt_is_owed_again_in_the_next_run_but_never_twice(world):
    jan = january(world.wallets)
    collections.freeze(jan)
    collections.fail(Debt.objects.get(run=jan, account=world.alice), "Returned: no funds")
    feb = february(world.wallets)

    collections.freeze(feb)

    # Alice: the 40.00 of January again, and the 25.00 of February; once each.
    # Bob's 30.00 is still pending in January's run: not owed again here.
    assert owed(feb) == {"Alice": Decimal("65.00")}
    alice = Debt.objects.get(run=feb, account=world.alice)
    assert alice.claimed_elsewhere == Money("0.00", "GBP")


def test_a_debt_still_being_collected_is_not_owed_again_by_the_next_run(world):
    jan = january(world.wallets)
    collections.freeze(jan)
    collections.run_collection(jan)  # initiated: the direct debits are under way
    feb = february(world.wallets)

    collections.freeze(feb)

    assert owed(feb) == {"Alice": Decimal("25.00")}
    alice = Debt.objects.get(run=feb, account=world.alice)
    assert alice.claimed_elsewhere == Money("40.00", "GBP")
    assert alice.debt_at_freeze == Money("65.00", "GBP")


def test_money_recovered_after_the_next_freeze_is_not_owed_again(world):
    jan = january(world.wallets)
    collections.freeze(jan)
    collections.run_collection(jan)
    feb = february(world.wallets)
    # January's direct debit came back in March, after February's freeze.
    with ledger_time(moment(2026, 3, 2)):
        collections.settle(
            Debt.objects.get(run=jan, account=world.alice), Decimal("15.00"), reference="DD-A1"
        )
        collections.fail(Debt.objects.get(run=jan, account=world.alice), "Returned: partly")

    collections.freeze(feb)

    # Alice owed 65.00 on 28 February; January recovered 15.00 of it since, and
    # the other 25.00 of January failed: February collects 50.00 (and Bob's
    # 30.00 is still being collected by January's run).
    assert owed(feb) == {"Alice": Decimal("50.00")}
    assert Debt.objects.get(run=feb, account=world.alice).claimed_elsewhere == Money(
        "15.00", "GBP"
    )


def test_a_settled_debt_is_not_owed_again(world):
    jan = january(world.wallets)
    collections.freeze(jan)
    with ledger_time(moment(2026, 2, 10)):
        collections.settle(
            Debt.objects.get(run=jan, account=world.bob), Decimal("30.00"), reference="DD-B1"
        )
    feb = february(world.wallets)

    collections.freeze(feb)

    assert owed(feb) == {"Alice": Decimal("25.00")}  # and 40.00 still being collected


def test_overlapping_runs_never_collect_a_debt_twice(world):
    jan = january(world.wallets)
    mid = collections.create_run(
        account_type=world.wallets,
        period_start=datetime.date(2026, 1, 15),
        period_end=datetime.date(2026, 2, 14),
        collect_on=datetime.date(2026, 2, 20),
    )
    collections.freeze(mid)
    collections.freeze(jan)

    total = {}
    for run in (jan, mid):
        for name, amount in owed(run).items():
            total[name] = total.get(name, 0) + amount
    assert total == {"Alice": Decimal("65.00"), "Bob": Decimal("30.00")}
    assert owed(jan) == {}  # the later run, frozen first, claims it all


# Initiating ----------------------------------------------------------------------------


def test_running_a_run_initiates_each_pending_debt_and_says_so_once_committed(
    world, django_capture_on_commit_callbacks
):
    run = january(world.wallets)
    heard = []

    def receiver(sender, debt, **kwargs):
        heard.append((sender, debt.account_id, debt.status, debt.amount))

    signals.debt_initiated.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            report = collections.run_collection(run)
        assert heard == []  # nothing before the commit
        for callback in callbacks:
            callback()
    finally:
        signals.debt_initiated.disconnect(receiver)

    assert report.froze and report.initiated == 2 and report.skipped == 0
    assert report.initiated_amount == Decimal("70.00")
    assert sorted(heard, key=lambda h: h[1]) == [
        (Debt, world.alice.pk, "initiated", Money("40.00", "GBP")),
        (Debt, world.bob.pk, "initiated", Money("30.00", "GBP")),
    ]
    assert set(Debt.objects.values_list("status", flat=True)) == {"initiated"}
    run.refresh_from_db()
    assert run.total_initiated == Money("70.00", "GBP")
    assert run.status == CollectionRun.Status.RUNNING


def test_running_the_same_run_twice_initiates_each_debt_once(world):
    run = january(world.wallets)
    collections.run_collection(run)
    before = snapshot()

    report = collections.run_collection(run)

    assert (report.froze, report.initiated, report.skipped) == (False, 0, 0)
    assert snapshot() == before


def test_initiate_is_false_for_a_debt_that_is_not_pending(world):
    run = january(world.wallets)
    collections.freeze(run)
    debt = Debt.objects.get(run=run, account=world.bob)

    assert collections.initiate(debt) is True
    assert debt.status == Debt.Status.INITIATED and debt.initiated_at is not None
    assert collections.initiate(debt) is False


def test_a_dry_run_of_a_run_not_frozen_yet_shows_its_debts_and_writes_nothing(world):
    run = january(world.wallets)
    before = snapshot()

    report = collections.run_collection(run, dry_run=True)

    assert report.froze is True and report.initiated == 2
    assert report.initiated_amount == Decimal("70.00")
    assert snapshot() == before


def test_run_due_collections_runs_the_runs_whose_freeze_has_passed(world):
    jan = january(world.wallets)
    later = collections.create_run(
        account_type=world.wallets,
        period_start=datetime.date(2099, 1, 1),
        period_end=datetime.date(2099, 1, 31),
        collect_on=datetime.date(2099, 2, 5),
    )

    reports = collections.run_due_collections()

    assert [report.run for report in reports] == [jan]
    later.refresh_from_db()
    assert later.status == CollectionRun.Status.PENDING


# Settling ------------------------------------------------------------------------------


@pytest.fixture
def frozen(world):
    run = january(world.wallets)
    collections.run_collection(run)
    world.run = run
    world.alice_debt = Debt.objects.get(run=run, account=world.alice)
    world.bob_debt = Debt.objects.get(run=run, account=world.bob)
    return world


def test_settling_moves_the_money_from_the_source_into_the_debtors_account(frozen):
    cashier = UserFactory(username="cashier")
    bank = Account.objects.source_account()
    bank_before = bank.balance

    payment = collections.settle(
        frozen.bob_debt, Money("30.00", "GBP"), reference="DD-2026-02-BOB", user=cashier
    )

    assert (payment.source, payment.destination) == (bank, frozen.bob)
    assert payment.amount == Money("30.00", "GBP")
    assert payment.merchant_reference == "DD-2026-02-BOB"
    assert payment.username == "cashier"
    assert payment.idempotency_key == "collection:DD-2026-02-BOB"
    assert payment.description == "Collected for debt #%s (collection run %s)" % (
        frozen.bob_debt.pk,
        frozen.run.reference,
    )
    frozen.bob.refresh_from_db()
    bank.refresh_from_db()
    assert frozen.bob.balance == Money("0.00", "GBP")
    assert bank.balance == bank_before - Money("30.00", "GBP")
    debt = Debt.objects.get(pk=frozen.bob_debt.pk)
    assert (debt.status, debt.recovered, debt.external_reference) == (
        Debt.Status.SUCCEEDED,
        Money("30.00", "GBP"),
        "DD-2026-02-BOB",
    )
    assert debt.resolved_by == "cashier" and debt.resolved_at == payment.created
    assert list(debt.transfers.all()) == [payment]
    assert frozen.bob_debt.status == Debt.Status.SUCCEEDED  # the instance passed in
    run = CollectionRun.objects.get(pk=frozen.run.pk)
    assert run.total_recovered == Money("30.00", "GBP")
    assert run.total_initiated == Money("40.00", "GBP")
    assert run.status == CollectionRun.Status.RUNNING  # Alice's is still open
    assert_ledger_consistent()


def test_a_partial_settlement_leaves_the_rest_owed(frozen):
    collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A-1")

    debt = Debt.objects.get(pk=frozen.alice_debt.pk)
    assert debt.status == Debt.Status.INITIATED
    assert debt.remaining == Money("25.00", "GBP")
    assert debt.resolved_at is None

    collections.settle(frozen.alice_debt, Decimal("25.00"), reference="DD-A-2")

    debt.refresh_from_db()
    assert debt.status == Debt.Status.SUCCEEDED
    assert debt.transfers.count() == 2
    assert_ledger_consistent()


def test_settling_a_pending_debt_in_part_initiates_it(world):
    run = january(world.wallets)
    collections.freeze(run)
    debt = Debt.objects.get(run=run, account=world.alice)

    collections.settle(debt, Decimal("10.00"), reference="PAID-BY-TRANSFER")

    assert debt.status == Debt.Status.INITIATED and debt.initiated_at is not None
    run.refresh_from_db()
    assert run.total_initiated == Money("30.00", "GBP")
    assert run.total_recovered == Money("10.00", "GBP")
    assert check_ledger().ok


def test_settling_more_than_is_owed_is_refused_and_nothing_is_written(frozen):
    collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A-1")
    before = snapshot()

    with pytest.raises(SettlementExceedsDebt, match="only £25.00 is still owed") as info:
        collections.settle(frozen.alice_debt, Decimal("25.01"), reference="DD-A-2")

    assert info.value.remaining == Money("25.00", "GBP")
    assert info.value.user_message == "Only £25.00 is still owed."
    assert snapshot() == before


@pytest.mark.parametrize("resolution", ["settled", "failed"])
def test_settling_a_debt_that_succeeded_or_failed_is_refused_and_nothing_is_written(
    frozen, resolution
):
    if resolution == "settled":
        collections.settle(frozen.bob_debt, Decimal("30.00"), reference="DD-B-1")
        status = "succeeded"
    else:
        collections.fail(frozen.bob_debt, "Account closed at the bank")
        status = "failed"
    before = snapshot()

    with pytest.raises(DebtResolved, match="is already %s" % status) as info:
        collections.settle(frozen.bob_debt, Decimal("1.00"), reference="DD-B-2")

    assert (
        info.value.user_message
        == {
            "succeeded": "This debt was already paid in full.",
            "failed": "This debt was already marked as not paid.",
        }[status]
    )
    assert snapshot() == before


def test_the_same_settlement_recorded_again_records_nothing(frozen):
    payment = collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A-1")
    before = snapshot()

    again = collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A-1")
    assert again == payment
    frozen.alice_debt.refresh_from_db()
    collections.settle(frozen.alice_debt, Decimal("25.00"), reference="DD-A-2")  # succeeded now
    assert collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A-1") == payment

    assert Settlement.objects.count() == before[4] + 1


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"amount": Decimal("14.00")}, "already used"),
        ({"description": "Another"}, "already used"),
        ({"debt": "bob"}, "already used"),
    ],
)
def test_the_same_reference_for_another_settlement_is_refused_and_nothing_is_written(
    frozen, change, match
):
    collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-1")
    before = snapshot()
    debt = frozen.bob_debt if change.get("debt") == "bob" else frozen.alice_debt

    with pytest.raises(IdempotencyConflict, match=match):
        collections.settle(
            debt,
            change.get("amount", Decimal("15.00")),
            reference="DD-1",
            description=change.get("description"),
        )

    assert snapshot() == before


def test_references_compare_exactly(frozen):
    collections.settle(frozen.alice_debt, Decimal("5.00"), reference="dd-1")
    collections.settle(frozen.alice_debt, Decimal("5.00"), reference="DD-1")
    collections.settle(frozen.alice_debt, Decimal("5.00"), reference="DD-1 ")

    assert frozen.alice_debt.transfers.count() == 3


@pytest.mark.parametrize(
    ("amount", "reference", "exception", "match"),
    [
        (15.0, "R", InvalidAmount, "has type float"),
        (Decimal("-1.00"), "R", InvalidAmount, "must be greater than zero"),
        (Decimal("0"), "R", InvalidAmount, "must be greater than zero"),
        (Decimal("1.005"), "R", InvalidAmount, "more decimal places"),
        (Decimal("NaN"), "R", InvalidAmount, "not a finite number"),
        (Money("5.00", "EUR"), "R", CurrencyMismatch, "is in EUR"),
        (Decimal("5.00"), "", InvalidArgument, "must not be empty"),
        (Decimal("5.00"), None, InvalidArgument, "needs its external reference"),
        (Decimal("5.00"), "R" * 101, InvalidArgument, "the most is 100"),
        (Decimal("5.00"), "R\x00", InvalidArgument, "NUL"),
    ],
)
def test_bad_settlements_are_refused_and_nothing_is_written(
    frozen, amount, reference, exception, match
):
    before = snapshot()

    with pytest.raises(exception, match=match):
        collections.settle(frozen.alice_debt, amount, reference=reference)

    assert snapshot() == before


def test_a_settlement_the_facade_refuses_writes_nothing(frozen):
    frozen.alice.freeze()  # money cannot come into a frozen account
    before = snapshot()

    with pytest.raises(FrozenAccount, match="is frozen"):
        collections.settle(frozen.alice_debt, Decimal("40.00"), reference="DD-A")

    assert snapshot() == before
    assert Debt.objects.get(pk=frozen.alice_debt.pk).status == Debt.Status.INITIATED


def test_settle_decides_on_the_stored_debt_not_the_instance(frozen):
    forged = Debt.objects.get(pk=frozen.bob_debt.pk)
    forged.__dict__.update(
        amount=Decimal("999.00"), recovered=Decimal(0), status="pending", account_id=0
    )

    with pytest.raises(SettlementExceedsDebt, match="only £30.00 is still owed"):
        collections.settle(forged, Decimal("31.00"), reference="DD-X")
    payment = collections.settle(forged, Decimal("30.00"), reference="DD-Y")

    assert payment.destination == frozen.bob
    assert forged.status == Debt.Status.SUCCEEDED  # the instance gets what was written


def test_settle_costs_the_same_statements_whatever_the_history(frozen):
    for minute in range(10):  # Alice's history grows; Bob's does not
        spend(frozen.alice, "0.01", moment(2026, 3, 1, 9, minute))
    counts = []
    for debt, reference in ((frozen.bob_debt, "DD-B"), (frozen.alice_debt, "DD-A")):
        with CaptureQueriesContext(connection) as queries:
            collections.settle(debt, Decimal("1.00"), reference=reference)
        counts.append(len(data_statements(queries)))

    # The debt's facts; the accounts, then the debt, locked; the settlement
    # and the key looked up; the facade's transfer; the run locked; the
    # settlement, the debt and the run written; whether any debt of the run
    # is still open. The transfer is one statement on PostgreSQL (its key
    # looked up inside it); elsewhere its lock, its key and three writes.
    transfer = 1 if connection.vendor == "postgresql" else 5
    assert counts == [10 + transfer] * 2


# Failing -------------------------------------------------------------------------------


def test_failing_a_debt_records_why_and_says_so_once_committed(
    frozen, django_capture_on_commit_callbacks
):
    heard = []

    def receiver(sender, debt, **kwargs):
        heard.append((debt.pk, debt.status, debt.failure_reason))

    signals.debt_failed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            collections.fail(frozen.bob_debt, "ARUDD 0: refer to payer", user=UserFactory())
    finally:
        signals.debt_failed.disconnect(receiver)

    assert heard == [(frozen.bob_debt.pk, "failed", "ARUDD 0: refer to payer")]
    run = CollectionRun.objects.get(pk=frozen.run.pk)
    assert run.total_failed == Money("30.00", "GBP")
    assert run.total_initiated == Money("40.00", "GBP")
    assert frozen.bob_debt.remaining == Money("0.00", "GBP")


def test_failing_twice_or_failing_a_settled_debt_is_refused_and_nothing_is_written(frozen):
    collections.fail(frozen.bob_debt, "Returned")
    collections.settle(frozen.alice_debt, Decimal("40.00"), reference="DD-A")
    before = snapshot()

    with pytest.raises(DebtResolved, match="already failed"):
        collections.fail(frozen.bob_debt, "Returned again")
    with pytest.raises(DebtResolved, match="already succeeded"):
        collections.fail(frozen.alice_debt, "Returned")
    with pytest.raises(InvalidArgument, match="needs its reason"):
        collections.fail(Debt.objects.get(pk=frozen.alice_debt.pk), "  ")

    assert snapshot() == before


def test_a_run_succeeds_when_every_debt_was_recovered(frozen):
    collections.settle(frozen.alice_debt, Decimal("40.00"), reference="DD-A")
    collections.settle(frozen.bob_debt, Decimal("30.00"), reference="DD-B")

    run = CollectionRun.objects.get(pk=frozen.run.pk)
    assert run.status == CollectionRun.Status.SUCCEEDED
    assert run.finished_at is not None
    assert (run.total_recovered, run.total_initiated) == (Money("70.00", "GBP"),
                                                          Money("0.00", "GBP"))  # fmt: skip


def test_a_run_fails_when_every_debt_is_resolved_and_one_failed(frozen):
    collections.settle(frozen.alice_debt, Decimal("10.00"), reference="DD-A")
    collections.fail(frozen.alice_debt, "Returned: the rest")
    assert CollectionRun.objects.get(pk=frozen.run.pk).status == "running"
    collections.settle(frozen.bob_debt, Decimal("30.00"), reference="DD-B")

    run = CollectionRun.objects.get(pk=frozen.run.pk)
    assert run.status == CollectionRun.Status.FAILED
    assert (run.total_recovered, run.total_failed) == (Money("40.00", "GBP"),
                                                       Money("30.00", "GBP"))  # fmt: skip
    assert check_ledger().ok


# Guards, the ledger check ------------------------------------------------------------------


def test_debts_and_settlements_change_only_through_collections(frozen):
    collections.settle(frozen.bob_debt, Decimal("30.00"), reference="DD-B")
    debt = Debt.objects.get(pk=frozen.alice_debt.pk)
    debt.recovered = Decimal("40.00")

    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        debt.save()
    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        Debt.objects.filter(pk=debt.pk).update(status="succeeded")
    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        Debt.objects.all().delete()
    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        Settlement.objects.all().delete()
    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        CollectionRun.objects.filter(pk=frozen.run.pk).update(status="succeeded")
    run = CollectionRun.objects.get(pk=frozen.run.pk)
    with pytest.raises(LedgerImmutable, match="change only through accounts.collections"):
        run.save()
    assert check_ledger().ok


@pytest.mark.parametrize(
    ("table", "column", "value", "check"),
    [
        ("accounts_debt", "recovered", "12.00", "debt-recovered"),
        ("accounts_collectionrun", "total_recovered", "1.00", "run-totals"),
        ("accounts_collectionrun", "total_initiated", "1.00", "run-totals"),
        ("accounts_debt", "status", "'succeeded'", "debt-state"),
    ],
)
def test_check_ledger_finds_debts_and_runs_that_do_not_match_their_transfers(
    frozen, table, column, value, check
):
    collections.settle(frozen.alice_debt, Decimal("10.00"), reference="DD-A")
    assert check_ledger().ok
    key = "id = %s" % (frozen.alice_debt.pk if table == "accounts_debt" else frozen.run.pk)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE %s SET %s = %s WHERE %s" % (table, column, value, key))

    report = check_ledger()

    assert not report.ok
    assert report.counts[check] == 1, report.problems
    assert check in str(report.problems[0])


def test_check_ledger_finds_a_settlement_that_is_not_a_transfer_into_the_debtor(frozen):
    collections.settle(frozen.alice_debt, Decimal("10.00"), reference="DD-A")
    stray = facade.transfer(Account.objects.source_account(), frozen.carol, Decimal("10.00"))
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_settlement SET transfer_id = %s WHERE reference = 'DD-A'", [stray.pk]
        )

    report = check_ledger()

    assert report.counts["settlement-shape"] == 1
    assert report.counts["debt-recovered"] == 0


# The statement of a debt -----------------------------------------------------------------


def test_the_statement_of_a_debt_is_the_period_up_to_the_freeze(world):
    erin = AccountFactory(name="Erin", account_type=world.wallets, credit_limit=Decimal(50))
    spend(erin, "3.00", moment(2025, 12, 20))  # before the period: the opening balance
    spend(erin, "5.00", moment(2026, 1, 7))
    pay_in(erin, "2.00", moment(2026, 1, 9))
    spend(erin, "1.00", moment(2026, 2, 2))  # after the freeze
    run = january(world.wallets)
    collections.freeze(run)

    statement = collections.debt_statement(Debt.objects.get(run=run, account=erin))

    assert statement.opening_balance == Money("-3.00", "GBP")
    assert statement.closing_balance == Money("-6.00", "GBP")
    assert [leg.amount for leg in statement.transactions] == [
        Money("-5.00", "GBP"),
        Money("2.00", "GBP"),
    ]
    assert statement.debt.amount == Money("6.00", "GBP")
    assert (statement.run, statement.account) == (run, erin)


def test_the_statement_as_csv_has_the_history_and_how_the_debt_follows(frozen):
    facade.transfer(frozen.alice, frozen.carol, Decimal("1.00"))  # after the freeze: not in it
    collections.settle(frozen.alice_debt, Decimal("15.00"), reference="DD-A")
    out = io.StringIO()

    collections.debt_statement(frozen.alice_debt).write_csv(out)

    lines = out.getvalue().splitlines()
    assert lines[0] == (
        "line,date,transfer,counterparty,description,merchant_reference,amount,"
        "balance_after,currency"
    )
    assert lines[1] == "opening balance,2026-01-01T00:00:00+00:00,,,,,,0.00,GBP"
    assert lines[2].startswith("transaction,2026-01-05T12:00:00+00:00,")
    assert lines[2].endswith(",Sales (GBP),,,-50.00,-50.00,GBP")
    assert lines[3].endswith(",Bank (GBP),,,10.00,-40.00,GBP")
    assert lines[4] == "closing balance,2026-01-31T23:59:59.999999+00:00,,,,,,-40.00,GBP"
    assert lines[5:] == [
        "debt at the freeze,,,,,,40.00,,GBP",
        "collected by other runs,,,,,,0.00,,GBP",
        "owed in this run,,,,,,40.00,,GBP",
        "recovered,,,,,,15.00,,GBP",
        "still owed,,,,,,25.00,,GBP",
    ]


def test_the_statement_escapes_text_a_spreadsheet_would_run(world):
    frank = AccountFactory(name="Frank", account_type=world.wallets, credit_limit=Decimal(50))
    evil = AccountFactory(name="=HYPERLINK(1)")
    with ledger_time(moment(2026, 1, 25)):
        facade.transfer(frank, evil, Decimal("1.00"), description="+SUM(A1)")
    run = january(world.wallets)
    collections.freeze(run)
    out = io.StringIO()

    collections.debt_statement(Debt.objects.get(run=run, account=frank)).write_csv(out)

    assert ",'=HYPERLINK(1),'+SUM(A1),,-1.00,-1.00,GBP" in out.getvalue()


def test_the_statement_costs_the_same_statements_whatever_the_history(frozen):
    counts = []
    for debt in (frozen.bob_debt, frozen.alice_debt):
        if debt == frozen.alice_debt:
            for n in range(8):
                spend(frozen.alice, "0.10", moment(2026, 1, 21) + datetime.timedelta(hours=n))
        with CaptureQueriesContext(connection) as queries:
            list(collections.debt_statement(debt).rows())
        counts.append(len(data_statements(queries)))

    # The debt with its run and account; opening and closing balances; the legs.
    assert counts == [4, 4]


# Settings and their checks -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ({"GBP": "Direct debits (GBP)", "EUR": "SEPA (EUR)"}, []),
        ("Direct debits", ["accounts.E018"]),
        ({"GBP": ""}, ["accounts.E018"]),
        ({"GBP": 7}, ["accounts.E018"]),
        ({"USD": "Direct debits (USD)"}, ["accounts.E019"]),
    ],
)
def test_the_collection_sources_setting_is_checked(value, expected):
    from accounts.checks import check_collection_settings

    with override_settings(ACCOUNTS_COLLECTION_SOURCES=value):
        assert [message.id for message in check_collection_settings()] == expected


def test_the_collection_check_is_registered():
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    with override_settings(ACCOUNTS_COLLECTION_SOURCES={"GBP": ""}):
        with pytest.raises(SystemCheckError, match="accounts.E018"):
            call_command("check", databases=[])


# The trust boundary ----------------------------------------------------------------------


def test_freezing_decides_on_the_stored_run_not_the_instance(world):
    run = january(world.wallets)
    forged = CollectionRun.objects.get(pk=run.pk)
    forged.__dict__.update(
        freeze_at=moment(2026, 3, 1), currency="EUR", status="running", account_type_id=None
    )

    collections.freeze(forged)

    assert owed(run) == {"Alice": Decimal("40.00"), "Bob": Decimal("30.00")}
    assert forged.freeze_at == run.freeze_at and forged.status == "running"  # as stored


def test_failing_and_initiating_decide_on_the_stored_debt_not_the_instance(frozen):
    forged = Debt.objects.get(pk=frozen.bob_debt.pk)
    forged.__dict__.update(status="succeeded", amount=Decimal("1.00"), run_id=0)

    collections.fail(forged, "Returned")

    assert forged.status == "failed"
    assert CollectionRun.objects.get(pk=frozen.run.pk).total_failed == Money("30.00", "GBP")
    pending = Debt.objects.get(pk=frozen.alice_debt.pk)
    pending.__dict__.update(status="pending")  # it is initiated, as stored
    assert collections.initiate(pending) is False
