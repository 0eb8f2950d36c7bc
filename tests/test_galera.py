"""
The ledger on a three-node MariaDB Galera cluster, every node taking writes.

``tests/cluster/galera.py`` starts the cluster for this module and stops it
afterwards (also when a test fails). The module creates its own database on
the cluster and migrates it through the first node; workers are threads, each
with its own connection to one node (thread i uses node i mod 3), like web
servers behind a load balancer, all routed there by ``NodeRouter``.

On a cluster ``SELECT ... FOR UPDATE`` locks rows on one node only: two nodes
can both pass a funds check. The cluster certifies each transaction's writes
in one order at commit and aborts the later of two that touched the same
rows (error 1213); the facade runs the operation again (``accounts.retry``).
These tests show the outcome is the same as on one server, and the ledger
checker finds nothing on any node.

Runs in the MariaDB run of the suite; skipped, with the reason, where the
cluster cannot start (a failure with ``CI=true``).
"""

from __future__ import annotations

import datetime
import random
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import DatabaseError, OperationalError, connection, connections, transaction
from django.test.utils import override_settings
from django.utils import timezone

from accounts import expiry, facade, retry
from accounts.exceptions import (
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    RetryableConflict,
)
from accounts.integrity import check_ledger
from accounts.models import Account, Hold, Transaction, Transfer

from .cluster.galera import GaleraCluster
from .cluster.harness import (
    NodeRouter,
    add_database,
    database_name,
    mariadb_settings,
    on_node,
    remove_database,
    retry_log,
    run_on_nodes,
    unavailable,
)
from .cluster.system import Unavailable
from .utils import ledger_time

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        connection.vendor != "mysql",
        reason="the Galera tests run in the MariaDB run of the suite (ACCOUNTS_TEST_DB=mariadb)",
    ),
]

NODES = ["node1", "node2", "node3"]
#: Every guard trigger the migrations create on MariaDB (0005, 0008, 0010, 0012).
GUARDS = {
    "accounts_transaction_no_update",
    "accounts_transaction_no_delete",
    "accounts_transfer_no_delete",
    "accounts_transfer_fixed",
    "accounts_hold_no_delete",
    "accounts_hold_fixed",
    "accounts_batch_no_delete",
    "accounts_batch_fixed",
    "accounts_repayment_no_delete",
    "accounts_repayment_fixed",
    "accounts_decline_no_delete",
    "accounts_decline_fixed",
}


#: Migration 0014's: a notification mark (notified_at) is set once.
GUARDS |= {"accounts_transfer_notified_once", "accounts_hold_notified_once"}


@pytest.fixture(scope="module")
def galera():
    cluster = GaleraCluster()
    try:
        cluster.start()
    except Unavailable as exc:
        unavailable("A Galera cluster", exc)
    try:
        yield cluster
    finally:
        cluster.stop()


def create_database(alias: str) -> None:
    """Create the (empty) database ``alias`` names, through that node, and migrate it there."""
    name = connections[alias].settings_dict["NAME"]
    with connections[alias]._nodb_cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS `%s`" % name)
        cursor.execute(
            "CREATE DATABASE `%s` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % name
        )
    call_command("migrate", database=alias, verbosity=0, interactive=False)


def drop_database(alias: str) -> None:
    name = connections[alias].settings_dict["NAME"]
    connections[alias].close()
    with connections[alias]._nodb_cursor() as cursor:
        cursor.execute("DROP DATABASE IF EXISTS `%s`" % name)


@pytest.fixture(scope="module")
def nodes(galera, django_db_blocker):
    """The aliases node1..node3, one per node, on a migrated database of this module's own."""
    name = database_name("galera")
    with django_db_blocker.unblock():
        for alias, node in zip(NODES, galera.nodes, strict=True):
            add_database(alias, mariadb_settings(name, node.port))
        try:
            create_database("node1")
            yield NODES
            drop_database("node1")
        finally:
            for alias in NODES:
                remove_database(alias)


