import datetime
from typing import Any

from django.core.management.base import CommandError, CommandParser

from accounts import amounts, collections
from accounts.collection_models import CollectionRun, Debt
from accounts.exceptions import AccountException
from accounts.management.collectionutils import describe, money_text
from accounts.management.commandutils import (
    Output,
    SweepCommand,
    progress_printer,
)


class Command(SweepCommand):
    help = (
        "Run the collection runs that are due (their freeze moment has passed), or those "
        "named: freeze each one not frozen yet, then initiate its pending debts (the "
        "debt_initiated signal starts each direct debit or charge). Safe to run from cron "
        "while other copies run: each debt is initiated once. -v 0: errors only; -v 2: each "
        "debt. Exit status: 0 done, 1 some run or debt failed, 2 usage error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "references",
            nargs="*",
            metavar="REFERENCE",
            help="Run these runs (by reference) instead of every due one.",
        )
        super().add_arguments(parser)

    def sweep(self, now: datetime.datetime, out: Output, options: dict[str, Any]) -> None:
        dry_run = out.dry_run
        if options["references"]:
            runs = list(CollectionRun.objects.filter(reference__in=options["references"]))
            missing = set(options["references"]) - {run.reference for run in runs}
            if missing:
                raise CommandError(
                    "No collection run has reference %s." % ", ".join(sorted(missing)),
                    returncode=2,
                )
        else:
            runs = list(CollectionRun.objects.due(now).order_by("freeze_at", "pk"))
        failed = 0

        def report(debt: Debt, initiated: bool) -> None:
            if initiated:
                out.item(
                    "  %s debt #%s of %s (#%s): %s"
                    % (
                        "would initiate" if dry_run else "initiated",
                        debt.pk or "(not frozen yet)",
                        debt.account,
                        debt.account_id,
                        money_text(debt.amount),
                    )
                )
            else:
                out.item("  debt #%s: already initiated by another run" % debt.pk)

        for run in runs:
            try:
                result = collections.run_collection(
                    run,
                    dry_run=dry_run,
                    batch_size=options["batch_size"],
                    progress=progress_printer(self, options),
                    report=report,
                )
            except AccountException as exc:
                failed += 1
                out.error("FAILED run %s: %s" % (run.reference, exc))
                continue
            run = result.run
            if dry_run:
                out.summary(
                    "Would %sinitiate %d debt(s) of %s, %s (dry run: nothing written)."
                    % (
                        "freeze it and " if result.froze else "",
                        result.initiated,
                        describe(run),
                        money_text(amounts.money(result.initiated_amount, run.currency)),
                    )
                )
                continue
            out.summary(
                "Run %s: %s%d debt(s) initiated (%s); status %s; to recover %s, "
                "initiated %s, recovered %s, failed %s."
                % (
                    run.reference,
                    "frozen, %d debt(s); " % run.debt_count if result.froze else "",
                    result.initiated,
                    money_text(amounts.money(result.initiated_amount, run.currency)),
                    run.status,
                    money_text(run.total_owed),
                    money_text(run.total_initiated),
                    money_text(run.total_recovered),
                    money_text(run.total_failed),
                )
            )
            if result.skipped:
                out.summary("  %d debt(s) already initiated by another run" % result.skipped)
            for debt, error in result.failures:
                failed += 1
                out.error("  FAILED debt #%s: %s" % (debt.pk, error))
        if not runs:
            out.summary("No collection run is due as of %s." % now.isoformat())
        if failed:
            raise CommandError("%d run(s) or debt(s) failed; see above." % failed)
