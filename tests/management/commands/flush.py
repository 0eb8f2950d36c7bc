"""
The suite's ``flush``: what Django's test cases with ``transaction=True`` run
after each test, made cheaper without changing what the next test sees.

Django's flush empties every table, then sends ``post_migrate`` to every app:
on PostgreSQL that is a TRUNCATE of some forty tables and a few dozen queries
to make the content types, permissions and core accounts again, about a
quarter of a second per test. This one empties only the tables that have
rows, leaves the content types and permissions alone while they are exactly
as a full flush left them, and sends ``post_migrate`` only to the apps whose
tables a full flush leaves rows in (``accounts``: its core accounts).

It then checks that every table holds as many rows as after a full flush, and
runs a full flush whenever it cannot be sure: the first time, after a test
changed the content types or permissions, or when the check fails. A flush
asked for by anything else (``manage.py flush``, ``call_command("flush")``
without Django's test options) is Django's own.
"""

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.color import no_style
from django.core.management.commands import flush
from django.db import connections, transaction
from django.db.models.signals import post_migrate

#: What a full flush left, per database: the content types' and permissions'
#: (count, largest id), and each table's row count.
_baselines: dict[str, tuple[tuple, dict[str, int]]] = {}

KEPT = (ContentType, Permission)


def _kept_state(cursor, connection):
    parts = []
    for model in KEPT:
        cursor.execute(
            "SELECT COUNT(*), MAX(%s) FROM %s"
            % (
                connection.ops.quote_name(model._meta.pk.column),
                connection.ops.quote_name(model._meta.db_table),
            )
        )
        parts.append(tuple(cursor.fetchone()))
    return tuple(parts)


def _row_counts(cursor, connection, tables):
    """Each table's row count, in one query."""
    if not tables:
        return {}
    cursor.execute(
        "SELECT %s"
        % ", ".join(
            "(SELECT COUNT(*) FROM %s)" % connection.ops.quote_name(table) for table in tables
        )
    )
    return dict(zip(tables, (int(count) for count in cursor.fetchone()), strict=True))


class Command(flush.Command):
    def handle(self, **options):
        quick = (
            "inhibit_post_migrate" in options  # Django's test cases pass all three
            and not options["inhibit_post_migrate"]
            and not options.get("allow_cascade")
            and not options.get("reset_sequences")
            and not options["interactive"]
        )
        database = options["database"]
        if quick and self.quick_flush(database):
            return
        super().handle(**options)
        self.remember(database)

    def tables(self, connection):
        kept = {model._meta.db_table for model in KEPT}
        return sorted(
            table
            for table in connection.introspection.django_table_names(
                only_existing=True, include_views=False
            )
            if table not in kept
        )

    def remember(self, database):
        connection = connections[database]
        with connection.cursor() as cursor:
            tables = self.tables(connection)
            _baselines[database] = (
                _kept_state(cursor, connection),
                _row_counts(cursor, connection, tables),
            )

    def quick_flush(self, database):
        """Empty the tables that have rows; False if only a full flush will do."""
        if database not in _baselines:
            return False
        kept, counts = _baselines[database]
        connection = connections[database]
        tables = self.tables(connection)
        if set(tables) != set(counts):
            return False
        with connection.cursor() as cursor:
            if _kept_state(cursor, connection) != kept:
                return False
            found = _row_counts(cursor, connection, tables)
            emptied = [table for table in tables if found[table]]
            if not self.delete(connection, cursor, emptied):
                return False
        # The apps whose tables a full flush leaves rows in make them again.
        refilled = {table for table, count in counts.items() if count}
        for app_config in apps.get_app_configs():
            models = app_config.get_models(include_auto_created=True)
            if refilled & {model._meta.db_table for model in models}:
                # As Django's flush sends it (emit_post_migrate_signal).
                post_migrate.send(
                    sender=app_config,
                    app_config=app_config,
                    verbosity=0,
                    interactive=False,
                    using=database,
                )
        with connection.cursor() as cursor:
            if _row_counts(cursor, connection, tables) != counts:
                return False  # the full flush runs and puts it right
        return True

    def delete(self, connection, cursor, tables):
        if not tables:
            return True
        if connection.vendor == "postgresql":
            # A TRUNCATE of some tables must cascade to every table that
            # refers to them, and a DELETE meets the ledger's guards: as a
            # superuser, a DELETE with triggers (foreign keys' included) off.
            cursor.execute("SELECT current_setting('is_superuser')")
            if cursor.fetchone()[0] != "on":
                return False
            with transaction.atomic(using=connection.alias):
                cursor.execute("SET LOCAL session_replication_role = replica")
                for table in tables:
                    cursor.execute("DELETE FROM %s" % connection.ops.quote_name(table))
            return True
        # Django's own statements (MariaDB/MySQL: DELETEs with foreign key
        # checks off, which the guards allow; SQLite: DELETEs), for these tables.
        connection.ops.execute_sql_flush(
            connection.ops.sql_flush(no_style(), tables, reset_sequences=False)
        )
        return True