@pytest.fixture(autouse=True)
def routed(nodes, django_db_blocker):
    """Database access, and every query routed to the current thread's node (node1 here).

    Up to 25 attempts: these tests put six or eight workers on one or two
    rows from three nodes, harder than the default of 10 is meant for (see
    the README: write a hot account from one node). What they check is that
    the outcome is right, however many attempts it took.
    """
    settings = {"DATABASE_ROUTERS": [NodeRouter()], "ACCOUNTS_RETRY_ATTEMPTS": 25}
    with django_db_blocker.unblock(), override_settings(**settings):
        yield
        connections.close_all()


def causal(alias: str) -> None:
    """Make this thread's reads on ``alias`` wait until the node has applied every commit."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SET SESSION wsrep_sync_wait = 1")


def applied_everywhere() -> None:
    """Return once every node has applied everything committed so far.

    A node applies what another committed a moment later: without this, a
    worker could look for an account created through node1 before its node
    has it.
    """
    for alias in NODES:
        causal(alias)
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")


def applied_on(alias: str) -> None:
    """Wait, on a connection of its own, until node ``alias`` has applied every commit."""
    wrapper = connections[alias]
    raw_connection = wrapper.get_new_connection(wrapper.get_connection_params())
    try:
        cursor = raw_connection.cursor()
        cursor.execute("SET SESSION wsrep_sync_wait = 1")
        cursor.execute("SELECT 1")
    finally:
        raw_connection.close()


def spread(count: int, work, aliases=NODES):
    """``run_on_nodes`` once every node has what was written so far."""
    applied_everywhere()
    connections.close_all()
    return run_on_nodes(aliases, count, work)


def assert_clean_on_every_node() -> None:
    """The ledger checker finds nothing on any node, and every node holds the same books."""
    books = []
    for alias in NODES:
        causal(alias)
        report = check_ledger(using=alias)
        assert report.ok, (alias, report.problems)
        books.append(
            (
                sorted(
                    Account.objects.using(alias).values_list("pk", "balance", "held", "status")
                ),
                Transfer.objects.using(alias).count(),
                Transaction.objects.using(alias).count(),
                sorted(Hold.objects.using(alias).values_list("pk", "status")),
            )
        )
    assert books[0] == books[1] == books[2]


def funded(amount: str, count: int = 1, **fields) -> list[Account]:
    bank = Account.objects.source_account()
    accounts = []
    for _ in range(count):
        account = Account.objects.create(**fields)
        facade.transfer(bank, account, Decimal(amount))
        accounts.append(account)
    return accounts


def balance(account: Account, alias: str = "node1") -> Decimal:
    causal(alias)
    return Account.objects.using(alias).get(pk=account.pk).balance.amount


def raw(alias: str, statement: str, *params) -> None:
    with connections[alias].cursor() as cursor:
        cursor.execute(statement, params)


# The cluster and the schema ----------------------------------------------------------


def test_three_nodes_are_synced_and_each_has_the_migrated_schema_with_its_guards():
    for alias in NODES:
        with connections[alias].cursor() as cursor:
            cursor.execute(
                "SHOW STATUS WHERE Variable_name IN "
                "('wsrep_cluster_size', 'wsrep_local_state_comment')"
            )
            status = dict(cursor.fetchall())
            cursor.execute(
                "SELECT trigger_name FROM information_schema.triggers WHERE trigger_schema = %s",
                [connections[alias].settings_dict["NAME"]],
            )
            triggers = {row[0] for row in cursor.fetchall()}
        assert status == {"wsrep_cluster_size": "3", "wsrep_local_state_comment": "Synced"}
        assert triggers == GUARDS
        causal(alias)
        # Exits non-zero when a migration is missing on this node.
        call_command("migrate", check_unapplied=True, database=alias, verbosity=0)
        # The core accounts post_migrate created through node1 are here too.
        assert Account.objects.using(alias).filter(role__isnull=False).count() == 9


def test_migrations_run_through_any_node_reach_every_node(galera):
    name = database_name("galera_migrate")
    for alias, node in zip(["m1", "m2", "m3"], galera.nodes, strict=True):
        add_database(alias, mariadb_settings(name, node.port))
    try:
        create_database("m3")  # through the third node this time
        for alias in ("m1", "m2"):
            causal(alias)
            call_command("migrate", check_unapplied=True, database=alias, verbosity=0)
            with connections[alias].cursor() as cursor:
                cursor.execute(
                    "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s",
                    [name],
                )
                assert cursor.fetchone()[0] == len(GUARDS)
        # And back down and up again through the second: triggers go and come back everywhere.
        call_command("migrate", "accounts", "0004", database="m2", verbosity=0)
        causal("m1")
        with connections["m1"].cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = %s",
                [name],
            )
            assert cursor.fetchone()[0] == 0
        call_command("migrate", database="m2", verbosity=0)
        call_command("migrate", check_unapplied=True, database="m1", verbosity=0)
    finally:
        drop_database("m3")
        for alias in ("m1", "m2", "m3"):
            remove_database(alias)


@pytest.mark.parametrize("alias", NODES)
def test_the_guards_refuse_raw_sql_on_every_node(alias):
    # Rows written through node1 and replicated: each node's own triggers guard them.
    account = funded("10.00")[0]
    placed = facade.hold(account, Account.objects.sales_account(), Decimal("1.00"))
    causal(alias)
    leg = Transaction.objects.using(alias).filter(account=account.pk).get()
    moved = Transfer.objects.using(alias).get(pk=leg.transfer_id)
    for statement, params in [
        ("UPDATE accounts_transaction SET amount = 99 WHERE id = %s", [leg.pk]),
        ("DELETE FROM accounts_transaction WHERE id = %s", [leg.pk]),
        ("UPDATE accounts_transfer SET amount = 99 WHERE id = %s", [moved.pk]),
        ("DELETE FROM accounts_transfer WHERE id = %s", [moved.pk]),
        ("UPDATE accounts_hold SET amount = 99 WHERE id = %s", [placed.pk]),
        ("DELETE FROM accounts_hold WHERE id = %s", [placed.pk]),
    ]:
        with pytest.raises(DatabaseError, match="refused: ledger rows are append-only"):
            raw(alias, statement, *params)
    assert_clean_on_every_node()


# Races across nodes -----------------------------------------------------------------------


def test_overdraft_race_across_three_nodes_makes_exactly_ten_debits_every_time():
    sales = Account.objects.sales_account()
    for _ in range(3):
        account = funded("100.00")[0]

        def work(i, account=account):
            done = 0
            for _ in range(10):
                try:
                    facade.transfer(account.pk, sales.pk, Decimal("10.00"))
                    done += 1
                except InsufficientFunds:
                    pass
            return done

        with retry_log() as log:
            results, expected, unexpected = spread(8, work)
        print("overdraft: %d retried, %d at most" % (log.retried, log.most_attempts))
        assert unexpected == [] and expected == []
        assert sum(results) == 10
        assert log.gave_up == 0
        for alias in NODES:
            assert balance(account, alias) == Decimal("0.00")
    assert_clean_on_every_node()


def test_random_transfers_between_pairs_on_three_nodes_keep_the_books():
    accounts = funded("50.00", 10)
    ids = [a.pk for a in accounts]

    def work(i):
        rng = random.Random(i)
        done = 0
        for _ in range(30):
            source, destination = rng.sample(ids, 2)
            try:
                facade.transfer(source, destination, Decimal(rng.randint(1, 2000)) / 100)
                done += 1
            except InsufficientFunds:
                pass
        return done

    with retry_log() as log:
        results, expected, unexpected = spread(6, work)
    print("random transfers: %d retried, %d at most" % (log.retried, log.most_attempts))
    assert unexpected == [] and expected == []
    assert sum(results) > 0
    for alias in NODES:
        causal(alias)
        balances = (
            Account.objects.using(alias).filter(pk__in=ids).values_list("balance", flat=True)
        )
        assert sum(b for b in balances) == Decimal("500.00")
        assert all(b >= 0 for b in balances)
    assert_clean_on_every_node()


def test_one_idempotency_key_sent_to_three_nodes_makes_one_transfer():
    bank = Account.objects.source_account()
    account = Account.objects.create()

    def work(i):
        return facade.transfer(bank.pk, account.pk, Decimal("25.00"), idempotency_key="g-1").pk

    results, expected, unexpected = spread(6, work)
    assert unexpected == [] and expected == []
    assert len(set(results)) == 1
    for alias in NODES:
        assert balance(account, alias) == Decimal("25.00")
        assert Transfer.objects.using(alias).filter(idempotency_key="g-1").count() == 1
    assert_clean_on_every_node()


def test_one_key_with_different_details_on_three_nodes_makes_one_transfer():
    bank = Account.objects.source_account()
    accounts = [Account.objects.create() for _ in range(6)]

    def work(i):
        return facade.transfer(bank.pk, accounts[i].pk, Decimal("5.00"), idempotency_key="g-2").pk

    results, expected, unexpected = spread(6, work)
    assert unexpected == []
    assert len(results) == 1
    assert len(expected) == 5 and all(isinstance(e, IdempotencyConflict) for e in expected)
    assert Transfer.objects.filter(idempotency_key="g-2").count() == 1
    assert_clean_on_every_node()


def test_capture_and_release_on_different_nodes_resolve_each_hold_once():
    account = funded("60.00")[0]
    sales = Account.objects.sales_account()
    outcomes = []
    for _ in range(6):
        placed = facade.hold(account, sales, Decimal("10.00"))

        def work(i, pk=placed.pk):
            held = Hold.objects.get(pk=pk)
            if i % 2:
                facade.capture(held)
                return "captured"
            facade.release(held)
            return "released"

        results, expected, unexpected = spread(3, work)
        assert unexpected == []
        assert len(results) == 1
        assert len(expected) == 2 and all(isinstance(e, HoldResolved) for e in expected)
        causal("node1")
        assert Hold.objects.get(pk=placed.pk).status == results[0]
        outcomes.append(results[0])
    assert balance(account) == Decimal("60.00") - 10 * outcomes.count("captured")
    assert Account.objects.get(pk=account.pk).held.amount == 0
    assert_clean_on_every_node()


def test_holds_and_transfers_on_different_nodes_never_exceed_the_money():
    account = funded("100.00")[0]
    sales = Account.objects.sales_account()

    def work(i):
        done = 0
        for n in range(10):
            try:
                if (i + n) % 2:
                    facade.hold(account.pk, sales.pk, Decimal("10.00"))
                else:
                    facade.transfer(account.pk, sales.pk, Decimal("10.00"))
                done += 1
            except InsufficientFunds:
                pass
        return done

    results, expected, unexpected = spread(6, work)
    assert unexpected == [] and expected == []
    assert sum(results) == 10
    causal("node1")
    account.refresh_from_db()
    active = Hold.objects.filter(source=account, status="active").count()
    assert account.held.amount == Decimal("10.00") * active
    assert account.balance.amount - account.held.amount == Decimal("0.00")
    assert_clean_on_every_node()


def test_two_hold_sweeps_on_different_nodes_expire_each_hold_once():
    sales = Account.objects.sales_account()
    # Placed an hour ago, lapsed since, by the database's clock.
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    soon = an_hour_ago + datetime.timedelta(minutes=5)
    with ledger_time(an_hour_ago):
        accounts = funded("100.00", 4)
        holds = [
            facade.hold(accounts[n % 4], sales, Decimal("2.00"), expires_at=soon)
            for n in range(30)
        ]

    def work(i):
        if i < 2:  # node1 and node2 sweep; node3 moves money between the same accounts
            return expiry.release_expired_holds(batch_size=7)
        for n in range(10):
            facade.transfer(accounts[n % 4].pk, accounts[(n + 1) % 4].pk, Decimal("1.00"))
        return None

    results, expected, unexpected = spread(3, work)
    assert unexpected == [] and expected == []
    sweeps = [r for r in results if r is not None]
    assert [s.failures for s in sweeps] == [[], []]
    # The transfers' funds checks expire the lapsed holds of their sources too:
    # each hold is expired once, by one of them (held ends at zero, and a
    # second expiry of a hold would take it below and fail the checker).
    assert sum(s.expired for s in sweeps) <= 30
    causal("node1")
    statuses = Hold.objects.filter(pk__in=[h.pk for h in holds]).values_list("status", flat=True)
    assert set(statuses) == {"expired"}
    assert all(a.held.amount == 0 for a in Account.objects.filter(pk__in=[a.pk for a in accounts]))
    assert_clean_on_every_node()


def test_two_account_sweeps_on_different_nodes_sweep_each_account_once():
    # Funded an hour ago, ended since, by the database's clock.
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    with ledger_time(an_hour_ago):
        accounts = funded("3.00", 20, end_date=an_hour_ago + datetime.timedelta(minutes=5))
    expired_before = Account.objects.expired_account().balance.amount

    results, expected, unexpected = spread(
        2, lambda i: expiry.close_expired_accounts(batch_size=6), NODES[:2]
    )
    assert unexpected == [] and expected == []
    assert [s.failures for s in results] == [[], []]
    assert sum(s.swept_accounts for s in results) == 20
    causal("node1")
    assert Account.objects.filter(pk__in=[a.pk for a in accounts], status="closed").count() == 20
    assert Account.objects.expired_account().balance.amount == expired_before + 60
    assert_clean_on_every_node()


# Conflicts the caller sees ------------------------------------------------------------------


def test_a_conflict_inside_a_callers_transaction_asks_to_retry_the_whole_transaction():
    a, b, c = funded("20.00", 3)
    applied_everywhere()
    attempts = []

    @retry.retry_on_conflict(using="node2")
    def pay_twice_on_node2():
        attempts.append(len(attempts) + 1)
        with on_node("node2"), transaction.atomic(using="node2"):
            facade.transfer(a.pk, b.pk, Decimal("1.00"))  # a is now locked on node2 only
            if len(attempts) == 1:
                # Meanwhile a payment from a commits through node1, and reaches
                # node2, whose applier aborts the transaction holding a's lock.
                with on_node("node1"):
                    facade.transfer(a.pk, c.pk, Decimal("5.00"))
                applied_on("node2")
                with pytest.raises(
                    RetryableConflict, match="run the whole transaction again"
                ) as lost:
                    facade.transfer(a.pk, b.pk, Decimal("1.00"))
                assert lost.value.in_transaction and retry.is_conflict(lost.value.error)
                raise lost.value  # out of the atomic block: the decorator runs it all again
            else:
                facade.transfer(a.pk, b.pk, Decimal("1.00"))

    with retry_log() as log:
        pay_twice_on_node2()
    assert attempts == [1, 2]
    assert log.retried == 1
    assert balance(a) == Decimal("13.00")  # 20 - 5 - 1 - 1: the first attempt left nothing
    assert balance(b) == Decimal("22.00")
    assert_clean_on_every_node()


def test_a_conflict_found_at_the_callers_commit_is_the_databases_deadlock_error():
    a, b = funded("20.00", 2)
    applied_everywhere()
    with pytest.raises(OperationalError, match="Deadlock|deadlock|conflict") as raised:
        with on_node("node2"), transaction.atomic(using="node2"):
            facade.transfer(a.pk, b.pk, Decimal("1.00"))
            with on_node("node1"):
                facade.transfer(a.pk, b.pk, Decimal("2.00"))
            # Certified first, node1's write wins; node2's commit is refused.
    assert retry.is_conflict(raised.value)
    assert balance(a) == Decimal("18.00")
    assert_clean_on_every_node()
