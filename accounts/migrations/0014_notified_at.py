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
  to a time, by a statement that changes no other column of the row.
  Setting another time on a marked row, clearing its mark, or marking it
  while changing anything else (even a column of personal data, which
  stays erasable on its own) is refused by a trigger on each table, on all
  three databases (SQLite included: these are UPDATE triggers). The
  triggers of migrations 0005, 0007, 0008 still keep the fixed ledger
  columns as they were; they do not name ``notified_at``, so they are left
  as they are. Adding a nullable column does not rebuild the table on
  SQLite, so no trigger is lost. A later migration that rebuilds these
  tables on SQLite (a new NOT NULL column, say) drops every trigger on them
  and must create these again (``notified_guards``), as 0007 and 0008 do
  for the earlier ones.
"""

import importlib

import accounts.indexes
from django.db import migrations, models

guards = importlib.import_module("accounts.migrations.0005_ledger_guards")

TABLES = ("accounts_transfer", "accounts_hold")
#: Every other column of each table when this migration was written: a
#: statement that marks a row changes none of them.
OTHER_COLUMNS = {
    "accounts_transfer": [
        "reference",
        "source_id",
        "destination_id",
        "currency",
        "amount",
        "parent_id",
        "batch_id",
        "batch_position",
        "merchant_reference",
        "description",
        "user_id",
        "username",
        "idempotency_key",
        "request_fingerprint",
        "created",
    ],
    "accounts_hold": [
        "reference",
        "source_id",
        "destination_id",
        "currency",
        "amount",
        "status",
        "expires_at",
        "merchant_reference",
        "description",
        "user_id",
        "username",
        "idempotency_key",
        "request_fingerprint",
        "created",
        "resolved_at",
        "resolved_by",
        "capture_id",
    ],
}
CHANGED = {
    "postgresql": "OLD.%(c)s IS DISTINCT FROM NEW.%(c)s",
    "mysql": "NOT (OLD.%(c)s <=> NEW.%(c)s)",
    "sqlite": "OLD.%(c)s IS NOT NEW.%(c)s",
}
REFUSED = "accounts: UPDATE of %s refused: notified_at is set once, from empty to a time, alone"


def refused_when(vendor, table):
    """A marked row whose mark changes (set again to another time, or cleared), or a
    row being marked by a statement that changes anything else too."""
    changed = CHANGED[vendor]
    return (
        "(OLD.notified_at IS NOT NULL AND %(mark)s) "
        "OR (OLD.notified_at IS NULL AND NEW.notified_at IS NOT NULL AND (%(others)s))"
        % {
            "mark": changed % {"c": "notified_at"},
            "others": guards._changed(OTHER_COLUMNS[table], changed),
        }
    )


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
                    'once, from empty to a time, alone', TG_TABLE_NAME, OLD.id
                    USING ERRCODE = 'integrity_constraint_violation',
                          HINT = 'Mark rows with mark_notified(): a mark is set on its own, '
                                 'and never changed or cleared.';
            END
            $$
            """
        ]
        for table in TABLES:
            statements.append(
                "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN (%s) "
                "EXECUTE FUNCTION accounts_refuse_notified_change()"
                % (trigger_name(table), table, refused_when(vendor, table))
            )
        return statements
    if vendor == "mysql":
        return [
            "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW BEGIN IF %s THEN "
            "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '%s'; END IF; END"
            % (trigger_name(table), table, refused_when(vendor, table), REFUSED % table)
            for table in TABLES
        ]
    if vendor == "sqlite":
        return [
            "CREATE TRIGGER %s BEFORE UPDATE ON %s FOR EACH ROW WHEN %s "
            "BEGIN SELECT RAISE(ABORT, '%s'); END"
            % (trigger_name(table), table, refused_when(vendor, table), REFUSED % table)
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
        ("accounts", "0013_metadata_and_effective_at"),
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
