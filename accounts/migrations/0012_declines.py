"""
Declined payments (``Decline``, written when ``ACCOUNTS_RECORD_DECLINES`` is
on). Append-only like the ledger: the database refuses their deletion (but
on SQLite) and any change but to the columns that hold personal data.
"""

import importlib

import accounts.fields
import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

TABLE = "accounts_decline"
FIXED = [
    "operation",
    "source_id",
    "destination_id",
    "hold_id",
    "currency",
    "amount",
    "reason",
    "message",
    "facts",
    "merchant_reference",
    "idempotency_key",
    "created",
]


def decline_guards(vendor):
    refused = guards.REFUSED % ("UPDATE", TABLE)
    if vendor == "postgresql":
        changed = guards._changed(FIXED, "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_decline_no_delete BEFORE DELETE ON %s FOR EACH ROW "
            "EXECUTE FUNCTION accounts_refuse_ledger_change()" % TABLE,
            "CREATE TRIGGER accounts_decline_fixed BEFORE UPDATE ON %s FOR EACH ROW "
            "WHEN (%s) EXECUTE FUNCTION accounts_refuse_ledger_change()" % (TABLE, changed),
        ]
    if vendor == "mysql":
        changed = guards._changed(FIXED, "NOT (OLD.%(c)s <=> NEW.%(c)s)")
        return [
            "CREATE TRIGGER accounts_decline_no_delete BEFORE DELETE ON %s FOR EACH ROW "
            "BEGIN IF @@foreign_key_checks = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT "
            "= '%s'; END IF; END" % (TABLE, guards.REFUSED % ("DELETE", TABLE)),
            "CREATE TRIGGER accounts_decline_fixed BEFORE UPDATE ON %s FOR EACH ROW BEGIN "
            "IF %s THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
            % (TABLE, changed, refused),
        ]
    if vendor == "sqlite":
        changed = guards._changed(FIXED, "OLD.%(c)s IS NOT NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_decline_fixed BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
            "BEGIN SELECT RAISE(ABORT, '%s'); END" % (TABLE, changed, refused)
        ]
    return []


DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS accounts_decline_no_delete ON %s" % TABLE,
        "DROP TRIGGER IF EXISTS accounts_decline_fixed ON %s" % TABLE,
    ],
    "mysql": [
        "DROP TRIGGER IF EXISTS accounts_decline_no_delete",
        "DROP TRIGGER IF EXISTS accounts_decline_fixed",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS accounts_decline_fixed"],
}


def create_guards(apps, schema_editor):
    for sql in decline_guards(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def drop_guards(apps, schema_editor):
    for sql in DROP.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0011_collections"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Decline",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "operation",
                    models.CharField(
                        choices=[
                            ("transfer", "Transfer"),
                            ("hold", "Hold"),
                            ("capture", "Capture"),
                            ("batch", "Transfer of a batch"),
                            ("repay", "Repayment"),
                        ],
                        max_length=16,
                        verbose_name="operation",
                    ),
                ),
                ("currency", models.CharField(max_length=3, verbose_name="currency")),
                (
                    "amount",
                    accounts.fields.LedgerMoneyField(
                        blank=True,
                        decimal_places=4,
                        help_text="The amount asked for (empty: a capture of all the hold).",
                        max_digits=19,
                        null=True,
                        verbose_name="amount",
                    ),
                ),
                (
                    "reason",
                    accounts.fields.ExactCharField(
                        db_index=True,
                        help_text="The refusal's stable code, e.g. insufficient_funds, spending_limit_reached.",
                        max_length=64,
                        verbose_name="reason",
                    ),
                ),
                (
                    "message",
                    models.TextField(
                        help_text="What the ledger said, for staff.", verbose_name="message"
                    ),
                ),
                (
                    "facts",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="The refusal's figures: what was available, the limit and its period.",
                        verbose_name="facts",
                    ),
                ),
                (
                    "merchant_reference",
                    models.CharField(
                        blank=True, max_length=128, null=True, verbose_name="merchant reference"
                    ),
                ),
                ("description", models.TextField(blank=True, verbose_name="description")),
                (
                    "username",
                    models.CharField(blank=True, max_length=150, verbose_name="username"),
                ),
                (
                    "idempotency_key",
                    models.CharField(blank=True, max_length=128, verbose_name="idempotency key"),
                ),
                (
                    "created",
                    models.DateTimeField(
                        db_index=True, default=django.utils.timezone.now, verbose_name="created"
                    ),
                ),
                (
                    "destination",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.account",
                        verbose_name="destination",
                    ),
                ),
                (
                    "hold",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="declines",
                        to="accounts.hold",
                        verbose_name="hold",
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="declines",
                        to="accounts.account",
                        verbose_name="source",
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
                "verbose_name": "declined payment",
                "verbose_name_plural": "declined payments",
                "ordering": ["-created", "-pk"],
                "indexes": [
                    models.Index(fields=["source", "created"], name="accounts_decline_source")
                ],
            },
        ),
        migrations.RunPython(create_guards, drop_guards, atomic=False, elidable=False),
    ]
