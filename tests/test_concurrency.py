"""
Concurrency on real databases: real threads, each with its own connection.

SQLite has no row locks, so these run on PostgreSQL and MariaDB only.
"""

import datetime
import random
import threading
import time
from decimal import Decimal

import pytest
from django.db import connections, transaction
from django.utils import timezone

from accounts import expiry, facade, signals
from accounts.exceptions import (
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidReversal,
)
from accounts.models import Account, Hold, Transfer

from .cluster.harness import retry_log
from .factories import AccountFactory
from .utils import assert_ledger_consistent, ledger_time, needs_row_locks, run_concurrently

pytestmark = [needs_row_locks, pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def no_conflicts():
    """On one server the lock order rules deadlocks out: a retried one would go unseen."""
    with retry_log() as log:
        yield
    assert log.messages == []


def test_overdraft_race_yields_exactly_ten_debits_of_ten_from_a_hundred():
    account = AccountFactory()
    facade.transfer(Account.objects.source_account(), account, Decimal("100.00"))
    sales = Account.objects.sales_account()

    def work(i):
        done = 0
        for _ in range(10):
            try:
                facade.transfer(account, sales, Decimal("10.00"))
                done += 1
            except InsufficientFunds:
                pass
        return done

    results, expected, unexpected = run_concurrently(8, work)
    assert unexpected == []
    assert sum(results) == 10
    account.refresh_from_db()
    assert account.balance.amount == Decimal("0.00")
    assert_ledger_consistent()


def test_random_transfers_between_pairs_never_deadlock_and_still_sum_to_zero():
    bank = Account.objects.source_account()
    accounts = [AccountFactory() for _ in range(8)]
    for account in accounts:
        facade.transfer(bank, account, Decimal("50.00"))
    ids = [a.pk for a in accounts]

    def work(i):
        rng = random.Random(i)
        done = 0
        for _ in range(40):
            source, destination = rng.sample(ids, 2)
            try:
                facade.transfer(source, destination, Decimal(rng.randint(1, 2000)) / 100)
                done += 1
            except InsufficientFunds:
                pass
        return done

    results, expected, unexpected = run_concurrently(8, work)
    assert unexpected == []  # no deadlock, no lost update, nothing else
    assert sum(results) > 0
    total = sum(a.balance.amount for a in Account.objects.filter(pk__in=ids))
    assert total == Decimal("400.00")
    assert all(a.balance.amount >= 0 for a in Account.objects.filter(pk__in=ids))
    assert_ledger_consistent()


def test_opposite_transfers_between_the_same_two_accounts_do_not_deadlock():
    bank = Account.objects.source_account()
    a, b = AccountFactory(), AccountFactory()
    facade.transfer(bank, a, Decimal("100.00"))
    facade.transfer(bank, b, Decimal("100.00"))

    def work(i):
        source, destination = (a, b) if i % 2 else (b, a)
        for _ in range(25):
            facade.transfer(source.pk, destination.pk, Decimal("1.00"))
        return 25

    results, expected, unexpected = run_concurrently(6, work)
    assert unexpected == [] and expected == []
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.balance.amount + b.balance.amount == Decimal("200.00")
    assert_ledger_consistent()


def test_simultaneous_calls_with_one_idempotency_key_make_one_transfer():
    bank = Account.objects.source_account()
    account = AccountFactory()

    def work(i):
        return facade.transfer(bank, account, Decimal("25.00"), idempotency_key="order-42").pk

    results, expected, unexpected = run_concurrently(8, work)
    assert unexpected == [] and expected == []
    assert len(set(results)) == 1
    assert Transfer.objects.filter(idempotency_key="order-42").count() == 1
    account.refresh_from_db()
    assert account.balance.amount == Decimal("25.00")
    assert_ledger_consistent()


def test_simultaneous_calls_with_one_key_and_different_details_make_one_transfer():
    bank = Account.objects.source_account()
    accounts = [AccountFactory() for _ in range(6)]

    def work(i):
        return facade.transfer(bank, accounts[i], Decimal("5.00"), idempotency_key="k").pk

    results, expected, unexpected = run_concurrently(6, work)
    assert unexpected == []
    assert len(results) == 1
    assert len(expected) == 5 and all(isinstance(e, IdempotencyConflict) for e in expected)
    assert Transfer.objects.filter(idempotency_key="k").count() == 1
    assert_ledger_consistent()


def test_racing_full_reversals_reverse_once():
    bank = Account.objects.source_account()
    account = AccountFactory()
    original = facade.transfer(bank, account, Decimal("10.00"))

    results, expected, unexpected = run_concurrently(8, lambda i: facade.reverse(original).pk)
    assert unexpected == []
    assert len(results) == 1
    assert len(expected) == 7 and all(isinstance(e, InvalidReversal) for e in expected)
    account.refresh_from_db()
    assert account.balance.amount == 0
    assert_ledger_consistent()


def test_racing_partial_reversals_never_exceed_the_original():
    bank = Account.objects.source_account()
    account = AccountFactory()
    original = facade.transfer(bank, account, Decimal("10.00"))

    results, expected, unexpected = run_concurrently(
        8, lambda i: facade.reverse(original, amount=Decimal("3.00")).pk
    )
    assert unexpected == []
    assert len(results) == 3
    assert original.reversible_amount().amount == Decimal("1.00")
    assert_ledger_consistent()


def test_close_racing_a_credit_never_leaves_money_on_a_closed_account():
    bank = Account.objects.source_account()
    for _ in range(5):
        account = AccountFactory()

        def work(i, account=account):
            if i == 0:
                account.close()
                return "closed"
            facade.transfer(bank, account, Decimal("1.00"))
            return "credited"

        results, expected, unexpected = run_concurrently(2, work)
        assert unexpected == []
        account.refresh_from_db()
        if account.is_closed():
            assert account.balance.amount == 0
        else:
            assert account.balance.amount == Decimal("1.00")


def test_holds_and_transfers_racing_for_the_same_money_never_exceed_it():
    account = AccountFactory()
    facade.transfer(Account.objects.source_account(), account, Decimal("100.00"))
    sales = Account.objects.sales_account()

    def work(i):
        done = 0
        for n in range(10):
            try:
                if (i + n) % 2:
                    facade.hold(account, sales, Decimal("10.00"))
                else:
                    facade.transfer(account, sales, Decimal("10.00"))
                done += 1
            except InsufficientFunds:
                pass
        return done

    results, expected, unexpected = run_concurrently(8, work)
    assert unexpected == []
    assert sum(results) == 10
    account.refresh_from_db()
    active = Hold.objects.filter(source=account, status="active").count()
    assert account.held.amount == Decimal("10.00") * active
    assert account.balance.amount - account.held.amount == Decimal("0.00")
    assert_ledger_consistent()


def test_capture_and_release_at_the_same_moment_resolve_exactly_once():
    account = AccountFactory()
    facade.transfer(Account.objects.source_account(), account, Decimal("100.00"))
    sales = Account.objects.sales_account()
    for _ in range(6):
        hold = facade.hold(account, sales, Decimal("10.00"))

        def work(i, hold=hold):
            if i % 2:
                facade.capture(Hold.objects.get(pk=hold.pk))
                return "captured"
            facade.release(Hold.objects.get(pk=hold.pk))
            return "released"

        results, expected, unexpected = run_concurrently(4, work)
        assert unexpected == []
        assert len(results) == 1
        assert len(expected) == 3 and all(isinstance(e, HoldResolved) for e in expected)
        hold.refresh_from_db()
        assert hold.status == results[0]
    account.refresh_from_db()
    assert account.held.amount == 0
    captured = Hold.objects.filter(source=account, status="captured").count()
    assert account.balance.amount == Decimal("100.00") - 10 * captured
    assert_ledger_consistent()


def wait_until_a_transaction_waits_for_a_lock():
    """Block until some transaction on the test database is waiting for a row lock.

    Polled from this thread's connection, in autocommit mode: PostgreSQL keeps
    one snapshot of its activity view per transaction. Returns False after
    about 30 s without one.
    """
    with connections["default"].cursor() as cursor:
        for _ in range(600):
            if connections["default"].vendor == "postgresql":
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            else:
                # A locking read stuck for a while (InnoDB does not list a
                # primary-key lookup waiting for its row among its lock waits).
                cursor.execute(
                    "SELECT count(*) FROM information_schema.processlist"
                    " WHERE id != CONNECTION_ID() AND info LIKE %s AND time_ms > 200",
                    ["%FOR UPDATE%"],
                )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.05)
    return False


