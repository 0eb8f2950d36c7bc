"""Effective dates: when a movement happened in the world, given by the caller, never later
than it was posted; statements and exports by either date."""

import csv
import datetime
import io
from decimal import Decimal
from unittest import mock

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts import exports, facade
from accounts.exceptions import IdempotencyConflict, InvalidArgument, LedgerImmutable
from accounts.models import Account, Hold, Transaction, Transfer

from .factories import AccountFactory
from .utils import data_statements, ledger_time

pytestmark = pytest.mark.django_db

UTC = datetime.UTC
POSTED = datetime.datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
DAY = datetime.timedelta(days=1)
TICK = datetime.timedelta(microseconds=1)


@pytest.fixture
def wallet(fund):
    account = AccountFactory(credit_limit=Decimal("0"))
    with ledger_time(POSTED - 30 * DAY):
        fund(account, "100.00")
    return account


@pytest.fixture
def shop(db):
    return Account.objects.sales_account()


def counts():
    return Transfer.objects.count(), Hold.objects.count(), Transaction.objects.count()


def stored(model, pk):
    return model.objects.values_list("created", "effective_at").get(pk=pk)


# Default, given, never in the future -------------------------------------------------------


def test_by_default_a_movement_takes_effect_when_posted(wallet, shop, source):
    with ledger_time(POSTED):
        paid = facade.transfer(wallet, shop, Decimal("1.00"))
        held = facade.hold(wallet, shop, Decimal("2.00"))
        batch = facade.transfer_many([facade.TransferRequest(wallet, shop, Decimal("1.00"))])
        refund = facade.reverse(paid)
    with ledger_time(POSTED + DAY):
        captured = facade.capture(held)
    assert stored(Transfer, paid.pk) == (POSTED, POSTED)
    assert paid.effective_at == POSTED
    assert stored(Hold, held.pk) == (POSTED, POSTED)
    assert stored(Transfer, refund.pk) == (POSTED, POSTED)
    assert stored(Transfer, batch.transfers.get().pk) == (POSTED, POSTED)
    # A capture's own effective date: when it was captured, not when authorised.
    assert stored(Transfer, captured.pk) == (POSTED + DAY, POSTED + DAY)


def test_a_given_effective_date_is_stored_with_the_posting_time(wallet, shop, source):
    paid_at = POSTED - DAY
    with ledger_time(POSTED):
        paid = facade.transfer(wallet, shop, Decimal("1.00"), effective_at=paid_at)
        held = facade.hold(wallet, shop, Decimal("2.00"), effective_at=paid_at)
        captured = facade.capture(held, effective_at=paid_at + TICK)
        refund = facade.reverse(paid, effective_at=POSTED)
        batch = facade.transfer_many(
            [
                facade.TransferRequest(wallet, shop, Decimal("1.00")),
                facade.TransferRequest(wallet, shop, Decimal("1.00"), effective_at=paid_at - DAY),
            ],
            effective_at=paid_at,
        )
        undone = facade.reverse_batch(batch, effective_at=paid_at)
        debtor = AccountFactory(credit_limit=None)
        facade.transfer(debtor, shop, Decimal("5.00"))
        repaid = facade.repay(source, debtor, Decimal("5.00"), effective_at=paid_at)
    assert stored(Transfer, paid.pk) == (POSTED, paid_at)
    assert stored(Hold, held.pk) == (POSTED, paid_at)
    assert stored(Transfer, captured.pk) == (POSTED, paid_at + TICK)
    assert stored(Transfer, refund.pk) == (POSTED, POSTED)
    assert [t.effective_at for t in batch.transfers] == [paid_at, paid_at - DAY]
    assert {t.effective_at for t in undone.transfers} == {paid_at}
    assert stored(Transfer, repaid.pk) == (POSTED, paid_at)


