"""check_ledger finds each kind of corruption, written with raw SQL around the facade."""

from contextlib import contextmanager
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from accounts import facade, sql
from accounts.integrity import check_ledger
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def forged(db):
    """forged(source, destination, amount, legs, parent=None): raw ledger rows.

    ``legs`` is a list of (account, amount, balance_after). On PostgreSQL the
    deferred two-legs triggers are disabled inside the test's transaction
    (rolled back with it), so the checker, not the trigger, meets the rows.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Fire what is pending first: a table with pending trigger events
            # cannot be altered.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                "ALTER TABLE accounts_transaction DISABLE TRIGGER accounts_transaction_balanced"
            )
            cursor.execute(
                "ALTER TABLE accounts_transfer DISABLE TRIGGER accounts_transfer_balanced"
            )

    def forge(source, destination, amount, legs, parent=None):
        now = timezone.now()
        transfer = Transfer(
            source=source,
            destination=destination,
            currency=source.currency,
            amount=Decimal(amount),
            parent=parent,
        )
        sql.insert("default", transfer)
        if legs:
            sql.insert_legs(
                "default",
                transfer.pk,
                [
                    (account.pk, account.currency, Decimal(value), Decimal(after), now)
                    for account, value, after in legs
                ],
            )
        return transfer

    return forge


def set_column(model, pk, column, value):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE %s SET %s = %%s WHERE id = %%s"
            % (connection.ops.quote_name(model._meta.db_table), column),
            [value, pk],
        )


def found(report, check):
    return [p for p in report.problems if p.check == check]


@pytest.fixture
def books(fund):
    """A small, correct ledger: top-ups, a purchase, a reversal, holds."""
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "50.00")
    purchase = facade.transfer(wallet, shop, Decimal("20.00"))
    facade.reverse(purchase, amount=Decimal("5.00"))
    facade.capture(facade.hold(wallet, shop, Decimal("3.00")), Decimal("2.00"))
    facade.hold(wallet, shop, Decimal("4.00"))
    return wallet, shop


def test_a_correct_ledger_passes(books):
    report = check_ledger()
    assert report.ok, report.problems
    assert report.rows["legs"] == 2 * report.rows["transfers"] > 0
    assert report.rows["holds"] == 2


def test_a_balance_that_is_not_the_sum_of_its_legs(books):
    wallet, _ = books
    set_column(Account, wallet.pk, "balance", Decimal("999.00"))
    (problem,) = found(check_ledger(), "balance")
    assert (problem.account, problem.expected, problem.found) == (
        wallet.pk,
        Decimal("33.0000"),  # 50 in, 20 out, 5 back, 2 captured
        Decimal("999.0000"),
    )
    assert "account #%d" % wallet.pk in str(problem)
    assert "expected 33.0000, found 999.0000" in str(problem)


def test_a_held_amount_that_is_not_the_sum_of_active_holds(books):
    wallet, _ = books
    set_column(Account, wallet.pk, "held", Decimal("0"))
    (problem,) = found(check_ledger(), "held")
    assert (problem.account, problem.expected) == (wallet.pk, Decimal("4.0000"))


def test_a_hold_that_takes_effect_after_it_was_posted(books):
    import datetime

    wallet, shop = books
    now = timezone.now()
    # Around the facade, which refuses it (and the guards refuse changing one later).
    late = Hold(
        source=wallet,
        destination=shop,
        currency="GBP",
        amount=Decimal("1.00"),
        created=now,
        effective_at=now + datetime.timedelta(seconds=1),
    )
    sql.insert("default", late)
    (problem,) = found(check_ledger(), "effective-date")
    assert "hold #%s takes effect after it was posted" % late.pk in str(problem)


def test_unbalanced_legs_and_a_currency_that_does_not_sum_to_zero(books, forged):
    wallet, shop = books
    bad = forged(wallet, shop, "1.00", [(wallet, "-1.00", "30.00"), (shop, "2.00", "2.00")])
    report = check_ledger()
    assert [p.transfer for p in found(report, "legs")] == [bad.pk]
    assert found(report, "currency")[0].found == Decimal("1.0000")
    assert not report.ok


def test_a_transfer_without_legs(books, forged):
    wallet, shop = books
    bad = forged(wallet, shop, "1.00", [])
    problems = found(check_ledger(), "legs")
    assert [p.transfer for p in problems] == [bad.pk]
    assert "it has 0 summing to" in problems[0].message


def test_legs_on_the_wrong_accounts(books, forged):
    wallet, shop = books
    stranger = AccountFactory()
    bad = forged(wallet, shop, "1.00", [(wallet, "-1.00", "30.00"), (stranger, "1.00", "1.00")])
    assert {p.transfer for p in found(check_ledger(), "leg-shape")} == {bad.pk}


def test_a_wrong_running_balance(books, forged):
    wallet, shop = (Account.objects.get(pk=a.pk) for a in books)
    balance, shop_balance = wallet.balance.amount, shop.balance.amount
    # Balances right, but the leg claims a balance the account never had.
    bad = forged(wallet, shop, "1.00", [(wallet, "-1.00", "7.00"), (shop, "1.00", "1.00")])
    set_column(Account, wallet.pk, "balance", balance - 1)
    set_column(Account, shop.pk, "balance", shop_balance + 1)
    problems = found(check_ledger(), "running-balance")
    assert {(p.account, p.transfer) for p in problems} >= {(wallet.pk, bad.pk)}
    wallet_problem = next(p for p in problems if p.account == wallet.pk)
    assert (wallet_problem.expected, wallet_problem.found) == (balance - 1, Decimal("7.0000"))


def test_a_transfer_reversed_beyond_its_amount(source, forged):
    account = AccountFactory()
    original = facade.transfer(source, account, Decimal("10.00"))
    facade.reverse(original, amount=Decimal("6.00"))
    forged(
        account,
        source,
        "6.00",
        [(account, "-6.00", "-2.00"), (source, "6.00", "0.00")],
        parent=original,
    )
    (problem,) = found(check_ledger(), "reversed")
    assert (problem.transfer, problem.found) == (original.pk, Decimal("12.0000"))


def test_a_captured_hold_without_its_capture(books):
    wallet, _ = books
    active = Hold.objects.get(status="active")
    other = Transfer.objects.filter(hold__isnull=True).first()
    set_column(Hold, active.pk, "capture_id", other.pk)
    (problem,) = found(check_ledger(), "capture")
    assert "hold #%d" % active.pk in problem.message


def test_problems_are_capped_but_all_counted(books):
    for account in Account.objects.filter(role__isnull=False):
        set_column(Account, account.pk, "balance", Decimal("1.00"))
    report = check_ledger(limit=2)
    assert len(found(report, "balance")) == 2
    assert report.counts["balance"] >= 9
    assert report.total >= 9


def test_check_ledger_command(books):
    out = StringIO()
    call_command("check_ledger", stdout=out)
    assert "Ledger OK" in out.getvalue()
    assert "legs" in out.getvalue()

    wallet, _ = books
    set_column(Account, wallet.pk, "balance", Decimal("999.00"))
    out = StringIO()
    with pytest.raises(CommandError, match=r"1 problem\(s\) in the ledger"):
        call_command("check_ledger", stdout=out)
    assert "[balance] account #%d" % wallet.pk in out.getvalue()


def test_check_ledger_refuses_an_unknown_database_as_a_usage_error(db, capsys):
    from django.core.management import ManagementUtility

    with pytest.raises(CommandError, match="invalid choice: 'nope'"):
        call_command("check_ledger", "--database", "nope")
    # From the command line: a usage message and exit status 2, no traceback.
    with pytest.raises(SystemExit, match="^2$") as exit_info:
        ManagementUtility(["manage.py", "check_ledger", "--database", "nope"]).execute()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "invalid choice: 'nope'" in err and "Traceback" not in err


def test_check_ledger_is_quiet_at_verbosity_zero_unless_something_is_wrong(books):
    out = StringIO()
    call_command("check_ledger", "-v", "0", stdout=out)
    assert out.getvalue() == ""


# Overdrawn accounts -----------------------------------------------------------------


def test_an_account_below_minus_its_credit_limit_is_reported(books):
    wallet, _ = books  # 33.00, of which 4.00 held; no credit
    set_column(Account, wallet.pk, "balance", Decimal("3.00"))
    (problem,) = found(check_ledger(), "overdrawn")
    assert problem.account == wallet.pk
    assert "(balance 3.0000, held 4.0000, limit 0.0000)" in str(problem)
    assert "found balance - held = -1.0000" in str(problem)


def test_a_limit_lowered_below_the_debt_is_explained_until_the_next_debit(fund):
    wallet, shop = AccountFactory(credit_limit=Decimal("50.00")), AccountFactory()
    facade.transfer(wallet, shop, Decimal("40.00"))  # 40.00 in debt
    facade.hold(wallet, shop, Decimal("5.00"))
    wallet.credit_limit = Decimal("10.00")  # risk staff cut the limit: allowed
    wallet.save()
    assert check_ledger().ok
    # A debit after the cut could only have come from around the facade.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE accounts_account SET credit_limit_changed_at = %s WHERE id = %s",
            [timezone.now() - timezone.timedelta(days=1), wallet.pk],
        )
    (problem,) = found(check_ledger(), "overdrawn")
    assert problem.account == wallet.pk


def test_a_limit_changed_around_the_orm_is_not_explained(fund):
    wallet, shop = AccountFactory(credit_limit=Decimal("50.00")), AccountFactory()
    facade.transfer(wallet, shop, Decimal("40.00"))
    set_column(Account, wallet.pk, "credit_limit", Decimal("10.00"))  # no change time
    assert [p.account for p in found(check_ledger(), "overdrawn")] == [wallet.pk]


# Keys compared exactly ---------------------------------------------------------------


@contextmanager
def idempotency_keys_not_unique():
    """Remove what makes ``accounts_transfer.idempotency_key`` unique, each backend its own way.

    Inside the block a key can be stored twice (and the transfer guard that
    stops an UPDATE of the key is out of the way where it has to be).
    PostgreSQL and SQLite change their schema inside the test's transaction,
    rolled back with it; MariaDB/MySQL commit DDL, so the test runs with
    ``transaction=True`` and the block puts the unique index back.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for name, is_index in _unique_constraints(cursor):
                # A unique index of the keys that are set (migration 0019).
                if is_index:
                    cursor.execute('DROP INDEX "%s"' % name)
                else:
                    cursor.execute('ALTER TABLE accounts_transfer DROP CONSTRAINT "%s"' % name)
            cursor.execute("ALTER TABLE accounts_transfer DISABLE TRIGGER accounts_transfer_fixed")
            yield
        elif connection.vendor == "sqlite":
            # The UNIQUE is part of the table's definition: rebuild the table
            # without it (its triggers and indexes go with the old one). The
            # foreign keys pointing at it are deferred, never checked: the
            # test's transaction is rolled back.
            cursor.execute(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'accounts_transfer'"
            )
            (definition,) = cursor.fetchone()
            unique = '"idempotency_key" varchar(128) NULL UNIQUE'
            assert unique in definition
            cursor.execute(
                definition.replace(unique, unique[: -len(" UNIQUE")]).replace(
                    'CREATE TABLE "accounts_transfer"', 'CREATE TABLE "accounts_transfer_copy"', 1
                )
            )
            cursor.execute("INSERT INTO accounts_transfer_copy SELECT * FROM accounts_transfer")
            cursor.execute("DROP TABLE accounts_transfer")
            cursor.execute("ALTER TABLE accounts_transfer_copy RENAME TO accounts_transfer")
            yield
        else:
            ((name, _index),) = _unique_constraints(cursor)
            cursor.execute("ALTER TABLE accounts_transfer DROP INDEX `%s`" % name)
            try:
                yield
            finally:
                # The copies go (the delete guard stands aside with foreign
                # key checks off, as for Django's flush), the index comes back.
                cursor.execute("SET foreign_key_checks = 0")
                cursor.execute("DELETE FROM accounts_transfer WHERE reference LIKE 'COPY-%%'")
                cursor.execute("SET foreign_key_checks = 1")
                cursor.execute(
                    "ALTER TABLE accounts_transfer ADD CONSTRAINT `%s` UNIQUE (idempotency_key)"
                    % name
                )
                assert [found for found, _index in _unique_constraints(cursor)] == [name]