def test_the_hold_sweep_never_waits_for_a_lock_while_holding_one():
    # The sweep commits once per batch, so it keeps the lock on each hold's
    # account until the batch ends. Here its second hold's account (low) is
    # locked by a transfer that goes on to lock the first one's (high): had
    # the sweep waited for "low" while holding "high", the two would deadlock.
    low, high = AccountFactory(), AccountFactory()
    assert low.pk < high.pk
    bank = Account.objects.source_account()
    for account in (low, high):
        facade.transfer(bank, account, Decimal("20.00"))
    sales = Account.objects.sales_account()
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    with ledger_time(an_hour_ago):  # placed then, expired a minute later
        soon = an_hour_ago + datetime.timedelta(minutes=1)
        first = facade.hold(high, sales, Decimal("5.00"), expires_at=soon)
        second = facade.hold(low, sales, Decimal("5.00"), expires_at=soon)
    assert first.pk < second.pk
    low_locked, go_on = threading.Event(), threading.Event()
    errors, swept = [], []

    def transfer_low_to_high():
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=low.pk)
                low_locked.set()
                go_on.wait(timeout=30)
                facade.transfer(low, high, Decimal("1.00"))
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            low_locked.set()
            connections.close_all()

    def sweep():
        try:
            swept.append(expiry.release_expired_holds())
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            connections.close_all()

    transferring = threading.Thread(target=transfer_low_to_high)
    transferring.start()
    low_locked.wait(timeout=30)
    sweeping = threading.Thread(target=sweep)
    sweeping.start()
    waited = wait_until_a_transaction_waits_for_a_lock()
    go_on.set()
    for thread in (transferring, sweeping):
        thread.join(timeout=120)
    assert not transferring.is_alive() and not sweeping.is_alive(), "a worker hung"
    assert errors == []
    # The transfer's funds check on "low" expired its hold first, or the sweep did.
    assert swept[0].failures == [] and swept[0].expired + swept[0].skipped == 2
    assert waited, "the sweep never waited for the lock the transfer holds"
    statuses = Hold.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)
    assert set(statuses) == {"expired"}
    assert Account.objects.get(pk=high.pk).balance.amount == Decimal("21.00")
    assert Account.objects.get(pk=low.pk).held.amount == 0
    assert_ledger_consistent()


