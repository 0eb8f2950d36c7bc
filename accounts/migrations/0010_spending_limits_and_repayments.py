"""
Spending limits (``SpendingLimit``) and what each account spent in its
current day, week and month (``Account.spent_*``), and ``Repayment``, the
record of each ``facade.repay``.

The usage starts from the ledger's own rows: the transfers and holds of the
periods running when the migration runs are counted as the write path will
count them from now on (``accounts.limits.recount``), so a limit created
after the upgrade sees what was spent earlier in the period. A ``Repayment``
is append-only like a transfer: the database refuses its deletion (but on
SQLite) and any change but to the columns that hold personal data. The
constraint of one core account per role and currency loses its condition,
so that MariaDB enforces it too.
"""

import importlib

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import accounts.fields

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

REPAYMENT_FIXED = [
    "source_id",
    "destination_id",
    "currency",
    "requested",
    "debt",
    "transfer_id",
    "idempotency_key",
    "request_fingerprint",
    "created",
]


def repayment_guards(vendor):
    """Refuse changes to a repayment's fixed columns, and (but on SQLite) its deletion."""
    table, refused = "accounts_repayment", guards.REFUSED % ("UPDATE", "accounts_repayment")
    if vendor == "postgresql":
        changed = guards._changed(REPAYMENT_FIXED, "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_repayment_no_delete BEFORE DELETE ON %s FOR EACH ROW "
            "EXECUTE FUNCTION accounts_refuse_ledger_change()" % table,
            "CREATE TRIGGER accounts_repayment_fixed BEFORE UPDATE ON %s FOR EACH ROW "
            "WHEN (%s) EXECUTE FUNCTION accounts_refuse_ledger_change()" % (table, changed),
        ]
    if vendor == "mysql":
        changed = guards._changed(REPAYMENT_FIXED, "NOT (OLD.%(c)s <=> NEW.%(c)s)")
        return [
            "CREATE TRIGGER accounts_repayment_no_delete BEFORE DELETE ON %s FOR EACH ROW "
            "BEGIN IF @@foreign_key_checks = 1 THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT "
            "= '%s'; END IF; END" % (table, guards.REFUSED % ("DELETE", table)),
            "CREATE TRIGGER accounts_repayment_fixed BEFORE UPDATE ON %s FOR EACH ROW BEGIN "
            "IF %s THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
            % (table, changed, refused),
        ]
    if vendor == "sqlite":
        changed = guards._changed(REPAYMENT_FIXED, "OLD.%(c)s IS NOT NEW.%(c)s")
        return [
            "CREATE TRIGGER accounts_repayment_fixed BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
            "BEGIN SELECT RAISE(ABORT, '%s'); END" % (table, changed, refused)
        ]
    return []


REPAYMENT_DROP = {
    "postgresql": [
        "DROP TRIGGER IF EXISTS accounts_repayment_no_delete ON accounts_repayment",
        "DROP TRIGGER IF EXISTS accounts_repayment_fixed ON accounts_repayment",
    ],
    "mysql": [
        "DROP TRIGGER IF EXISTS accounts_repayment_no_delete",
        "DROP TRIGGER IF EXISTS accounts_repayment_fixed",
    ],
    "sqlite": ["DROP TRIGGER IF EXISTS accounts_repayment_fixed"],
}


