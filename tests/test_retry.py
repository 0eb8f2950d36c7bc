"""
``accounts.retry``: operations the database aborts for a write conflict run
again, safely, a bounded number of times; inside a caller's transaction the
caller is told to run the whole transaction again.

The conflicts are injected on one server (``tests/utils.py``): PostgreSQL and
MariaDB raise their own conflict errors; SQLite gets the driver error with a
SQLSTATE. A real cluster's conflicts are in ``tests/test_galera.py``; real
serialization failures at the end of this module (PostgreSQL).
"""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import (
    IntegrityError,
    OperationalError,
    connection,
    connections,
    transaction,
)
from django.db.transaction import TransactionManagementError
from django.test.utils import override_settings
from django.utils import timezone

from accounts import collections, expiry, facade, retry, signals
from accounts.checks import check_retry_settings
from accounts.exceptions import AccountException, InsufficientFunds, RetryableConflict
from accounts.models import Account, Batch, Debt, Hold, Repayment, Settlement, Transfer

from .cluster.harness import retry_log
from .factories import AccountFactory
from .utils import (
    CONFLICT_SQL,
    OTHER_ERROR_SQL,
    assert_ledger_consistent,
    conflicts,
    ledger_time,
    ledger_totals,
    raise_from_database,
)

pytestmark = pytest.mark.django_db(transaction=True)

VENDOR = connection.vendor


@pytest.fixture(autouse=True)
def no_waiting():
    """Retries wait nothing here: the waits themselves are tested with a stand-in clock."""
    with override_settings(ACCOUNTS_RETRY_BACKOFF=0):
        yield


@pytest.fixture
def posted():
    """Transfers announced by the transfer_posted signal (after commit)."""
    seen = []

    def receiver(sender, transfer, **kwargs):
        seen.append(transfer.pk)

    signals.transfer_posted.connect(receiver)
    yield seen
    signals.transfer_posted.disconnect(receiver)


# What counts as a conflict ---------------------------------------------------------------


def database_error(sql, error, match):
    """The ``error`` (matching ``match``) the database raises when it runs ``sql``."""
    with pytest.raises(error, match=match) as raised:
        with transaction.atomic():
            raise_from_database(sql)
    return raised.value


def test_the_databases_conflict_error_is_a_conflict():
    error = database_error(CONFLICT_SQL, OperationalError, "injected write conflict")
    assert isinstance(error, OperationalError)
    assert retry.is_conflict(error)


def test_other_database_errors_and_other_exceptions_are_not():
    error = database_error(OTHER_ERROR_SQL, IntegrityError, "injected other error")
    assert isinstance(error, IntegrityError)
    assert not retry.is_conflict(error)
    assert not retry.is_conflict(ValueError("injected write conflict"))
    assert not retry.is_conflict(InsufficientFunds(account=1, amount=1, available=0))
    assert retry.is_conflict(
        RetryableConflict(operation="x", attempts=1, in_transaction=False, error=error)
    )


@pytest.mark.skipif(VENDOR == "sqlite", reason="SQLite has no lock wait timeouts or NOWAIT")
def test_a_busy_lock_is_not_a_conflict():
    # The sweeps' NOWAIT refusal ends one statement, not the transaction.
    busy = {
        "postgresql": (
            "DO $$ BEGIN RAISE EXCEPTION 'injected busy lock' USING ERRCODE = '55P03'; END $$"
        ),
        "mysql": "SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1205, MESSAGE_TEXT = 'injected busy'",
    }
    assert not retry.is_conflict(database_error(busy, OperationalError, "injected busy"))


@pytest.mark.skipif(VENDOR != "postgresql", reason="SQLSTATE 40P01 is PostgreSQL's")
def test_a_postgresql_deadlock_is_a_conflict():
    deadlock = {
        "postgresql": (
            "DO $$ BEGIN RAISE EXCEPTION 'injected deadlock' USING ERRCODE = '40P01'; END $$"
        )
    }
    assert retry.is_conflict(database_error(deadlock, OperationalError, "injected deadlock"))


# Every operation runs again --------------------------------------------------------------


