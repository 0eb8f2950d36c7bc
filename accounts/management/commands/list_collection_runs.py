from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from accounts.collection_models import CollectionRun
from accounts.management.collectionutils import moment_text, usage_error
from accounts.models import AccountType


class Command(BaseCommand):
    help = (
        "List collection runs, newest period first, with their totals: to recover, "
        "initiated (being collected), recovered and failed (owed again next run). Writes "
        "nothing. Exit status: 0 listed, 2 usage error."
    )

    columns = (
        ("reference", 16),
        ("scope", 24),
        ("cur", 3),
        ("period", 23),
        ("collect on", 10),
        ("status", 9),
        ("debts", 5),
        ("to recover", 12),
        ("initiated", 12),
        ("recovered", 12),
        ("failed", 12),
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            action="append",
            choices=CollectionRun.Status.values,
            help="Only runs with this status (repeat for several).",
        )
        parser.add_argument("--type", metavar="CODE", help="Only runs over this account type.")
        parser.add_argument(
            "--limit", type=int, default=50, help="At most this many runs (default %(default)s)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["limit"] < 1:
            raise usage_error("--limit must be at least 1.")
        found = CollectionRun.objects.select_related("account_type").order_by("-period_end", "-pk")
        if options["status"]:
            found = found.filter(status__in=options["status"])
        if options["type"]:
            account_type = AccountType.objects.filter(code=options["type"]).first()
            if account_type is None:
                raise usage_error("There is no account type with code %r." % options["type"])
            found = found.filter(account_type=account_type)
        runs = list(found[: options["limit"]])
        # The list is what was asked for: printed at every verbosity.
        self.stdout.write(self.line([name for name, _width in self.columns]))
        for run in runs:
            self.stdout.write(
                self.line(
                    [
                        run.reference,
                        run.scope_label,
                        run.currency,
                        "%s – %s"
                        % (moment_text(run.period_start)[:10], moment_text(run.period_end)[:10]),
                        run.collect_on.isoformat(),
                        run.status,
                        str(run.debt_count),
                        str(run.total_owed.amount),
                        str(run.total_initiated.amount),
                        str(run.total_recovered.amount),
                        str(run.total_failed.amount),
                    ]
                )
            )
        if not runs:
            self.stdout.write("(no collection runs)")

    def line(self, cells: list[str]) -> str:
        parts = []
        for (name, width), cell in zip(self.columns, cells, strict=True):
            numeric = name in ("debts", "to recover", "initiated", "recovered", "failed")
            parts.append(cell.rjust(width) if numeric else cell[:40].ljust(width))
        return "  ".join(parts).rstrip()
