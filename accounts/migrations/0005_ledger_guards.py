"""
Guards in the database itself, so the ledger holds even against SQL that
bypasses the facade.

PostgreSQL
    Triggers refuse UPDATE and DELETE of transactions, DELETE of transfers
    and holds, and UPDATE of their financial columns; a hold may leave
    "active" once. A deferred constraint trigger refuses a COMMIT in which a
    transfer does not have exactly two legs summing to zero.
MariaDB / MySQL
    The same refusals by BEFORE triggers, except that DELETE is allowed
    while the session has ``foreign_key_checks`` off, which is how Django's
    ``flush`` (and a deliberate maintenance session) empties tables. MySQL
    has no deferred triggers, so the two-legs rule is not enforced at
    commit (the facade and ``check_ledger`` enforce it).
SQLite
    UPDATE refusals only: Django's ``flush`` empties SQLite tables with
    DELETE, so DELETE triggers would break test teardown, and SQLite has no
    deferred triggers.

Columns that hold personal data (``username``, ``description``,
``resolved_by``, ``user_id``) stay writable, so they can be erased and
deleting a user can set ``user_id`` to NULL.

The SQL lives here, not in the app, so that this migration means the same
thing whenever it runs.
"""

from django.db import migrations

TRANSFER_FIXED = [
    "reference",
    "source_id",
    "destination_id",
    "currency",
    "amount",
    "parent_id",
    "merchant_reference",
    "idempotency_key",
    "created",
]
HOLD_FIXED = [
    "reference",
    "source_id",
    "destination_id",
    "currency",
    "amount",
    "expires_at",
    "merchant_reference",
    "idempotency_key",
    "created",
]
# Once a hold has left "active", its resolution is fixed too.
HOLD_RESOLUTION = ["status", "capture_id", "resolved_at"]

REFUSED = "accounts: %s of %s refused: ledger rows are append-only"


def _changed(columns, distinct):
    return " OR ".join(distinct % {"c": c} for c in columns)


def postgresql():
    changed = "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s"
    return [
        """
        CREATE OR REPLACE FUNCTION accounts_refuse_ledger_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'accounts: % of % row % refused: ledger rows are append-only',
                TG_OP, TG_TABLE_NAME, OLD.id
                USING ERRCODE = 'integrity_constraint_violation',
                      HINT = 'Correct a transfer with accounts.facade.reverse(); erase '
                             'personal data with erase_personal_data().';
        END
        $$
        """,
        """
        CREATE OR REPLACE FUNCTION accounts_check_transfer_legs() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            transfer bigint;
            legs integer;
            total numeric;
        BEGIN
            IF TG_TABLE_NAME = 'accounts_transfer' THEN
                transfer := NEW.id;
            ELSE
                transfer := NEW.transfer_id;
            END IF;
            SELECT count(*), coalesce(sum(amount), 0) INTO legs, total
              FROM accounts_transaction WHERE transfer_id = transfer;
            IF legs <> 2 OR total <> 0 THEN
                RAISE EXCEPTION
                    'accounts: transfer % has % leg(s) summing to %: a transfer needs '
                    'exactly two legs that sum to zero', transfer, legs, total
                    USING ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NULL;
        END
        $$
        """,
        "CREATE TRIGGER accounts_transaction_append_only BEFORE UPDATE OR DELETE "
        "ON accounts_transaction FOR EACH ROW EXECUTE FUNCTION accounts_refuse_ledger_change()",
        "CREATE TRIGGER accounts_transfer_no_delete BEFORE DELETE ON accounts_transfer "
        "FOR EACH ROW EXECUTE FUNCTION accounts_refuse_ledger_change()",
        "CREATE TRIGGER accounts_transfer_fixed BEFORE UPDATE ON accounts_transfer FOR EACH ROW "
        "WHEN (%s) EXECUTE FUNCTION accounts_refuse_ledger_change()"
        % _changed(TRANSFER_FIXED, changed),
        "CREATE TRIGGER accounts_hold_no_delete BEFORE DELETE ON accounts_hold "
        "FOR EACH ROW EXECUTE FUNCTION accounts_refuse_ledger_change()",
        "CREATE TRIGGER accounts_hold_fixed BEFORE UPDATE ON accounts_hold FOR EACH ROW "
        "WHEN (%s OR (OLD.status <> 'active' AND (%s))) "
        "EXECUTE FUNCTION accounts_refuse_ledger_change()"
        % (_changed(HOLD_FIXED, changed), _changed(HOLD_RESOLUTION, changed)),
        "CREATE CONSTRAINT TRIGGER accounts_transfer_balanced AFTER INSERT ON accounts_transfer "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION accounts_check_transfer_legs()",
        "CREATE CONSTRAINT TRIGGER accounts_transaction_balanced AFTER INSERT "
        "ON accounts_transaction DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
        "EXECUTE FUNCTION accounts_check_transfer_legs()",
    ]


