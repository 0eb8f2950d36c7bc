"""
Fewer indexes on transfers: each is one more write for every transfer.

* ``source`` and ``destination`` alone: the indexes on ``(source,
  effective_at)`` and ``(destination, effective_at)`` (0013) serve every
  lookup by account, the foreign keys' included.
* PostgreSQL's ``varchar_pattern_ops`` copies of ``reference``,
  ``idempotency_key`` and ``merchant_reference`` (Django adds one to every
  indexed text column, for ``LIKE 'prefix%'``): the ledger looks these up
  by equality, served by their plain indexes, and the admin's searches are
  case-insensitive, which those indexes do not serve.
"""

import django.db.models.deletion
from django.db import migrations, models

#: PostgreSQL's pattern indexes on the transfers' text columns, by column.
LIKE_COLUMNS = ("reference", "idempotency_key", "merchant_reference")

DROP_LIKE = """
        DO $$
        DECLARE
            name text;
        BEGIN
            FOR name IN
                SELECT i.relname FROM pg_index x
                  JOIN pg_class i ON i.oid = x.indexrelid
                 WHERE x.indrelid = 'accounts_transfer'::regclass
                   AND i.relname LIKE '%\\_like'
            LOOP
                EXECUTE format('DROP INDEX %I', name);
            END LOOP;
        END
        $$
"""


#: The account columns no longer indexed alone.
ACCOUNT_COLUMNS = ("source_id", "destination_id")


def _single_column_indexes(connection, column):
    """The names of the plain indexes on the transfers' ``column`` alone."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "accounts_transfer")
    return sorted(
        name
        for name, info in found.items()
        if info["index"] and not info["unique"] and not info["primary_key"]
        and not info["foreign_key"] and info["columns"] == [column]
    )


def forwards(apps, schema_editor):
    connection = schema_editor.connection
    # Dropped by name, not by AlterField: SQLite would rebuild the table for
    # it, and lose its triggers.
    for column in ACCOUNT_COLUMNS:
        for name in _single_column_indexes(connection, column):
            if connection.vendor == "mysql":
                schema_editor.execute("DROP INDEX %s ON accounts_transfer" % name, params=None)
            else:
                schema_editor.execute("DROP INDEX %s" % name, params=None)
    if connection.vendor == "postgresql":
        schema_editor.execute(DROP_LIKE, params=None)


def backwards(apps, schema_editor):
    for column in ACCOUNT_COLUMNS:
        schema_editor.execute(
            "CREATE INDEX accounts_transfer_%s_idx ON accounts_transfer (%s)" % (column, column),
            params=None,
        )
    if schema_editor.connection.vendor == "postgresql":
        for column in LIKE_COLUMNS:
            schema_editor.execute(
                "CREATE INDEX accounts_transfer_%s_like ON accounts_transfer "
                "(%s varchar_pattern_ops)" % (column, column),
                params=None,
            )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0016_keys_checked_by_statement")]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="transfer",
                    name=name,
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="%s_transfers" % name,
                        to="accounts.account",
                        verbose_name=name,
                    ),
                )
                for name in ("destination", "source")
            ],
            database_operations=[migrations.RunPython(forwards, backwards, elidable=False)],
        ),
    ]
