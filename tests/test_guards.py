"""
The database's own guards (migration 0005 and the models' check constraints):
SQL that goes around the facade and the ORM is refused by the database.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from accounts import facade, sql
from accounts.models import Account, Batch, Hold, Transaction, Transfer, generate_reference

from .factories import AccountFactory, UserFactory
from .utils import assert_ledger_consistent

pytestmark = pytest.mark.django_db

VENDOR = connection.vendor
not_on_sqlite = pytest.mark.skipif(
    VENDOR == "sqlite",
    reason="SQLite keeps update guards only: Django's flush empties its tables with DELETE",
)
postgresql_only = pytest.mark.skipif(
    VENDOR != "postgresql", reason="statement-level triggers exist on PostgreSQL only"
)


def table(model):
    return connection.ops.quote_name(model._meta.db_table)


def raw(statement, *params):
    """Run SQL in its own savepoint, so a refusal leaves the test's transaction usable."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


@pytest.fixture
def transfer(source, account, user):
    return facade.transfer(source, account, Decimal("10.00"), user=user, description="Top-up")


# Append-only, whatever the client ---------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [("amount", "99.00"), ("balance_after", "1.00"), ("account_id", None)],
)
def test_raw_update_of_a_leg_is_refused(transfer, column, value):
    leg = transfer.transactions.first()
    if value is None:
        value = Account.objects.sales_account().pk
    with pytest.raises(DatabaseError, match="UPDATE of accounts_transaction .*append-only"):
        raw("UPDATE %s SET %s = %%s WHERE id = %%s" % (table(Transaction), column), value, leg.pk)
    assert Transaction.objects.get(pk=leg.pk).amount == leg.amount


@pytest.mark.parametrize(
    "column", ["amount", "source_id", "destination_id", "currency", "reference", "created"]
)
def test_raw_update_of_a_transfers_financial_columns_is_refused(transfer, column):
    value = {
        "amount": Decimal("1.00"),
        "source_id": Account.objects.sales_account().pk,
        "destination_id": Account.objects.sales_account().pk,
        "currency": "EUR",
        "reference": "FORGED",
        "created": timezone.now(),
    }[column]
    with pytest.raises(DatabaseError, match="UPDATE of accounts_transfer .*append-only"):
        raw(
            "UPDATE %s SET %s = %%s WHERE id = %%s" % (table(Transfer), column), value, transfer.pk
        )
    assert Transfer.objects.get(pk=transfer.pk).amount == transfer.amount


@not_on_sqlite
@pytest.mark.parametrize("model", [Transaction, Transfer, Hold])
def test_raw_delete_of_ledger_rows_is_refused(transfer, account, model):
    facade.hold(account, Account.objects.sales_account(), Decimal("1.00"))
    before = model.objects.count()
    with pytest.raises(DatabaseError, match="DELETE of %s .*append-only" % model._meta.db_table):
        raw("DELETE FROM %s" % table(model))
    assert model.objects.count() == before


def test_personal_data_can_still_be_erased(transfer, user):
    assert raw("UPDATE %s SET username = '' WHERE id = %%s" % table(Transfer), transfer.pk) == 1
    assert Transfer.objects.filter(user=user).erase_personal_data() == 1
    erased = Transfer.objects.get(pk=transfer.pk)
    assert (erased.user, erased.username, erased.description) == (None, "", "")
    assert erased.amount == transfer.amount
    user.delete()  # SET NULL on the ledger rows is allowed too
    assert_ledger_consistent()


def test_hold_personal_data_can_be_erased(account, fund):
    fund(account, "5.00")
    staff = UserFactory()
    hold = facade.hold(account, Account.objects.sales_account(), Decimal("1.00"), user=staff)
    facade.release(hold, user=staff)
    assert Hold.objects.filter(pk=hold.pk).erase_personal_data() == 1
    erased = Hold.objects.get(pk=hold.pk)
    assert (erased.user, erased.username, erased.resolved_by) == (None, "", "")
    assert erased.status == "released"


def test_a_resolved_hold_cannot_be_reopened_or_changed(account, fund):
    fund(account, "5.00")
    hold = facade.hold(account, Account.objects.sales_account(), Decimal("2.00"))
    facade.capture(hold)
    for statement, value in (
        ("UPDATE %s SET status = %%s WHERE id = %%s", "active"),
        ("UPDATE %s SET amount = %%s WHERE id = %%s", Decimal("9.00")),
    ):
        with pytest.raises(DatabaseError, match="UPDATE of accounts_hold .*append-only"):
            raw(statement % table(Hold), value, hold.pk)
    assert Hold.objects.get(pk=hold.pk).status == "captured"