@pytest.fixture
def world(fund):
    wallet, shop, spare = AccountFactory(), AccountFactory(), AccountFactory()
    # Set up an hour ago, so that by the database's clock the hold has lapsed
    # and the account has ended (the ledger's clock cannot be moved forward).
    # The lapsing hold is on an account nothing debits: a debit would find it
    # lapsed and mark it expired first.
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    soon = an_hour_ago + datetime.timedelta(minutes=5)
    later = soon + datetime.timedelta(minutes=1)
    with ledger_time(an_hour_ago):
        fund(wallet, "100.00")
        ending = AccountFactory(end_date=soon)
        fund(ending, "7.00")
        fund(spare, "5.00")
        lapsing = facade.hold(spare, shop, Decimal("2.00"), expires_at=soon)
    # A debtor (20.00 owed) and a batch, kept off the wallet: its balance is
    # asserted below.
    debtor = AccountFactory(credit_limit=Decimal("50.00"))
    facade.transfer(debtor, shop, Decimal("20.00"))
    batch = facade.transfer_many(
        [
            facade.TransferRequest(shop, spare, Decimal("2.00")),
            facade.TransferRequest(shop, spare, Decimal("3.00")),
        ]
    )
    return {
        "debtor": debtor,
        "batch": batch,
        "wallet": wallet,
        "shop": shop,
        "purchase": facade.transfer(wallet, shop, Decimal("30.00")),
        "hold": facade.hold(wallet, shop, Decimal("10.00")),
        "lapsing": lapsing,
        "ending": ending,
        "later": later,
    }


#: name: (the operation, transfers it writes)
OPERATIONS = {
    "transfer": (lambda w: facade.transfer(w["wallet"], w["shop"], Decimal("1.00")), 1),
    "transfer with key": (
        lambda w: facade.transfer(w["wallet"], w["shop"], Decimal("1.00"), idempotency_key="k"),
        1,
    ),
    "partial transfer": (
        lambda w: facade.transfer(w["wallet"], w["shop"], Decimal("900"), allow_partial=True),
        1,
    ),
    "reverse": (lambda w: facade.reverse(w["purchase"], amount=Decimal("3.00")), 1),
    "hold": (lambda w: facade.hold(w["wallet"], w["shop"], Decimal("4.00")), 0),
    "capture": (lambda w: facade.capture(w["hold"], Decimal("6.00")), 1),
    "release": (lambda w: facade.release(w["hold"]), 0),
    "expire_hold": (lambda w: facade.expire_hold(w["lapsing"], now=w["later"]), 0),
    "expire_account": (lambda w: facade.expire_account(w["ending"], now=w["later"]), 1),
    "change_status": (lambda w: w["shop"].freeze(), 0),
    "transfer_many": (
        lambda w: facade.transfer_many(
            [
                facade.TransferRequest(w["wallet"], w["shop"], Decimal("1.00")),
                facade.TransferRequest(w["shop"], w["debtor"], Decimal("2.00")),
            ]
        ),
        2,
    ),
    "transfer_many, independent, with key": (
        lambda w: facade.transfer_many(
            [
                facade.TransferRequest(w["wallet"], w["shop"], Decimal("1.00")),
                facade.TransferRequest(w["wallet"], w["shop"], Decimal("900.00")),  # refused
                facade.TransferRequest(w["shop"], w["debtor"], Decimal("2.00")),
            ],
            atomic=False,
            idempotency_key="b",
        ),
        2,
    ),
    "reverse_batch": (lambda w: facade.reverse_batch(w["batch"]), 2),
    "repay": (lambda w: facade.repay(w["wallet"], w["debtor"], Decimal("50.00")), 1),
    "repay with key": (
        lambda w: facade.repay(w["wallet"], w["debtor"], Decimal("5.00"), idempotency_key="r"),
        1,
    ),
}


#: Plain transfers: one statement in autocommit mode on PostgreSQL (accounts.pg_transfer).
ONE_STATEMENT = {"transfer", "transfer with key", "partial transfer"}
#: Where a plain transfer meets a conflict the database finds at its commit.
TRANSFER_CONFLICT = "write" if VENDOR == "postgresql" else "commit"


