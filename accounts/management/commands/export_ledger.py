"""
``manage.py export_ledger``: the ledger as a journal for an accountant.

Exit codes: 0 the file was written; 1 the export failed while running (the
database or the disk; nothing is left at ``--output``, and a file already
there is kept as it was); 2 a usage error (an option missing or malformed,
``--end`` before ``--start``, an unknown account type, a directory that
does not exist). Usage errors are raised as ``CommandError`` with
``returncode=2`` (under ``call_command`` too).
"""

from __future__ import annotations

import csv
import datetime
import os
import tempfile
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError
from django.utils import timezone

from accounts.exports import JOURNAL_COLUMNS, journal_rows
from accounts.management.commandutils import date_or_datetime
from accounts.models import AccountType

USAGE, FAILED = 2, 1


def moment(value: str, option: str) -> datetime.date | datetime.datetime:
    """An ISO date (a whole day) or datetime (naive: the current time zone)."""
    parsed = date_or_datetime(value, option, "2026-01-31 or 2026-01-31T18:00:00+00:00")
    if not isinstance(parsed, datetime.datetime):
        return parsed
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def bound(value: datetime.date | datetime.datetime, *, end: bool) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    moment = datetime.datetime.combine(value, datetime.time.max if end else datetime.time.min)
    return timezone.make_aware(moment)


class Command(BaseCommand):
    help = (
        "Write the ledger's journal from --start to --end (dates are whole days, "
        "inclusive) to --output: one CSV row per leg, with the transfer's reference, the "
        "date, the account, and debit and credit columns. Exit status 0 when written, "
        "1 when the export failed (nothing is written), 2 for a usage error."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--start", required=True, help="First day (YYYY-MM-DD) or moment (ISO 8601)."
        )
        parser.add_argument("--end", required=True, help="Last day (inclusive) or moment.")
        parser.add_argument(
            "--account-type",
            action="append",
            metavar="CODE",
            help=(
                "Only transfers touching an account of this type or a type below it (both "
                "legs of each). Repeat for several types."
            ),
        )
        parser.add_argument(
            "--date-field",
            choices=["created", "effective_at"],
            default="created",
            help=(
                "The date --start and --end apply to, the rows are sorted by and the date "
                "column shows: created (posted, the default) or effective_at (when the "
                "movement happened in the world)."
            ),
        )
        parser.add_argument("--format", choices=["csv"], default="csv")
        parser.add_argument(
            "--output", required=True, metavar="FILE", help='The file to write; "-" for stdout.'
        )
        parser.add_argument("--database", default=DEFAULT_DB_ALIAS)

    def handle(self, *args: Any, **options: Any) -> None:
        start = moment(options["start"], "--start")
        end = moment(options["end"], "--end")
        if bound(start, end=False) > bound(end, end=True):
            raise CommandError(
                "--end %s is before --start %s." % (options["end"], options["start"]),
                returncode=USAGE,
            )
        using = options["database"]
        types = None
        if options["account_type"]:
            codes = options["account_type"]
            types = list(AccountType.objects.using(using).filter(code__in=codes))
            missing = sorted(set(codes) - {t.code for t in types})
            if missing:
                known = ", ".join(AccountType.objects.using(using).values_list("code", flat=True))
                raise CommandError(
                    "Unknown account type %s (known: %s)." % (", ".join(missing), known or "none"),
                    returncode=USAGE,
                )
        output = options["output"]
        directory = os.path.dirname(os.path.abspath(output))
        if output != "-" and not os.path.isdir(directory):
            raise CommandError(
                "Cannot write %s: the directory %s does not exist." % (output, directory),
                returncode=USAGE,
            )
        rows = journal_rows(
            start,
            end,
            account_types=types,
            using=using,
            progress=self._progress(options),
            date_field=options["date_field"],
        )
        try:
            if output == "-":
                written = self._write(self.stdout._out, rows)
                self.stderr.write("Wrote %d rows." % written)
                return
            written = self._write_file(output, directory, rows)
        except (OSError, DatabaseError) as error:
            raise CommandError(
                "The export failed, nothing was written to %s: %s" % (output, error),
                returncode=FAILED,
            ) from error
        finally:
            self._end_progress()
        self.stdout.write("Wrote %d rows (%d transfers) to %s." % (written, written // 2, output))

    def _write(self, stream: Any, rows: Any) -> int:
        writer = csv.writer(stream)
        writer.writerow(JOURNAL_COLUMNS)
        written = 0
        for row in rows:
            writer.writerow(row)
            written += 1
        return written

    def _write_file(self, output: str, directory: str, rows: Any) -> int:
        """Write next to ``output``, then move it into place: a failure leaves no half file."""
        handle, temporary = tempfile.mkstemp(
            prefix=".%s." % os.path.basename(output), dir=directory
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
                written = self._write(stream, rows)
            os.replace(temporary, output)
        except BaseException:
            os.unlink(temporary)
            raise
        return written

    def _progress(self, options: dict[str, Any]) -> Any:
        """Progress on a terminal (stderr), nothing when it is redirected, e.g. from cron."""
        self._shown = False
        if options["verbosity"] < 1 or not getattr(self.stderr._out, "isatty", lambda: False)():
            return None

        def report(rows: int) -> None:
            self._shown = True
            self.stderr.write("\r  %d rows written" % rows, ending="")
            self.stderr.flush()

        return report

    def _end_progress(self) -> None:
        if getattr(self, "_shown", False):
            self.stderr.write("")