# Check constraints ------------------------------------------------------------------


def test_check_constraints_refuse_impossible_rows(source, account):
    with pytest.raises(IntegrityError, match="accounts_transfer_amount_positive"):
        with transaction.atomic():
            sql.insert(
                "default",
                Transfer(source=source, destination=account, currency="GBP", amount=Decimal(0)),
            )
    with pytest.raises(IntegrityError, match="accounts_transfer_source_is_not_destination"):
        with transaction.atomic():
            sql.insert(
                "default",
                Transfer(source=account, destination=account, currency="GBP", amount=Decimal(1)),
            )
    with pytest.raises(IntegrityError, match="accounts_account_credit_limit_not_negative"):
        raw("UPDATE %s SET credit_limit = -1 WHERE id = %%s" % table(Account), account.pk)
    trans = facade.transfer(source, account, Decimal("1.00"))
    with pytest.raises(IntegrityError, match="accounts_transaction_amount_not_zero"):
        with transaction.atomic():
            sql.insert_legs(
                "default",
                trans.pk,
                [
                    (
                        Account.objects.sales_account().pk,
                        "GBP",
                        Decimal(0),
                        Decimal(0),
                        timezone.now(),
                    )
                ],
            )


# Two legs summing to zero, checked at the end of each statement (migration 0015) --------


def forge(legs, *, amount="5.00", others=()):
    """One statement: a transfer from the bank and the legs given as (account, amount)."""
    source, destination = Account.objects.source_account(), AccountFactory()
    accounts = [source, destination, *others]
    statement = (
        "WITH t AS (INSERT INTO accounts_transfer (reference, source_id, destination_id, "
        "currency, amount, description, username, created, effective_at, metadata) "
        "VALUES (%s, %s, %s, 'GBP', %s, '', '', now(), now(), '{}') RETURNING id) "
    )
    params = [generate_reference(), source.pk, destination.pk, Decimal(amount)]
    if legs:
        statement += (
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) SELECT t.id, leg.account, 'GBP', leg.amount, leg.amount, "
            "now() FROM t, (VALUES %s) AS leg(account, amount)"
            % ", ".join(["(%s::bigint, %s::numeric)"] * len(legs))
        )
        for n, leg_amount in enumerate(legs):
            params += [accounts[n].pk, Decimal(leg_amount)]
    else:
        statement += "SELECT id FROM t"
    return raw(statement, *params)


@postgresql_only
@pytest.mark.parametrize("legs", [[], ["-5.00"], ["-5.00", "4.00"], ["-5.00", "5.00", "1.00"]])
def test_a_transfer_written_without_exactly_two_legs_summing_to_zero_is_refused(legs):
    before = Transfer.objects.count(), Transaction.objects.count()
    with pytest.raises(IntegrityError, match="exactly two legs that sum to zero"):
        forge(legs, others=[AccountFactory()])
    assert (Transfer.objects.count(), Transaction.objects.count()) == before


@postgresql_only
def test_a_transfer_with_its_two_legs_in_one_statement_is_accepted():
    assert forge(["-5.00", "5.00"]) == 2  # the legs the statement inserted
    written = Transfer.objects.latest("pk")
    assert sorted(written.transactions.values_list("amount", flat=True)) == [-5, 5]


@postgresql_only
def test_a_transfer_and_its_legs_in_separate_statements_are_refused_at_the_first():
    source, account = Account.objects.source_account(), AccountFactory()
    before = Transfer.objects.count()
    with pytest.raises(IntegrityError, match="transfer \\d+ has 0 leg\\(s\\) summing to 0"):
        with transaction.atomic():
            sql.insert(
                "default",
                Transfer(source=source, destination=account, currency="GBP", amount=5),
            )
    assert Transfer.objects.count() == before


@postgresql_only
def test_a_leg_added_to_a_written_transfer_is_refused():
    written = facade.transfer(Account.objects.source_account(), AccountFactory(), Decimal("5.00"))
    with pytest.raises(IntegrityError, match="transfer %d has 3 leg\\(s\\)" % written.pk):
        with transaction.atomic():
            sql.insert_legs(
                "default",
                written.pk,
                [
                    (
                        Account.objects.sales_account().pk,
                        "GBP",
                        Decimal("1.00"),
                        Decimal(0),
                        timezone.now(),
                    )
                ],
            )
    assert Transaction.objects.filter(transfer=written).count() == 2


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_balanced_transfers_and_batches_commit():
    bank, first, second = Account.objects.source_account(), AccountFactory(), AccountFactory()
    facade.transfer(bank, first, Decimal("5.00"))
    batch = facade.transfer_many(
        [facade.TransferRequest(bank, second, Decimal(n)) for n in range(1, 40)]
        + [facade.TransferRequest(first, second, Decimal("5.00"))]
    )
    assert batch.transfers.count() == 40
    assert Transfer.objects.count() == 41 and Transaction.objects.count() == 82
    assert_ledger_consistent()