def test_an_effective_date_later_than_the_databases_clock_is_refused_and_writes_nothing(
    wallet, shop, source
):
    later = POSTED + TICK
    held = None
    with ledger_time(POSTED):
        held = facade.hold(wallet, shop, Decimal("1.00"))
        paid = facade.transfer(wallet, shop, Decimal("1.00"))
        before = counts()
        debtor = AccountFactory(credit_limit=None)
        for call in (
            lambda: facade.transfer(wallet, shop, Decimal("1.00"), effective_at=later),
            lambda: facade.hold(wallet, shop, Decimal("1.00"), effective_at=later),
            lambda: facade.capture(held, effective_at=later),
            lambda: facade.reverse(paid, effective_at=later),
            lambda: facade.repay(source, debtor, Decimal("1.00"), effective_at=later),
            lambda: facade.transfer_many(
                [facade.TransferRequest(wallet, shop, Decimal("1.00"), effective_at=later)]
            ),
            lambda: facade.transfer_many(
                [facade.TransferRequest(wallet, shop, Decimal("1.00"))], effective_at=later
            ),
        ):
            with pytest.raises(InvalidArgument, match="is in the future: the database's clock"):
                call()
        assert counts() == before
        assert Hold.objects.get(pk=held.pk).status == "active"
        # Exactly the database's time is not in the future.
        facade.transfer(wallet, shop, Decimal("1.00"), effective_at=POSTED)


def test_the_future_is_judged_by_the_databases_clock_not_the_callers(wallet, shop):
    # The application thinks it is a day later; the database's clock decides.
    with ledger_time(POSTED):
        with mock.patch("django.utils.timezone.now", return_value=POSTED + DAY):
            with pytest.raises(InvalidArgument, match="in the future"):
                facade.transfer(wallet, shop, Decimal("1.00"), effective_at=POSTED + DAY / 2)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (datetime.datetime(2026, 3, 9, 12, 0), "must be an aware datetime"),
        (datetime.date(2026, 3, 9), "must be an aware datetime"),
        ("2026-03-09T12:00:00+00:00", "must be an aware datetime"),
    ],
    ids=["naive", "a date", "a string"],
)
def test_anything_but_an_aware_datetime_is_refused_and_writes_nothing(
    wallet, shop, value, message
):
    held = facade.hold(wallet, shop, Decimal("1.00"))
    before = counts()
    for call in (
        lambda: facade.transfer(wallet, shop, Decimal("1.00"), effective_at=value),
        lambda: facade.hold(wallet, shop, Decimal("1.00"), effective_at=value),
        lambda: facade.capture(held, effective_at=value),
        lambda: facade.transfer_many(
            [facade.TransferRequest(wallet, shop, Decimal("1.00"), effective_at=value)]
        ),
    ):
        with pytest.raises(InvalidArgument, match=message):
            call()
    assert counts() == before


def test_an_unknown_date_field_is_refused(wallet):
    with pytest.raises(InvalidArgument, match="date_field 'posted' is not one of"):
        wallet.statement(date_field="posted")
    with pytest.raises(InvalidArgument, match="date_field 'posted' is not one of"):
        list(exports.statement_rows(wallet, date_field="posted"))


# Part of an idempotent request ----------------------------------------------------------------


def test_same_key_and_effective_date_is_a_replay_another_is_a_conflict(wallet, shop):
    paid_at = POSTED - DAY
    with ledger_time(POSTED):
        first = facade.transfer(
            wallet, shop, Decimal("1.00"), effective_at=paid_at, idempotency_key="e1"
        )
        again = facade.transfer(
            wallet, shop, Decimal("1.00"), effective_at=paid_at, idempotency_key="e1"
        )
        assert again.pk == first.pk
        for other in (paid_at - TICK, None):
            with pytest.raises(IdempotencyConflict, match="e1"):
                facade.transfer(
                    wallet, shop, Decimal("1.00"), effective_at=other, idempotency_key="e1"
                )
        held = facade.hold(wallet, shop, Decimal("1.00"), idempotency_key="h1")
        with pytest.raises(IdempotencyConflict, match="h1"):
            facade.hold(wallet, shop, Decimal("1.00"), effective_at=paid_at, idempotency_key="h1")
        assert facade.hold(wallet, shop, Decimal("1.00"), idempotency_key="h1") == held
    assert Transfer.objects.filter(idempotency_key="e1").count() == 1


