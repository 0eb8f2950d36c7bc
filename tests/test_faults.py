"""
Fault injection: every database statement of every write operation fails in
turn, and each time nothing partial is left behind.
"""

import datetime
from decimal import Decimal
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import facade, limits
from accounts.models import Account, Hold

from .factories import AccountFactory
from .utils import assert_ledger_consistent, is_transaction_control, ledger_time, ledger_totals

pytestmark = pytest.mark.django_db


class Fault(DatabaseError):
    pass


def fail_statement(n):
    """An execute wrapper that fails the n-th statement (transaction control not counted)."""
    seen = {"count": 0}

    def wrapper(execute, sql, params, many, context):
        if not is_transaction_control(sql):
            seen["count"] += 1
            if seen["count"] == n:
                raise Fault("injected fault on statement %d: %s" % (n, sql[:60]))
        return execute(sql, params, many, context)

    return wrapper


def snapshot():
    return (
        ledger_totals(),
        sorted(Account.objects.values_list("pk", "balance", "held", "status")),
        sorted(Hold.objects.values_list("pk", "status", "capture")),
    )


def statements_of(operation):
    """How many statements ``operation`` runs (measured, then rolled back)."""
    count = {"n": 0}

    def counter(execute, sql, params, many, context):
        if not is_transaction_control(sql):
            count["n"] += 1
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(counter):
            operation()
        transaction.set_rollback(True)
    return count["n"]


@pytest.fixture
def world(fund):
    """Accounts, a transfer to reverse, holds to capture or release, an expired account."""
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    purchase = facade.transfer(wallet, shop, Decimal("30.00"))
    to_capture = facade.hold(wallet, shop, Decimal("10.00"))
    to_release = facade.hold(wallet, shop, Decimal("5.00"))
    # Placed an hour ago, or at midnight if that was later (the wallet's
    # clock must not go back into another day), and expired a second later.
    now = timezone.now()
    placed = max(now - datetime.timedelta(hours=1), limits.instant(limits.starts(now)["day"]))
    with ledger_time(placed):
        lapsing = facade.hold(
            wallet, shop, Decimal("2.00"), expires_at=placed + datetime.timedelta(seconds=1)
        )
    expired = AccountFactory()
    fund(expired, "7.00")
    facade.hold(expired, shop, Decimal("1.00"))
    Account.objects.filter(pk=expired.pk).update(end_date=timezone.now())
    empty = AccountFactory()
    return {
        "transfer": lambda: facade.transfer(wallet, shop, Decimal("1.00")),
        "transfer with key": lambda: facade.transfer(
            wallet, shop, Decimal("1.00"), idempotency_key="fault"
        ),
        "partial transfer": lambda: facade.transfer(
            wallet, shop, Decimal("500.00"), allow_partial=True
        ),
        "reverse": lambda: facade.reverse(purchase, amount=Decimal("3.00")),
        "hold": lambda: facade.hold(wallet, shop, Decimal("4.00")),
        "capture": lambda: facade.capture(Hold.objects.get(pk=to_capture.pk), Decimal("6.00")),
        "release": lambda: facade.release(Hold.objects.get(pk=to_release.pk)),
        "expire hold": lambda: facade.expire_hold(Hold.objects.get(pk=lapsing.pk)),
        "sweep an expired account": lambda: facade.expire_account(
            Account.objects.get(pk=expired.pk)
        ),
        "close": lambda: Account.objects.get(pk=empty.pk).close(),
    }


OPERATIONS = [
    "transfer",
    "transfer with key",
    "partial transfer",
    "reverse",
    "hold",
    "capture",
    "release",
    "expire hold",
    "sweep an expired account",
    "close",
]


@pytest.mark.parametrize("name", OPERATIONS)
def test_a_fault_on_any_statement_leaves_nothing_partial(world, name):
    operation = world[name]
    # Counted on a second run: a first one may prepare statements (PREPARE
    # outlives the rollback), which later runs do not send again.
    statements_of(operation)
    total = statements_of(operation)
    # One on PostgreSQL for a plain transfer (accounts.pg_transfer).
    assert total >= 1, "%s ran %d statement(s)" % (name, total)
    before = snapshot()
    for n in range(1, total + 1):
        with connection.execute_wrapper(fail_statement(n)):
            with pytest.raises(Fault, match="injected fault on statement %d" % n):
                operation()
        assert snapshot() == before, "statement %d of %s left a trace" % (n, name)
    operation()  # with no fault it works, and the ledger still checks out
    assert snapshot() != before
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("operation", ["transfer", "reverse", "hold"])
def test_a_failed_commit_leaves_nothing(fund, operation):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "10.00")
    payment = facade.transfer(wallet, shop, Decimal("2.00"))
    calls = {
        "transfer": lambda: facade.transfer(wallet, shop, Decimal("1.00")),
        "reverse": lambda: facade.reverse(payment, amount=Decimal("1.00")),
        "hold": lambda: facade.hold(wallet, shop, Decimal("1.00")),
    }
    before = snapshot()

    def failing_commit(*args, **kwargs):
        raise Fault("injected fault on COMMIT")

    if connection.vendor == "postgresql" and operation == "transfer":
        # One statement in autocommit mode: it commits by itself, and has
        # no COMMIT of its own to fail (a fault on the statement is tested
        # above). Inside a transaction, the transaction's COMMIT decides.
        with mock.patch.object(connection, "_commit", failing_commit):
            with pytest.raises(Fault, match="on COMMIT"):
                with transaction.atomic():
                    calls[operation]()
    else:
        with mock.patch.object(connection, "_commit", failing_commit):
            with pytest.raises(Fault, match="on COMMIT"):
                calls[operation]()
    assert snapshot() == before
    calls[operation]()
    assert_ledger_consistent()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement transfer")
@pytest.mark.django_db(transaction=True)
def test_a_plain_transfer_on_postgresql_is_one_statement_committed_by_itself(fund):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "10.00")

    def no_commit(*args, **kwargs):
        raise Fault("a COMMIT was sent")

    with (
        CaptureQueriesContext(connection) as queries,
        mock.patch.object(connection, "_commit", no_commit),
    ):
        facade.transfer(wallet, shop, Decimal("1.00"))
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert connection.get_autocommit()  # the statement was its own transaction
    assert AccountFactory._meta.model.objects.get(pk=shop.pk).balance.amount == Decimal("1.00")
    assert_ledger_consistent()
