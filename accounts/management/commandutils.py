"""Options and output shared by the sweep commands."""

from __future__ import annotations

import argparse
import datetime
from typing import Any

from dateutil import parser as dateparser
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.expiry import DEFAULT_BATCH_SIZE


def add_sweep_arguments(parser: Any) -> None:
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
            "time zone) or datetime (naive means the current time zone)."
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


def sweep_time(value: str | None) -> datetime.datetime:
    """Parse --as-of; default to now."""
    if not value:
        return timezone.now()
    try:
        moment = dateparser.isoparse(value)
    except (ValueError, OverflowError):
        raise CommandError(
            "--as-of %r is not an ISO date or datetime (e.g. 2026-01-31 or "
            "2026-01-31T18:00:00+00:00)." % value
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def progress_printer(command: Any, options: dict[str, Any]) -> Any:
    """Progress lines on a terminal (verbosity >= 1), nothing when piped, e.g. from cron."""
    stream = command.stdout
    if options["verbosity"] < 1 or not getattr(stream._out, "isatty", lambda: False)():
        return None

    def report(seen: int) -> None:
        stream.write("  ... %d looked at" % seen)

    return report
