"""
Identifiers compared exactly, idempotency by request, and the credit limit's
change time.

* ``Transfer``/``Hold`` ``reference``, ``idempotency_key`` and
  ``merchant_reference`` and ``Account.code`` become ``ExactCharField``: on
  MariaDB/MySQL they get a binary, no-pad collation, so ``"Xk9aQ"`` and
  ``"xK9Aq"``, ``"pay-7"`` and ``"pay-7 "``, ``"café-1"`` and ``"cafe-1"``
  are different keys (elsewhere the columns already compared exactly).
* ``request_fingerprint`` on transfers and holds: the request an idempotency
  key was first used for. It joins the columns the guard triggers of
  migration 0005 keep fixed; those triggers are created again with it.
* ``Account.credit_limit_changed_at``.
* Codes already stored are normalized (upper case, no spaces or dashes), as
  ``Account.save()`` now stores them, where that creates no duplicate.

SQLite alters these columns by rebuilding the tables, which drops their
triggers and the partial index of migration 0006: both are created again.
"""

import importlib

import accounts.fields
import accounts.models
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")
reversal_index = importlib.import_module("accounts.migrations.0006_reversal_index")

TRANSFER_FIXED = [*guards.TRANSFER_FIXED, "request_fingerprint"]
HOLD_FIXED = [*guards.HOLD_FIXED, "request_fingerprint"]
FIXED_TRIGGERS = ("accounts_transfer_fixed", "accounts_hold_fixed")


def _when(vendor, columns, hold):
    changed = {
        "postgresql": "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s",
        "mysql": "NOT (OLD.%(c)s <=> NEW.%(c)s)",
        "sqlite": "OLD.%(c)s IS NOT NEW.%(c)s",
    }[vendor]
    condition = guards._changed(columns, changed)
    if hold:
        condition = "%s OR (OLD.status <> 'active' AND (%s))" % (
            condition,
            guards._changed(guards.HOLD_RESOLUTION, changed),
        )
    return condition


def fixed_triggers(vendor, transfer_columns, hold_columns):
    """The two triggers keeping transfer and hold columns fixed, for these column lists."""
    statements = []
    for name, table, columns, hold in (
        ("accounts_transfer_fixed", "accounts_transfer", transfer_columns, False),
        ("accounts_hold_fixed", "accounts_hold", hold_columns, True),
    ):
        when = _when(vendor, columns, hold)
        if vendor == "postgresql":
            statements += [
                "DROP TRIGGER IF EXISTS %s ON %s" % (name, table),
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) "
                "EXECUTE FUNCTION accounts_refuse_ledger_change()" % (name, table, when),
            ]
        elif vendor == "mysql":
            statements += [
                "DROP TRIGGER IF EXISTS %s" % name,
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN "
                "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
                % (name, table, when, guards.REFUSED % ("UPDATE", table)),
            ]
        elif vendor == "sqlite":
            statements += [
                "DROP TRIGGER IF EXISTS %s" % name,
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
                "BEGIN SELECT RAISE(ABORT, '%s'); END"
                % (name, table, when, guards.REFUSED % ("UPDATE", table)),
            ]
    return statements


def _run(schema_editor, statements):
    for statement in statements:
        schema_editor.execute(statement, params=None)


def drop_fixed_triggers(apps, schema_editor):
    """The triggers are replaced: none runs while the columns they name change."""
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        _run(
            schema_editor,
            [
                "DROP TRIGGER IF EXISTS accounts_transfer_fixed ON accounts_transfer",
                "DROP TRIGGER IF EXISTS accounts_hold_fixed ON accounts_hold",
            ],
        )
    elif vendor in ("mysql", "sqlite"):
        _run(schema_editor, ["DROP TRIGGER IF EXISTS %s" % name for name in FIXED_TRIGGERS])


def create_fixed_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, fixed_triggers(vendor, TRANSFER_FIXED, HOLD_FIXED))
    if vendor == "sqlite":
        # The rebuilt tables lost the partial index of 0006.
        _run(
            schema_editor,
            ["DROP INDEX IF EXISTS accounts_transfer_reversals", reversal_index.PARTIAL],
        )


