"""
The ledger's one clock (``accounts.clock``): the database's, read under the
locks, moved in tests through one patch point (``travelled``).

That every decision reads it, and never the application server's clock, is
shown in ``test_trust_boundary.py``.
"""

import datetime
from unittest import mock

import pytest
from django.test.utils import override_settings
from django.utils import timezone

from accounts import clock
from accounts.models import Account

from .utils import ledger_time

UTC = datetime.UTC
MOMENT = datetime.datetime(2026, 3, 10, 9, 30, 15, 123456, tzinfo=UTC)


def close_to_now(moment):
    return abs(moment - datetime.datetime.now(UTC)) < datetime.timedelta(minutes=5)


def test_nothing_in_the_package_moves_the_clock():
    assert clock.travelled() is None


def test_a_database_time_is_an_aware_moment_in_utc():
    in_paris = MOMENT.astimezone(datetime.timezone(datetime.timedelta(hours=1)))
    assert clock.from_database(in_paris) == MOMENT
    assert clock.from_database(in_paris).tzinfo is UTC
    # Naive values from the drivers are UTC already (Django's connections are).
    assert clock.from_database(MOMENT.replace(tzinfo=None)) == MOMENT


def test_without_a_database_time_the_process_clock_is_read():
    moment = clock.from_database(None)
    assert moment.tzinfo is UTC
    assert close_to_now(moment)


def test_a_value_that_is_not_a_time_is_a_programming_error():
    with pytest.raises(TypeError, match="Unexpected database time '2026-03-10'"):
        clock.from_database("2026-03-10")


@override_settings(USE_TZ=False, TIME_ZONE="Europe/London")
def test_without_time_zones_the_moment_is_naive_in_the_default_time_zone():
    summer = datetime.datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert clock.from_database(summer) == datetime.datetime(2026, 7, 1, 9, 0)


def test_a_travelled_clock_overrides_what_the_database_said():
    with mock.patch("accounts.clock.travelled", return_value=MOMENT):
        assert clock.from_database(None) == MOMENT
        assert clock.from_database(MOMENT + datetime.timedelta(days=3)) == MOMENT


@pytest.mark.django_db
def test_database_now_reads_the_database_clock():
    moment = clock.database_now("default")
    assert timezone.is_aware(moment)
    assert close_to_now(moment)
    with ledger_time(MOMENT):
        assert clock.database_now("default") == MOMENT


@pytest.mark.django_db
def test_database_now_stamps_a_row_with_the_database_clock_or_the_travelled_one(account):
    def stamped():
        rows = Account.objects.filter(pk=account.pk)
        rows.update(credit_limit_changed_at=clock.DatabaseNow())
        return rows.values_list("credit_limit_changed_at", flat=True).get()

    assert close_to_now(stamped())
    with ledger_time(MOMENT):
        # Microseconds survive on every backend (MariaDB's columns keep 6 places).
        assert stamped() == MOMENT