def state():
    return (
        ledger_totals(),
        sorted(Account.objects.values_list("pk", "balance", "held", "status")),
        # Not the holds' ids: the aborted attempts used some up.
        sorted(Hold.objects.values_list("source", "destination", "status", "amount")),
        # One batch, one repayment record: not one per attempt.
        Batch.objects.count(),
        sorted(Repayment.objects.values_list("source", "destination", "debt", "transfer__amount")),
    )


@pytest.mark.parametrize("at", ["write", "commit"])
@pytest.mark.parametrize("name", list(OPERATIONS))
def test_each_operation_runs_again_after_conflicts_and_does_its_work_once(world, posted, name, at):
    operation, transfers = OPERATIONS[name]
    before = Transfer.objects.count()
    # What one clean run does, measured and rolled back.
    with transaction.atomic():
        operation(world)
        expected = state()
        transaction.set_rollback(True)
    for key in ("hold", "lapsing", "purchase"):
        world[key].refresh_from_db()
    world["ending"].refresh_from_db()
    world["shop"].refresh_from_db()
    posted.clear()
    if at == "commit" and VENDOR == "postgresql" and name in ONE_STATEMENT:
        # One statement in autocommit mode: what a conflict at the commit
        # would abort is that statement (there is no COMMIT of its own).
        at = "write"
    with retry_log() as log, conflicts(2, at=at) as injected:
        operation(world)
    assert injected.injected == 2
    assert (log.retried, log.gave_up) == (2, 0)
    assert state() == expected
    assert Transfer.objects.count() == before + transfers
    assert len(posted) == transfers  # signals of the aborted attempts were never sent
    assert_ledger_consistent()


@pytest.mark.parametrize("at", ["write", "commit"])
def test_the_collection_steps_run_again_after_conflicts_and_record_once(world, at):
    debtor = world["debtor"]  # owes 20.00
    today = timezone.localdate()
    with retry_log() as log, conflicts(2, at=at):
        run = collections.create_run(
            accounts=Account.objects.filter(pk=debtor.pk),
            name="Retried",
            period_start=today.replace(day=1),
            period_end=timezone.now(),
            collect_on=today + datetime.timedelta(days=5),
        )
    assert log.retried == 2
    with retry_log() as log, conflicts(2, at=at):
        collections.freeze(run)
    assert log.retried == 2
    debt = run.debts.get()
    assert debt.amount.amount == Decimal("20.00")
    with retry_log() as log, conflicts(2, at=at):
        assert collections.initiate(debt) is True
    assert log.retried == 2
    with retry_log() as log, conflicts(2, at=at):
        collections.settle(debt, Decimal("5.00"), reference="DD-retried")
    assert log.retried == 2
    with retry_log() as log, conflicts(2, at=at):
        collections.fail(debt, "returned by the bank")
    assert (log.retried, log.gave_up) == (2, 0)

    stored = Debt.objects.get(pk=debt.pk)
    assert (stored.status, stored.recovered.amount) == (Debt.Status.FAILED, Decimal("5.00"))
    assert Settlement.objects.filter(debt=stored).count() == 1
    assert Transfer.objects.filter(destination=debtor, description__contains="debt").count() == 1
    assert_ledger_consistent()


def test_a_keyed_transfer_whose_commit_conflicted_is_written_once_and_answers_repeats(world):
    wallet, shop = world["wallet"], world["shop"]
    with conflicts(1, at="commit"):
        first = facade.transfer(wallet, shop, Decimal("5.00"), idempotency_key="order-1")
    again = facade.transfer(wallet, shop, Decimal("5.00"), idempotency_key="order-1")
    assert again.pk == first.pk
    assert Transfer.objects.filter(idempotency_key="order-1").count() == 1
    wallet.refresh_from_db()
    assert wallet.balance.amount == Decimal("65.00")  # 100 - 30 - 5
    assert_ledger_consistent()