POSTGRESQL_DROP = [
    "DROP TRIGGER IF EXISTS accounts_transaction_balanced ON accounts_transaction",
    "DROP TRIGGER IF EXISTS accounts_transfer_balanced ON accounts_transfer",
    "DROP TRIGGER IF EXISTS accounts_hold_fixed ON accounts_hold",
    "DROP TRIGGER IF EXISTS accounts_hold_no_delete ON accounts_hold",
    "DROP TRIGGER IF EXISTS accounts_transfer_fixed ON accounts_transfer",
    "DROP TRIGGER IF EXISTS accounts_transfer_no_delete ON accounts_transfer",
    "DROP TRIGGER IF EXISTS accounts_transaction_append_only ON accounts_transaction",
    "DROP FUNCTION IF EXISTS accounts_check_transfer_legs()",
    "DROP FUNCTION IF EXISTS accounts_refuse_ledger_change()",
]


def mysql():
    changed = "NOT (OLD.%(c)s <=> NEW.%(c)s)"

    def refuse(name, when, table, operation, condition=None):
        signal = "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'" % (
            REFUSED % (operation, table)
        )
        if condition:
            signal = "BEGIN IF %s THEN %s; END IF; END" % (condition, signal)
        return "CREATE TRIGGER %s %s ON %s FOR EACH ROW %s" % (name, when, table, signal)

    # Django's flush turns foreign key checks off before its DELETEs.
    deleting = "@@foreign_key_checks = 1"
    return [
        refuse("accounts_transaction_no_update", "BEFORE UPDATE", "accounts_transaction", "UPDATE"),
        refuse(
            "accounts_transaction_no_delete",
            "BEFORE DELETE",
            "accounts_transaction",
            "DELETE",
            deleting,
        ),
        refuse(
            "accounts_transfer_no_delete", "BEFORE DELETE", "accounts_transfer", "DELETE", deleting
        ),
        refuse(
            "accounts_transfer_fixed",
            "BEFORE UPDATE",
            "accounts_transfer",
            "UPDATE",
            _changed(TRANSFER_FIXED, changed),
        ),
        refuse("accounts_hold_no_delete", "BEFORE DELETE", "accounts_hold", "DELETE", deleting),
        refuse(
            "accounts_hold_fixed",
            "BEFORE UPDATE",
            "accounts_hold",
            "UPDATE",
            "%s OR (OLD.status <> 'active' AND (%s))"
            % (_changed(HOLD_FIXED, changed), _changed(HOLD_RESOLUTION, changed)),
        ),
    ]


MYSQL_DROP = [
    "DROP TRIGGER IF EXISTS %s" % name
    for name in (
        "accounts_hold_fixed",
        "accounts_hold_no_delete",
        "accounts_transfer_fixed",
        "accounts_transfer_no_delete",
        "accounts_transaction_no_delete",
        "accounts_transaction_no_update",
    )
]


def sqlite():
    changed = "OLD.%(c)s IS NOT NEW.%(c)s"

    def refuse(name, table, condition=None):
        when = " WHEN %s" % condition if condition else ""
        return "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW%s BEGIN SELECT RAISE(ABORT, '%s'); END" % (
            name,
            table,
            when,
            REFUSED % ("UPDATE", table),
        )

    return [
        refuse("accounts_transaction_no_update", "accounts_transaction"),
        refuse("accounts_transfer_fixed", "accounts_transfer", _changed(TRANSFER_FIXED, changed)),
        refuse(
            "accounts_hold_fixed",
            "accounts_hold",
            "%s OR (OLD.status <> 'active' AND (%s))"
            % (_changed(HOLD_FIXED, changed), _changed(HOLD_RESOLUTION, changed)),
        ),
    ]


SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS %s" % name
    for name in ("accounts_hold_fixed", "accounts_transfer_fixed", "accounts_transaction_no_update")
]


def create_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statements = {"postgresql": postgresql, "mysql": mysql, "sqlite": sqlite}.get(vendor)
    for sql in statements() if statements else []:
        schema_editor.execute(sql, params=None)


def drop_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in {"postgresql": POSTGRESQL_DROP, "mysql": MYSQL_DROP, "sqlite": SQLITE_DROP}.get(
        vendor, []
    ):
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0004_expiry_index")]

    operations = [
        # Not atomic: MySQL cannot run DDL inside a transaction (on PostgreSQL
        # the whole migration still runs in one).
        migrations.RunPython(create_guards, drop_guards, atomic=False, elidable=False),
    ]
