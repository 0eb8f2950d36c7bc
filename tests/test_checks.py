import ast
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test.utils import override_settings

from accounts import checks as checks_module
from accounts.checks import (
    check_api_settings,
    check_databases,
    check_engine_settings,
    check_settings,
    check_wallet_settings,
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
        # Also not in ACCOUNTS_CURRENCIES (GBP, EUR, JPY): both are reported.
        ({"ACCOUNTS_DEFAULT_CURRENCY": "XYZ"}, ["accounts.E001", "accounts.E003"]),
        ({"ACCOUNTS_CURRENCIES": ["GBP", "QQQ"]}, ["accounts.E002"]),
        ({"ACCOUNTS_CURRENCIES": []}, ["accounts.E002"]),
        ({"ACCOUNTS_CURRENCIES": "GBP,EUR"}, ["accounts.E002"]),
        ({"ACCOUNTS_CURRENCIES": ["EUR"]}, ["accounts.E003"]),
        (
            {"ACCOUNTS_SALES_NAME": "Sales", "ACCOUNTS_REDEMPTIONS_NAME": "Redemptions"},
            ["accounts.E004"],
        ),
        (
            {"ACCOUNTS_EXPIRED_NAME": "Expired", "ACCOUNTS_LAPSED_NAME": "Lapsed"},
            ["accounts.E004"],
        ),
        ({"ACCOUNTS_MIN_INITIAL_VALUE": 5.0}, ["accounts.E005"]),
        ({"ACCOUNTS_MAX_INITIAL_VALUE": "100"}, ["accounts.E005"]),
        ({"ACCOUNTS_MIN_INITIAL_VALUE": Decimal("-1")}, ["accounts.E005"]),
        (
            {
                "ACCOUNTS_MIN_INITIAL_VALUE": Decimal("10"),
                "ACCOUNTS_MAX_INITIAL_VALUE": Decimal("5"),
            },
            ["accounts.E006"],
        ),
        ({"ACCOUNTS_SOURCE_NAME": "Sales"}, ["accounts.E007"]),
        ({"ACCOUNTS_EXPIRED_NAME": ""}, ["accounts.E007"]),
    ],
)
def test_bad_settings_are_reported(settings, expected):
    assert ids(**settings) == expected


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
            call_command("check", databases=[])


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
            call_command("check", databases=[])


def engine_ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_engine_settings()]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, []),
        ({"ACCOUNTS_BATCH_MAX_SIZE": 1}, []),
        ({"ACCOUNTS_BATCH_MAX_SIZE": 2000}, []),
        ({"ACCOUNTS_BATCH_MAX_SIZE": 0}, ["accounts.E014"]),
        ({"ACCOUNTS_BATCH_MAX_SIZE": 2001}, ["accounts.E014"]),
        ({"ACCOUNTS_BATCH_MAX_SIZE": True}, ["accounts.E014"]),
        ({"ACCOUNTS_BATCH_MAX_SIZE": "100"}, ["accounts.E014"]),
        ({"ACCOUNTS_PREPARE_STATEMENTS": False}, []),
        ({"ACCOUNTS_PREPARE_STATEMENTS": "yes"}, ["accounts.E015"]),
        (
            {"ACCOUNTS_BATCH_MAX_SIZE": 0, "ACCOUNTS_PREPARE_STATEMENTS": 1},
            ["accounts.E014", "accounts.E015"],
        ),
    ],
)
def test_engine_settings_are_checked(settings, expected):
    assert engine_ids(**settings) == expected


def wallet_ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_wallet_settings()]


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, []),
        ({"ACCOUNTS_TIME_ZONE": "UTC"}, []),
        ({"ACCOUNTS_TIME_ZONE": "Mars/Olympus"}, ["accounts.E020"]),
        ({"ACCOUNTS_TIME_ZONE": "../etc"}, ["accounts.E020"]),
        ({"ACCOUNTS_TIME_ZONE": 3}, ["accounts.E020"]),
        ({"ACCOUNTS_RECORD_DECLINES": "yes"}, ["accounts.E021"]),
        (
            {"ACCOUNTS_TIME_ZONE": "Mars/Olympus", "ACCOUNTS_RECORD_DECLINES": 1},
            ["accounts.E020", "accounts.E021"],
        ),
    ],
)
def test_wallet_settings_are_checked(settings, expected):
    assert wallet_ids(**settings) == expected


def test_the_test_settings_pass_every_registered_check():
    assert [message.id for message in checks.run_checks(databases=[])] == []


@override_settings(ACCOUNTS_BATCH_MAX_SIZE=0, ACCOUNTS_TIME_ZONE="Mars/Olympus")
def test_the_engine_and_wallet_checks_are_registered():
    # Django keeps registered checks in a set: their order varies from run to run.
    ids = [
        message.id
        for message in checks.run_checks(databases=[])
        if message.id.startswith("accounts.")
    ]
    assert sorted(ids) == ["accounts.E014", "accounts.E020"]


def test_the_ledger_of_ids_lists_exactly_the_ids_in_use():
    source = Path(checks_module.__file__).read_text()
    ledger = ast.get_docstring(ast.parse(source), clean=False)
    documented = re.findall(r"^\* (accounts\.[EW]\d{3}) ", ledger, re.MULTILINE)
    used = re.findall(r"\baccounts\.[EW]\d{3}\b", source.replace(ledger, ""))
    assert documented == sorted(set(documented)), "the ledger of ids is not in order"
    assert sorted(set(used)) == documented