def restore_old_triggers(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    _run(schema_editor, fixed_triggers(vendor, guards.TRANSFER_FIXED, guards.HOLD_FIXED))
    if vendor == "sqlite":
        _run(
            schema_editor,
            ["DROP INDEX IF EXISTS accounts_transfer_reversals", reversal_index.PARTIAL],
        )


def normalize_codes(apps, schema_editor):
    from accounts.codes import normalize_code

    Account = apps.get_model("accounts", "Account")
    manager = Account._base_manager.using(schema_editor.connection.alias)
    taken = set(manager.exclude(code=None).values_list("code", flat=True))
    for pk, code in manager.exclude(code=None).values_list("pk", "code").iterator():
        normalized = normalize_code(code) or None
        if normalized != code and normalized not in taken:
            manager.filter(pk=pk).update(code=normalized)
            taken.discard(code)
            taken.add(normalized)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_reversal_index"),
    ]

    operations = [
        migrations.RunPython(
            drop_fixed_triggers, restore_old_triggers, atomic=False, elidable=False
        ),
        migrations.AddField(
            model_name="account",
            name="credit_limit_changed_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When the credit limit was last changed (the database's clock): an account whose limit was lowered below its debt is not reported by check_ledger unless it was debited since.",
                null=True,
                verbose_name="credit limit changed at",
            ),
        ),
        migrations.AddField(
            model_name="hold",
            name="request_fingerprint",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="SHA-256 of the request that wrote this row, as asked: with the idempotency key, only an identical request is answered with this row.",
                max_length=64,
                null=True,
                verbose_name="request fingerprint",
            ),
        ),
        migrations.AddField(
            model_name="transfer",
            name="request_fingerprint",
            field=models.CharField(
                blank=True,
                editable=False,
                help_text="SHA-256 of the request that wrote this row, as asked: with the idempotency key, only an identical request is answered with this row.",
                max_length=64,
                null=True,
                verbose_name="request fingerprint",
            ),
        ),
        migrations.AlterField(
            model_name="account",
            name="code",
            field=accounts.fields.ExactCharField(
                blank=True,
                help_text="Optional unique code, for example a gift card number; stored upper case, without spaces or dashes.",
                max_length=128,
                null=True,
                unique=True,
                verbose_name="code",
            ),
        ),
        migrations.AlterField(
            model_name="hold",
            name="idempotency_key",
            field=accounts.fields.ExactCharField(
                blank=True, max_length=128, null=True, unique=True, verbose_name="idempotency key"
            ),
        ),
        migrations.AlterField(
            model_name="hold",
            name="merchant_reference",
            field=accounts.fields.ExactCharField(
                blank=True,
                db_index=True,
                max_length=128,
                null=True,
                verbose_name="merchant reference",
            ),
        ),
        migrations.AlterField(
            model_name="hold",
            name="reference",
            field=accounts.fields.ExactCharField(
                default=accounts.models.generate_reference,
                editable=False,
                max_length=32,
                unique=True,
                verbose_name="reference",
            ),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="idempotency_key",
            field=accounts.fields.ExactCharField(
                blank=True, max_length=128, null=True, unique=True, verbose_name="idempotency key"
            ),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="merchant_reference",
            field=accounts.fields.ExactCharField(
                blank=True,
                db_index=True,
                max_length=128,
                null=True,
                verbose_name="merchant reference",
            ),
        ),
        migrations.AlterField(
            model_name="transfer",
            name="reference",
            field=accounts.fields.ExactCharField(
                default=accounts.models.generate_reference,
                editable=False,
                max_length=32,
                unique=True,
                verbose_name="reference",
            ),
        ),
        migrations.RunPython(
            create_fixed_triggers, drop_fixed_triggers, atomic=False, elidable=False
        ),
        migrations.RunPython(normalize_codes, migrations.RunPython.noop, elidable=False),
    ]