# Fixed ------------------------------------------------------------------------------------------


def raw(statement, *params):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_the_orm_refuses_to_change_an_effective_date(wallet, shop):
    paid = facade.transfer(wallet, shop, Decimal("1.00"))
    held = facade.hold(wallet, shop, Decimal("1.00"))
    for model, pk, saving, updating in (
        (Transfer, paid.pk, "Transfers are append-only", "transfer rows are append-only"),
        (Hold, held.pk, "hold rows are written only by", "Holds change state only through"),
    ):
        row = model.objects.get(pk=pk)
        row.effective_at = POSTED
        with pytest.raises(LedgerImmutable, match=saving):
            row.save()
        with pytest.raises(LedgerImmutable, match=updating):
            model.objects.filter(pk=pk).update(effective_at=POSTED)


@pytest.mark.parametrize("table", ["accounts_transfer", "accounts_hold"])
def test_the_database_refuses_to_change_an_effective_date(wallet, shop, table):
    paid = facade.transfer(wallet, shop, Decimal("1.00"))
    held = facade.hold(wallet, shop, Decimal("1.00"))
    pk = paid.pk if table == "accounts_transfer" else held.pk
    with pytest.raises(DatabaseError, match="UPDATE of %s .*append-only" % table):
        raw("UPDATE %s SET effective_at = %%s WHERE id = %%s" % table, POSTED, pk)


# Statements and exports by either date -----------------------------------------------------------


@pytest.fixture
def card_payments(wallet, shop):
    """Three card payments posted on 10, 11 and 12 March; the second paid on 8 March."""
    with ledger_time(POSTED):
        first = facade.transfer(wallet, shop, Decimal("1.00"), description="Tea")
    with ledger_time(POSTED + DAY):
        late = facade.transfer(
            wallet,
            shop,
            Decimal("2.00"),
            description="Cake",
            effective_at=POSTED - 2 * DAY,
            metadata={"merchant": "Teapot & Grinder", "city": "Leeds"},
        )
    with ledger_time(POSTED + 2 * DAY):
        last = facade.transfer(wallet, shop, Decimal("4.00"), description="Scones")
    return first, late, last


def descriptions(legs):
    return [(leg.transfer.description, leg.balance_after.amount) for leg in legs]


def test_a_statement_by_posting_date_is_the_default(wallet, card_payments):
    statement = wallet.statement(datetime.date(2026, 3, 8), datetime.date(2026, 3, 10))
    assert statement.date_field == "created"
    assert descriptions(statement) == [("Tea", Decimal("99.00"))]


def test_a_statement_by_effective_date_filters_and_sorts_by_it_with_posting_balances(
    wallet, card_payments
):
    statement = wallet.statement(
        datetime.date(2026, 3, 8), datetime.date(2026, 3, 10), date_field="effective_at"
    )
    # Cake was paid on the 8th and posted on the 11th: it is in, before Tea,
    # with the balance after its posting (running balances follow the posting order).
    assert descriptions(statement) == [("Cake", Decimal("97.00")), ("Tea", Decimal("99.00"))]
    # The opening and closing balances are those at the bounds by posting time.
    assert statement.opening_balance.amount == Decimal("100.00")
    assert statement.closing_balance.amount == Decimal("99.00")
    everything = wallet.statement(date_field="effective_at")
    assert [leg.transfer.description for leg in everything][1:] == ["Cake", "Tea", "Scones"]


def test_a_statement_by_effective_date_costs_the_same_queries(wallet, card_payments):
    statement = wallet.statement(
        datetime.date(2026, 3, 8), datetime.date(2026, 3, 10), date_field="effective_at"
    )
    with CaptureQueriesContext(connection) as queries:
        list(statement)
    assert len(data_statements(queries)) == 1


def read_csv(lines):
    return list(csv.DictReader(io.StringIO("".join(lines))))