def test_when_the_attempts_run_out_the_conflict_is_raised_and_nothing_is_written(world):
    before = state()
    with override_settings(ACCOUNTS_RETRY_ATTEMPTS=3), retry_log() as log:
        with conflicts(3, at=TRANSFER_CONFLICT):
            with pytest.raises(
                RetryableConflict, match=r"\(3 attempts\); nothing was written"
            ) as e:
                facade.transfer(world["wallet"], world["shop"], Decimal("1.00"))
    assert (e.value.attempts, e.value.in_transaction) == (3, False)
    assert retry.is_conflict(e.value.error)
    assert (log.retried, log.gave_up) == (2, 1)
    assert state() == before
    assert isinstance(e.value, AccountException)


def test_one_attempt_means_no_retry(world):
    with override_settings(ACCOUNTS_RETRY_ATTEMPTS=1), retry_log() as log:
        with conflicts(1, at="write"):
            with pytest.raises(RetryableConflict, match=r"\(1 attempts\)"):
                facade.hold(world["wallet"], world["shop"], Decimal("1.00"))
    assert (log.retried, log.gave_up) == (0, 1)


def test_other_database_errors_are_not_retried(world):
    before = state()
    with retry_log() as log, conflicts(1, at="write", sql=OTHER_ERROR_SQL) as injected:
        with pytest.raises(IntegrityError, match="injected other error"):
            facade.transfer(world["wallet"], world["shop"], Decimal("1.00"))
    assert injected.injected == 1
    assert (log.retried, log.gave_up) == (0, 0)
    assert state() == before


def test_the_waits_grow_and_are_random_within_their_window(world):
    waits = []
    with override_settings(ACCOUNTS_RETRY_BACKOFF=0.01):
        with mock.patch("accounts.retry.time.sleep", side_effect=waits.append):
            with conflicts(4, at=TRANSFER_CONFLICT):
                facade.transfer(world["wallet"], world["shop"], Decimal("1.00"))
        assert len(waits) == 4
        for attempt, wait in enumerate(waits, start=1):
            assert 0 <= wait <= 0.01 * 2 ** (attempt - 1)
        windows = [retry.backoff(n) for n in range(1, 40) for _ in range(5)]
    assert max(windows) <= retry.MAX_WAIT
    assert len(set(windows)) > 100  # jittered, not a fixed schedule


# Inside the caller's transaction -----------------------------------------------------------


def test_inside_a_callers_transaction_the_conflict_dooms_it_and_says_so(world):
    before = state()
    with retry_log() as log:
        with pytest.raises(RetryableConflict, match="run the whole transaction again") as e:
            with transaction.atomic():
                AccountFactory(name="written before the conflict")
                with conflicts(1, at="write"):
                    try:
                        facade.transfer(world["wallet"], world["shop"], Decimal("1.00"))
                    except RetryableConflict:
                        # The caller's transaction cannot go on to commit anything.
                        with pytest.raises(TransactionManagementError, match="atomic"):
                            Account.objects.count()
                        raise
    assert (e.value.attempts, e.value.in_transaction) == (1, True)
    assert (log.retried, log.gave_up) == (0, 0)  # no retry of its own inside a transaction
    assert state() == before
    assert not Account.objects.filter(name="written before the conflict").exists()


@pytest.mark.parametrize("at", ["write", "commit"])
def test_a_caller_decorated_with_retry_on_conflict_runs_its_whole_transaction_again(world, at):
    runs = []

    @retry.retry_on_conflict
    def pay_twice():
        runs.append(1)
        with transaction.atomic():
            facade.transfer(world["wallet"], world["shop"], Decimal("2.00"))
            facade.transfer(world["wallet"], world["shop"], Decimal("3.00"))

    before = Transfer.objects.count()
    # "write": the second run's... first write conflicts too; "commit": the caller's commit.
    with retry_log() as log, conflicts(2, at=at):
        pay_twice()
    assert len(runs) == 3
    assert log.retried == 2
    assert Transfer.objects.count() == before + 2
    world["wallet"].refresh_from_db()
    assert world["wallet"].balance.amount == Decimal("65.00")  # 100 - 30 - 2 - 3
    assert_ledger_consistent()


