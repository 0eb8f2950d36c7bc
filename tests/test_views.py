"""The package's public views (accounts.urls): the gift card balance check and its throttle."""

import datetime
import time
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.test.utils import override_settings
from django.urls import reverse
from django.utils import timezone

import accounts
from accounts import facade
from accounts.checks import check_code_lookup_settings
from accounts.codes import check_character, format_code, generate_code
from accounts.conf import conf
from accounts.models import Account

from .factories import AccountFactory

URL = "/gift-cards/balance/"

# Failed lookups are counted in the cache, which outlives a test.
pytestmark = pytest.mark.usefixtures("empty_caches")


def unknown_code():
    """A well-formed code that no card has."""
    return "2" * 15 + check_character("2" * 15)


def check(client, code, **extra):
    return client.post(URL, {"code": code}, **extra)


def test_the_view_is_mounted_by_accounts_urls():
    assert reverse("accounts:balance_check") == URL


def test_the_page_shows_a_csrf_protected_form(client, db):
    response = client.get(URL)
    assert response.status_code == 200
    assert b'name="code"' in response.content
    assert b"csrfmiddlewaretoken" in response.content
    assert "no-cache" in response["Cache-Control"]


def test_posting_without_the_csrf_token_is_refused(card):
    response = Client(enforce_csrf_checks=True).post(URL, {"code": card.code})
    assert response.status_code == 403


def test_a_code_typed_in_small_letters_with_spaces_and_dashes_shows_the_balance(client, card):
    typed = " " + format_code(card.code).lower().replace("-", " - ", 1) + " "
    response = check(client, typed)
    assert response.status_code == 200
    assert response.context["card"] == card
    text = response.content.decode()
    assert format_code(card.code) in text
    assert "£25.00" in text
    assert "Ready to use: £25.00 to spend." in text


