"""
The operations' arguments (``accounts.arguments``), checked before anything
is locked: accounts, saved rows, text every database stores alike, dates.

Each bad argument raises its documented exception and writes nothing.
"""

import datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts import arguments, facade
from accounts.exceptions import InvalidAccount, InvalidArgument
from accounts.models import Account, Hold, Transfer

from .factories import AccountFactory, UserFactory
from .utils import ledger_state

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 10, 9, 30, tzinfo=datetime.UTC)


# Every operation refuses a bad argument and writes nothing -----------------------------


def bad_accounts():
    deleted = AccountFactory()
    Account.objects.filter(pk=deleted.pk).delete()
    return [
        ("None", None, InvalidAccount, "must be an Account, got None"),
        ("a string", "12", InvalidAccount, "must be an Account, got '12'"),
        ("a float", 12.0, InvalidAccount, "must be an Account, got 12.0"),
        ("a bool", True, InvalidAccount, "must be an Account, got True"),
        ("a queryset", Account.objects.none(), InvalidAccount, "must be an Account"),
        ("unsaved", Account(), InvalidAccount, "not saved yet"),
        ("deleted", deleted, InvalidAccount, "does not exist"),
        ("a missing id", 10**9, InvalidAccount, "does not exist"),
    ]


@pytest.mark.parametrize("position", ["source", "destination"])
@pytest.mark.parametrize("operation", ["transfer", "hold"])
def test_bad_accounts(purchase_and_hold, position, operation):
    wallet, shop, *_ = purchase_and_hold
    call = {"transfer": facade.transfer, "hold": facade.hold}[operation]
    for label, bad, error, message in bad_accounts():
        before = ledger_state()
        pair = (bad, shop) if position == "source" else (wallet, bad)
        with pytest.raises(error, match=message):
            call(*pair, Decimal("1.00"))
        assert ledger_state() == before, label


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: facade.reverse(None), "is not a saved transfer"),
        (lambda a: facade.reverse(Transfer()), "is not a saved transfer"),
        (lambda a: facade.reverse(a[3]), "is not a saved transfer"),
        (lambda a: facade.capture(None), "is not a saved hold"),
        (lambda a: facade.capture(Hold()), "is not a saved hold"),
        (lambda a: facade.capture(a[2]), "is not a saved hold"),
        (lambda a: facade.release("hold"), "is not a saved hold"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), parent="x"), "is not a saved"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key=5), "must be a string"),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key=""), "not be empty"),
        (
            lambda a: facade.transfer(a[0], a[1], Decimal(1), idempotency_key="k" * 129),
            "129 characters long",
        ),
        (
            lambda a: facade.transfer(a[0], a[1], Decimal(1), merchant_reference=["x"]),
            "must be a string",
        ),
        (lambda a: facade.transfer(a[0], a[1], Decimal(1), description=7), "must be a string"),
        (lambda a: facade.hold(a[0], a[1], Decimal(1), expires_at="tomorrow"), "aware datetime"),
        (lambda a: facade.capture(a[3], idempotency_key=b"k"), "must be a string"),
    ],
)
def test_bad_arguments(purchase_and_hold, call, message):
    before = ledger_state()
    with pytest.raises(InvalidArgument, match=message):
        call(purchase_and_hold)
    assert ledger_state() == before


# Through a transfer or a reversal ----------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "error", "message"),
    [
        (None, InvalidAccount, "must be an Account"),
        ("12", InvalidAccount, "must be an Account"),
        (Account(), InvalidAccount, "not saved yet"),
    ],
)
def test_bad_accounts_are_refused(source, bad, error, message):
    with pytest.raises(error, match=message):
        facade.transfer(source, bad, Decimal("1.00"))
    with pytest.raises(error, match=message):
        facade.transfer(bad, source, Decimal("1.00"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idempotency_key": ""}, "Idempotency key must not be empty"),
        ({"idempotency_key": 12}, "Idempotency key must be a string"),
        ({"idempotency_key": "k" * 129}, "Idempotency key is 129 characters long"),
        ({"merchant_reference": "r" * 129}, "Merchant reference is 129 characters long"),
        ({"description": b"bytes"}, "Description must be a string"),
    ],
)
def test_bad_details_are_refused(source, account, kwargs, message):
    with pytest.raises(InvalidArgument, match=message):
        facade.transfer(source, account, Decimal("1.00"), **kwargs)
    assert Transfer.objects.count() == 0