# The sweeps -------------------------------------------------------------------------------------


@pytest.fixture
def lapsing_holds(fund):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    soon = an_hour_ago + datetime.timedelta(minutes=5)
    with ledger_time(an_hour_ago):  # lapsed by now, by the database's clock
        holds = [facade.hold(wallet, shop, Decimal("1.00"), expires_at=soon) for _ in range(6)]
    return holds, soon + datetime.timedelta(minutes=1)


@pytest.mark.parametrize("at", ["write", "commit"])
def test_a_sweep_transaction_lost_to_a_conflict_runs_again_and_counts_each_hold_once(
    lapsing_holds, at
):
    holds, later = lapsing_holds
    # A conflict on a write inside the batch comes from the facade as
    # RetryableConflict (it is inside the sweep's transaction); at the commit
    # it is the database's error. Either way the batch's work is lost and redone.
    with retry_log() as log, conflicts(2, at=at):
        swept = expiry.release_expired_holds(now=later, batch_size=4)
    assert (swept.expired, swept.skipped, swept.failures) == (6, 0, [])
    assert swept.freed == {"GBP": Decimal("6.00")}
    assert log.retried == 2
    assert set(
        Hold.objects.filter(pk__in=[h.pk for h in holds]).values_list("status", flat=True)
    ) == {"expired"}
    assert_ledger_consistent()


def test_an_account_sweep_transaction_lost_to_a_conflict_sweeps_each_account_once(fund):
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    soon = an_hour_ago + datetime.timedelta(minutes=5)
    accounts = [AccountFactory(end_date=soon) for _ in range(5)]
    with ledger_time(an_hour_ago):  # ended by now, by the database's clock
        for account in accounts:
            fund(account, "2.00")
    expired = Account.objects.expired_account()
    with conflicts(1, at="commit"):
        swept = expiry.close_expired_accounts(now=soon + datetime.timedelta(minutes=1))
    assert (swept.closed, swept.swept_accounts, swept.failures) == (5, 5, [])
    assert swept.swept == {"GBP": Decimal("10.00")}
    expired.refresh_from_db()
    assert expired.balance.amount == Decimal("10.00")
    assert_ledger_consistent()


def test_a_sweep_gives_up_on_a_transaction_that_keeps_conflicting_and_goes_on(lapsing_holds):
    holds, later = lapsing_holds
    with override_settings(ACCOUNTS_RETRY_ATTEMPTS=2), conflicts(2, at="commit"):
        swept = expiry.release_expired_holds(now=later, batch_size=4)
    # The first transaction (4 holds) lost twice and gave up; the second went through.
    assert swept.expired == 2
    assert [hold.pk for hold, _ in swept.failures] == [h.pk for h in holds[:4]]
    assert all(isinstance(error, RetryableConflict) for _, error in swept.failures)
    again = expiry.release_expired_holds(now=later)
    assert again.expired == 4
    assert_ledger_consistent()


def test_a_sweep_inside_a_callers_transaction_leaves_the_conflict_to_the_caller(lapsing_holds):
    holds, later = lapsing_holds
    with retry_log() as log, conflicts(1, at="write"):
        with pytest.raises(RetryableConflict, match="run the whole transaction again"):
            with transaction.atomic():
                expiry.release_expired_holds(now=later)
    assert log.retried == 0
    assert set(
        Hold.objects.filter(pk__in=[h.pk for h in holds]).values_list("status", flat=True)
    ) == {"active"}


# Settings -------------------------------------------------------------------------------------


def test_the_retry_checks_are_registered():
    with override_settings(ACCOUNTS_RETRY_ATTEMPTS=0):
        with pytest.raises(SystemCheckError, match="accounts.E016"):
            call_command("check", databases=[])


