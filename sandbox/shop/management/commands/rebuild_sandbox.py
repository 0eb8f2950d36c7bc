"""
``manage.py rebuild_sandbox``: a clean demo database, every time.

SQLite: the file is deleted. PostgreSQL or MariaDB/MySQL (SANDBOX_DATABASE_URL):
that one database is dropped and created again; its name must contain
"sandbox", so that a mistyped URL cannot destroy anything else. Then
``migrate`` (which creates the core accounts) and the demo data.
"""

import os
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from sandbox.shop import demo


class Command(BaseCommand):
    help = "Rebuild the sandbox database from scratch and load the demo data."
    # The system checks run once the database exists: on MariaDB, Django 6's
    # field checks ask the server for its version, connecting to the very
    # database this command is about to create.
    requires_system_checks = []

    def handle(self, *args, **options):
        if connection.vendor == "sqlite":
            path = Path(connection.settings_dict["NAME"])
            connection.close()
            path.unlink(missing_ok=True)
        else:
            recreate_database()
        self.check()
        call_command("migrate", interactive=False, verbosity=0)
        cards = demo.load()

        # Where `make sandbox` is about to serve it.
        url = "http://%s/" % os.environ.get("SANDBOX_ADDRESS", "127.0.0.1:8000")
        write = self.stdout.write
        write(self.style.SUCCESS("Sandbox ready on %s (%s)" % (url, describe_database())))
        write("")
        write("Log in (shop: %slogin/, admin: %sadmin/):" % (url, url))
        for username, password, who in demo.LOGINS:
            write("  %-8s password %-8s %s" % (username, password, who))
        if getattr(settings, "API_INSTALLED", False):
            write("")
            write("REST API: %sapi/accounts/, Swagger UI: %sapi/docs/," % (url, url))
            write("tokens: POST username and password to %sapi/token/" % url)
        write("")
        write("Gift cards (check one at %sgift-cards/balance/):" % url)
        for code, state in cards:
            write("  %s  %s" % (code, state))


def describe_database():
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return "SQLite %s" % settings["NAME"]
    return "%s database %r on %s" % (connection.display_name, settings["NAME"], settings["HOST"])


def recreate_database():
    """Drop and create the database SANDBOX_DATABASE_URL names, and nothing else."""
    name = connection.settings_dict["NAME"]
    if "sandbox" not in name.lower():
        raise CommandError(
            "Refusing to drop database %r: the sandbox only rebuilds a database whose "
            "name contains 'sandbox'. Fix SANDBOX_DATABASE_URL." % name
        )
    quoted = connection.ops.quote_name(name)
    connection.close()
    # Django's own way in without the database itself (the test runner uses
    # it too): PostgreSQL's "postgres" database, or no database on MySQL.
    with connection._nodb_cursor() as cursor:
        if connection.vendor == "postgresql":
            # FORCE (PostgreSQL 13+) ends sessions left open, e.g. by a
            # sandbox server still running.
            cursor.execute("DROP DATABASE IF EXISTS %s WITH (FORCE)" % quoted)
            cursor.execute("CREATE DATABASE %s" % quoted)
        else:
            cursor.execute("DROP DATABASE IF EXISTS %s" % quoted)
            cursor.execute(
                "CREATE DATABASE %s CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" % quoted
            )
