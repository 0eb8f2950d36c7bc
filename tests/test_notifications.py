"""
Notification marks: ``notified_at`` on transfers and holds, ``unnotified()``
and ``mark_notified()`` (accounts.managers.NotificationMarks).
"""

import datetime
import threading
from decimal import Decimal

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts import facade
from accounts.exceptions import InvalidArgument, LedgerImmutable
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory
from .utils import data_statements, ledger_time, run_concurrently, wait_for_lock_wait

pytestmark = pytest.mark.django_db

VENDOR = connection.vendor
needs_row_locks = pytest.mark.skipif(
    VENDOR == "sqlite",
    reason="SQLite has no row locks; concurrent markers are tested on PostgreSQL and MariaDB",
)
THEN = datetime.datetime(2026, 3, 2, 9, 30, tzinfo=datetime.UTC)


@pytest.fixture
def transfers(source):
    """Five top-ups, oldest first."""
    return [facade.transfer(source, AccountFactory(), Decimal("%d.00" % n)) for n in range(1, 6)]


@pytest.fixture
def holds(fund):
    account = AccountFactory()
    fund(account, "50.00")
    sales = Account.objects.sales_account()
    return [facade.hold(account, sales, Decimal("%d.00" % n)) for n in range(1, 4)]


def marks(model):
    return dict(model.objects.values_list("pk", "notified_at"))


# unnotified() ----------------------------------------------------------------------


def test_new_transfers_and_holds_are_unnotified_oldest_first(transfers, holds):
    assert all(t.notified_at is None for t in Transfer.objects.all())
    # Funding the holds' account made one more transfer, after the five.
    assert list(Transfer.objects.unnotified())[:5] == transfers
    assert list(Hold.objects.unnotified()) == holds
    # Oldest first whatever the model's default order (newest first).
    assert list(Transfer.objects.all())[0] != transfers[0]


def test_marked_rows_leave_unnotified(transfers):
    Transfer.objects.filter(pk__in=[transfers[0].pk, transfers[2].pk]).mark_notified()
    assert list(Transfer.objects.unnotified()) == [transfers[1], transfers[3], transfers[4]]


def test_unnotified_combines_with_filters(transfers):
    target = transfers[3].destination
    facade.transfer(target, Account.objects.sales_account(), Decimal("1.00"))
    found = Transfer.objects.for_account(target).unnotified()
    assert [t.pk for t in found] == [
        transfers[3].pk,
        Transfer.objects.filter(source=target).get().pk,
    ]


# mark_notified() -----------------------------------------------------------------


def test_mark_notified_returns_how_many_it_marked_and_marks_once(transfers):
    with ledger_time(THEN):
        assert Transfer.objects.filter(pk__in=[t.pk for t in transfers[:2]]).mark_notified() == 2
    assert Transfer.objects.all().mark_notified() == 3
    assert Transfer.objects.all().mark_notified() == 0
    assert Transfer.objects.unnotified().count() == 0
    found = marks(Transfer)
    assert found[transfers[0].pk] == found[transfers[1].pk] == THEN
    assert all(found[t.pk] > THEN for t in transfers[2:])


def test_mark_notified_never_overwrites_a_mark(transfers):
    earlier = THEN - datetime.timedelta(days=1)
    Transfer.objects.filter(pk=transfers[0].pk).mark_notified(when=earlier)
    assert Transfer.objects.all().mark_notified(when=THEN) == 4
    assert Transfer.objects.get(pk=transfers[0].pk).notified_at == earlier
    assert Transfer.objects.filter(pk=transfers[0].pk).mark_notified(when=THEN) == 0
    assert Transfer.objects.get(pk=transfers[0].pk).notified_at == earlier


def test_the_default_mark_is_the_ledgers_clock(transfers, holds):
    with ledger_time(THEN):
        assert Transfer.objects.filter(pk=transfers[0].pk).mark_notified() == 1
        assert Hold.objects.filter(pk=holds[0].pk).mark_notified() == 1
    assert Transfer.objects.get(pk=transfers[0].pk).notified_at == THEN
    assert Hold.objects.get(pk=holds[0].pk).notified_at == THEN


def test_the_default_mark_is_the_databases_time_not_the_servers(transfers):
    # The application server's clock is a year out: the mark does not follow it.
    a_year_ago = timezone.now() - datetime.timedelta(days=365)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: a_year_ago)
        Transfer.objects.filter(pk=transfers[0].pk).mark_notified()
    mark = Transfer.objects.get(pk=transfers[0].pk).notified_at
    assert mark >= transfers[0].created
    assert mark > a_year_ago + datetime.timedelta(days=300)


