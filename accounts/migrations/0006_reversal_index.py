"""
Index transfers by the transfer they reverse, only where there is one.

Nearly every transfer reverses nothing. A plain index on ``parent_id`` is
then mostly NULLs, and after ``ANALYZE`` SQLite's planner judges it useless
and scans the whole table for "the reversals of transfer X" (PostgreSQL
copes, but the partial index is smaller there too). MySQL and MariaDB have
no partial indexes; InnoDB keeps the index it made for the foreign key.

SQLite alters a column by rebuilding the table, which drops the table's
triggers: the guards of migration 0005 are created again after the rebuild
(and after the rebuild that reverting this migration does).
"""

import importlib

import django.db.models.deletion
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

PARTIAL = (
    "CREATE INDEX accounts_transfer_reversals ON accounts_transfer (parent_id) "
    "WHERE parent_id IS NOT NULL"
)


def restore_sqlite_guards(apps, schema_editor):
    if schema_editor.connection.vendor == "sqlite":
        for sql in guards.SQLITE_DROP + guards.sqlite():
            schema_editor.execute(sql, params=None)


def create_partial_index(apps, schema_editor):
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute(PARTIAL)
    restore_sqlite_guards(apps, schema_editor)


def drop_partial_index(apps, schema_editor):
    if schema_editor.connection.vendor in ("postgresql", "sqlite"):
        schema_editor.execute("DROP INDEX IF EXISTS accounts_transfer_reversals")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_ledger_guards"),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, restore_sqlite_guards, elidable=False),
        migrations.AlterField(
            model_name="transfer",
            name="parent",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reversals",
                to="accounts.transfer",
                verbose_name="reverses",
            ),
        ),
        migrations.RunPython(create_partial_index, drop_partial_index, elidable=False),
    ]
