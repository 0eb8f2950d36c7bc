"""The exception tree: precise messages for developers, short ones for customers, typed facts."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone, translation
from djmoney.money import Money

from accounts import exceptions, facade
from accounts.codes import format_code, generate_code
from accounts.exceptions import (
    AccountException,
    AccountExpired,
    AccountNotYetActive,
    CodeLookupBlocked,
    FrozenAccount,
    InsufficientFunds,
    InvalidReversal,
)
from accounts.models import Account

from .factories import AccountFactory

pytestmark = pytest.mark.django_db


def raised(exception, match, call, *args, **kwargs):
    """The exception ``call`` raises, checked to be exactly ``exception`` with ``match``."""
    with pytest.raises(exception, match=match) as info:
        call(*args, **kwargs)
    assert type(info.value) is exception
    return info.value


@pytest.fixture
def card(fund):
    card = AccountFactory(name=None, code=generate_code())
    fund(card, "10.00")
    return card


def test_an_expired_card_tells_the_customer_the_day_in_their_time_zone(card):
    # 23:30 UTC on 19 July is 00:30 on 20 July in London (summer time).
    end = datetime.datetime(2026, 7, 19, 23, 30, tzinfo=datetime.UTC)
    Account.objects.filter(pk=card.pk).update(end_date=end)
    sales = Account.objects.sales_account()

    with timezone.override("Europe/London"), translation.override("en-gb"):
        exc = raised(AccountExpired, "expired on", facade.transfer, card, sales, Decimal("1"))
        assert isinstance(exc, AccountExpired)
        assert exc.user_message == "Gift card %s expired on 20 Jul 2026." % format_code(card.code)
    with timezone.override("America/New_York"), translation.override("fr"):
        assert exc.user_message == "Gift card %s expired on 19 juillet 2026." % format_code(
            card.code
        )
    # The developer's message stays exact, and the facts are attributes.
    assert str(exc) == "Account %s expired on %s." % (format_code(card.code), end)
    assert exc.end_date == end
    assert exc.account.pk == card.pk


def test_a_frozen_card_names_the_card_as_printed_and_nothing_internal(card):
    card.freeze()

    exc = raised(
        FrozenAccount, "is frozen", facade.transfer, card, Account.objects.sales_account(),
        Decimal("1.00"),
    )  # fmt: skip

    assert isinstance(exc, FrozenAccount)
    assert exc.user_message == (
        "Gift card %s is frozen and cannot be used for now." % format_code(card.code)
    )
    assert card.code not in exc.user_message  # the stored form is for staff
    assert "#%s" % card.pk not in exc.user_message


def test_a_named_account_is_called_by_its_name_and_an_unnamed_one_yours(fund, user):
    named = AccountFactory(
        name="Household wallet", start_date=timezone.now() + datetime.timedelta(days=3)
    )
    exc = raised(
        AccountNotYetActive, "cannot be used before", facade.transfer,
        Account.objects.source_account(), named, Decimal("1.00"),
    )  # fmt: skip
    assert isinstance(exc, AccountNotYetActive)
    assert exc.user_message.startswith("Household wallet can be used from ")

    mine = AccountFactory(name=None, primary_user=user)
    mine.freeze()
    exc = raised(
        FrozenAccount, "is frozen", facade.transfer, Account.objects.source_account(), mine,
        Decimal("1.00"),
    )  # fmt: skip
    assert exc.user_message == "Your account is frozen and cannot be used for now."


def test_insufficient_funds_carries_amount_available_and_limit(fund):
    wallet = AccountFactory(name="Wallet", credit_limit=Decimal("5.00"))
    fund(wallet, "10.00")

    exc = raised(
        InsufficientFunds, "cannot be debited", facade.transfer, wallet,
        Account.objects.sales_account(), Decimal("20.00"),
    )  # fmt: skip

    assert isinstance(exc, InsufficientFunds)
    assert (exc.amount, exc.available, exc.credit_limit) == (
        Money("20.00", "GBP"),
        Money("15.00", "GBP"),
        Money("5.00", "GBP"),
    )
    assert exc.user_message == "Wallet has only £15.00 available to spend."
    assert str(exc) == "Account Wallet cannot be debited £20.00: only £15.00 is available."


def test_an_empty_card_has_nothing_to_spend(fund):
    empty = AccountFactory(name=None, code=generate_code())
    exc = raised(
        InsufficientFunds,
        "only £0.00 is available",
        facade.transfer,
        empty,
        Account.objects.sales_account(),
        Decimal("1.00"),
        allow_partial=True,
    )
    assert exc.user_message == "Gift card %s has nothing available to spend." % format_code(
        empty.code
    )


def test_refund_messages_say_what_is_left(fund):
    wallet = AccountFactory(name="Wallet")
    fund(wallet, "10.00")
    payment = facade.transfer(wallet, Account.objects.sales_account(), Decimal("8.50"))

    exc = raised(
        InvalidReversal, "only £8.50 is left", facade.reverse, payment, amount=Decimal("9.00")
    )
    assert isinstance(exc, InvalidReversal)
    assert exc.remaining == Money("8.50", "GBP")
    assert exc.user_message == "Only £8.50 is left to refund."

    facade.reverse(payment)
    exc = raised(InvalidReversal, "already been fully reversed", facade.reverse, payment)
    assert exc.user_message == "This payment has already been refunded in full."


def test_the_lookup_block_message_is_already_for_customers():
    exc = CodeLookupBlocked(600)
    assert exc.user_message == str(exc)
    assert (exc.retry_after, exc.minutes) == (600, 10)


@pytest.mark.parametrize(
    "cls",
    [
        cls
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, AccountException)
    ],
)
def test_every_exception_has_a_customer_message_without_its_facts(cls):
    """Even raised with no context at all, user_message is a sentence (never a KeyError)."""
    exc = cls(60) if cls is CodeLookupBlocked else cls()
    message = exc.user_message
    assert message and message[0].isupper() and message.endswith(".")


def test_every_exception_is_named_by_the_module_to_import_it_from():
    import pickle

    classes = [
        getattr(exceptions, name)
        for name in exceptions.__all__
        if isinstance(getattr(exceptions, name), type)
    ]
    assert {cls.__module__ for cls in classes} == {"accounts.exceptions"}
    refused = exceptions.InvalidArgument("Bad %(what)s.", what="input")
    assert repr(pickle.loads(pickle.dumps(refused))) == repr(refused)
    assert type(pickle.loads(pickle.dumps(refused))) is exceptions.InvalidArgument
