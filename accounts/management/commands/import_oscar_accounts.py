"""
``manage.py import_oscar_accounts``: move a django-oscar-accounts 3.0.x ledger here.

Exit codes: 0 imported (or, with ``--dry-run``, importable); 1 refused or
failed, with the reasons (nothing is written); 2 a usage error.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from accounts.exceptions import AccountException
from accounts.oscar_import import ImportRefused, OscarNames, import_oscar_accounts


class Command(BaseCommand):
    help = (
        "Import the ledger of django-oscar-accounts 3.0.x (its account types, accounts, "
        "transfers and transactions) into this app, checked against oscar's balances and "
        "check_ledger before anything is committed. Runs once, into a new ledger."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Import and check everything, then roll it all back.",
        )
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            help="The database alias holding oscar-accounts' tables (default %(default)s).",
        )
        parser.add_argument(
            "--currency",
            help="The currency of every imported account (default ACCOUNTS_DEFAULT_CURRENCY).",
        )
        names = OscarNames.from_settings()
        parser.add_argument(
            "--bank-name",
            default=names.bank,
            help="Oscar's source account, mapped to the source core account (%(default)r).",
        )
        parser.add_argument(
            "--redemptions-name",
            default=names.redemptions,
            help="Oscar's redemptions account, mapped to the sales core account (%(default)r).",
        )
        parser.add_argument(
            "--lapsed-name",
            default=names.lapsed,
            help="Oscar's lapsed account, mapped to the expired core account (%(default)r).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["database"] not in connections:
            raise CommandError("Unknown database alias %r." % options["database"], returncode=2)
        names = OscarNames(
            bank=options["bank_name"],
            redemptions=options["redemptions_name"],
            lapsed=options["lapsed_name"],
        )
        tty = options["verbosity"] >= 1 and getattr(self.stderr._out, "isatty", lambda: False)()

        def progress(transfers: int) -> None:
            self.stderr.write("\r  %d transfers" % transfers, ending="")
            self.stderr.flush()

        try:
            report = import_oscar_accounts(
                source=options["database"],
                currency=options["currency"],
                names=names,
                dry_run=options["dry_run"],
                progress=progress if tty else None,
            )
        except ImportRefused as refused:
            raise CommandError(str(refused), returncode=1) from refused
        except AccountException as error:
            raise CommandError(str(error), returncode=2) from error
        except DatabaseError as error:
            raise CommandError("The import failed, nothing was written: %s" % error) from error
        finally:
            if tty:
                self.stderr.write("")
        out = self.stdout
        out.write(
            "%s %d account type(s), %d account(s) and %d transfer(s) (%d reversal(s) linked "
            "to their originals), in %s."
            % (
                "Would import" if report.dry_run else "Imported",
                report.account_types,
                report.accounts,
                report.transfers,
                report.reversals,
                report.currency,
            )
        )
        for oscar_name, ours in report.core:
            out.write("  oscar's %r is now %s" % (oscar_name, ours))
        out.write(
            "Checked: %d balances equal oscar's; check_ledger found nothing."
            % report.balances_checked
        )
        if report.notes:
            out.write("Imported differently or not imported (%d):" % len(report.notes))
            for note in report.notes:
                out.write("  - %s" % note)
        if report.dry_run:
            out.write("Dry run: nothing was written.")
