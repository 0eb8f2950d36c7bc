"""
Metadata and effective dates.

* ``metadata``, a JSON object (``{}`` by default), on accounts, transfers,
  holds, batches and declines. On transfers, holds, batches and declines it
  joins the columns their guard triggers keep fixed (an account's stays
  editable).
* ``effective_at`` on transfers and holds: when the movement happened in
  the world. Existing rows take their ``created`` (the backfill runs before
  the column becomes NOT NULL), and it joins the fixed columns too.
* Two indexes for statements by effective date: an account's transfers out,
  and in, by ``effective_at``.

The guard triggers are dropped first and created again at the end with the
longer column lists: SQLite adds these columns by rebuilding the tables,
which drops their triggers (and the partial index of 0006, created again
too), and the backfill must not run into them. On MariaDB/MySQL a JSON
column is LONGTEXT: its guard compares the text as bytes (``BINARY``), so a
change of case is a change.
"""

import importlib

import django.utils.timezone
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")
fingerprints = importlib.import_module(
    "accounts.migrations.0007_exact_identifiers_and_request_fingerprints"
)
batches = importlib.import_module("accounts.migrations.0008_batches")
declines = importlib.import_module("accounts.migrations.0012_declines")

TRANSFER_FIXED = [*batches.TRANSFER_FIXED, "effective_at", "metadata"]
HOLD_FIXED = [*fingerprints.HOLD_FIXED, "effective_at", "metadata"]
BATCH_FIXED = [*batches.BATCH_FIXED, "metadata"]
DECLINE_FIXED = [*declines.FIXED, "metadata"]

#: Columns compared as bytes on MariaDB/MySQL (their text collation may ignore case).
BINARY = {"metadata"}

CHANGED = {
    "postgresql": "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s",
    "mysql": "NOT (OLD.%(c)s <=> NEW.%(c)s)",
    "sqlite": "OLD.%(c)s IS NOT NEW.%(c)s",
}


def _changed(vendor, columns):
    parts = []
    for column in columns:
        if vendor == "mysql" and column in BINARY:
            parts.append("NOT (BINARY OLD.%(c)s <=> BINARY NEW.%(c)s)" % {"c": column})
        else:
            parts.append(CHANGED[vendor] % {"c": column})
    return " OR ".join(parts)


#: The "fixed" trigger of each table: (name, table, columns, a hold's resolution too).
def _tables(transfer, hold, batch, decline):
    return [
        ("accounts_transfer_fixed", "accounts_transfer", transfer, False),
        ("accounts_hold_fixed", "accounts_hold", hold, True),
        ("accounts_batch_fixed", "accounts_batch", batch, False),
        ("accounts_decline_fixed", "accounts_decline", decline, False),
    ]


NEW = _tables(TRANSFER_FIXED, HOLD_FIXED, BATCH_FIXED, DECLINE_FIXED)
OLD = _tables(
    batches.TRANSFER_FIXED, fingerprints.HOLD_FIXED, batches.BATCH_FIXED, declines.FIXED
)


def _drop(vendor, name, table):
    if vendor == "postgresql":
        return "DROP TRIGGER IF EXISTS %s ON %s" % (name, table)
    return "DROP TRIGGER IF EXISTS %s" % name


