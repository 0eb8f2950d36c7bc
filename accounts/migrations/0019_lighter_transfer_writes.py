"""
PostgreSQL: less work for the database on every transfer written, with the
same rows refused.

**The statement guards.** A statement that inserts a transfer and its legs
(every write of the ledger) ran the two-legs rule twice: once from the
transfers' guard, once from the legs' guard, each reading every leg of
every transfer the statement touched. Then the legs' guard read each new
leg's transfer again for its owner check, once per leg. Now:

* the legs' guard reads, per transfer its new legs belong to, the transfer
  once (its source and destination) and its legs once, and checks both
  rules in that one pass: exactly two legs summing to zero, and every leg
  on the transfer's source or destination (of a transfer that exists).
  Where both rules are broken, the two-legs refusal is the one raised, as
  before;
* the transfers' guard only checks that each new transfer has a leg. A
  transfer that has one got it in the same statement (a leg of a transfer
  not there yet is refused when its own statement ends, 0016), so the
  legs' guard of that statement checks all its legs. A transfer with none
  is refused with the same message as before ("has 0 leg(s)").

Each lookup is still a scalar subquery or a ``LATERAL`` aggregate through a
primary key or the legs' ``(transfer_id, account_id)`` index: no plan the
planner could pick scans a table, however large.

**Indexes of nullable columns.** A transfer's ``idempotency_key``,
``merchant_reference``, ``user`` and ``batch`` are empty on most
transfers, and each of their indexes took an entry for every transfer, an
entry no lookup ever reads: the ledger looks them up by equality, which
never matches a NULL. They are now partial indexes of the rows where the
column is set (the key stays unique among those). Every lookup by
equality, the foreign keys' and ``IN`` lists included, still uses them.

MariaDB/MySQL has no partial indexes and SQLite no statement-level
triggers: nothing changes there. Django's model state is unchanged.
"""

import importlib

from django.db import migrations

guards = importlib.import_module("accounts.migrations.0016_keys_checked_by_statement")
accounts_guard = importlib.import_module(
    "accounts.migrations.0018_transfer_accounts_checked_by_statement"
)

# Per transfer the statement's legs belong to: its owners (NULL: no such
# transfer), read once through the primary key, and its legs, read once
# through (transfer_id, account_id). OFFSET 0 keeps the owners a column of
# their own, read once per transfer, not once per use.
LEGS_CHECK = """
        CREATE OR REPLACE FUNCTION accounts_check_new_legs() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            account bigint;
            legs bigint;
            total numeric;
        BEGIN
            SELECT touched.id, found.legs, found.total, found.stray
              INTO transfer, legs, total, account
              FROM (
                  SELECT touched.id, (
                      SELECT ARRAY[t.source_id, t.destination_id]
                        FROM accounts_transfer t WHERE t.id = touched.id
                  ) AS owners
                    FROM (SELECT DISTINCT transfer_id AS id FROM new_rows) AS touched
                  OFFSET 0
              ) AS touched
              CROSS JOIN LATERAL (
                  SELECT count(*) AS legs, coalesce(sum(l.amount), 0) AS total,
                         min(l.account_id) FILTER (
                             WHERE touched.owners IS NULL
                                OR NOT l.account_id = ANY (touched.owners)
                         ) AS stray
                    FROM accounts_transaction l WHERE l.transfer_id = touched.id
              ) AS found
             WHERE found.legs <> 2 OR found.total <> 0 OR found.stray IS NOT NULL
             LIMIT 1;
            IF FOUND AND (legs <> 2 OR total <> 0) THEN
                RAISE EXCEPTION
                    'accounts: transfer % has % leg(s) summing to %: a transfer needs '
                    'exactly two legs that sum to zero', transfer, legs, total
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
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

# A new transfer with no leg at all: the one case the legs' guard cannot see.
# The first leg in the order of the legs' (transfer_id, account_id) index:
# "LIMIT 1" or EXISTS would let the planner hope a scan of the whole table
# finds a leg early.
HAS_LEGS = """\
            SELECT added.id INTO transfer FROM new_rows AS added
             WHERE (SELECT min(l.account_id) FROM accounts_transaction l
                     WHERE l.transfer_id = added.id) IS NULL
             LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION
                    'accounts: transfer % has 0 leg(s) summing to 0: a transfer needs '
                    'exactly two legs that sum to zero', transfer
                    USING ERRCODE = 'integrity_constraint_violation';
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
        BEGIN
{has_legs}{batch}{accounts}            RETURN NULL;
        END
        $$
""".format(
    has_legs=HAS_LEGS,
    batch=guards.TRANSFER_BATCH,
    accounts=accounts_guard.TRANSFER_ACCOUNTS,
)

#: The transfers' nullable columns whose indexes become partial: column,
#: and whether the index is the column's unique constraint.
PARTIAL = [
    ("idempotency_key", True),
    ("merchant_reference", False),
    ("user_id", False),
    ("batch_id", False),
]


def _index_name(connection, column, unique):
    """The name of the transfers' index on ``column`` alone (its unique constraint's)."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "accounts_transfer")
    names = sorted(
        name
        for name, info in found.items()
        if info["columns"] == [column]
        and bool(info["unique"]) == unique
        # A unique constraint is not reported as an index; a foreign key is neither.
        and (info["index"] or info["unique"])
        and not info["primary_key"]
    )
    if len(names) != 1:
        raise RuntimeError(
            "accounts_transfer: expected one %sindex on %s, found %r"
            % ("unique " if unique else "", column, names)
        )
    return names[0]


def _rebuild(schema_editor, column, unique, *, partial):
    connection = schema_editor.connection
    name = _index_name(connection, column, unique)
    with connection.cursor() as cursor:
        # A unique constraint (Django's unique=True) goes with its index.
        cursor.execute(
            "SELECT count(*) FROM pg_constraint WHERE conname = %s "
            "AND conrelid = 'accounts_transfer'::regclass",
            [name],
        )
        constraint = cursor.fetchone()[0] > 0
    if constraint:
        schema_editor.execute("ALTER TABLE accounts_transfer DROP CONSTRAINT %s" % name, None)
    else:
        schema_editor.execute("DROP INDEX %s" % name, None)
    if partial:
        schema_editor.execute(
            "CREATE %sINDEX %s ON accounts_transfer (%s) WHERE %s IS NOT NULL"
            % ("UNIQUE " if unique else "", name, column, column),
            None,
        )
    elif unique:
        schema_editor.execute(
            "ALTER TABLE accounts_transfer ADD CONSTRAINT %s UNIQUE (%s)" % (name, column), None
        )
    else:
        schema_editor.execute("CREATE INDEX %s ON accounts_transfer (%s)" % (name, column), None)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(LEGS_CHECK, params=None)
        schema_editor.execute(TRANSFERS_CHECK, params=None)
        for column, unique in PARTIAL:
            _rebuild(schema_editor, column, unique, partial=True)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for column, unique in PARTIAL:
            _rebuild(schema_editor, column, unique, partial=False)
        schema_editor.execute(guards.LEGS_CHECK, params=None)
        schema_editor.execute(accounts_guard.TRANSFERS_CHECK, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0018_transfer_accounts_checked_by_statement")]

    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