def test_reverse_refuses_something_that_is_not_a_saved_transfer(source):
    with pytest.raises(InvalidArgument, match="is not a saved transfer"):
        facade.reverse(Transfer())
    with pytest.raises(InvalidArgument, match="is not a saved transfer"):
        facade.reverse(None)


# The functions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a\x00b", "^Description contains a NUL character"),
        ("\ud800", "^Description contains a lone surrogate character"),
    ],
)
def test_text_no_database_stores_alike_is_refused(value, message):
    with pytest.raises(InvalidArgument, match=message):
        arguments.storable(value, "Description")
    with pytest.raises(InvalidArgument, match=message):
        arguments.text(value, "Description", None)


def test_text_is_none_or_a_string_within_its_length():
    assert arguments.text(None, "Reference", 3, allow_empty=False) is None
    assert arguments.text("abc", "Reference", 3) == "abc"
    assert arguments.text("", "Reference", 3) == ""
    assert arguments.text("é" * 500, "Description", None) == "é" * 500
    with pytest.raises(InvalidArgument, match="^Reference is 4 characters long; the most is 3"):
        arguments.text("abcd", "Reference", 3)
    with pytest.raises(InvalidArgument, match="^Reference must not be empty"):
        arguments.text("", "Reference", 3, allow_empty=False)
    with pytest.raises(InvalidArgument, match="^Reference must be a string, got 12"):
        arguments.text(12, "Reference", 3)


def test_account_id_takes_a_saved_account_or_its_id_and_nothing_else(account):
    assert arguments.account_id(account, "source") == account.pk
    assert arguments.account_id(account.pk, "source") == account.pk
    # A bool is an int to Python, never an account to the ledger.
    with pytest.raises(InvalidAccount, match="^The destination must be an Account, got False"):
        arguments.account_id(False, "destination")
    with pytest.raises(InvalidAccount, match="^The source account is not saved yet"):
        arguments.account_id(Account(), "source")


def test_saved_pk_wants_a_saved_instance_of_the_model(purchase_and_hold):
    *_, purchase, hold = purchase_and_hold
    assert arguments.saved_pk(hold, Hold, "hold") == hold.pk
    with pytest.raises(InvalidArgument, match="is not a saved hold"):
        arguments.saved_pk(purchase, Hold, "hold")
    with pytest.raises(InvalidArgument, match="is not a saved transfer"):
        arguments.saved_pk(Transfer(), Transfer, "transfer")


def test_saved_user_records_nobody_for_anonymous_or_unsaved_users():
    user = UserFactory()
    assert arguments.saved_user(user) is user
    assert arguments.saved_user(AnonymousUser()) is None
    assert arguments.saved_user(UserFactory.build()) is None
    assert arguments.saved_user(None) is None


@pytest.mark.parametrize("check", [arguments.expiry, arguments.effective_at])
def test_dates_are_none_or_aware_datetimes(check):
    assert check(None) is None
    assert check(NOW) == NOW
    # In the past or the future: judged later, under the lock.
    assert check(NOW - datetime.timedelta(days=400)) == NOW - datetime.timedelta(days=400)
    for bad in (NOW.replace(tzinfo=None), NOW.date(), NOW.isoformat()):
        with pytest.raises(InvalidArgument, match="must be an aware datetime"):
            check(bad)


def test_check_effective_at_refuses_only_a_moment_after_the_databases_clock():
    arguments.check_effective_at(None, NOW)
    arguments.check_effective_at(NOW, NOW)
    later = NOW + datetime.timedelta(microseconds=1)
    with pytest.raises(InvalidArgument, match="is in the future: the database's clock says"):
        arguments.check_effective_at(later, NOW)