def test_the_statement_export_by_effective_date(wallet, card_payments):
    rows = read_csv(
        exports.csv_lines(
            exports.STATEMENT_COLUMNS,
            exports.statement_rows(
                wallet,
                datetime.date(2026, 3, 8),
                datetime.date(2026, 3, 10),
                date_field="effective_at",
            ),
        )
    )
    assert [(r["description"], r["effective_at"][:10], r["created"][:10]) for r in rows] == [
        ("Cake", "2026-03-08", "2026-03-11"),
        ("Tea", "2026-03-10", "2026-03-10"),
    ]
    assert rows[0]["metadata"] == '{"city":"Leeds","merchant":"Teapot & Grinder"}'
    assert rows[1]["metadata"] == ""
    by_posting = read_csv(
        exports.csv_lines(
            exports.STATEMENT_COLUMNS,
            exports.statement_rows(wallet, datetime.date(2026, 3, 8), datetime.date(2026, 3, 10)),
        )
    )
    assert [r["description"] for r in by_posting] == ["Tea"]


def test_exports_page_by_effective_date_without_losing_or_repeating_rows(wallet, shop):
    # Effective dates in the opposite order of posting, across several pages.
    with ledger_time(POSTED):
        for n in range(7):
            facade.transfer(
                wallet,
                shop,
                Decimal("1.00"),
                description=str(n),
                effective_at=POSTED - n * DAY,
            )
    legs = Transaction.objects.filter(account=wallet.pk).select_related("transfer")
    found = [
        leg.transfer.description
        for leg in exports.pages(legs, size=2, by="transfer__effective_at")
    ]
    # The top-up, a month earlier, first.
    assert found == ["", "6", "5", "4", "3", "2", "1", "0"]
    newest = [
        t.description
        for t in exports.pages(
            Transfer.objects.filter(source=wallet.pk), size=3, descending=True, by="effective_at"
        )
    ]
    assert newest == ["0", "1", "2", "3", "4", "5", "6"]
    rows = read_csv(
        exports.csv_lines(
            exports.TRANSFER_COLUMNS,
            exports.transfer_rows(
                Transfer.objects.filter(source=wallet.pk), date_field="effective_at"
            ),
        )
    )
    assert [r["description"] for r in rows] == newest


def test_the_journal_by_effective_date(wallet, card_payments):
    rows = list(
        exports.journal_rows(
            datetime.date(2026, 3, 8), datetime.date(2026, 3, 9), date_field="effective_at"
        )
    )
    header = exports.JOURNAL_COLUMNS
    found = [dict(zip(header, row, strict=True)) for row in rows]
    assert [(r["date"], r["created"][:10], r["description"]) for r in found] == [
        ("2026-03-08", "2026-03-11", "Cake"),
        ("2026-03-08", "2026-03-11", "Cake"),
    ]
    assert list(exports.journal_rows(datetime.date(2026, 3, 8), datetime.date(2026, 3, 9))) == []


def test_the_admin_statement_and_its_csv_by_effective_date(admin_client, wallet, card_payments):
    url = reverse("admin:accounts_account_statement", args=[wallet.pk])
    query = {"start": "2026-03-08", "end": "2026-03-10", "date_field": "effective_at"}
    response = admin_client.get(url, query)
    assert response.status_code == 200
    assert response.context["statement"].date_field == "effective_at"
    page = response.content.decode()
    assert "Teapot &amp; Grinder, Leeds" in page
    assert [row.transfer.description for row in response.context["page"].object_list] == [
        "Tea",
        "Cake",
    ]
    csv_url = reverse("admin:accounts_account_statement_csv", args=[wallet.pk])
    download = admin_client.get(csv_url, query)
    assert (
        'statement-%s-2026-03-08-2026-03-10-effective.csv"' % wallet.pk
        in (download["Content-Disposition"])
    )
    rows = read_csv(line.decode() for line in download.streaming_content)
    assert [r["description"] for r in rows] == ["Cake", "Tea"]


