"""
Batches: transfers posted together (``facade.transfer_many``).

A ``Batch`` row is append-only like a transfer: the database refuses its
deletion and any change of its reference, mode, reversed batch, key,
request or creation time (on SQLite, changes only, as for transfers). A
transfer's batch and position join the columns its guard keeps fixed.
SQLite rebuilds the transfer table to add the columns, which drops its
triggers and the partial index of 0006: they are created again.
"""

import importlib

import accounts.fields
import accounts.models
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")
previous = importlib.import_module(
    "accounts.migrations.0007_exact_identifiers_and_request_fingerprints"
)

TRANSFER_FIXED = [*previous.TRANSFER_FIXED, "batch_id", "batch_position"]
BATCH_FIXED = [
    "reference",
    "atomic",
    "size",
    "reverses_id",
    "idempotency_key",
    "request_fingerprint",
    "created",
]


def batch_guards(vendor):
    """Refuse changes to a batch's fixed columns, and (but on SQLite) its deletion."""
    table, refused = "accounts_batch", guards.REFUSED % ("UPDATE", "accounts_batch")
    if vendor == "postgresql":
        changed = guards._changed(BATCH_FIXED, "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_batch_no_delete BEFORE DELETE ON %s FOR EACH ROW "
            "EXECUTE FUNCTION accounts_refuse_ledger_change()" % table,
            "CREATE TRIGGER accounts_batch_fixed BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) "
            "EXECUTE FUNCTION accounts_refuse_ledger_change()" % (table, changed),
        ]
    if vendor == "mysql":
        changed = guards._changed(BATCH_FIXED, "NOT (OLD.%(c)s <=> NEW.%(c)s)")
        return [
            "CREATE TRIGGER accounts_batch_no_delete BEFORE DELETE ON %s FOR EACH ROW BEGIN "
            "IF @@foreign_key_checks = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; "
            "END IF; END" % (table, guards.REFUSED % ("DELETE", table)),
            "CREATE TRIGGER accounts_batch_fixed BEFORE UPDATE ON %s FOR EACH ROW BEGIN IF %s "
            "THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
            % (table, changed, refused),
        ]
    if vendor == "sqlite":
        changed = guards._changed(BATCH_FIXED, "OLD.%(c)s IS NOT NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_batch_fixed BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
            "BEGIN SELECT RAISE(ABORT, '%s'); END" % (table, changed, refused)
        ]
    return []


BATCH_DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS accounts_batch_no_delete ON accounts_batch",
        "DROP TRIGGER IF EXISTS accounts_batch_fixed ON accounts_batch",
    ],
    "mysql": [
        "DROP TRIGGER IF EXISTS accounts_batch_no_delete",
        "DROP TRIGGER IF EXISTS accounts_batch_fixed",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS accounts_batch_fixed"],
}


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def create_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, previous.fixed_triggers(vendor, TRANSFER_FIXED, previous.HOLD_FIXED))
    _run(schema_editor, BATCH_DROP.get(vendor, []) + batch_guards(vendor))
    if vendor == "sqlite":
        _run(
            schema_editor,
            ["DROP INDEX IF EXISTS accounts_transfer_reversals", previous.reversal_index.PARTIAL],
        )


def drop_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, BATCH_DROP.get(vendor, []))
    previous.drop_fixed_triggers(apps, schema_editor)


def restore_previous_guards(apps, schema_editor):
    previous.create_fixed_triggers(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0007_exact_identifiers_and_request_fingerprints"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(
            previous.drop_fixed_triggers, restore_previous_guards, atomic=False, elidable=False
        ),
        migrations.AddField(
            model_name="transfer",
            name="batch_position",
            field=models.PositiveIntegerField(
                blank=True, editable=False, null=True, verbose_name="position in its batch"
            ),
        ),
        migrations.CreateModel(
            name="Batch",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "reference",
                    accounts.fields.ExactCharField(
                        default=accounts.models.generate_reference,
                        editable=False,
                        max_length=32,
                        unique=True,
                        verbose_name="reference",
                    ),
                ),
                (
                    "atomic",
                    models.BooleanField(
                        default=True,
                        help_text="Linked (all or nothing), or independent requests written together.",
                        verbose_name="all or nothing",
                    ),
                ),
                (
                    "size",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="How many transfers were requested (an independent batch may write fewer).",
                        verbose_name="requests",
                    ),
                ),
                ("description", models.TextField(blank=True, verbose_name="description")),
                (
                    "username",
                    models.CharField(blank=True, max_length=150, verbose_name="username"),
                ),
                (
                    "idempotency_key",
                    accounts.fields.ExactCharField(
                        blank=True,
                        max_length=128,
                        null=True,
                        unique=True,
                        verbose_name="idempotency key",
                    ),
                ),
                (
                    "request_fingerprint",
                    models.CharField(
                        blank=True,
                        editable=False,
                        max_length=64,
                        null=True,
                        verbose_name="request fingerprint",
                    ),
                ),
                (
                    "created",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, verbose_name="created"
                    ),
                ),
                (
                    "reverses",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="reversals",
                        to="accounts.batch",
                        verbose_name="reverses",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="user",
                    ),
                ),
            ],
            options={
                "verbose_name": "batch",
                "verbose_name_plural": "batches",
                "ordering": ["-created", "-pk"],
            },
        ),
        migrations.AddField(
            model_name="transfer",
            name="batch",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="accounts.batch",
                verbose_name="batch",
            ),
        ),
        migrations.RunPython(create_guards, drop_guards, atomic=False, elidable=False),
    ]