def test_the_retry_settings_have_defaults_and_are_checked():
    assert check_retry_settings() == []
    cases = [
        ({"ACCOUNTS_RETRY_ATTEMPTS": 0}, ["accounts.E016"]),
        ({"ACCOUNTS_RETRY_ATTEMPTS": "3"}, ["accounts.E016"]),
        ({"ACCOUNTS_RETRY_ATTEMPTS": True}, ["accounts.E016"]),
        ({"ACCOUNTS_RETRY_BACKOFF": -0.1}, ["accounts.E017"]),
        ({"ACCOUNTS_RETRY_BACKOFF": float("nan")}, ["accounts.E017"]),
        ({"ACCOUNTS_RETRY_BACKOFF": "0.01"}, ["accounts.E017"]),
        ({"ACCOUNTS_RETRY_ATTEMPTS": 1, "ACCOUNTS_RETRY_BACKOFF": 0}, []),
        (
            {"ACCOUNTS_RETRY_ATTEMPTS": -1, "ACCOUNTS_RETRY_BACKOFF": None},
            ["accounts.E016", "accounts.E017"],
        ),
    ]
    for settings, expected in cases:
        with override_settings(**settings):
            assert [m.id for m in check_retry_settings()] == expected, settings


# Real serialization failures (PostgreSQL at SERIALIZABLE) ---------------------------------------

postgresql_only = pytest.mark.skipif(
    VENDOR != "postgresql", reason="serialization failures are tested on PostgreSQL"
)


@pytest.fixture
def serializable(monkeypatch):
    """New connections (the threads' own) run at SERIALIZABLE."""
    from psycopg import IsolationLevel

    options = connections["default"].settings_dict["OPTIONS"]
    monkeypatch.setitem(options, "isolation_level", IsolationLevel.SERIALIZABLE)


def waiting_for_a_lock():
    with connections["default"].cursor() as cursor:
        for _ in range(600):
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return True
            threading.Event().wait(0.05)
    return False


@postgresql_only
def test_a_serialization_failure_at_serializable_is_retried(serializable, fund):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "10.00")
    locked, release = threading.Event(), threading.Event()
    errors, outcome = [], []

    def holder():
        # Locks the wallet, waits for the transfer below to queue behind it,
        # then moves money: the queued transfer's snapshot is now stale.
        try:
            with transaction.atomic():
                Account.objects.select_for_update().get(pk=wallet.pk)
                locked.set()
                release.wait(timeout=30)
                facade.transfer(wallet, shop, Decimal("4.00"))
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            locked.set()
            connections.close_all()

    def payer():
        try:
            # A hold, which runs in a transaction of its own: a plain transfer
            # is one statement in autocommit mode, at the server's default
            # isolation level (accounts.pg_transfer).
            outcome.append(facade.hold(wallet, shop, Decimal("5.00")))
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            connections.close_all()

    with retry_log() as log:
        first = threading.Thread(target=holder)
        first.start()
        locked.wait(timeout=30)
        second = threading.Thread(target=payer)
        second.start()
        assert waiting_for_a_lock()
        release.set()
        first.join(timeout=60)
        second.join(timeout=60)
    assert errors == []
    assert len(outcome) == 1
    assert log.retried == 1
    assert "could not serialize access" in log.messages[0]
    wallet.refresh_from_db()
    assert (wallet.balance.amount, wallet.held.amount) == (Decimal("6.00"), Decimal("5.00"))
    assert_ledger_consistent()


@postgresql_only
def test_the_overdraft_race_at_serializable_still_makes_exactly_ten_debits(serializable, fund):
    account = AccountFactory()
    fund(account, "100.00")
    sales = Account.objects.sales_account()
    done, unexpected = [], []
    barrier = threading.Barrier(8)

    def work():
        try:
            barrier.wait(timeout=30)
            for _ in range(10):
                try:
                    facade.transfer(account.pk, sales.pk, Decimal("10.00"))
                    done.append(1)
                except InsufficientFunds:
                    pass
        except Exception as exc:  # noqa: BLE001 - asserted empty
            unexpected.append(exc)
        finally:
            connections.close_all()

    with override_settings(ACCOUNTS_RETRY_ATTEMPTS=30), retry_log() as log:
        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    assert unexpected == []
    assert len(done) == 10
    assert log.gave_up == 0
    account.refresh_from_db()
    assert account.balance.amount == Decimal("0.00")
    assert_ledger_consistent()