def test_the_export_ledger_command_takes_a_date_field(wallet, card_payments, tmp_path):
    from django.core.management import call_command

    output = tmp_path / "journal.csv"
    call_command(
        "export_ledger",
        "--start=2026-03-08",
        "--end=2026-03-09",
        "--date-field=effective_at",
        "--output=%s" % output,
        stdout=io.StringIO(),
    )
    with output.open() as written:
        rows = list(csv.DictReader(written))
    assert [r["description"] for r in rows] == ["Cake", "Cake"]


# PostgreSQL's one statement writes both ----------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one statement")
@pytest.mark.django_db(transaction=True)
def test_the_one_statement_transfer_writes_metadata_and_effective_at():
    bank, wallet = Account.objects.source_account(), AccountFactory()
    sales = Account.objects.sales_account()
    facade.transfer(bank, wallet, Decimal("10.00"))  # prepares the statement
    paid_at = datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    metadata = {"mcc": "5411", "merchant": "Teapot & Grinder", "n": [1, 2.5, None, True]}
    with CaptureQueriesContext(connection) as queries:
        paid = facade.transfer(
            wallet, sales, Decimal("1.00"), metadata=metadata, effective_at=paid_at
        )
    # Prepared by us (EXECUTE), or with server-side binding by psycopg (WITH).
    one = "WITH" if connection.settings_dict["OPTIONS"].get("server_side_binding") else "EXECUTE"
    assert [statement.split()[0] for statement in data_statements(queries)] == [one]
    assert Transfer.objects.values_list("effective_at", "metadata").get(pk=paid.pk) == (
        paid_at,
        metadata,
    )
    assert (paid.effective_at, paid.metadata) == (paid_at, metadata)
    default = facade.transfer(wallet, sales, Decimal("1.00"))
    assert Transfer.objects.values_list("effective_at", "created").get(pk=default.pk) == (
        default.created,
        default.created,
    )


# The migration ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_rows_posted_before_it_their_posting_time():
    from django.core.management import call_command
    from django.db.migrations.executor import MigrationExecutor

    bank, wallet = Account.objects.source_account(), AccountFactory()
    MigrationExecutor(connection).migrate([("accounts", "0012_declines")])
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO accounts_transfer (reference, source_id, destination_id, currency, "
                "amount, description, username, created) "
                "VALUES ('OLD1', %s, %s, 'GBP', 5, '', '', %s)",
                [bank.pk, wallet.pk, POSTED],
            )
            cursor.execute("SELECT id FROM accounts_transfer WHERE reference = 'OLD1'")
            (transfer_id,) = cursor.fetchone()
            cursor.execute(
                "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
                "balance_after, created) VALUES (%s, %s, 'GBP', -5, -5, %s), "
                "(%s, %s, 'GBP', 5, 5, %s)",
                [transfer_id, bank.pk, POSTED, transfer_id, wallet.pk, POSTED],
            )
            cursor.execute(
                "INSERT INTO accounts_hold (reference, source_id, destination_id, currency, "
                "amount, status, description, username, resolved_by, created) "
                "VALUES ('OLDHOLD', %s, %s, 'GBP', 1, 'active', '', '', '', %s)",
                [wallet.pk, bank.pk, POSTED - DAY],
            )
        executor = MigrationExecutor(connection)
        executor.migrate([("accounts", "0013_metadata_and_effective_at")])
    finally:
        call_command("migrate", "accounts", verbosity=0)
    assert Transfer.objects.values_list("created", "effective_at", "metadata").get(
        reference="OLD1"
    ) == (POSTED, POSTED, {})
    assert Hold.objects.values_list("created", "effective_at", "metadata").get(
        reference="OLDHOLD"
    ) == (POSTED - DAY, POSTED - DAY, {})
    assert Account.objects.get(pk=wallet.pk).metadata == {}
    # Then fixed, like every other ledger column.
    with pytest.raises(DatabaseError, match="UPDATE of accounts_transfer .*append-only"):
        raw(
            "UPDATE accounts_transfer SET effective_at = %s WHERE id = %s",
            POSTED - DAY,
            transfer_id,
        )
