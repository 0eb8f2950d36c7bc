"""
PostgreSQL: the two-legs rule checked once per statement, not per row at COMMIT.

Migration 0005 refused, at COMMIT, a transfer without exactly two legs
summing to zero, with a deferred constraint trigger on each inserted
transfer and each inserted leg: three PL/pgSQL calls, each with its own
query, per transfer. A batch of 1,000 transfers ran 3,000 of them at
COMMIT, about a third of its time in the database.

The same rule is now checked by one trigger per statement on each table,
``AFTER INSERT ... REFERENCING NEW TABLE ... FOR EACH STATEMENT``: when a
statement that inserts transfers or legs ends, every transfer it touched
must have exactly two legs summing to zero, or the statement fails. The
ledger writes a transfer and its legs in one statement (a data-modifying
``WITH`` on PostgreSQL: a single transfer, and a batch's transfers with all
their legs), and the triggers of a statement's ``WITH`` clauses run once
the whole statement has ended, so they see both. Legs can never be updated
or deleted (0005), so the rule holds from then on.

Stricter than before: a transfer and its legs written by separate
statements are refused at the first, where they used to be accepted if the
transaction ended balanced. The checks read each transfer's legs through
the index on ``transfer_id`` (one lookup per transfer the statement
inserted), never by scanning the table.

MariaDB/MySQL and SQLite have no statement-level triggers and had no
deferred ones: nothing changes there (``check_ledger`` finds a transfer
without its two legs).
"""

import importlib

from django.db import migrations

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

# The transfers a statement touched, and the first of them whose legs break
# the rule. LATERAL: one index lookup per transfer, whatever the planner
# guesses of a transition table's size.
CHECK = """
        CREATE OR REPLACE FUNCTION %(function)s() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            legs bigint;
            total numeric;
        BEGIN
            SELECT touched.id, found.legs, found.total INTO transfer, legs, total
              FROM (SELECT DISTINCT %(column)s AS id FROM new_rows) AS touched
              CROSS JOIN LATERAL (
                  SELECT count(*) AS legs, coalesce(sum(amount), 0) AS total
                    FROM accounts_transaction WHERE transfer_id = touched.id
              ) AS found
             WHERE found.legs <> 2 OR found.total <> 0
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: transfer %% has %% leg(s) summing to %%: a transfer needs '
                    'exactly two legs that sum to zero', transfer, legs, total
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        END
        $$
"""

POSTGRESQL = [
    "DROP TRIGGER IF EXISTS accounts_transaction_balanced ON accounts_transaction",
    "DROP TRIGGER IF EXISTS accounts_transfer_balanced ON accounts_transfer",
    "DROP FUNCTION IF EXISTS accounts_check_transfer_legs()",
    CHECK % {"function": "accounts_check_new_transfers", "column": "id"},
    CHECK % {"function": "accounts_check_new_legs", "column": "transfer_id"},
    "CREATE TRIGGER accounts_transfer_balanced AFTER INSERT ON accounts_transfer "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION accounts_check_new_transfers()",
    "CREATE TRIGGER accounts_transaction_balanced AFTER INSERT ON accounts_transaction "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
    "EXECUTE FUNCTION accounts_check_new_legs()",
]

POSTGRESQL_REVERSE = [
    "DROP TRIGGER IF EXISTS accounts_transaction_balanced ON accounts_transaction",
    "DROP TRIGGER IF EXISTS accounts_transfer_balanced ON accounts_transfer",
    "DROP FUNCTION IF EXISTS accounts_check_new_legs()",
    "DROP FUNCTION IF EXISTS accounts_check_new_transfers()",
    # 0005's function and deferred constraint triggers, as they were.
    *[
        sql
        for sql in guards.postgresql()
        if "accounts_check_transfer_legs" in sql and "refuse_ledger_change" not in sql
    ],
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRESQL:
            schema_editor.execute(sql, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for sql in POSTGRESQL_REVERSE:
            schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0014_notified_at")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
