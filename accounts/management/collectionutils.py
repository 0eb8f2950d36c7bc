"""Options and output shared by the collection commands (``accounts.collections``).

Exit codes, as for the other commands: 0 done (or, with ``--dry-run``,
reported); 1 something was refused or failed (each is printed); 2 a usage
error (a date that is not a date, dates out of order, an unknown account
type or currency), before anything was written.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from accounts.collection_models import CollectionRun
from accounts.management.commandutils import USAGE_ERROR, date_or_datetime


def usage_error(message: str) -> CommandError:
    return CommandError(message, returncode=USAGE_ERROR)


def parse_date(value: str, option: str) -> datetime.date:
    """An ISO date given on the command line (``2026-01-31``)."""
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        raise usage_error(
            "%s %r is not an ISO date (e.g. 2026-01-31)." % (option, value)
        ) from None


def parse_moment(value: str, option: str) -> datetime.datetime:
    """An ISO datetime (naive means the current time zone); a date means its last moment."""
    moment = date_or_datetime(value, option, "2026-01-31T23:59:59")
    if isinstance(moment, datetime.datetime):
        return moment
    return datetime.datetime.combine(moment, datetime.time.max)


def aware(moment: datetime.datetime) -> datetime.datetime:
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def month(value: str) -> tuple[datetime.date, datetime.date]:
    """The first and last day of ``YYYY-MM``, or of the month before today's (``last-month``)."""
    if value == "last-month":
        first_of_this = timezone.localdate().replace(day=1)
        last = first_of_this - datetime.timedelta(days=1)
        return last.replace(day=1), last
    try:
        first = datetime.date.fromisoformat(value + "-01")
    except ValueError:
        raise usage_error(
            "--period %r is not a month: give YYYY-MM (e.g. 2026-01) or last-month." % value
        ) from None
    following = (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return first, following - datetime.timedelta(days=1)


def money_text(value: Any) -> str:
    """An amount as the commands print it: ``12.50 GBP``."""
    return "%s %s" % (value.amount, value.currency.code)


def moment_text(moment: datetime.datetime | None) -> str:
    if moment is None:
        return ""
    return (
        timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")
        if timezone.is_aware(moment)
        else moment.strftime("%Y-%m-%d %H:%M")
    )


def describe(run: CollectionRun, *, reference: bool = True) -> str:
    """One line naming a run: reference, scope, currency, period, freeze and collection."""
    return "%s%s, %s, %s to %s, frozen at %s, collected on %s" % (
        "run %s: " % run.reference if reference else "a run of ",
        run.scope_label,
        run.currency,
        moment_text(run.period_start),
        moment_text(run.period_end),
        moment_text(run.freeze_at),
        run.collect_on.isoformat(),
    )
