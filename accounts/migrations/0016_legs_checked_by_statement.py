"""
PostgreSQL: each new leg's transfer and account checked once per statement.

A leg's two foreign keys (its transfer, its account) were checked row by row
at COMMIT: four of the seven key checks of a transfer, each a query of its
own. A batch of 100 transfers ran 400 of them, a tenth of its time.

The legs' statement-level guard (migration 0015) now also refuses, when a
statement that inserts legs ends, a leg whose transfer does not exist or
whose account is neither that transfer's source nor its destination
(after the two-legs rule, whose refusals read as before). That
is stricter than the foreign keys were (a leg on an unrelated account was
accepted), and makes them redundant, so they are dropped:

* a leg's account is its transfer's source or destination, and the
  transfer's own foreign keys keep those accounts from being deleted;
* transfers and legs are never deleted or changed (0005), so a leg's
  transfer stays, and so does the leg's place on it.

The check reads each leg's transfer through its primary key (LATERAL: one
index lookup per leg, whatever the planner guesses of a transition
table's size). Django's model state keeps the foreign keys: they are still
what the ORM joins on.

MariaDB/MySQL and SQLite have no statement-level triggers: their foreign
keys stay as they are.
"""

import importlib

from django.db import migrations

previous = importlib.import_module("accounts.migrations.0015_statement_level_legs_guard")

LEGS_CHECK = """
        CREATE OR REPLACE FUNCTION accounts_check_new_legs() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            account bigint;
            legs bigint;
            total numeric;
        BEGIN
            SELECT touched.id, found.legs, found.total INTO transfer, legs, total
              FROM (SELECT DISTINCT transfer_id AS id FROM new_rows) AS touched
              CROSS JOIN LATERAL (
                  SELECT count(*) AS legs, coalesce(sum(amount), 0) AS total
                    FROM accounts_transaction WHERE transfer_id = touched.id
              ) AS found
             WHERE found.legs <> 2 OR found.total <> 0
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: transfer % has % leg(s) summing to %: a transfer needs '
                    'exactly two legs that sum to zero', transfer, legs, total
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            SELECT leg.transfer_id, leg.account_id INTO transfer, account
              FROM new_rows AS leg
              LEFT JOIN LATERAL (
                  SELECT t.source_id, t.destination_id
                    FROM accounts_transfer t WHERE t.id = leg.transfer_id
              ) AS owner ON true
             WHERE owner.source_id IS NULL
                OR leg.account_id NOT IN (owner.source_id, owner.destination_id)
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: a leg of transfer % on account %: a leg belongs to an '
                    'existing transfer, on its source or its destination', transfer, account
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN NULL;
        END
        $$
"""

#: The legs' foreign keys, as migration 0001 made them (re-created going back).
FOREIGN_KEYS = [
    ("accounts_transaction_account_id_fk", "account_id", "accounts_account"),
    ("accounts_transaction_transfer_id_fk", "transfer_id", "accounts_transfer"),
]

DROP_FOREIGN_KEYS = """
        DO $$
        DECLARE
            name text;
        BEGIN
            FOR name IN
                SELECT conname FROM pg_constraint
                 WHERE conrelid = 'accounts_transaction'::regclass AND contype = 'f'
            LOOP
                EXECUTE format('ALTER TABLE accounts_transaction DROP CONSTRAINT %I', name);
            END LOOP;
        END
        $$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEGS_CHECK, params=None)
        schema_editor.execute(DROP_FOREIGN_KEYS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, column, table in FOREIGN_KEYS:
            schema_editor.execute(
                "ALTER TABLE accounts_transaction ADD CONSTRAINT %s FOREIGN KEY (%s) "
                "REFERENCES %s (id) DEFERRABLE INITIALLY DEFERRED" % (name, column, table),
                params=None,
            )
        schema_editor.execute(
            previous.CHECK % {"function": "accounts_check_new_legs", "column": "transfer_id"},
            params=None,
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_statement_level_legs_guard")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
