"""
Notification marks: ``notified_at`` on transfers and holds.

* ``notified_at``, empty (NULL) on every row, existing rows included: the
  ledger cannot know which of them were ever notified. Mark the history you
  do not want notifications for before polling (see the README,
  "Notification marks").
* The index ``unnotified()`` reads (``accounts.indexes.PartialIndex``): on
  PostgreSQL and SQLite, on ``(id)`` of the rows where ``notified_at IS
  NULL``; on MariaDB/MySQL, which have no partial indexes, on
  ``(notified_at, id)``.
* The permission ``accounts.mark_notified`` (the admin's "Mark as notified").
* Guards: the one change the database allows to ``notified_at`` is from NULL
  to a time. Setting another time on a marked row, or clearing its mark, is
  refused by a trigger on each table, on all three databases (SQLite
  included: these are UPDATE triggers). The triggers of migrations 0005,
  0007, 0008 still keep every other ledger column as it was; they do not
  name ``notified_at``, so they are left as they are. Adding a nullable
  column does not rebuild the table on SQLite, so no trigger is lost.
"""

import importlib

import accounts.indexes
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

TABLES = ("accounts_transfer", "accounts_hold")
#: A marked row whose mark changes: set again to another time, or cleared.
REMARKED = {
    "postgresql": "OLD.notified_at IS NOT NULL AND OLD.notified_at IS DISTINCT FROM NEW.notified_at",
    "mysql": "OLD.notified_at IS NOT NULL AND NOT (OLD.notified_at <=> NEW.notified_at)",
    "sqlite": "OLD.notified_at IS NOT NULL AND OLD.notified_at IS NOT NEW.notified_at",
}
REFUSED = "accounts: UPDATE of %s refused: notified_at is set once, from empty to a time"


def trigger_name(table):
    return "%s_notified_once" % table


def notified_guards(vendor):
    if vendor == "postgresql":
        statements = [
            """
            CREATE OR REPLACE FUNCTION accounts_refuse_notified_change() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'accounts: UPDATE of % row % refused: notified_at is set '
                    'once, from empty to a time', TG_TABLE_NAME, OLD.id
                    USING ERRCODE = 'integrity_constraint_violation',
                          HINT = 'Mark rows with mark_notified(); a mark is never changed '
                                 'or cleared.';
            END
            $$
            """
        ]
        for table in TABLES:
            statements.append(
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) "
                "EXECUTE FUNCTION accounts_refuse_notified_change()"
                % (trigger_name(table), table, REMARKED[vendor])
            )
        return statements
    if vendor == "mysql":
        return [
            "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
            % (trigger_name(table), table, REMARKED[vendor], REFUSED % table)
            for table in TABLES
        ]
    if vendor == "sqlite":
        return [
            "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
            "BEGIN SELECT RAISE(ABORT, '%s'); END"
            % (trigger_name(table), table, REMARKED[vendor], REFUSED % table)
            for table in TABLES
        ]
    return []


def drop_statements(vendor):
    if vendor == "postgresql":
        return [
            "DROP TRIGGER IF EXISTS %s ON %s" % (trigger_name(table), table) for table in TABLES
        ] + ["DROP FUNCTION IF EXISTS accounts_refuse_notified_change()"]
    if vendor in ("mysql", "sqlite"):
        return ["DROP TRIGGER IF EXISTS %s" % trigger_name(table) for table in TABLES]
    return []


def create_guards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for sql in drop_statements(vendor) + notified_guards(vendor):
        schema_editor.execute(sql, params=None)


def drop_guards(apps, schema_editor):
    for sql in drop_statements(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def unnotified_index(name):
    return accounts.indexes.PartialIndex(
        fallback=["notified_at", "id"],
        fields=["id"],
        name=name,
        where=models.Q(("notified_at__isnull", True)),
    )


def notified_at(what):
    return models.DateTimeField(
        blank=True,
        editable=False,
        help_text="When the notification of this %s was sent; empty: not yet. Set once, by "
        "mark_notified(), and never changed or cleared." % what,
        null=True,
        verbose_name="notified at",
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0012_declines"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="transfer",
            options={
                "ordering": ["-created", "-pk"],
                "permissions": [("mark_notified", "Can mark transfers and holds as notified")],
                "verbose_name": "transfer",
                "verbose_name_plural": "transfers",
            },
        ),
        migrations.AddField(model_name="hold", name="notified_at", field=notified_at("hold")),
        migrations.AddField(
            model_name="transfer", name="notified_at", field=notified_at("transfer")
        ),
        migrations.AddIndex(model_name="hold", index=unnotified_index("accounts_hold_unnotified")),
        migrations.AddIndex(
            model_name="transfer", index=unnotified_index("accounts_transfer_unnotified")
        ),
        # Not atomic: MySQL cannot run DDL inside a transaction.
        migrations.RunPython(create_guards, drop_guards, atomic=False, elidable=False),
    ]
