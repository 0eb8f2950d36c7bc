from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from accounts.checks import (
    check_api_settings,
    check_databases,
    check_settings,
    isolation_warnings,
)
from accounts.conf import conf


def ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_settings()]


def test_default_settings_pass():
    assert ids() == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"ACCOUNTS_DEFAULT_CURRENCY": "XYZ"}, "accounts.E001"),
        ({"ACCOUNTS_CURRENCIES": ["GBP", "QQQ"]}, "accounts.E002"),
        ({"ACCOUNTS_CURRENCIES": []}, "accounts.E002"),
        ({"ACCOUNTS_CURRENCIES": "GBP,EUR"}, "accounts.E002"),
        ({"ACCOUNTS_CURRENCIES": ["EUR"]}, "accounts.E003"),
        (
            {"ACCOUNTS_SALES_NAME": "Sales", "ACCOUNTS_REDEMPTIONS_NAME": "Redemptions"},
            "accounts.E004",
        ),
        ({"ACCOUNTS_EXPIRED_NAME": "Expired", "ACCOUNTS_LAPSED_NAME": "Lapsed"}, "accounts.E004"),
        ({"ACCOUNTS_MIN_INITIAL_VALUE": 5.0}, "accounts.E005"),
        ({"ACCOUNTS_MAX_INITIAL_VALUE": "100"}, "accounts.E005"),
        ({"ACCOUNTS_MIN_INITIAL_VALUE": Decimal("-1")}, "accounts.E005"),
        (
            {
                "ACCOUNTS_MIN_INITIAL_VALUE": Decimal("10"),
                "ACCOUNTS_MAX_INITIAL_VALUE": Decimal("5"),
            },
            "accounts.E006",
        ),
        ({"ACCOUNTS_SOURCE_NAME": "Sales"}, "accounts.E007"),
        ({"ACCOUNTS_EXPIRED_NAME": ""}, "accounts.E007"),
    ],
)
def test_bad_settings_are_reported(settings, expected):
    assert expected in ids(**settings)


def test_an_alias_set_to_the_same_value_is_fine():
    assert ids(ACCOUNTS_SALES_NAME="Sales", ACCOUNTS_REDEMPTIONS_NAME="Sales") == []


def test_messages_name_the_bad_value_and_give_a_hint():
    with override_settings(ACCOUNTS_DEFAULT_CURRENCY="XYZ", ACCOUNTS_CURRENCIES=["XYZ"]):
        (message, *_) = check_settings()
    assert "'XYZ'" in message.msg
    assert message.hint


def test_checks_are_registered():
    with override_settings(ACCOUNTS_MIN_INITIAL_VALUE=1.5):
        with pytest.raises(SystemCheckError, match="accounts.E005"):
            call_command("check")


def test_repeatable_read_on_mysql_is_warned_about():
    mysql = {"ENGINE": "django.db.backends.mysql"}
    repeatable = {**mysql, "OPTIONS": {"isolation_level": "repeatable read"}}
    assert [m.id for m in isolation_warnings({"default": repeatable})] == ["accounts.W001"]
    assert isolation_warnings({"default": mysql}) == []
    assert isolation_warnings({"default": {"ENGINE": "django.db.backends.sqlite3"}}) == []
    assert check_databases() == []  # the test settings use Django's default


def test_settings_are_read_lazily():
    with override_settings(ACCOUNTS_DEFAULT_CURRENCY="EUR", ACCOUNTS_CURRENCIES=None):
        assert conf.DEFAULT_CURRENCY == "EUR"
        assert conf.CURRENCIES == ("EUR",)
    with override_settings(ACCOUNTS_LAPSED_NAME="Lapsed"):
        assert conf.EXPIRED_NAME == "Lapsed"
    assert conf.EXPIRED_NAME == "Expired accounts"


def api_ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_api_settings()]


def allow_everything(user, source, destination):
    return True


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, []),
        ({"ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES": []}, []),
        ({"ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES": ("wallets", "gift-cards")}, []),
        ({"ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES": "wallets"}, ["accounts.E012"]),
        ({"ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES": ["wallets", 3]}, ["accounts.E012"]),
        ({"ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES": [""]}, ["accounts.E012"]),
        ({"ACCOUNTS_API_PAYMENT_POLICY": "tests.test_checks.allow_everything"}, []),
        ({"ACCOUNTS_API_PAYMENT_POLICY": "tests.test_checks.no_such_policy"}, ["accounts.E013"]),
        ({"ACCOUNTS_API_PAYMENT_POLICY": "nowhere.policy"}, ["accounts.E013"]),
        ({"ACCOUNTS_API_PAYMENT_POLICY": "tests.test_checks.NAME"}, ["accounts.E013"]),
        ({"ACCOUNTS_API_PAYMENT_POLICY": None}, ["accounts.E013"]),
    ],
)
def test_api_settings_are_checked(settings, expected):
    assert api_ids(**settings) == expected


NAME = "not callable"


def test_the_api_settings_checks_are_registered():
    with override_settings(ACCOUNTS_API_PAYMENT_POLICY="nowhere.policy"):
        with pytest.raises(SystemCheckError, match="accounts.E013"):
            call_command("check")
