"""The sandbox's demo shop: customer pages, checkout through the ledger, refunds."""

import datetime
import os
import re
from decimal import Decimal

import hypothesis
import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from djmoney.money import Money
from hypothesis import strategies as st

from accounts import facade
from accounts.codes import check_character, format_code, generate_code
from accounts.exceptions import AccountException
from accounts.integrity import check_ledger
from accounts.models import Account, Hold, Transfer
from sandbox.shop.basket import Basket
from sandbox.shop.models import Order
from sandbox.shop.payments import place_order

from .factories import AccountFactory, StaffFactory, UserFactory
from .utils import (
    assert_ledger_consistent,
    ledger_time,
    ledger_totals,
    needs_row_locks,
    run_concurrently,
)

SHOP = reverse("shop:shop")
CHECKOUT = reverse("shop:checkout")


@pytest.fixture(autouse=True)
def empty_caches():
    """Failed code lookups are counted in the cache, which outlives a test."""
    for cache in caches.all(initialized_only=True):
        cache.clear()
    yield
    for cache in caches.all(initialized_only=True):
        cache.clear()


@pytest.fixture
def barry(db):
    return UserFactory(username="barry")


@pytest.fixture
def shopper(client, barry):
    client.force_login(barry)
    return client


@pytest.fixture
def wallet(barry, fund):
    wallet = AccountFactory(name="Barry's wallet", primary_user=barry)
    fund(wallet, "40.00")
    return wallet


def gift_card(fund, amount="10.00", **fields):
    card = AccountFactory(name=None, code=generate_code(), **fields)
    if amount:
        fund(card, amount)
    return card


@pytest.fixture
def card(fund):
    return gift_card(fund)


def add(client, *slugs):
    for slug in slugs:
        client.post(reverse("shop:update_basket"), {"product": slug, "action": "add"})


def token_from(response):
    return re.search(rb'name="token" value="([0-9a-f]{32})"', response.content).group(1).decode()


def pay(client, *, cards="", account=None, token=None):
    """Open the shop page (which makes the form's token) and pay, as a browser would."""
    if token is None:
        token = token_from(client.get(SHOP))
    data = {"cards": cards, "token": token}
    if account is not None:
        data["account"] = account.pk
    return client.post(CHECKOUT, data)


def balance(account):
    account.refresh_from_db()
    return account.balance


def gbp(amount):
    return Money(Decimal(amount), "GBP")


# The shop and the basket --------------------------------------------------------------


def test_the_shop_lists_products_and_the_basket_total(client, db):
    add(client, "coffee", "coffee", "tea")
    response = client.get(SHOP)
    text = response.content.decode()
    assert "Hand coffee grinder" in text
    assert response.context["basket"].total == gbp("44.25")
    assert "£44.25" in text
    # Not logged in: no payment form, an invitation to log in instead.
    assert response.context["form"] is None
    assert "Log in to pay" in text


def test_removing_a_line_from_the_basket(client, db):
    add(client, "coffee", "tea")
    client.post(reverse("shop:update_basket"), {"product": "coffee", "action": "remove"})
    assert client.get(SHOP).context["basket"].total == gbp("7.25")


def test_the_basket_refuses_unknown_products_and_get(client, db):
    assert client.post(reverse("shop:update_basket"), {"product": "nope"}).status_code == 404
    assert client.get(reverse("shop:update_basket")).status_code == 405


def test_customers_log_in_and_land_on_their_accounts(client, barry):
    barry.set_password("secret")
    barry.save()
    page = client.get(reverse("shop:login"))
    assert page.status_code == 200
    response = client.post(reverse("shop:login"), {"username": "barry", "password": "secret"})
    assert response.status_code == 302
    assert response["Location"] == reverse("shop:my_accounts")
    assert client.post(reverse("shop:logout")).status_code == 302
    assert client.get(reverse("shop:my_accounts")).status_code == 302


@pytest.mark.parametrize(
    "name", ["shop:my_accounts", "shop:orders", "shop:checkout"], ids=lambda n: n
)
def test_customer_pages_need_a_login(client, db, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("shop:login") + "?next=")


