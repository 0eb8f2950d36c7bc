"""
PostgreSQL: each new leg's transfer and account, and each new transfer's
batch, checked once per statement.

A leg's two foreign keys (its transfer, its account) and a transfer's batch
were checked row by row at COMMIT: five of the seven key checks of a
transfer in a batch, each a query of its own. A batch of 100 transfers ran
500 of them, an eighth of its time.

The legs' statement-level guard (migration 0015) now also refuses, when a
statement that inserts legs ends, a leg whose transfer does not exist or
whose account is neither that transfer's source nor its destination
(after the two-legs rule, whose refusals read as before). That is
stricter than the foreign keys were (a leg on an unrelated account was
accepted), and makes them redundant, so they are dropped:

* a leg's account is its transfer's source or destination, and the
  transfer's own foreign keys keep those accounts from being deleted;
* transfers and legs are never deleted or changed (0005), so a leg's
  transfer stays, and so does the leg's place on it.

Likewise the transfers' guard now refuses a transfer whose batch does not
exist, and the transfers' foreign key to their batch is dropped: batches,
and the transfers' ``batch``, are never deleted or changed (0008). The
transfers' keys to their accounts, parent and user stay: accounts and users
can be deleted, and those keys are what refuses it.

The checks read each leg's transfer, and each batch, through its primary
key: a scalar subquery, one index lookup each, which the planner cannot
turn into a join that scans the whole table, whatever it guesses of a
transition table's size. Django's model state keeps the foreign keys:
they are still what the ORM joins on.

MariaDB/MySQL and SQLite have no statement-level triggers: their foreign
keys stay as they are.
"""

import importlib

from django.db import migrations

previous = importlib.import_module("accounts.migrations.0015_statement_level_legs_guard")

# 0015's two-legs rule, as it was: the first check of both functions.
TWO_LEGS = previous.CHECK.split("BEGIN\n", 1)[1].split("            RETURN NULL;", 1)[0]

FUNCTION = """
        CREATE OR REPLACE FUNCTION {function}() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            {found} bigint;
            legs bigint;
            total numeric;
        BEGIN
{two_legs}{check}            RETURN NULL;
        END
        $$
"""

# A leg of a transfer that does not exist, or on neither of its accounts.
LEG_OWNER = """\
            SELECT leg.transfer_id, leg.account_id INTO transfer, account
              FROM (
                  SELECT added.transfer_id, added.account_id, (
                      SELECT ARRAY[t.source_id, t.destination_id]
                        FROM accounts_transfer t WHERE t.id = added.transfer_id
                  ) AS owners
                    FROM new_rows AS added
              ) AS leg
             WHERE leg.owners IS NULL OR NOT leg.account_id = ANY (leg.owners)
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: a leg of transfer % on account %: a leg belongs to an '
                    'existing transfer, on its source or its destination', transfer, account
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
"""

# A transfer in a batch that does not exist.
TRANSFER_BATCH = """\
            SELECT touched.id INTO batch
              FROM (SELECT DISTINCT batch_id AS id FROM new_rows WHERE batch_id IS NOT NULL)
                   AS touched
             WHERE (SELECT b.id FROM accounts_batch b WHERE b.id = touched.id) IS NULL
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'accounts: batch % does not exist', batch
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
"""

LEGS_CHECK = FUNCTION.format(
    function="accounts_check_new_legs",
    found="account",
    two_legs=TWO_LEGS % {"column": "transfer_id"},
    check=LEG_OWNER,
)
TRANSFERS_CHECK = FUNCTION.format(
    function="accounts_check_new_transfers",
    found="batch",
    two_legs=TWO_LEGS % {"column": "id"},
    check=TRANSFER_BATCH,
)

#: The foreign keys dropped, as migrations 0001 and 0008 made them (re-created
#: going back): table, constraint name, column, table referred to.
FOREIGN_KEYS = [
    ("accounts_transaction", "accounts_transaction_account_id_fk", "account_id", "accounts_account"),
    ("accounts_transaction", "accounts_transaction_transfer_id_fk", "transfer_id", "accounts_transfer"),
    ("accounts_transfer", "accounts_transfer_batch_id_fk", "batch_id", "accounts_batch"),
]

DROP_FOREIGN_KEYS = """
        DO $$
        DECLARE
            found record;
        BEGIN
            FOR found IN
                SELECT conrelid::regclass AS owner, conname FROM pg_constraint
                 WHERE contype = 'f' AND (
                       conrelid = 'accounts_transaction'::regclass
                    OR (conrelid = 'accounts_transfer'::regclass
                        AND confrelid = 'accounts_batch'::regclass))
            LOOP
                EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', found.owner, found.conname);
            END LOOP;
        END
        $$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEGS_CHECK, params=None)
        schema_editor.execute(TRANSFERS_CHECK, params=None)
        schema_editor.execute(DROP_FOREIGN_KEYS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for table, name, column, target in FOREIGN_KEYS:
            schema_editor.execute(
                "ALTER TABLE %s ADD CONSTRAINT %s FOREIGN KEY (%s) "
                "REFERENCES %s (id) DEFERRABLE INITIALLY DEFERRED" % (table, name, column, target),
                params=None,
            )
        for function, column in (
            ("accounts_check_new_legs", "transfer_id"),
            ("accounts_check_new_transfers", "id"),
        ):
            schema_editor.execute(
                previous.CHECK % {"function": function, "column": column}, params=None
            )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_statement_level_legs_guard")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