# Each leg on an existing transfer, on its source or destination; each batch there (0016) --


@postgresql_only
def test_a_leg_on_an_account_outside_its_transfer_is_refused():
    before = Transfer.objects.count(), Transaction.objects.count()
    outsider = AccountFactory()
    # Two legs summing to zero, but the credit goes to an account the
    # transfer does not name.
    with pytest.raises(IntegrityError, match="on account %d: a leg belongs to" % outsider.pk):
        source = Account.objects.source_account()
        raw(
            "WITH t AS (INSERT INTO accounts_transfer (reference, source_id, destination_id, "
            "currency, amount, description, username, created, effective_at, metadata) "
            "VALUES (%s, %s, %s, 'GBP', 5, '', '', now(), now(), '{}') RETURNING id) "
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) SELECT t.id, leg.account, 'GBP', leg.amount, leg.amount, "
            "now() FROM t, (VALUES (%s::bigint, -5::numeric), (%s, 5)) AS leg(account, amount)",
            generate_reference(), source.pk, AccountFactory().pk, source.pk, outsider.pk,
        )  # fmt: skip
    assert (Transfer.objects.count(), Transaction.objects.count()) == before


@postgresql_only
def test_balanced_legs_of_a_transfer_that_does_not_exist_are_refused():
    missing = (Transfer.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    source, account = Account.objects.source_account(), AccountFactory()
    before = Transaction.objects.count()
    with pytest.raises(IntegrityError, match="a leg of transfer %d on account" % missing):
        raw(
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) VALUES (%s, %s, 'GBP', -5, -5, now()), "
            "(%s, %s, 'GBP', 5, 5, now())",
            missing, source.pk, missing, account.pk,
        )  # fmt: skip
    assert Transaction.objects.count() == before


@postgresql_only
def test_a_transfer_in_a_batch_that_does_not_exist_is_refused():
    missing = (Batch.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    source, account = Account.objects.source_account(), AccountFactory()
    before = Transfer.objects.count(), Transaction.objects.count()
    with pytest.raises(IntegrityError, match="batch %d does not exist" % missing):
        raw(
            "WITH t AS (INSERT INTO accounts_transfer (reference, source_id, destination_id, "
            "currency, amount, batch_id, batch_position, description, username, created, "
            "effective_at, metadata) VALUES (%s, %s, %s, 'GBP', 5, %s, 0, '', '', now(), now(), "
            "'{}') RETURNING id) "
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) SELECT t.id, leg.account, 'GBP', leg.amount, leg.amount, "
            "now() FROM t, (VALUES (%s::bigint, -5::numeric), (%s, 5)) AS leg(account, amount)",
            generate_reference(), source.pk, account.pk, missing, source.pk, account.pk,
        )  # fmt: skip
    assert (Transfer.objects.count(), Transaction.objects.count()) == before


@postgresql_only
def test_an_account_with_legs_still_cannot_be_deleted_by_raw_sql(transfer, account):
    # The legs' foreign keys are gone (0016), and the transfers' to their
    # accounts (0018): a trigger keeps an account any transfer names.
    with pytest.raises(IntegrityError, match="named by transfer %d" % transfer.pk):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM accounts_account WHERE id = %s", [account.pk])
    assert Transaction.objects.filter(account=account).count() == 1


@postgresql_only
@pytest.mark.parametrize("side", ["source", "destination"])
def test_an_account_a_transfer_names_keeps_its_row_and_its_key(side):
    bank, payee = Account.objects.source_account(), AccountFactory()
    facade.transfer(bank, payee, Decimal("5.00"))
    # Each named on one side only.
    named = bank if side == "source" else payee
    for statement in (
        "DELETE FROM accounts_account WHERE id = %s",
        "UPDATE accounts_account SET id = id + 1000000 WHERE id = %s",
    ):
        with pytest.raises(IntegrityError, match="account %d is named by transfer" % named.pk):
            raw(statement, named.pk)
    assert Account.objects.filter(pk=named.pk).exists()
    # An account no transfer names goes, and other columns still change.
    unused = AccountFactory()
    assert raw("UPDATE accounts_account SET name = 'Renamed' WHERE id = %s", named.pk) == 1
    assert raw("DELETE FROM accounts_account WHERE id = %s", unused.pk) == 1