def fixed_triggers(vendor, tables):
    """Drop and create the "fixed" triggers of ``tables`` (see :func:`_tables`)."""
    if vendor not in CHANGED:
        return []
    statements = []
    for name, table, columns, hold in tables:
        when = _changed(vendor, columns)
        if hold:
            when = "%s OR (OLD.status <> 'active' AND (%s))" % (
                when,
                _changed(vendor, guards.HOLD_RESOLUTION),
            )
        refused = guards.REFUSED % ("UPDATE", table)
        statements.append(_drop(vendor, name, table))
        if vendor == "postgresql":
            statements.append(
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) "
                "EXECUTE FUNCTION accounts_refuse_ledger_change()" % (name, table, when)
            )
        elif vendor == "mysql":
            statements.append(
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
                % (name, table, when, refused)
            )
        else:
            statements.append(
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
                "BEGIN SELECT RAISE(ABORT, '%s'); END" % (name, table, when, refused)
            )
    if vendor == "sqlite":
        # The rebuilt transfer table lost the partial index of 0006.
        statements += [
            "DROP INDEX IF EXISTS accounts_transfer_reversals",
            fingerprints.reversal_index.PARTIAL,
        ]
    return statements


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop_fixed_triggers(apps, schema_editor):
    """None of them runs while the columns change and the backfill writes."""
    vendor = schema_editor.connection.vendor
    if vendor in CHANGED:
        _run(schema_editor, [_drop(vendor, name, table) for name, table, _c, _h in NEW])


def create_new_triggers(apps, schema_editor):
    _run(schema_editor, fixed_triggers(schema_editor.connection.vendor, NEW))


def restore_old_triggers(apps, schema_editor):
    _run(schema_editor, fixed_triggers(schema_editor.connection.vendor, OLD))


def backfill_effective_at(apps, schema_editor):
    """Rows posted before effective dates existed took effect when posted."""
    # A cursor, not schema_editor.execute(): this is data, not DDL (MySQL
    # refuses DDL inside the migration's transaction).
    with schema_editor.connection.cursor() as cursor:
        for table in ("accounts_transfer", "accounts_hold"):
            cursor.execute(
                "UPDATE %s SET effective_at = created WHERE effective_at IS NULL" % table
            )


METADATA_HELP = (
    'Your own facts about the row, as a JSON object: for example {"mcc": "5411", '
    '"merchant": "Teapot & Grinder", "city": "Leeds"}.'
)
EFFECTIVE_HELP = (
    "When the movement happened in the world (a card payment's transaction date), given "
    "by the caller; by default when it was posted, never later. Balances follow the "
    "posting order (created)."
)


def _metadata(help_text=METADATA_HELP):
    return models.JSONField(
        blank=True, default=dict, help_text=help_text, verbose_name="metadata"
    )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0012_declines")]

    operations = [
        migrations.RunPython(
            drop_fixed_triggers, restore_old_triggers, atomic=False, elidable=False
        ),
        migrations.AddField(model_name="account", name="metadata", field=_metadata()),
        migrations.AddField(model_name="batch", name="metadata", field=_metadata()),
        migrations.AddField(
            model_name="decline",
            name="metadata",
            field=_metadata("The metadata of the refused request, as the caller gave it."),
        ),
        migrations.AddField(model_name="hold", name="metadata", field=_metadata()),
        migrations.AddField(model_name="transfer", name="metadata", field=_metadata()),
        migrations.AddField(
            model_name="hold",
            name="effective_at",
            field=models.DateTimeField(null=True, verbose_name="effective at"),
        ),
        migrations.AddField(
            model_name="transfer",
            name="effective_at",
            field=models.DateTimeField(null=True, verbose_name="effective at"),
        ),
        migrations.RunPython(
            backfill_effective_at, migrations.RunPython.noop, elidable=False
        ),
        migrations.AlterField(
            model_name="hold",
            name="effective_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text=EFFECTIVE_HELP,
                verbose_name="effective at",
            ),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="effective_at",
            field=models.DateTimeField(
                default=django.utils.timezone.now,
                help_text=EFFECTIVE_HELP,
                verbose_name="effective at",
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                fields=["source", "effective_at"], name="accounts_transfer_src_eff"
            ),
        ),
        migrations.AddIndex(
            model_name="transfer",
            index=models.Index(
                fields=["destination", "effective_at"], name="accounts_transfer_dst_eff"
            ),
        ),
        migrations.RunPython(
            create_new_triggers, drop_fixed_triggers, atomic=False, elidable=False
        ),
    ]