def test_concurrent_hold_sweeps_and_transfers_resolve_each_hold_once():
    accounts = [AccountFactory() for _ in range(4)]
    bank, sales = Account.objects.source_account(), Account.objects.sales_account()
    for account in accounts:
        facade.transfer(bank, account, Decimal("100.00"))
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    with ledger_time(an_hour_ago):  # placed then, expired a minute later
        soon = an_hour_ago + datetime.timedelta(minutes=1)
        holds = [
            facade.hold(accounts[n % 4], sales, Decimal("2.00"), expires_at=soon)
            for n in range(40)
        ]
    resolved = []

    def count(sender, hold, **kwargs):
        resolved.append(hold.pk)

    signals.hold_resolved.connect(count, dispatch_uid="test-count-resolved")

    def work(i):
        if i < 2:
            return expiry.release_expired_holds(batch_size=7)
        # Meanwhile, transfers between the same accounts, in every order.
        for n in range(10):
            facade.transfer(accounts[(i + n) % 4], accounts[(i + n + 1) % 4], Decimal("1.00"))
        return None

    try:
        results, expected, unexpected = run_concurrently(4, work)
    finally:
        signals.hold_resolved.disconnect(dispatch_uid="test-count-resolved")
    assert unexpected == [] and expected == []
    sweeps = [r for r in results if r is not None]
    assert all(not s.failures for s in sweeps)
    # Each hold expired once: by a sweep, or by a transfer's funds check.
    assert sorted(resolved) == sorted(h.pk for h in holds)
    assert sum(s.expired for s in sweeps) <= 40
    statuses = Hold.objects.filter(pk__in=[h.pk for h in holds]).values_list("status", flat=True)
    assert set(statuses) == {"expired"}
    assert all(a.held.amount == 0 for a in Account.objects.filter(pk__in=[a.pk for a in accounts]))
    assert_ledger_consistent()