@postgresql_only
@pytest.mark.parametrize("side", ["source", "destination"])
def test_a_transfer_naming_an_account_that_does_not_exist_is_refused(side):
    missing = (Account.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    bank, account = Account.objects.source_account(), AccountFactory()
    source, destination = (missing, account.pk) if side == "source" else (bank.pk, missing)
    before = Transfer.objects.count(), Transaction.objects.count()
    with pytest.raises(IntegrityError, match="names account %d, which does not exist" % missing):
        raw(
            "WITH t AS (INSERT INTO accounts_transfer (reference, source_id, destination_id, "
            "currency, amount, description, username, created, effective_at, metadata) "
            "VALUES (%s, %s, %s, 'GBP', 5, '', '', now(), now(), '{}') RETURNING id) "
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) SELECT t.id, leg.account, 'GBP', leg.amount, leg.amount, "
            "now() FROM t, (VALUES (%s::bigint, -5::numeric), (%s, 5)) AS leg(account, amount)",
            generate_reference(), source, destination, source, destination,
        )  # fmt: skip
    assert (Transfer.objects.count(), Transaction.objects.count()) == before


def _scans_of_ledger_tables():
    """This transaction's sequential scans of the tables the statement guards read."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE relname IN "
            "('accounts_transfer', 'accounts_transaction', 'accounts_batch')"
        )
        return dict(cursor.fetchall())


@postgresql_only
def test_the_statement_guards_read_rows_by_key_never_by_scanning_a_table():
    # Enough transfers for a scan to cost more than a lookup by key: a guard
    # whose query the planner turned into a join would scan all of them at
    # every statement, and a ledger's transfers grow without end.
    bank, accounts = Account.objects.source_account(), [AccountFactory() for _ in range(4)]
    for _ in range(2):
        facade.transfer_many(
            [facade.TransferRequest(bank, accounts[n % 4], Decimal("0.01")) for n in range(1000)]
        )
    before = _scans_of_ledger_tables()
    facade.transfer(bank, accounts[0], Decimal("1.00"))
    facade.transfer_many(
        [facade.TransferRequest(accounts[0], accounts[n], Decimal("0.10")) for n in (1, 2, 3)]
    )
    assert _scans_of_ledger_tables() == before


# Partial indexes of the transfers' nullable columns (migration 0019) ------------------


@postgresql_only
def test_an_idempotency_key_stays_unique_at_the_database_and_many_transfers_have_none():
    bank, account = Account.objects.source_account(), AccountFactory()
    facade.transfer(bank, account, Decimal("1.00"), idempotency_key="once")
    facade.transfer(bank, account, Decimal("1.00"))
    facade.transfer(bank, account, Decimal("1.00"))
    first = Transfer.objects.get(idempotency_key="once")
    with pytest.raises(IntegrityError, match="accounts_transfer_idempotency_key_key"):
        raw(
            "WITH t AS (INSERT INTO accounts_transfer (reference, source_id, destination_id, "
            "currency, amount, description, username, created, effective_at, metadata, "
            "idempotency_key) VALUES (%s, %s, %s, 'GBP', 1, '', '', now(), now(), '{}', "
            "'once') RETURNING id) "
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) SELECT t.id, leg.account, 'GBP', leg.amount, leg.amount, "
            "now() FROM t, (VALUES (%s::bigint, -1::numeric), (%s, 1)) AS leg(account, amount)",
            generate_reference(), bank.pk, account.pk, bank.pk, account.pk,
        )  # fmt: skip
    assert Transfer.objects.filter(idempotency_key="once").get() == first
    assert Transfer.objects.filter(idempotency_key__isnull=True).count() == 2


@postgresql_only
@pytest.mark.parametrize(
    "column, index",
    [
        ("idempotency_key", "accounts_transfer_idempotency_key_key"),
        ("merchant_reference", "accounts_transfer_merchant_reference_"),
        ("user_id", "accounts_transfer_user_id_"),
        ("batch_id", "accounts_transfer_batch_id_"),
    ],
)
def test_a_lookup_by_equality_uses_the_partial_index_even_in_a_generic_plan(column, index):
    # A generic plan knows nothing of the value looked up: the index of the
    # rows where the column is set serves it only because equality never
    # matches a NULL. (Sequential scans off: the test's table is small. The
    # value is a literal: EXECUTE's arguments take no bound parameters.)
    kind, value = ("text", "'1'") if column.endswith(("key", "reference")) else ("bigint", "1")
    name = "accounts_test_lookup_%s" % column
    with connection.cursor() as cursor:
        cursor.execute(
            "PREPARE %s(%s) AS SELECT id FROM accounts_transfer WHERE %s = $1"
            % (name, kind, column)
        )
        try:
            # In a savepoint: whatever fails, the statement is deallocated.
            with transaction.atomic():
                cursor.execute("SET LOCAL enable_seqscan = off")
                cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                cursor.execute("EXPLAIN EXECUTE %s(%s)" % (name, value))
                plan = "\n".join(row[0] for row in cursor.fetchall())
        finally:
            cursor.execute("DEALLOCATE %s" % name)
    assert index in plan, plan


# Notification marks: notified_at goes from NULL to a time, once ----------------------


@pytest.fixture
def ledger_row(request, transfer, account, fund, user):
    """A transfer or (parametrized with "hold") a hold, not yet notified."""
    if request.param == "transfer":
        return transfer
    fund(account, "5.00")
    return facade.hold(
        account, Account.objects.sales_account(), Decimal("1.00"), user=user, description="Tea"
    )


NOTIFIED_ONCE = "UPDATE of accounts_(transfer|hold) .*notified_at is set once"


@pytest.mark.parametrize("ledger_row", ["transfer", "hold"], indirect=True)
def test_raw_sql_may_set_notified_at_once(ledger_row):
    model = type(ledger_row)
    first = timezone.now()
    statement = "UPDATE %s SET notified_at = %%s WHERE id = %%s" % table(model)
    assert raw(statement, first, ledger_row.pk) == 1
    assert model.objects.get(pk=ledger_row.pk).notified_at == first
    # Setting it again, to another time, or clearing it: refused.
    for value in (first + datetime.timedelta(seconds=1), first - datetime.timedelta(days=1), None):
        with pytest.raises(DatabaseError, match=NOTIFIED_ONCE):
            raw(statement, value, ledger_row.pk)
    assert model.objects.get(pk=ledger_row.pk).notified_at == first


@pytest.mark.parametrize("ledger_row", ["transfer", "hold"], indirect=True)
@pytest.mark.parametrize(
    ("column", "value"),
    [("username", "someone else"), ("description", ""), ("user_id", None)],
)
def test_marking_changes_nothing_else_not_even_personal_data(ledger_row, column, value):
    model = type(ledger_row)
    with pytest.raises(DatabaseError, match=NOTIFIED_ONCE):
        raw(
            "UPDATE %s SET notified_at = %%s, %s = %%s WHERE id = %%s" % (table(model), column),
            timezone.now(),
            value,
            ledger_row.pk,
        )
    row = model.objects.get(pk=ledger_row.pk)
    assert row.notified_at is None
    assert getattr(row, column) == getattr(ledger_row, column)


def test_marking_a_hold_does_not_resolve_it(account, fund):
    fund(account, "5.00")
    hold = facade.hold(account, Account.objects.sales_account(), Decimal("1.00"))
    with pytest.raises(DatabaseError, match=NOTIFIED_ONCE):
        raw(
            "UPDATE %s SET notified_at = %%s, status = 'released', resolved_at = %%s "
            "WHERE id = %%s" % table(Hold),
            timezone.now(),
            timezone.now(),
            hold.pk,
        )
    row = Hold.objects.get(pk=hold.pk)
    assert (row.status, row.notified_at) == ("active", None)


@pytest.mark.parametrize("ledger_row", ["transfer", "hold"], indirect=True)
def test_marking_carries_no_change_to_fixed_columns(ledger_row):
    model = type(ledger_row)
    # Refused by the fixed columns' trigger or by the mark's: whichever fires first.
    with pytest.raises(
        DatabaseError,
        match="UPDATE of accounts_(transfer|hold) .*(append-only|notified_at is set once)",
    ):
        raw(
            "UPDATE %s SET notified_at = %%s, amount = %%s WHERE id = %%s" % table(model),
            timezone.now(),
            Decimal("99.00"),
            ledger_row.pk,
        )
    row = model.objects.get(pk=ledger_row.pk)
    assert (row.notified_at, row.amount) == (None, ledger_row.amount)


@pytest.mark.parametrize("ledger_row", ["transfer", "hold"], indirect=True)
def test_a_marked_row_still_refuses_changes_and_still_erases_personal_data(ledger_row):
    model = type(ledger_row)
    assert model.objects.filter(pk=ledger_row.pk).mark_notified() == 1
    with pytest.raises(DatabaseError, match="UPDATE of accounts_(transfer|hold) .*append-only"):
        raw("UPDATE %s SET amount = 2 WHERE id = %%s" % table(model), ledger_row.pk)
    assert model.objects.filter(pk=ledger_row.pk).erase_personal_data() == 1
    assert model.objects.get(pk=ledger_row.pk).notified_at is not None
