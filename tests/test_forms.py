"""Amounts typed by people (accounts.forms.parse_amount_text) and the money form fields."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from accounts.forms import AmountField, CreditLimitField, parse_amount_text


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("12.50", "12.50"),
        ("12,50", "12.50"),  # a decimal comma is a decimal point, never dropped
        ("1,5", "1.5"),
        ("0,125", "0.125"),  # a leading zero cannot be a thousands group
        ("1.500", "1.500"),  # a lone point is the decimal point
        (".5", "0.5"),
        ("  7  ", "7"),
        ("1,234.56", "1234.56"),
        ("1.234,56", "1234.56"),
        ("1 234,56", "1234.56"),
        ("1\u00a0234,56", "1234.56"),  # a no-break space, as French locales write it
        ("1\u202f234.56", "1234.56"),
        ("1'234.50", "1234.50"),
        ("12,345,678", "12345678"),
        ("12.345.678", "12345678"),
        ("1 234 567", "1234567"),
        ("-5", "-5"),  # the caller refuses it, with its own message
        ("\u22125,00", "-5.00"),
        ("+5", "5"),
    ],
)
def test_amounts_are_read_as_people_write_them(typed, read):
    value = parse_amount_text(typed)
    assert value == Decimal(read)
    assert str(value) == read  # no digit added or lost


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("1,500", "1,500 could mean 1500 or 1.50: type 1500 or 1.50."),
        ("12,001", "12,001 could mean 12001 or 12.0010: type 12001 or 12.0010."),
        ("1,50,000", "thousands separator in the wrong place"),
        ("1 23", "thousands separator in the wrong place"),
        ("1,234 567.5", "mixes two kinds of thousands separator"),
        ("1.2.3,4.5", "more than one decimal separator"),
        ("12.", "Type the amount as a number"),
        ("1,,5", "thousands separator in the wrong place"),
        ("£12.50", "without a currency symbol or code"),
        ("12.50 EUR", "without a currency symbol or code"),
        ("1e3", "in digits only"),
        ("NaN", "in digits only"),
        ("١٢", "Type the amount as a number"),
        ("-", "Type the amount as a number"),
        ("1/2", "Type the amount as a number"),
    ],
)
def test_what_could_be_misread_is_refused_with_what_to_type(typed, message):
    with pytest.raises(ValidationError, match=message.replace(".", r"\.").replace("+", r"\+")):
        parse_amount_text(typed)


# How amounts look in British, German, French and Swiss writing.
STYLES = [(",", "."), (".", ","), ("\u00a0", ","), ("'", ".")]


def written(value, group, point):
    whole, fraction = ("%.2f" % value).split(".")
    groups = []
    while len(whole) > 3:
        whole, last = whole[:-3], whole[-3:]
        groups.insert(0, last)
    return group.join([whole, *groups]) + point + fraction


@given(
    cents=st.integers(min_value=1, max_value=10**14),
    style=st.sampled_from(STYLES),
    grouped=st.booleans(),
)
def test_an_amount_written_with_its_pence_reads_back_exactly_in_every_style(cents, style, grouped):
    value = Decimal(cents).scaleb(-2)
    group, point = style
    text = written(value, group if grouped else "", point)
    assert parse_amount_text(text) == value


def test_the_amount_field_refuses_zero_and_negative_amounts():
    field = AmountField()
    assert field.clean("1,50") == Decimal("1.50")
    with pytest.raises(ValidationError, match="must be greater than zero"):
        field.clean("0,00")
    with pytest.raises(ValidationError, match="must be greater than zero"):
        field.clean("-1")


def test_a_credit_limit_may_be_zero_or_empty_but_never_negative():
    field = CreditLimitField(required=False)
    assert field.clean("") is None
    assert field.clean("0") == Decimal("0")
    assert field.clean("1.234,50") == Decimal("1234.50")
    with pytest.raises(ValidationError, match="A credit limit cannot be negative"):
        field.clean("-0,01")


def test_the_amount_box_is_text_so_the_browser_sends_what_was_typed():
    html = AmountField().widget.render("amount", "1,50")
    assert 'type="text"' in html and 'inputmode="decimal"' in html and 'value="1,50"' in html