def test_a_get_with_a_code_looks_nothing_up(client, card, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get(URL, {"code": card.code})
    assert response.context.get("card") is None


def test_an_unknown_code_says_so(client, db):
    response = check(client, unknown_code())
    assert response.status_code == 200
    assert response.context.get("card") is None
    assert response.context["form"].errors["code"] == ["No gift card has this code."]


def test_a_mistyped_code_is_reported_as_a_typo(client, card):
    typo = ("3" if card.code[0] != "3" else "4") + card.code[1:]
    response = check(client, typo)
    assert response.context["form"].errors["code"] == [
        "This is not a valid gift card code: check it for typing mistakes."
    ]


def test_an_empty_code_is_a_form_error(client, db):
    response = check(client, " - - ")
    assert response.context["form"].errors["code"] == ["Enter the code printed on the card."]


def test_an_expired_card_says_when_it_expired(client, card):
    Account.objects.filter(pk=card.pk).update(end_date=timezone.now() - datetime.timedelta(days=3))
    text = check(client, card.code).content.decode()
    assert "This card expired on" in text
    assert "its balance can no longer be spent" in text
    assert "£25.00" in text


def test_a_frozen_card_says_it_is_frozen(client, card):
    card.freeze()
    text = check(client, card.code).content.decode()
    assert "This card is frozen and cannot be used for now." in text


def test_a_closed_card_says_it_is_closed(client, db):
    closed = AccountFactory(name=None, code=generate_code())
    closed.close()
    text = check(client, closed.code).content.decode()
    assert "This card is closed and can no longer be used." in text


def test_a_card_not_yet_valid_says_from_when(client, card):
    Account.objects.filter(pk=card.pk).update(
        start_date=timezone.now() + datetime.timedelta(days=2)
    )
    assert "This card can be used from" in check(client, card.code).content.decode()


def test_held_money_is_shown_apart_from_what_can_be_spent(client, card):
    facade.hold(card, Account.objects.sales_account(), Decimal("5.00"))
    text = check(client, card.code).content.decode()
    assert "Reserved for orders in progress" in text
    assert "Ready to use: £20.00 to spend." in text


# Guessing -----------------------------------------------------------------------------


def test_the_fifth_failure_in_a_row_shows_the_429_page_and_blocks_the_client(client, card):
    for _ in range(4):
        assert check(client, unknown_code()).status_code == 200
    fifth = check(client, unknown_code())
    # As the README says: a wrong code five times, and the 429 page.
    assert fifth.status_code == 429
    assert 0 < int(fifth["Retry-After"]) <= 900
    text = fifth.content.decode()
    assert "No gift card has this code." in text  # what was wrong with this one
    assert "code lookups are paused: try again in 15 minute(s)" in text
    response = check(client, card.code)  # even the right code, while blocked
    assert response.status_code == 429
    assert response.context.get("card") is None
    assert 0 < int(response["Retry-After"]) <= 900
    text = response.content.decode()
    assert "Too many codes that match no gift card were tried from your network" in text
    assert "try again in 15 minute(s)" in text


def test_a_blocked_client_costs_no_database_query(client, card, django_assert_num_queries):
    for _ in range(5):
        check(client, unknown_code())
    with django_assert_num_queries(0):
        assert check(client, card.code).status_code == 429


def test_a_successful_lookup_starts_the_count_again(client, card):
    for _ in range(4):
        check(client, unknown_code())
    assert check(client, card.code).status_code == 200
    for _ in range(4):
        assert check(client, unknown_code()).status_code == 200
    assert check(client, card.code).status_code == 200


def test_typos_count_as_failures_too(client, card):
    for _ in range(5):
        check(client, "NOT-A-CODE")
    assert check(client, card.code).status_code == 429


def test_the_block_lifts_after_the_cooldown(client, card):
    for _ in range(5):
        check(client, unknown_code())
    assert check(client, card.code).status_code == 429
    later = time.time() + conf.CODE_LOOKUP_COOLDOWN + 1
    with mock.patch("time.time", return_value=later):
        assert check(client, card.code).status_code == 200
        # A fresh start: four more failures are answered, the fifth blocks.
        for _ in range(4):
            assert check(client, unknown_code()).status_code == 200
        assert check(client, unknown_code()).status_code == 429
        assert check(client, card.code).status_code == 429


def test_failures_are_counted_per_client_address(client, card):
    for _ in range(5):
        check(client, unknown_code(), REMOTE_ADDR="198.51.100.7")
    assert check(client, card.code, REMOTE_ADDR="198.51.100.7").status_code == 429
    assert check(client, card.code, REMOTE_ADDR="198.51.100.8").status_code == 200


def test_x_forwarded_for_is_ignored_unless_proxies_are_configured(client, card):
    for number in range(5):
        check(client, unknown_code(), HTTP_X_FORWARDED_FOR="203.0.113.%d" % number)
    assert check(client, card.code, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429


@override_settings(ACCOUNTS_CODE_LOOKUP_PROXY_COUNT=1)
def test_behind_one_proxy_the_address_it_appended_is_counted(client, card):
    # The client can forge the start of the header, not what the proxy appended.
    for number in range(5):
        forged = "10.9.9.%d, 203.0.113.5" % number
        check(client, unknown_code(), HTTP_X_FORWARDED_FOR=forged)
    assert check(client, card.code, HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 429
    assert check(client, card.code, HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 200


@override_settings(ACCOUNTS_CODE_LOOKUP_MAX_FAILURES=2, ACCOUNTS_CODE_LOOKUP_COOLDOWN=60)
def test_the_thresholds_come_from_settings(client, card):
    check(client, unknown_code())
    check(client, unknown_code())
    response = check(client, card.code)
    assert response.status_code == 429
    assert 0 < int(response["Retry-After"]) <= 60
    assert "try again in 1 minute(s)" in response.content.decode()


@override_settings(
    CACHES={
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "throttle": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "throttle",
        },
    },
    ACCOUNTS_CODE_LOOKUP_CACHE="throttle",
)
def test_failures_are_kept_in_the_configured_cache(client, card):
    for _ in range(5):
        check(client, unknown_code())
    assert check(client, card.code).status_code == 429
    caches["default"].clear()
    assert check(client, card.code).status_code == 429
    caches["throttle"].clear()
    assert check(client, card.code).status_code == 200


# Settings ---------------------------------------------------------------------------------


def lookup_check_ids(**settings):
    with override_settings(**settings):
        return [message.id for message in check_code_lookup_settings()]


def test_default_lookup_settings_pass():
    assert lookup_check_ids() == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"ACCOUNTS_CODE_LOOKUP_MAX_FAILURES": 0}, "accounts.E008"),
        ({"ACCOUNTS_CODE_LOOKUP_MAX_FAILURES": "5"}, "accounts.E008"),
        ({"ACCOUNTS_CODE_LOOKUP_MAX_FAILURES": True}, "accounts.E008"),
        ({"ACCOUNTS_CODE_LOOKUP_COOLDOWN": 0}, "accounts.E009"),
        ({"ACCOUNTS_CODE_LOOKUP_COOLDOWN": 1.5}, "accounts.E009"),
        ({"ACCOUNTS_CODE_LOOKUP_CACHE": "nowhere"}, "accounts.E010"),
        ({"ACCOUNTS_CODE_LOOKUP_CACHE": None}, "accounts.E010"),
        ({"ACCOUNTS_CODE_LOOKUP_PROXY_COUNT": -1}, "accounts.E011"),
        ({"ACCOUNTS_CODE_LOOKUP_PROXY_COUNT": "1"}, "accounts.E011"),
    ],
)
def test_bad_lookup_settings_are_reported(settings, expected):
    assert lookup_check_ids(**settings) == [expected]


def test_a_lookup_cache_that_stores_nothing_is_warned_about(settings):
    settings.CACHES = {
        **settings.CACHES,
        "nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    settings.ACCOUNTS_CODE_LOOKUP_CACHE = "nothing"
    (message,) = check_code_lookup_settings()
    assert message.id == "accounts.W002"
    assert "'nothing'" in message.msg and "never counted or blocked" in message.msg


def test_lookup_messages_name_the_bad_value_and_give_a_hint():
    with override_settings(ACCOUNTS_CODE_LOOKUP_CACHE="nowhere"):
        (message,) = check_code_lookup_settings()
    assert "'nowhere'" in message.msg
    assert message.hint


def test_lookup_checks_are_registered():
    with override_settings(ACCOUNTS_CODE_LOOKUP_COOLDOWN=-5):
        with pytest.raises(SystemCheckError, match="accounts.E009"):
            call_command("check", databases=[])


def test_the_templates_ship_with_the_package():
    # Run against the installed wheel too (runtests.py --installed).
    templates = Path(accounts.__file__).parent / "templates" / "accounts"
    assert (templates / "base.html").is_file()
    assert (templates / "balance_check.html").is_file()