def test_a_sliced_queryset_marks_its_rows_only(transfers):
    assert Transfer.objects.unnotified()[:2].mark_notified() == 2
    assert list(Transfer.objects.unnotified()) == transfers[2:]
    assert Transfer.objects.unnotified()[1:].mark_notified() == 2
    assert list(Transfer.objects.unnotified()) == [transfers[2]]


def test_holds_are_marked_like_transfers(holds):
    assert Hold.objects.filter(pk=holds[1].pk).mark_notified(when=THEN) == 1
    assert Hold.objects.all().mark_notified() == 2
    assert Hold.objects.all().mark_notified() == 0
    assert Hold.objects.get(pk=holds[1].pk).notified_at == THEN


def test_a_resolved_hold_can_still_be_marked(holds):
    facade.capture(holds[0])
    facade.release(holds[1])
    assert Hold.objects.filter(pk__in=[holds[0].pk, holds[1].pk]).mark_notified(when=THEN) == 2
    assert set(Hold.objects.filter(notified_at=THEN).values_list("status", flat=True)) == {
        "captured",
        "released",
    }


@pytest.mark.parametrize(
    ("when", "match"),
    [
        (datetime.datetime(2026, 3, 2, 9, 30), "must be an aware datetime"),
        (datetime.date(2026, 3, 2), "must be an aware datetime"),
        ("2026-03-02T09:30:00Z", "must be an aware datetime"),
        (THEN + datetime.timedelta(minutes=1), "is in the future"),
    ],
)
def test_a_bad_when_is_refused_and_marks_nothing(transfers, when, match):
    with ledger_time(THEN), pytest.raises(InvalidArgument, match=match):
        Transfer.objects.all().mark_notified(when=when)
    with ledger_time(THEN), pytest.raises(InvalidArgument, match=match):
        Hold.objects.all().mark_notified(when=when)
    assert Transfer.objects.unnotified().count() == len(transfers)


def test_a_when_in_the_future_of_the_servers_clock_is_judged_by_the_database(transfers):
    # The server's clock is an hour behind: a mark "from its future" is the past.
    behind = timezone.now() - datetime.timedelta(hours=1)
    when = behind + datetime.timedelta(minutes=30)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: behind)
        assert Transfer.objects.all().mark_notified(when=when) == len(transfers)
    # And one ahead of the database is refused even when the server agrees with it.
    ahead = timezone.now() + datetime.timedelta(minutes=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.utils.timezone.now", lambda: ahead + datetime.timedelta(hours=1))
        with pytest.raises(InvalidArgument, match="is in the future"):
            Hold.objects.all().mark_notified(when=ahead)


# Only mark_notified() sets a mark -------------------------------------------------


@pytest.mark.parametrize("model", [Transfer, Hold])
def test_update_of_notified_at_is_refused_in_favour_of_mark_notified(transfers, holds, model):
    with pytest.raises(LedgerImmutable, match=r"set with mark_notified\(\)"):
        model.objects.all().update(notified_at=THEN)
    with pytest.raises(LedgerImmutable, match=r"set with mark_notified\(\)"):
        model.objects.filter(notified_at__isnull=True).update(notified_at=None)
    assert model.objects.unnotified().count() == model.objects.count()


def test_saving_a_marked_row_is_still_refused(transfers, holds):
    transfer = transfers[0]
    transfer.notified_at = THEN
    with pytest.raises(LedgerImmutable, match="Transfers are append-only"):
        transfer.save()
    hold = holds[0]
    hold.notified_at = THEN
    with pytest.raises(LedgerImmutable, match="hold rows are written only by accounts.facade"):
        hold.save()
    assert Transfer.objects.unnotified().count() == Transfer.objects.count()


# Cost: constant, whatever the ledger's size ----------------------------------------


@pytest.mark.parametrize("model", [Transfer, Hold])
def test_statement_counts(transfers, holds, model):
    with CaptureQueriesContext(connection) as queries:
        rows = list(model.objects.unnotified()[:100])
    assert len(data_statements(queries)) == 1
    assert rows
    with CaptureQueriesContext(connection) as queries:
        model.objects.filter(pk=rows[0].pk).mark_notified()
    assert len(data_statements(queries)) == 1  # the UPDATE
    with CaptureQueriesContext(connection) as queries:
        model.objects.unnotified()[:1].mark_notified()
    assert len(data_statements(queries)) == 2  # the ids, the UPDATE
    with CaptureQueriesContext(connection) as queries:
        model.objects.all().mark_notified(when=THEN)
    # The database's clock, then the UPDATE (SQLite's clock is the process's).
    assert len(data_statements(queries)) == (1 if VENDOR == "sqlite" else 2)


@pytest.mark.parametrize("model", [Transfer, Hold])
def test_the_unnotified_index_is_what_each_backend_can_have(model):
    table = model._meta.db_table
    name = "%s_unnotified" % table
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, table)
        assert constraints[name]["index"]
        if VENDOR == "mysql":
            # No partial indexes: the NULLs come first, in id order.
            assert constraints[name]["columns"] == ["notified_at", "id"]
            return
        assert constraints[name]["columns"] == ["id"]
        if VENDOR == "postgresql":
            cursor.execute("SELECT pg_get_indexdef(%s::regclass)", [name])
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE name = %s", [name])
        definition = cursor.fetchone()[0]
    assert "WHERE" in definition.upper() and "notified_at" in definition
    assert "IS NULL" in definition.upper()


