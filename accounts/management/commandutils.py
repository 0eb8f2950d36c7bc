"""Options and output shared by the sweep commands.

Exit codes, as the README documents them: 0 when everything asked for was
done (or, with ``--dry-run``, reported); 1 when some item failed (the others
are done); 2 for a usage error, before anything is looked at (an option
argparse refuses, an ``--as-of`` that is not a date, or in the future on a
real run).
"""

from __future__ import annotations

import argparse
import datetime
from collections.abc import Callable
from typing import Any, TypeVar

from dateutil import parser as dateparser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from accounts.clock import database_now
from accounts.expiry import DEFAULT_BATCH_SIZE

#: Exit code of a run refused before it started (argparse uses it too).
USAGE_ERROR = 2

Result = TypeVar("Result")


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="Report what would happen; write nothing.",
    )
    parser.add_argument(
        "--as-of",
        metavar="DATETIME",
        help=(
            "Treat this moment as now: an ISO date (meaning its start, in the current "
            "time zone) or datetime (naive means the current time zone). A moment in "
            "the future needs --dry-run: it shows what would be due by then."
        ),
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=DEFAULT_BATCH_SIZE,
        help="Rows read per query (default %(default)s).",
    )


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1, not %r" % value)
    return number


def date_or_datetime(value: str, option: str, example: str) -> datetime.date | datetime.datetime:
    """``value`` of ``option`` as an ISO date, else as an ISO datetime (naive as given).

    Raises ``CommandError`` (exit code 2) saying so, with ``example``, when it is neither.
    """
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        pass
    try:
        return dateparser.isoparse(value)
    except (ValueError, OverflowError):
        raise CommandError(
            "%s %r is not an ISO date or datetime (e.g. %s)." % (option, value, example),
            returncode=USAGE_ERROR,
        ) from None


def sweep_time(value: str | None, options: dict[str, Any] | None = None) -> datetime.datetime:
    """Parse --as-of; default to now.

    A moment later than the database's clock is refused for a real run: it
    would look like a promise to expire holds and close accounts before they
    are due, which the ledger never does (each item is judged under its lock
    by the database's clock). A dry run may look ahead.
    """
    if not value:
        return timezone.now()
    try:
        moment = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        raise CommandError(
            "--as-of %r is not an ISO date or datetime (e.g. 2026-01-31 or "
            "2026-01-31T18:00:00+00:00)." % value,
            returncode=USAGE_ERROR,
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    options = options or {}
    if not options.get("dry_run") and moment > database_now(DEFAULT_DB_ALIAS):
        raise CommandError(
            "--as-of %s is in the future: nothing is due then yet, and a real run acts "
            "only on what is due now. Add --dry-run to see what would be due by then."
            % moment.isoformat(),
            returncode=USAGE_ERROR,
        )
    return moment


class Output:
    """What a sweep prints, by verbosity, as Django's own commands do.

    0: nothing but errors (on stderr). 1 (the default): a summary. 2: also
    each item, as it is committed (or, in a dry run, looked at). Progress
    lines appear on a terminal only, never in a cron log.
    """

    def __init__(self, command: BaseCommand, options: dict[str, Any]) -> None:
        self.command = command
        self.verbosity = options["verbosity"]
        self.dry_run = options["dry_run"]

    def summary(self, text: str) -> None:
        if self.verbosity >= 1:
            self.command.stdout.write(text)

    def item(self, text: str) -> None:
        if self.verbosity >= 2:
            self.command.stdout.write(text)

    def error(self, text: str) -> None:
        self.command.stderr.write(text)

    def total(self, done: str, would: str, count: int, what: str, now: datetime.datetime) -> None:
        """The summary's first line: ``Expired 3 hold(s) as of ...``, or what would be done."""
        self.summary(
            "%s %d %s as of %s%s."
            % (
                would if self.dry_run else done,
                count,
                what,
                now.isoformat(),
                " (dry run: nothing written)" if self.dry_run else "",
            )
        )


class SweepCommand(BaseCommand):
    """A sweep command: the options of :func:`add_sweep_arguments`, then :meth:`sweep`."""

    def add_arguments(self, parser: CommandParser) -> None:
        add_sweep_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        now = sweep_time(options["as_of"], options)
        self.sweep(now, Output(self, options), options)

    def sweep(self, now: datetime.datetime, out: Output, options: dict[str, Any]) -> None:
        """Do the sweep as of ``now`` (the parsed ``--as-of``), printing to ``out``."""
        raise NotImplementedError


def run_sweep(
    sweep: Callable[..., Result],
    command: BaseCommand,
    options: dict[str, Any],
    now: datetime.datetime,
    report: Callable[..., None],
) -> Result:
    """Call ``sweep`` (an ``accounts.expiry`` sweep, ``run_due_collections``) with the options."""
    return sweep(
        now=now,
        dry_run=options["dry_run"],
        batch_size=options["batch_size"],
        progress=progress_printer(command, options),
        report=report,
    )


def progress_printer(
    command: BaseCommand, options: dict[str, Any]
) -> Callable[[int], None] | None:
    """Progress lines on a terminal (verbosity >= 1), nothing when piped, e.g. from cron."""
    stream = command.stdout
    if options["verbosity"] < 1 or not getattr(stream._out, "isatty", lambda: False)():
        return None

    def report(seen: int) -> None:
        stream.write("  ... %d looked at" % seen)

    return report