# My accounts and statements --------------------------------------------------------------


def test_my_accounts_lists_what_the_customer_may_use(shopper, barry, wallet, fund):
    alice = UserFactory(username="alice")
    shared = AccountFactory(name="Household", primary_user=alice)
    shared.secondary_users.add(barry)
    AccountFactory(name="Alice's own", primary_user=alice)
    credit = AccountFactory(
        name="Barry's credit line",
        primary_user=barry,
        credit_limit=Decimal("100.00"),
        end_date=datetime.date(2031, 1, 31),
    )
    response = shopper.get(reverse("shop:my_accounts"))
    assert list(response.context["accounts"]) == [wallet, shared, credit]
    text = response.content.decode()
    assert "Alice's own" not in text
    assert "Shared with you" in text
    assert "credit limit £100.00" in text
    assert date_format(datetime.date(2031, 1, 31)) in text
    assert "£40.00" in text


def test_a_statement_shows_the_running_balance_newest_first(shopper, wallet, source):
    spend = facade.transfer(wallet, Account.objects.sales_account(), Decimal("15.00"))
    facade.reverse(spend, amount=Decimal("5.00"), description="Partial refund")
    response = shopper.get(reverse("shop:statement", args=[wallet.pk]))
    rows = response.context["page"].object_list
    assert [(r.amount, r.balance_after) for r in rows] == [
        (gbp("5.00"), gbp("30.00")),
        (gbp("-15.00"), gbp("25.00")),
        (gbp("40.00"), gbp("40.00")),
    ]
    assert "Partial refund" in response.content.decode()


def test_a_statement_of_someone_elses_account_is_not_found(shopper, db):
    other = AccountFactory(primary_user=UserFactory())
    assert shopper.get(reverse("shop:statement", args=[other.pk])).status_code == 404


def test_a_statement_for_a_date_range(shopper, barry, fund):
    account = AccountFactory(primary_user=barry)
    bank = Account.objects.source_account()
    for day, amount in ((3, "1.00"), (10, "2.00"), (20, "4.00")):
        with ledger_time(timezone.make_aware(datetime.datetime(2026, 1, day, 12))):
            facade.transfer(bank, account, Decimal(amount))
    response = shopper.get(
        reverse("shop:statement", args=[account.pk]), {"start": "2026-01-05", "end": "2026-01-15"}
    )
    statement = response.context["statement"]
    assert [r.amount for r in response.context["page"].object_list] == [gbp("2.00")]
    assert (statement.opening_balance, statement.closing_balance) == (gbp("1.00"), gbp("3.00"))
    bad = shopper.get(
        reverse("shop:statement", args=[account.pk]), {"start": "2026-01-15", "end": "2026-01-05"}
    )
    assert "The start date is after the end date." in bad.content.decode()


def test_a_statement_shows_card_payments_merchant_and_transaction_date(shopper, barry):
    account = AccountFactory(primary_user=barry)
    bank, shop = Account.objects.source_account(), Account.objects.sales_account()
    posted = timezone.make_aware(datetime.datetime(2026, 1, 10, 12))
    with ledger_time(posted):
        facade.transfer(bank, account, Decimal("20.00"))
        facade.transfer(
            account,
            shop,
            Decimal("4.50"),
            description="Card payment: Teapot & Grinder",
            metadata={"mcc": "5814", "merchant": "Teapot & Grinder", "city": "Leeds"},
            effective_at=posted - datetime.timedelta(days=2),
        )
    url = reverse("shop:statement", args=[account.pk])
    page = shopper.get(url).content.decode()
    assert "Teapot &amp; Grinder, Leeds" in page
    assert "paid %s" % date_format(datetime.date(2026, 1, 8)) in page
    by_payment = shopper.get(
        url, {"start": "2026-01-08", "end": "2026-01-08", "date_field": "effective_at"}
    )
    assert [r.amount for r in by_payment.context["page"].object_list] == [gbp("-4.50")]
    assert "posted %s" % date_format(datetime.date(2026, 1, 10)) in by_payment.content.decode()