@pytest.mark.skipif(VENDOR != "postgresql", reason="EXPLAIN's plan is PostgreSQL's here")
@pytest.mark.parametrize("model", [Transfer, Hold])
def test_postgresql_reads_unnotified_rows_through_the_partial_index(transfers, holds, model):
    model.objects.unnotified()[:1].mark_notified()
    query = model.objects.unnotified().values("pk")[:100]
    sql, params = query.query.sql_with_params()
    name = "%s_unnotified" % model._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("ANALYZE %s" % connection.ops.quote_name(model._meta.db_table))
        # A table this small is cheaper to scan: forbid that, and sorting,
        # so that only an index already in id order can answer (the primary
        # key's would have to read every row and filter them).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert name in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.skipif(VENDOR != "sqlite", reason="EXPLAIN QUERY PLAN is SQLite's")
def test_sqlite_reads_unnotified_rows_through_the_partial_index(transfers):
    sql, params = Transfer.objects.unnotified().values("pk")[:100].query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        plan = " ".join(str(row[-1]) for row in cursor.fetchall())
    assert "accounts_transfer_unnotified" in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # no sort


# Concurrent markers ----------------------------------------------------------------


@needs_row_locks
@pytest.mark.django_db(transaction=True)
def test_concurrent_markers_mark_each_row_once():
    bank = Account.objects.source_account()
    account = AccountFactory()
    for _ in range(40):
        facade.transfer(bank, account, Decimal("1.00"))
    ids = list(Transfer.objects.unnotified().values_list("pk", flat=True))

    def work(i):
        # Each worker claims rows one at a time, as the README's loop does,
        # and a batch at a time: both must count each row once in all.
        claimed = []
        for pk in ids if i % 2 else reversed(ids):
            if Transfer.objects.filter(pk=pk).mark_notified():
                claimed.append(pk)
        claimed_in_bulk = Transfer.objects.filter(pk__in=ids).mark_notified()
        return claimed, claimed_in_bulk

    results, refusals, unexpected = run_concurrently(4, work)
    assert (refusals, unexpected) == ([], [])
    claimed = [pk for one, _bulk in results for pk in one]
    assert sorted(claimed) == sorted(ids)  # every row, by exactly one worker
    assert sum(bulk for _one, bulk in results) == 0
    assert Transfer.objects.unnotified().count() == 0


@needs_row_locks
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_commits", [True, False])
def test_a_marker_waiting_for_another_sees_its_outcome(first_commits):
    bank = Account.objects.source_account()
    for _ in range(3):
        facade.transfer(bank, AccountFactory(), Decimal("1.00"))
    second = {}

    def mark_in_another_connection():
        try:
            second["count"] = Transfer.objects.all().mark_notified()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions below
            second["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=mark_in_another_connection)
    try:
        with transaction.atomic():
            assert Transfer.objects.all().mark_notified(when=THEN) == 3
            thread.start()
            # Blocked by this transaction's row locks until it ends.
            waited = wait_for_lock_wait("%notified_at%")
            if not first_commits:
                transaction.set_rollback(True)
    finally:
        thread.join(timeout=60)
    assert waited, ("the second marker never waited for the first one's locks", second)
    assert not thread.is_alive()
    if first_commits:
        assert second["count"] == 0
        assert set(marks(Transfer).values()) == {THEN}
    else:
        assert second["count"] == 3
        assert THEN not in set(marks(Transfer).values())
        assert Transfer.objects.unnotified().count() == 0