def create_guards(apps, schema_editor):
    for sql in repayment_guards(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def drop_guards(apps, schema_editor):
    for sql in REPAYMENT_DROP.get(schema_editor.connection.vendor, []):
        schema_editor.execute(sql, params=None)


def count_current_spending(apps, schema_editor):
    from accounts import clock, limits

    alias = schema_editor.connection.alias
    Account = apps.get_model("accounts", "Account")
    models_ = (apps.get_model("accounts", "Transfer"), apps.get_model("accounts", "Hold"))
    now = clock.database_now(alias)
    first = limits.starts(now)
    for account, spent in limits.recount(alias, now, models=models_).items():
        columns = {}
        for period, (amount_column, from_column) in limits.COLUMNS.items():
            columns[amount_column] = spent[period]
            columns[from_column] = first[period]
        Account.objects.using(alias).filter(pk=account).update(**columns)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0009_reports"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="account",
            name="spent_day",
            field=accounts.fields.LedgerMoneyField(
                decimal_places=4,
                default=accounts.fields.zero,
                editable=False,
                max_digits=19,
                verbose_name="spent in the day",
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="spent_day_from",
            field=models.DateField(
                blank=True, editable=False, null=True, verbose_name="day spent in"
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="spent_month",
            field=accounts.fields.LedgerMoneyField(
                decimal_places=4,
                default=accounts.fields.zero,
                editable=False,
                max_digits=19,
                verbose_name="spent in the month",
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="spent_month_from",
            field=models.DateField(
                blank=True, editable=False, null=True, verbose_name="month spent in"
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="spent_week",
            field=accounts.fields.LedgerMoneyField(
                decimal_places=4,
                default=accounts.fields.zero,
                editable=False,
                max_digits=19,
                verbose_name="spent in the week",
            ),
        ),
        migrations.AddField(
            model_name="account",
            name="spent_week_from",
            field=models.DateField(
                blank=True, editable=False, null=True, verbose_name="week spent in"
            ),
        ),
        migrations.CreateModel(
            name="Repayment",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("currency", models.CharField(max_length=3, verbose_name="currency")),
                (
                    "requested",
                    accounts.fields.LedgerMoneyField(
                        decimal_places=4,
                        help_text="The amount asked for.",
                        max_digits=19,
                        verbose_name="requested",
                    ),
                ),
                (
                    "debt",
                    accounts.fields.LedgerMoneyField(
                        decimal_places=4,
                        help_text="What the destination owed, read under its lock.",
                        max_digits=19,
                        verbose_name="debt",
                    ),
                ),
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
                    "destination",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="repayments",
                        to="accounts.account",
                        verbose_name="destination",
                    ),
                ),
                (
                    "source",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="accounts.account",
                        verbose_name="source",
                    ),
                ),
                (
                    "transfer",
                    models.OneToOneField(
                        blank=True,
                        help_text="Empty: there was no debt, nothing was moved.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="repayment",
                        to="accounts.transfer",
                        verbose_name="transfer",
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
                "verbose_name": "repayment",
                "verbose_name_plural": "repayments",
                "ordering": ["-created", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="SpendingLimit",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "period",
                    accounts.fields.ExactCharField(
                        choices=[("day", "Day"), ("week", "Week"), ("month", "Month")],
                        max_length=8,
                        verbose_name="period",
                    ),
                ),
                (
                    "amount",
                    models.DecimalField(
                        decimal_places=4,
                        help_text="In the currency of the account it applies to.",
                        max_digits=19,
                        verbose_name="amount",
                    ),
                ),
                (
                    "created",
                    models.DateTimeField(
                        default=django.utils.timezone.now, editable=False, verbose_name="created"
                    ),
                ),
                (
                    "changed_at",
                    models.DateTimeField(
                        blank=True,
                        editable=False,
                        help_text="When the amount was last changed (the database's clock).",
                        null=True,
                        verbose_name="changed at",
                    ),
                ),
                (
                    "account",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="spending_limits",
                        to="accounts.account",
                        verbose_name="account",
                    ),
                ),
                (
                    "account_type",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="spending_limits",
                        to="accounts.accounttype",
                        verbose_name="account type",
                    ),
                ),
            ],
            options={
                "verbose_name": "spending limit",
                "verbose_name_plural": "spending limits",
                "ordering": ["account_type", "account", "period"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("account__isnull", False), ("account_type__isnull", True)),
                            models.Q(("account__isnull", True), ("account_type__isnull", False)),
                            _connector="OR",
                        ),
                        name="accounts_spendinglimit_one_owner",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("amount__gte", 0)),
                        name="accounts_spendinglimit_amount_not_negative",
                    ),
                    models.UniqueConstraint(
                        fields=("account", "period"), name="accounts_spendinglimit_account_period"
                    ),
                    models.UniqueConstraint(
                        fields=("account_type", "period"),
                        name="accounts_spendinglimit_type_period",
                    ),
                ],
            },
        ),
        # One core account per role and currency, enforced on MariaDB too: a
        # conditional constraint is left out there; rows without a role never
        # collide, NULLs being distinct in a unique index on every backend.
        migrations.RemoveConstraint(
            model_name="account",
            name="accounts_one_core_account_per_role_and_currency",
        ),
        migrations.AddConstraint(
            model_name="account",
            constraint=models.UniqueConstraint(
                fields=("role", "currency"),
                name="accounts_one_core_account_per_role_and_currency",
            ),
        ),
        migrations.RunPython(create_guards, drop_guards, atomic=False, elidable=False),
        migrations.RunPython(count_current_spending, migrations.RunPython.noop, elidable=False),
    ]
