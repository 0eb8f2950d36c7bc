from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS, connections

from accounts.integrity import check_ledger


class Command(BaseCommand):
    help = (
        "Check that the ledger balances: every currency sums to zero, balances and held "
        "amounts match their rows, transfers have two legs summing to zero, running "
        "balances add up and nothing is reversed beyond its amount. Exit status: 0 the "
        "ledger is sound, 1 problems were found (each is printed), 2 usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--database",
            default=DEFAULT_DB_ALIAS,
            # An unknown alias is a usage error, as for Django's own commands.
            choices=tuple(connections),
            help="The database to check (default %(default)r).",
        )
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="Problems shown per check (all are counted; default %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = check_ledger(options["database"], limit=options["limit"])
        rows = ", ".join("%d %s" % (count, name) for name, count in report.rows.items())
        if report.ok:
            if options["verbosity"] >= 1:
                self.stdout.write(
                    self.style.SUCCESS("Ledger OK: %s checked in %.2f s." % (rows, report.seconds))
                )
            return
        # The problems are the report: printed at every verbosity, -v 0 included.
        for problem in report.problems:
            self.stdout.write(str(problem))
        for name, count in report.counts.items():
            if count > options["limit"]:
                self.stdout.write("[%s] ... and %d more" % (name, count - options["limit"]))
        raise CommandError(
            "%d problem(s) in the ledger (%s checked in %.2f s)."
            % (report.total, rows, report.seconds)
        )
