from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS

from accounts.integrity import check_ledger


class Command(BaseCommand):
    help = (
        "Check that the ledger balances: every currency sums to zero, balances and held "
        "amounts match their rows, transfers have two legs summing to zero, running "
        "balances add up and nothing is reversed beyond its amount. Exits non-zero if not."
    )

    def add_arguments(self, parser):
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)
        parser.add_argument(
            "--limit",
            type=int,
            default=100,
            help="Problems shown per check (all are counted; default %(default)s).",
        )

    def handle(self, *args, **options):
        report = check_ledger(options["database"], limit=options["limit"])
        rows = ", ".join("%d %s" % (count, name) for name, count in report.rows.items())
        if report.ok:
            self.stdout.write(
                self.style.SUCCESS("Ledger OK: %s checked in %.2f s." % (rows, report.seconds))
            )
            return
        for problem in report.problems:
            self.stdout.write(str(problem))
        for name, count in report.counts.items():
            if count > options["limit"]:
                self.stdout.write("[%s] ... and %d more" % (name, count - options["limit"]))
        raise CommandError(
            "%d problem(s) in the ledger (%s checked in %.2f s)."
            % (report.total, rows, report.seconds)
        )
