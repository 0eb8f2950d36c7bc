"""
All or nothing: every statement of settling, failing, initiating and freezing
fails in turn, and each time nothing partial is left behind.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction

from accounts import collection_freeze, collections, facade
from accounts.collection_models import CollectionRun, Debt, Settlement
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType, Transfer

from .factories import AccountFactory
from .utils import ledger_time, moment

pytestmark = pytest.mark.django_db

CONTROL = {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


class Fault(DatabaseError):
    pass


def _is_control(sql):
    return sql.split(None, 1)[0].upper() in CONTROL


def statements_of(operation):
    """How many statements ``operation`` runs (measured, then rolled back)."""
    count = {"n": 0}

    def counter(execute, sql, params, many, context):
        if not _is_control(sql):
            count["n"] += 1
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(counter):
            operation()
        transaction.set_rollback(True)
    return count["n"]


def failing(n):
    """An execute wrapper that fails the n-th statement (transaction control not counted)."""
    seen = {"count": 0}

    def wrapper(execute, sql, params, many, context):
        if not _is_control(sql):
            seen["count"] += 1
            if seen["count"] == n:
                raise Fault("injected fault on statement %d: %s" % (n, sql[:60]))
        return execute(sql, params, many, context)

    return wrapper


def snapshot():
    return (
        Transfer.objects.count(),
        sorted(Account.objects.values_list("pk", "balance")),
        sorted(
            CollectionRun.objects.values_list(
                "pk",
                "status",
                "frozen_through",
                "debt_count",
                "total_owed",
                "total_initiated",
                "total_recovered",
                "total_failed",
            )
        ),  # fmt: skip
        sorted(Debt.objects.values_list("pk", "status", "recovered", "initiated_at")),
        Settlement.objects.count(),
    )


@pytest.fixture
def run(db):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    sales = Account.objects.sales_account()
    for name in ("Alice", "Bob", "Carol"):
        account = AccountFactory(name=name, account_type=wallets, credit_limit=Decimal(100))
        with ledger_time(moment(2026, 1, 10)):
            facade.transfer(account, sales, Decimal("40.00"))
    return collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )


def assert_each_statement_failing_leaves_nothing(operation):
    # Counted on a second run: a first one may prepare statements (PREPARE
    # outlives the rollback), which later runs do not send again.
    statements_of(operation)
    total = statements_of(operation)
    assert total >= 4
    for n in range(1, total + 1):
        before = snapshot()
        with connection.execute_wrapper(failing(n)):
            with pytest.raises(Fault, match="injected fault on statement %d" % n):
                operation()
        assert snapshot() == before, "statement %d of %d left something behind" % (n, total)
    operation()  # and without a fault, it works
    assert check_ledger().ok


def test_a_settlement_is_all_or_nothing(run):
    collections.run_collection(run)
    debt = Debt.objects.get(account__name="Alice")
    before = snapshot()

    assert_each_statement_failing_leaves_nothing(
        lambda: collections.settle(debt, Decimal("40.00"), reference="DD-A")
    )

    assert snapshot() != before
    assert Debt.objects.get(pk=debt.pk).status == "succeeded"
    assert CollectionRun.objects.get().total_recovered.amount == Decimal("40.00")


def test_a_failure_is_all_or_nothing(run):
    collections.run_collection(run)
    debt = Debt.objects.get(account__name="Bob")

    assert_each_statement_failing_leaves_nothing(lambda: collections.fail(debt, "Returned"))

    assert Debt.objects.get(pk=debt.pk).status == "failed"


def test_initiating_a_debt_is_all_or_nothing(run):
    collections.freeze(run)
    debt = Debt.objects.get(account__name="Carol")

    assert_each_statement_failing_leaves_nothing(lambda: collections.initiate(debt))

    assert Debt.objects.get(pk=debt.pk).status == "initiated"


def test_a_batch_of_a_freeze_is_all_or_nothing(run):
    def first_batch():
        collection_freeze._freeze_batch(
            connection.alias, run.pk, 0, list(Account.objects.filter(
                account_type__code="wallets").order_by("pk").values_list("pk", flat=True)),
        )  # fmt: skip

    total = statements_of(first_batch)
    for n in range(1, total + 1):
        before = snapshot()
        with connection.execute_wrapper(failing(n)):
            with pytest.raises(Fault, match="injected fault on statement %d" % n):
                first_batch()
        assert snapshot() == before, "statement %d of %d left something behind" % (n, total)
    collections.freeze(run)
    assert Debt.objects.count() == 3 and check_ledger().ok
