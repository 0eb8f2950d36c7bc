"""
CSV exports (``accounts.exports``): how each value is written, and the keyset
pages rows are read in.

The admin's downloads are tested with the admin (``test_admin_reports.py``),
the journal with its command (``test_export_ledger.py``), exports by
effective date in ``test_effective_at.py``.
"""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone
from djmoney.money import Money

from accounts import exports
from accounts.models import Transaction, Transfer

from .utils import build_report_ledger

pytestmark = pytest.mark.django_db

UTC = datetime.UTC


@pytest.fixture
def ledger(db):
    return build_report_ledger()


# Values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "currency", "written"),
    [
        (Decimal("1234.5000"), "GBP", "1234.50"),
        (Decimal("-3"), "GBP", "-3.00"),
        (Money("1200", "JPY"), "JPY", "1200"),
        (Decimal("0.0000"), "EUR", "0.00"),
        (Decimal("1234567.89"), "GBP", "1234567.89"),  # no thousands separators
        (None, "GBP", ""),
    ],
)
def test_money_is_plain_decimal_text_in_the_currencys_places(value, currency, written):
    assert exports.money_text(value, currency) == written


def test_moments_are_iso_8601_to_the_second_in_the_current_time_zone():
    summer = datetime.datetime(2026, 7, 1, 8, 30, 5, 999999, tzinfo=UTC)
    winter = datetime.datetime(2026, 1, 1, 8, 30, 5, tzinfo=UTC)
    assert exports.moment_text(summer) == "2026-07-01T09:30:05+01:00"
    assert exports.moment_text(winter) == "2026-01-01T08:30:05+00:00"
    assert exports.moment_text(None) == ""
    with timezone.override("Asia/Tokyo"):
        assert exports.moment_text(winter) == "2026-01-01T17:30:05+09:00"


def test_a_date_is_the_day_of_the_moment_in_the_current_time_zone():
    late = datetime.datetime(2026, 6, 30, 23, 30, tzinfo=UTC)
    assert exports.date_text(late) == "2026-07-01"
    with timezone.override("UTC"):
        assert exports.date_text(late) == "2026-06-30"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Teapot & Grinder", "Teapot & Grinder"),
        ("=1+2", "'=1+2"),
        ("+44 20", "'+44 20"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        (None, ""),
        (12, "12"),
    ],
)
def test_text_a_spreadsheet_would_run_is_neutralised(value, written):
    assert exports.text(value) == written


def test_metadata_is_compact_sorted_json_and_neutralised_too():
    assert exports.metadata_text({}) == ""
    assert exports.metadata_text(None) == ""
    assert exports.metadata_text({"b": 1, "a": "é"}) == '{"a":"é","b":1}'
    assert exports.metadata_text({"=": 1}) == '{"=":1}'


def test_csv_lines_are_quoted_where_needed_one_line_at_a_time():
    lines = exports.csv_lines(["name", "amount"], [["Tea, and cake", "1.00"], ['"x"', ""]])
    assert next(lines) == "name,amount\r\n"
    assert list(lines) == ['"Tea, and cake",1.00\r\n', '"""x""",\r\n']


def test_a_streaming_csv_is_a_download_named_as_asked():
    response = exports.streaming_csv("statement.csv", ["a"], iter([["1"], ["2"]]))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="statement.csv"'
    assert b"".join(response.streaming_content) == b"a\r\n1\r\n2\r\n"


# Pages ---------------------------------------------------------------------------------


def test_exports_read_pages_by_keyset_and_yield_before_reading_everything(
    ledger, django_assert_num_queries
):
    rows = exports.pages(Transaction.objects.all(), size=4)
    with django_assert_num_queries(1):
        first = next(rows)
    with django_assert_num_queries(7):
        rest = list(rows)

    legs = list(Transaction.objects.order_by("created", "pk"))
    assert [first, *rest] == legs
    assert len(legs) == 28


def test_descending_pages_cover_rows_sharing_a_moment(ledger):
    """euro_1 and euro_2 were posted at the same moment: a keyset on created alone would
    drop one of them at a page boundary."""
    found = list(exports.pages(Transfer.objects.all(), descending=True, size=1))

    assert found == list(Transfer.objects.order_by("-created", "-pk"))