def test_a_long_statement_is_paginated_without_counting(shopper, barry):
    account = AccountFactory(primary_user=barry)
    bank = Account.objects.source_account()
    for cents in range(1, 26):
        facade.transfer(bank, account, Decimal(cents) / 100)
    url = reverse("shop:statement", args=[account.pk])
    with CaptureQueriesContext(connection) as queries:
        first = shopper.get(url)
    assert not [q for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert len(first.context["page"].object_list) == 20
    assert first.context["page"].has_next
    assert 'href="?page=2"' in first.content.decode()
    second = shopper.get(url, {"page": 2})
    assert [r.amount for r in second.context["page"].object_list] == [
        gbp(Decimal(cents) / 100) for cents in range(5, 0, -1)
    ]
    assert not second.context["page"].has_next


def test_pending_holds_are_listed_apart(shopper, wallet):
    facade.hold(
        wallet, Account.objects.sales_account(), Decimal("6.00"), description="Click & collect"
    )
    response = shopper.get(reverse("shop:statement", args=[wallet.pk]))
    assert list(response.context["statement"].pending_holds)[0].amount == gbp("6.00")
    assert "Click &amp; collect" in response.content.decode()


# Checkout ----------------------------------------------------------------------------------


def test_pay_with_a_gift_card_then_the_own_account(shopper, barry, wallet, card):
    add(shopper, "coffee")  # £18.50
    typed = format_code(card.code).lower()
    response = pay(shopper, cards=typed, account=wallet)
    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == order.get_absolute_url()
    assert (order.user, order.total, order.card_amount) == (barry, gbp("18.50"), gbp("0.00"))
    assert balance(card) == gbp("0.00")
    assert balance(wallet) == gbp("31.50")
    payments = list(order.payments())
    assert [(p.source, p.amount) for p in payments] == [
        (card, gbp("10.00")),
        (wallet, gbp("8.50")),
    ]
    assert all(p.merchant_reference == order.number for p in payments)
    # One linked batch: the debits stand or fall together.
    (batch,) = {p.batch for p in payments}
    assert batch.idempotency_key == "order:%s:0" % order.idempotency_key
    assert [p.batch_position for p in payments] == [0, 1]
    page = shopper.get(response["Location"]).content.decode()
    assert "Thank you: order %s is paid." % order.number in page
    assert "Gift card ending %s" % format_code(card.code)[-4:] in page
    assert shopper.get(SHOP).context["basket"].total == gbp("0")
    assert_ledger_consistent()


def test_several_cards_pay_in_turn_and_the_rest_is_paid_by_card(shopper, fund):
    first, second = gift_card(fund, "5.00"), gift_card(fund, "3.00")
    add(shopper, "tea", "tea")  # £14.50
    pay(shopper, cards="%s, %s\n%s" % (first.code, second.code, first.code))
    order = Order.objects.get()
    assert [p.amount for p in order.payments()] == [gbp("5.00"), gbp("3.00")]
    assert order.card_amount == gbp("6.50")
    assert (balance(first), balance(second)) == (gbp("0.00"), gbp("0.00"))


def test_only_what_is_due_is_taken(shopper, wallet, card):
    add(shopper, "tea")  # £7.25: the card covers it, the account is not touched
    pay(shopper, cards=card.code, account=wallet)
    assert balance(card) == gbp("2.75")
    assert balance(wallet) == gbp("40.00")
    assert Order.objects.get().payments().count() == 1


def test_a_frozen_card_stops_the_whole_order(shopper, wallet, card, fund):
    frozen = gift_card(fund, "20.00")
    frozen.freeze()
    add(shopper, "grinder")  # £45.00: the first card pays 10.00 before the frozen one
    before = ledger_totals()
    response = pay(shopper, cards="%s\n%s" % (card.code, frozen.code), account=wallet)
    assert response.status_code == 200
    assert "is frozen" in response.content.decode()
    assert ledger_totals() == before
    assert not Order.objects.exists()
    assert response.context["basket"].total == gbp("45.00")  # still there to try again


def test_an_expired_card_stops_the_order(shopper, fund):
    expired = gift_card(fund, "10.00")
    Account.objects.filter(pk=expired.pk).update(
        end_date=timezone.now() - datetime.timedelta(days=1)
    )
    add(shopper, "tea")
    before = ledger_totals()
    response = pay(shopper, cards=expired.code)
    assert "expired on" in response.content.decode()
    assert ledger_totals() == before
    assert not Order.objects.exists()


def test_an_empty_card_is_refused_for_insufficient_funds(shopper, wallet, fund):
    empty = gift_card(fund, amount=None)
    add(shopper, "tea")
    before = ledger_totals()
    response = pay(shopper, cards=empty.code, account=wallet)
    assert response.context["form"].non_field_errors() == [
        "Gift card %s has nothing available to spend." % format_code(empty.code)
    ]
    assert ledger_totals() == before
    assert not Order.objects.exists()


def test_a_double_submitted_checkout_charges_once(shopper, wallet, card):
    add(shopper, "coffee")
    token = token_from(shopper.get(SHOP))
    first = pay(shopper, cards=card.code, account=wallet, token=token)
    before = ledger_totals()
    # The same form again (a double click, or back and resubmit): the basket
    # is empty by now, and the order already paid is shown.
    again = pay(shopper, cards=card.code, account=wallet, token=token)
    assert again.status_code == 302
    assert again["Location"] == first["Location"]
    assert ledger_totals() == before
    assert Order.objects.count() == 1
    assert balance(wallet) == gbp("31.50")


def test_place_order_twice_with_one_key_charges_once(barry, wallet, card):
    # What a second request racing the first finds once the first commits.
    basket = Basket({})
    basket.add("coffee")
    order = place_order(barry, basket, key="k" * 32, cards=[card], account=wallet)
    before = ledger_totals()
    assert place_order(barry, basket, key="k" * 32, cards=[card], account=wallet) == order
    assert ledger_totals() == before


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_simultaneous_submits_of_one_checkout_charge_once():
    barry = UserFactory(username="barry")
    wallet = AccountFactory(primary_user=barry)
    facade.transfer(Account.objects.source_account(), wallet, Decimal("40.00"))
    basket = Basket({})
    basket.add("coffee")

    def submit(_i):
        return place_order(barry, basket, key="c" * 32, account=wallet).pk

    results, expected, unexpected = run_concurrently(4, submit)
    assert (expected, unexpected) == ([], [])
    assert len(set(results)) == 1 and len(results) == 4
    assert Transfer.objects.filter(source=wallet).count() == 1
    assert balance(wallet) == gbp("21.50")
    assert_ledger_consistent()


def test_an_unknown_code_is_a_form_error(shopper, wallet):
    add(shopper, "tea")
    code = "2" * 15 + check_character("2" * 15)
    response = pay(shopper, cards=code, account=wallet)
    assert response.context["form"].errors["cards"] == [
        "No gift card has the code %s." % format_code(code)
    ]
    assert not Order.objects.exists()


def test_guessing_codes_at_checkout_is_blocked_too(shopper, card):
    add(shopper, "tea")
    for number in range(5):
        payload = "%s" % (str(number + 2) * 15)
        response = pay(shopper, cards=payload + check_character(payload))
    # The fifth says both what was wrong and that lookups are now paused.
    errors = response.context["form"].errors["cards"]
    assert errors[0].startswith("No gift card has the code")
    assert "code lookups are paused" in errors[1]
    response = pay(shopper, cards=card.code)
    assert "code lookups are paused" in response.content.decode()
    assert not Order.objects.exists()
    # The balance check shares the count: the address is blocked there as well.
    assert shopper.post("/gift-cards/balance/", {"code": card.code}).status_code == 429


def test_a_card_in_another_currency_is_refused(shopper, fund):
    euro = gift_card(fund, "10.00", currency="EUR")
    add(shopper, "tea")
    response = pay(shopper, cards=euro.code)
    assert response.context["form"].errors["cards"] == [
        "Gift card %s is in EUR; this shop sells in GBP." % format_code(euro.code)
    ]


def test_a_coded_account_of_another_customer_cannot_pay(shopper, fund):
    theirs = gift_card(fund, "10.00", primary_user=UserFactory())
    add(shopper, "tea")
    response = pay(shopper, cards=theirs.code)
    assert "No gift card has the code" in response.context["form"].errors["cards"][0]
    assert balance(theirs) == gbp("10.00")


def test_only_the_customers_own_accounts_can_pay(shopper, fund):
    someone_else = AccountFactory(primary_user=UserFactory())
    fund(someone_else, "50.00")
    add(shopper, "tea")
    response = pay(shopper, account=someone_else)
    assert "account" in response.context["form"].errors
    assert balance(someone_else) == gbp("50.00")


def test_an_empty_basket_cannot_be_paid(shopper, wallet):
    response = pay(shopper, account=wallet, token="a" * 32)
    assert response.context["form"].non_field_errors() == ["Your basket is empty."]
    assert not Order.objects.exists()


def test_too_many_cards_are_refused(shopper, fund):
    cards = [gift_card(fund, "1.00") for _ in range(6)]
    add(shopper, "grinder")
    response = pay(shopper, cards=",".join(c.code for c in cards))
    assert response.context["form"].errors["cards"] == ["Use at most 5 gift cards."]


# Orders and refunds --------------------------------------------------------------------


@pytest.fixture
def order(shopper, wallet, card):
    add(shopper, "coffee")
    pay(shopper, cards=card.code, account=wallet)
    return Order.objects.get()


ALL = object()


def refund(client, order, payment, amount=ALL):
    """Post one of the payment's refund forms as the order page shows it: an amount, or ALL."""
    page = client.get(order.get_absolute_url()).content.decode()
    url = reverse("shop:refund", args=[order.number, payment.pk])
    forms = re.findall(r'<form method="post" action="%s" class="inline ([a-z-]+)">(.*?)</form>'
                       % re.escape(url), page, re.S)  # fmt: skip
    chosen = dict(forms)["refund-all-form" if amount is ALL else "refund-form"]
    token = re.search(r'name="token" value="([0-9a-f]{32})"', chosen).group(1)
    if amount is ALL:
        amount = re.search(r'name="amount" value="([0-9.]+)"', chosen).group(1)
    return client.post(url, {"amount": amount, "token": token}), token


def test_the_order_page_lists_its_payments(shopper, order, card, wallet):
    response = shopper.get(order.get_absolute_url())
    payments = response.context["payments"]
    assert [(p.source, left) for p, left, _form, _all in payments] == [
        (card, gbp("10.00")),
        (wallet, gbp("8.50")),
    ]
    text = response.content.decode()
    assert "Coffee beans, 1 kg" in text
    assert "£18.50" in text


def test_my_orders_lists_only_mine(shopper, order):
    Order.objects.create(user=UserFactory(), total=gbp("1.00"), idempotency_key="someone-elses")
    response = shopper.get(reverse("shop:orders"))
    assert list(response.context["orders"]) == [order]


def test_a_full_refund_puts_the_money_back(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    response, _token = refund(shopper, order, payment)
    assert response.status_code == 302
    assert balance(wallet) == gbp("40.00")
    reversal = payment.reversals.get()
    assert reversal.merchant_reference == order.number
    assert reversal.description == "Refund for order %s" % order.number
    page = shopper.get(order.get_absolute_url()).content.decode()
    assert "Refunded £8.50." in page
    assert_ledger_consistent()


def test_a_partial_refund_leaves_the_rest_refundable(shopper, order, card):
    payment = order.payments().get(source=card)
    refund(shopper, order, payment, "4.00")
    assert balance(card) == gbp("4.00")
    payments = shopper.get(order.get_absolute_url()).context["payments"]
    assert payments[0][1] == gbp("6.00")
    refund(shopper, order, payment)  # the rest, with "Refund all"
    assert balance(card) == gbp("10.00")
    assert payment.reversible_amount() == gbp("0.00")


def test_a_double_submitted_refund_refunds_once(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    _response, token = refund(shopper, order, payment, "3.00")
    url = reverse("shop:refund", args=[order.number, payment.pk])
    shopper.post(url, {"amount": "3.00", "token": token})
    assert payment.reversals.count() == 1
    assert balance(wallet) == gbp("34.50")


def test_refunding_more_than_is_left_is_refused(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    before = ledger_totals()
    response, _token = refund(shopper, order, payment, "9.00")
    page = shopper.get(response["Location"]).content.decode()
    assert "Only £8.50 is left to refund." in page
    assert ledger_totals() == before


def test_a_full_refund_is_a_choice_never_an_empty_box(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    page = shopper.get(order.get_absolute_url()).content.decode()
    assert "Refund all (£8.50)" in page

    response, _token = refund(shopper, order, payment, "")

    page = shopper.get(response["Location"]).content.decode()
    assert "Enter the amount to refund, or use “Refund all”." in page
    assert not payment.reversals.exists()


def test_refund_all_refunds_what_it_showed_and_no_more(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    page = shopper.get(order.get_absolute_url()).content.decode()
    url = reverse("shop:refund", args=[order.number, payment.pk])
    all_form = re.search(r'action="%s" class="inline refund-all-form">(.*?)</form>'
                         % re.escape(url), page, re.S).group(1)  # fmt: skip
    token = re.search(r'name="token" value="([0-9a-f]{32})"', all_form).group(1)
    facade.reverse(payment, amount=Decimal("1.00"))  # meanwhile, from another tab

    response = shopper.post(url, {"amount": "8.50", "token": token})

    assert "Only £7.50 is left to refund." in shopper.get(response["Location"]).content.decode()
    assert payment.reversals.count() == 1


def test_a_refund_amount_typed_with_a_decimal_comma(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    refund(shopper, order, payment, "2,50")
    assert payment.reversals.get().amount == gbp("2.50")


def test_a_refund_with_a_bad_amount_is_refused(shopper, order, wallet):
    payment = order.payments().get(source=wallet)
    response, _token = refund(shopper, order, payment, "1.005")
    page = shopper.get(response["Location"]).content.decode()
    assert "decimal places" in page
    assert not payment.reversals.exists()


def test_a_refund_to_a_frozen_card_is_refused(shopper, order, card):
    payment = order.payments().get(source=card)
    card.freeze()
    response, _token = refund(shopper, order, payment)
    page = shopper.get(response["Location"]).content.decode()
    assert "Gift card %s is frozen and cannot be used for now." % format_code(card.code) in page
    assert not payment.reversals.exists()


def test_someone_elses_order_cannot_be_seen_or_refunded(client, order, wallet):
    client.force_login(UserFactory(username="mallory"))
    assert client.get(order.get_absolute_url()).status_code == 404
    payment = order.payments().get(source=wallet)
    url = reverse("shop:refund", args=[order.number, payment.pk])
    assert client.post(url, {"amount": "", "token": "a" * 32}).status_code == 404
    assert not payment.reversals.exists()


def test_a_transfer_that_is_not_a_payment_of_the_order_cannot_be_refunded(shopper, order, wallet):
    top_up = Transfer.objects.filter(destination=wallet).first()
    url = reverse("shop:refund", args=[order.number, top_up.pk])
    assert shopper.post(url, {"amount": "", "token": "a" * 32}).status_code == 404


def test_refund_is_post_only_and_csrf_protected(order, barry, wallet):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(barry)
    payment = order.payments().get(source=wallet)
    url = reverse("shop:refund", args=[order.number, payment.pk])
    assert client.get(url).status_code == 405
    assert client.post(url, {"amount": "", "token": "a" * 32}).status_code == 403


@pytest.mark.django_db
def test_the_shop_has_its_migrations():
    call_command("makemigrations", "shop", check=True, dry_run=True, verbosity=0)


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_simultaneous_submits_of_a_refused_checkout_all_get_the_form_error():
    # On MariaDB, inserts meeting at the Order's unique key deadlocked when
    # the first one rolled back (a 500 page in about a third of the tries).
    from django.test import Client

    barry = UserFactory(username="barry")
    frozen = AccountFactory(name=None, code=generate_code())
    facade.transfer(Account.objects.source_account(), frozen, Decimal("40.00"))
    frozen.freeze()
    browser = Client()
    browser.force_login(barry)
    add(browser, "coffee")

    for _attempt in range(6):
        token = token_from(browser.get(SHOP))

        def submit(_i, token=token):
            client = Client()
            client.cookies = browser.cookies
            response = client.post(CHECKOUT, {"cards": frozen.code, "token": token})
            return response.status_code, response.context["form"].non_field_errors()

        results, expected, unexpected = run_concurrently(4, submit)
        assert (expected, unexpected) == ([], [])
        assert [status for status, _errors in results] == [200] * 4
        for _status, errors in results:
            assert errors == ["Gift card %s is frozen and cannot be used for now."
                              % format_code(frozen.code)]  # fmt: skip
    assert not Order.objects.exists()
    assert balance(frozen) == gbp("40.00")


# The checkout never under-collects --------------------------------------------------


def test_an_account_entered_as_a_card_and_chosen_as_the_account_pays_once(barry, fund):
    # The customer types their own account's code as a gift card and also
    # picks that account: it used to pay twice under one key, and the order
    # was marked paid with money never collected.
    wallet = AccountFactory(name="Barry's wallet", code=generate_code(), primary_user=barry)
    fund(wallet, "10.00")
    basket = Basket({})
    basket.add("grinder")  # £45.00

    order = place_order(barry, basket, key="d" * 32, cards=[wallet, wallet], account=wallet)

    assert [(p.source, p.amount) for p in order.payments()] == [(wallet, gbp("10.00"))]
    assert order.card_amount == gbp("35.00")
    assert balance(wallet) == gbp("0.00")
    assert_ledger_consistent()


@pytest.mark.django_db
@hypothesis.settings(
    max_examples=int(os.environ.get("ACCOUNTS_HYPOTHESIS_EXAMPLES", 60)),
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    # Simplest first, as Hypothesis tries them: part-funded accounts, and an
    # own account chosen that is typed as a card too.
    funds=st.lists(
        st.sampled_from(["5.00", "0.01", "18.49", "18.50", "60.00", "0"]), min_size=4, max_size=4
    ),
    typed=st.lists(st.integers(min_value=0, max_value=3), max_size=5),
    chosen=st.sampled_from([0, 1, None]),
    products=st.lists(st.sampled_from(["tea", "coffee", "grinder"]), min_size=1, max_size=3),
    loose=st.booleans(),
)
# What was reproduced: the customer's own account typed as a gift card and chosen.
@hypothesis.example(["5.00", "0", "0", "0"], [0], 0, ["grinder"], False)
@hypothesis.example(["0", "0.01", "0", "0"], [1, 1, 3], 1, ["tea"], True)
def test_every_paid_order_is_paid_in_full_and_charges_no_account_twice(
    barry, funds, typed, chosen, products, loose
):
    """Whatever codes (own accounts' included, repeated, loosely typed) and account are entered."""
    from django.test import RequestFactory

    from accounts.forms import new_token
    from sandbox.shop.forms import PaymentForm

    with transaction.atomic():
        for cache in caches.all(initialized_only=True):
            cache.clear()
        bank = Account.objects.source_account()
        # Two of barry's own accounts (with codes, so they can be typed as
        # cards too) and two gift cards.
        payers = [
            AccountFactory(code=generate_code(), primary_user=barry),
            AccountFactory(code=generate_code(), primary_user=barry),
            AccountFactory(name=None, code=generate_code()),
            AccountFactory(name=None, code=generate_code()),
        ]
        for payer, amount in zip(payers, funds, strict=True):
            if Decimal(amount):
                facade.transfer(bank, payer, Decimal(amount))
        before = {payer.pk: balance(payer) for payer in payers}
        basket = Basket({})
        for slug in products:
            basket.add(slug)
        codes = [payers[i].code for i in typed]
        if loose:
            codes = [format_code(code).lower() for code in codes]
        request = RequestFactory().post(CHECKOUT)
        request.user = barry
        data = {"cards": "\n".join(codes), "token": new_token()}
        if chosen is not None:
            data["account"] = payers[chosen].pk
        form = PaymentForm(data, request=request, basket=basket)
        assert form.is_valid(), form.errors

        try:
            order = place_order(
                barry,
                basket,
                key=form.cleaned_data["token"],
                cards=form.cleaned_data["cards"],
                account=form.cleaned_data["account"],
            )
        except AccountException:
            # Refused (a payer with nothing at all to give): nothing moved.
            assert {payer.pk: balance(payer) for payer in payers} == before
            assert not Order.objects.exists()
        else:
            payments = list(order.payments())
            assert sum((p.amount for p in payments), gbp("0")) + order.card_amount == order.total
            assert order.total == basket.total
            assert len({p.source_id for p in payments}) == len(payments)  # nobody twice
            for payer in payers:
                paid = sum((p.amount for p in payments if p.source_id == payer.pk), gbp("0"))
                assert balance(payer) == before[payer.pk] - paid
            assert order.card_amount >= gbp("0")
            assert check_ledger().ok
        transaction.set_rollback(True)


# Staff: sending the notifications ----------------------------------------------------

NOTIFICATIONS = reverse("shop:notifications")


def test_sending_notifications_needs_the_mark_notified_permission(client, barry, wallet):
    assert client.get(NOTIFICATIONS).status_code == 302  # to the login page
    client.force_login(barry)
    assert client.get(NOTIFICATIONS).status_code == 403
    assert client.post(NOTIFICATIONS).status_code == 403
    client.force_login(StaffFactory(permissions=["accounts.move_money"]))
    assert client.post(NOTIFICATIONS).status_code == 403
    assert "Send notifications" not in client.get(SHOP).content.decode()
    assert Transfer.objects.unnotified().count() == Transfer.objects.count()


def test_staff_see_the_unnotified_transactions_and_send_them_once(client, wallet, caplog):
    sales = Account.objects.sales_account()
    old = Transfer.objects.get(destination=wallet)
    Transfer.objects.filter(pk=old.pk).mark_notified()
    paid = facade.transfer(wallet, sales, Decimal("4.50"), description="Flat white and a bun")
    held = facade.hold(wallet, sales, Decimal("12.00"), description="Click & collect")
    client.force_login(StaffFactory(permissions=["accounts.mark_notified"]))
    assert "Send notifications" in client.get(SHOP).content.decode()  # linked for staff

    page = client.get(NOTIFICATIONS)
    assert page.context["transfers"] == [paid] and page.context["holds"] == [held]
    text = page.content.decode()
    assert "Barry&#x27;s wallet" in text and "£4.50" in text and "Flat white and a bun" in text
    assert "£12.00" in text and "Click &amp; collect" in text
    assert old.reference not in text

    with caplog.at_level("INFO", logger="sandbox.shop.notifications"):
        response = client.post(NOTIFICATIONS, follow=True)
    assert "Sent 2 notification(s)." in response.content.decode()
    assert [r.getMessage() for r in caplog.records] == [
        "Notification sent: Transfer of £4.50 from Barry's wallet to %s: Flat white and a bun"
        % sales,
        "Notification sent: Payment on hold of £12.00 from Barry's wallet to %s: "
        "Click & collect" % sales,
    ]
    assert Transfer.objects.unnotified().count() == 0
    assert Hold.objects.unnotified().count() == 0
    page = client.get(NOTIFICATIONS)
    assert (page.context["transfers"], page.context["holds"]) == ([], [])
    assert "Every transfer has been notified." in page.content.decode()
    caplog.clear()
    assert "Sent 0 notification(s)." in client.post(NOTIFICATIONS, follow=True).content.decode()
    assert caplog.records == []  # nothing is sent twice