def _unique_constraints(cursor):
    constraints = connection.introspection.get_constraints(cursor, "accounts_transfer")
    return [
        (name, info["index"])
        for name, info in constraints.items()
        if info["unique"] and info["columns"] == ["idempotency_key"]
    ]


def store_key_again(transfer, key):
    """Store ``key`` on ``transfer`` (PostgreSQL, SQLite) or on a copy of it (MariaDB/MySQL).

    On MariaDB/MySQL the guard trigger stops the UPDATE and cannot be
    disabled: a copy of the row is inserted instead (under a ``COPY-``
    reference, with no legs, which the checker reports too).
    """
    if connection.vendor != "mysql":
        set_column(Transfer, transfer.pk, "idempotency_key", key)
        return
    columns = [
        f.column for f in Transfer._meta.concrete_fields if f.column not in ("id", "reference")
    ]
    picked = [("%s" if c == "idempotency_key" else c) for c in columns]
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO accounts_transfer (reference, %s) SELECT %%s, %s "
            "FROM accounts_transfer WHERE id = %%s" % (", ".join(columns), ", ".join(picked)),
            ["COPY-%s" % transfer.pk, key, transfer.pk],
        )


@pytest.mark.django_db(transaction=connection.vendor == "mysql")
def test_keys_that_are_the_same_string_twice_are_reported(books):
    wallet, shop = books
    first = facade.transfer(wallet, shop, Decimal("1.00"), idempotency_key="pay-7")
    second = facade.transfer(wallet, shop, Decimal("1.00"), idempotency_key="pay-8")
    # Keys that differ only in case or a trailing space are different keys.
    facade.transfer(wallet, shop, Decimal("1.00"), idempotency_key="Pay-7")
    facade.transfer(wallet, shop, Decimal("1.00"), idempotency_key="pay-7 ")
    assert found(check_ledger(), "duplicate-key") == []
    with idempotency_keys_not_unique():
        store_key_again(second, "pay-7")
        (problem,) = found(check_ledger(), "duplicate-key")
        assert "accounts_transfer.idempotency_key 'pay-7' is stored 2 times" in str(problem)
    assert first.pk != second.pk


@pytest.mark.skipif(connection.vendor != "mysql", reason="only MariaDB/MySQL have such collations")
@pytest.mark.django_db(transaction=True)
def test_a_key_column_that_folds_case_is_reported_by_the_checker_and_a_system_check():
    from django.core import checks

    from accounts.checks import check_exact_columns

    assert check_ledger().counts["collation"] == 0
    assert check_exact_columns(databases=["default"]) == []
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE accounts_hold MODIFY idempotency_key varchar(128) "
            "COLLATE utf8mb4_unicode_ci NULL"
        )
    try:
        (problem,) = found(check_ledger(), "collation")
        assert "accounts_hold.idempotency_key compares under utf8mb4_unicode_ci" in str(problem)
        assert [w.id for w in check_exact_columns(databases=["default"])] == ["accounts.W003"]
        registered = checks.run_checks(tags=["database"], databases=["default"])
        assert [m.id for m in registered] == ["accounts.W003"]
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE accounts_hold MODIFY idempotency_key varchar(128) "
                "COLLATE utf8mb4_nopad_bin NULL"
            )
    assert check_ledger().ok
