"""
The reports' time: days as moments, months back from a date, a period's buckets.

A date given to a report is a whole day in the current time zone
(``fields.window_bound``); labels are in the active locale.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format

from .fields import window_bound

#: A period longer than this many months is charted by year.
MAX_MONTHLY_BARS = 36


def start_of(value: datetime.datetime | datetime.date) -> datetime.datetime:
    """``value``, or the first moment of that day if it is a date."""
    moment: datetime.datetime = window_bound(value, end=False)
    return moment


def end_of(value: datetime.datetime | datetime.date) -> datetime.datetime:
    """``value``, or the last moment of that day if it is a date."""
    moment: datetime.datetime = window_bound(value, end=True)
    return moment


def local_date(moment: datetime.datetime) -> datetime.date:
    if settings.USE_TZ and timezone.is_aware(moment):
        return timezone.localtime(moment).date()
    return moment.date()


def _month_start(year: int, month: int) -> datetime.datetime:
    return start_of(datetime.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1))


def months_back(moment: datetime.datetime, count: int) -> list[datetime.datetime]:
    """The ends of the ``count - 1`` months before ``moment``'s month, then ``moment``."""
    day = local_date(moment)
    ends = []
    for back in range(count - 1, 0, -1):
        following = _month_start(day.year, day.month - back + 1)
        ends.append(following - datetime.timedelta(microseconds=1))
    return [*ends, moment]


def month_label(moment: datetime.datetime) -> str:
    return date_format(local_date(moment), "M Y")


def day_label(moment: datetime.datetime) -> str:
    return date_format(local_date(moment), "DATE_FORMAT")


@dataclass(frozen=True)
class Bucket:
    """A stretch of a period: a month (or a year) clipped to the period."""

    label: str
    start: datetime.datetime
    #: Exclusive, except for the last bucket, which ends with the period.
    end: datetime.datetime


def buckets(start: datetime.datetime, end: datetime.datetime) -> list[Bucket]:
    """The months from ``start`` to ``end``, or the years if there are over 36 months."""
    first, last = local_date(start), local_date(end)
    months = (last.year - first.year) * 12 + last.month - first.month + 1
    by_year = months > MAX_MONTHLY_BARS
    found = []
    year, month = first.year, 1 if by_year else first.month
    lower = start
    while True:
        if by_year:
            upper = _month_start(year + 1, 1)
            label = str(year)
            year += 1
        else:
            upper = _month_start(year, month + 1)
            label = month_label(lower)
            year, month = year + month // 12, month % 12 + 1
        if upper > end:
            found.append(Bucket(label, lower, end))
            return found
        found.append(Bucket(label, lower, upper))
        lower = upper
