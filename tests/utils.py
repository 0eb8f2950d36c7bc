"""Helpers shared by the tests (never imported from conftest.py)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

from django.conf import settings
from django.utils import timezone


@contextmanager
def ledger_time(moment: datetime.datetime) -> Iterator[None]:
    """Run code as if it were ``moment``, for the ledger and the application alike.

    The ledger takes its time from the database, under its locks, through
    ``accounts.clock.from_database``: that one function is wrapped, and
    ``django.utils.timezone.now`` (the application's clock) is set too.
    """
    if settings.USE_TZ and timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    with (
        mock.patch("accounts.clock.from_database", return_value=moment),
        mock.patch("django.utils.timezone.now", return_value=moment),
    ):
        yield
