"""
PostgreSQL: each new transfer's source and destination checked once per
statement, and an account that transfers name refused deletion by a trigger.

A transfer's foreign keys to its two accounts were checked row by row at
COMMIT, each a query of its own: two per transfer, the last key checks left
on the write path, about a twelfth of a batch's time in the database.

The transfers' statement-level guard (migrations 0015 and 0016) now also
checks, when a statement that inserts transfers ends, that every account a
new transfer names exists, and takes the lock the foreign keys took on each
of them (``FOR KEY SHARE``: a transaction deleting one waits for this one,
then finds the transfer). Each account is read once per statement, through
its primary key. The two foreign keys are then dropped, and what they
refused is refused by a trigger instead: deleting an account (or changing
its key) while a transfer names it, which the foreign keys did at COMMIT,
the trigger does at once. Django's model state keeps the foreign keys:
they are still what the ORM joins on, and ``PROTECT`` still refuses the
deletion first in Python.

MariaDB/MySQL and SQLite have no statement-level triggers: their foreign
keys stay as they are.
"""

import importlib

from django.db import migrations

previous = importlib.import_module("accounts.migrations.0016_keys_checked_by_statement")

# The accounts the statement's transfers name, each locked as a foreign key
# would lock it; then, if fewer were found than named, the first missing one.
TRANSFER_ACCOUNTS = """\
            SELECT count(*), count(held.id) INTO wanted, present
              FROM (SELECT DISTINCT side.id
                      FROM new_rows AS added
                     CROSS JOIN LATERAL (VALUES (added.source_id), (added.destination_id))
                           AS side(id)) AS named
              LEFT JOIN LATERAL (
                  SELECT a.id FROM accounts_account a WHERE a.id = named.id FOR KEY SHARE
              ) AS held ON true;
            IF wanted <> present THEN
                SELECT added.id, side.id INTO transfer, account
                  FROM new_rows AS added
                 CROSS JOIN LATERAL (VALUES (added.source_id), (added.destination_id))
                       AS side(id)
                 WHERE (SELECT a.id FROM accounts_account a WHERE a.id = side.id) IS NULL
                 LIMIT 1;
                RAISE EXCEPTION 'accounts: transfer % names account %, which does not exist',
                    transfer, account
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
"""

TRANSFERS_CHECK = """
        CREATE OR REPLACE FUNCTION accounts_check_new_transfers() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            batch bigint;
            account bigint;
            wanted bigint;
            present bigint;
            legs bigint;
            total numeric;
        BEGIN
{two_legs}{batch}{accounts}            RETURN NULL;
        END
        $$
""".format(
    two_legs=previous.TWO_LEGS % {"column": "id"},
    batch=previous.TRANSFER_BATCH,
    accounts=TRANSFER_ACCOUNTS,
)

# What the foreign keys refused: an account that a transfer names cannot go,
# nor take another key.
ACCOUNT_KEPT = """
        CREATE OR REPLACE FUNCTION accounts_account_kept() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
        BEGIN
            IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
                RETURN NEW;
            END IF;
            SELECT t.id INTO transfer FROM accounts_transfer t WHERE t.source_id = OLD.id LIMIT 1;
            IF NOT FOUND THEN
                SELECT t.id INTO transfer FROM accounts_transfer t
                 WHERE t.destination_id = OLD.id LIMIT 1;
            END IF;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: account % is named by transfer % (accounts_transfer): '
                    'it cannot be deleted or take another key', OLD.id, transfer
                    USING ERRCODE = 'foreign_key_violation';
            END IF;
            RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
        END
        $$;
        CREATE TRIGGER accounts_account_kept
            BEFORE DELETE OR UPDATE OF id ON accounts_account
            FOR EACH ROW EXECUTE FUNCTION accounts_account_kept();
"""

#: The foreign keys dropped (the transfers' only keys to accounts), re-created
#: going back: constraint name, column.
FOREIGN_KEYS = [
    ("accounts_transfer_source_id_fk", "source_id"),
    ("accounts_transfer_destination_id_fk", "destination_id"),
]

DROP_FOREIGN_KEYS = """
        DO $$
        DECLARE
            found record;
        BEGIN
            FOR found IN
                SELECT c.conname FROM pg_constraint c
                 WHERE c.contype = 'f'
                   AND c.conrelid = 'accounts_transfer'::regclass
                   AND c.confrelid = 'accounts_account'::regclass
            LOOP
                EXECUTE format('ALTER TABLE accounts_transfer DROP CONSTRAINT %I', found.conname);
            END LOOP;
        END
        $$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(TRANSFERS_CHECK, params=None)
        schema_editor.execute(ACCOUNT_KEPT, params=None)
        schema_editor.execute(DROP_FOREIGN_KEYS, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name, column in FOREIGN_KEYS:
            schema_editor.execute(
                "ALTER TABLE accounts_transfer ADD CONSTRAINT %s FOREIGN KEY (%s) "
                "REFERENCES accounts_account (id) DEFERRABLE INITIALLY DEFERRED" % (name, column),
                params=None,
            )
        schema_editor.execute(
            "DROP TRIGGER accounts_account_kept ON accounts_account;"
            " DROP FUNCTION accounts_account_kept()",
            params=None,
        )
        schema_editor.execute(previous.TRANSFERS_CHECK, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0017_transfer_indexes")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
