"""
The REST API (accounts.api): every endpoint's answers and refusals, per role.

Roles: anonymous, a customer (barry, primary user), a secondary user (alice),
another customer (mallory, whose ids the others try to guess), a clerk (staff
who may view but not move money), a cashier (staff with accounts.move_money)
and a service user (a shop's payment backend: accounts.move_money, not
staff). Every response is checked against the OpenAPI schema by the client.
"""

import datetime
import json
from decimal import Decimal
from unittest import mock

import pytest

from .utils import ledger_time, require_api

require_api()

from django.contrib.auth.models import Permission  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402
from django.utils import timezone  # noqa: E402
from djmoney.money import Money  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts import facade  # noqa: E402
from accounts.exceptions import InsufficientFunds  # noqa: E402
from accounts.models import (  # noqa: E402
    Account,
    AccountType,
    Batch,
    Decline,
    Hold,
    Repayment,
    SpendingLimit,
    Transfer,
)

from .factories import AccountFactory, UserFactory  # noqa: E402
from .utils import (  # noqa: E402
    assert_ledger_consistent,
    check_error_body,
    checked_client_class,
    data_statements,
    ledger_totals,
)

API = "/api/accounts/"
CheckedAPIClient = checked_client_class()


# Fixtures ----------------------------------------------------------------------


class World:
    """Users, accounts and money for the API's tests."""

    def __init__(self, clerk, cashier):
        bank = Account.objects.source_account()
        self.sales = Account.objects.sales_account()
        self.wallets = AccountType.objects.create(name="Wallets", code="wallets")
        self.family = AccountType.objects.create(
            name="Family wallets", code="family", parent=self.wallets
        )
        self.credit_type = AccountType.objects.create(name="Store credit", code="store-credit")
        self.barry = UserFactory(username="barry")
        self.alice = UserFactory(username="alice")
        self.mallory = UserFactory(username="mallory")
        self.clerk, self.cashier = clerk, cashier
        self.service = UserFactory(username="shop-backend")
        self.service.user_permissions.add(
            Permission.objects.get(content_type__app_label="accounts", codename="move_money")
        )
        self.credit = AccountFactory(
            name="Barry's store credit", primary_user=self.barry, account_type=self.credit_type
        )
        self.household = AccountFactory(
            name="Household wallet", primary_user=self.barry, account_type=self.family
        )
        self.household.secondary_users.add(self.alice)
        self.loot = AccountFactory(
            name="Mallory's wallet", primary_user=self.mallory, account_type=self.wallets
        )
        self.euro = AccountFactory(
            name="Euro wallet", primary_user=self.barry, currency="EUR", account_type=self.wallets
        )
        facade.transfer(bank, self.credit, Decimal("50.00"))
        facade.transfer(bank, self.household, Decimal("100.00"))
        self.mallory_top_up = facade.transfer(bank, self.loot, Decimal("20.00"))

    def client(self, user=None):
        client = CheckedAPIClient()
        if user is not None:
            client.force_authenticate(user)
        return client


@pytest.fixture
def world(db, clerk, cashier):
    return World(clerk, cashier)


def post(client, path, data, key=None, **extra):
    if key is not None:
        extra["HTTP_IDEMPOTENCY_KEY"] = key
    return client.post(API + path, data, format="json", **extra)


def balance(account):
    account.refresh_from_db()
    return account.balance.amount


def pay(world, user, source, destination, amount="5.00", key=None, **fields):
    body = {
        "source": source.pk,
        "destination": destination.pk,
        "amount": amount,
        "currency": source.currency,
        **fields,
    }
    return post(world.client(user), "transfers/", body, key=key)


# Authentication ----------------------------------------------------------------------

AUTHENTICATED_ENDPOINTS = [
    ("get", "accounts/"),
    ("get", "accounts/{account}/"),
    ("get", "accounts/{account}/statement/"),
    ("post", "transfers/"),
    ("get", "transfers/{transfer}/"),
    ("post", "transfers/{transfer}/reverse/"),
    ("post", "holds/"),
    ("get", "holds/{hold}/"),
    ("post", "holds/{hold}/capture/"),
    ("post", "holds/{hold}/release/"),
    ("get", "accounts/{account}/declines/"),
    ("post", "batches/"),
    ("get", "batches/{batch}/"),
    ("post", "repayments/"),
]


def fill(path, world, hold):
    return path.format(
        account=world.household.pk,
        transfer=world.mallory_top_up.reference,
        hold=hold.reference,
        batch="NO-SUCH-BATCH",
    )


@pytest.fixture
def hold(world):
    return facade.hold(world.household, world.sales, Decimal("10.00"))


@pytest.mark.parametrize(("method", "path"), AUTHENTICATED_ENDPOINTS)
def test_anonymous_requests_get_401_and_change_nothing(world, hold, method, path):
    before = ledger_totals()
    response = getattr(world.client(), method)(API + fill(path, world, hold), {}, format="json")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"
    assert ledger_totals() == before


def test_token_authentication_works_and_a_wrong_token_is_refused(world):
    token = Token.objects.create(user=world.barry)
    client = CheckedAPIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + token.key)
    assert client.get(API + "accounts/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    response = client.get(API + "accounts/")
    assert response.status_code == 401
    assert response.json() == {"code": "authentication_failed", "message": "Invalid token."}


def test_session_authentication_needs_the_csrf_token_to_move_money(world):
    client = CheckedAPIClient(enforce_csrf_checks=True)
    client.force_login(world.barry)
    body = {
        "source": world.credit.pk,
        "destination": world.household.pk,
        "amount": "1.00",
        "currency": "GBP",
    }
    refused = client.post(API + "transfers/", body, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "permission_denied"
    assert "CSRF" in refused.json()["message"]
    assert balance(world.credit) == Decimal("50.00")
    token = "a" * 32  # a CSRF secret, as the cookie carries it
    client.cookies["csrftoken"] = token
    accepted = client.post(API + "transfers/", body, format="json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201
    assert balance(world.credit) == Decimal("49.00")


# Accounts ----------------------------------------------------------------------


def ids(response):
    return [row["id"] for row in response.json()["results"]]


def test_customers_see_the_accounts_they_use_as_primary_or_secondary_user(world):
    barry = world.client(world.barry).get(API + "accounts/")
    assert ids(barry) == [world.credit.pk, world.household.pk, world.euro.pk]
    alice = world.client(world.alice).get(API + "accounts/")
    assert ids(alice) == [world.household.pk]
    service = world.client(world.service).get(API + "accounts/")
    assert ids(service) == []  # moving money is not seeing accounts


def test_an_account_shows_its_money_as_decimal_strings_with_the_currency(world):
    facade.hold(world.household, world.sales, Decimal("12.50"))
    response = world.client(world.alice).get(API + "accounts/%s/" % world.household.pk)
    assert response.status_code == 200
    data = response.json()
    assert data["balance"] == {"amount": "100.00", "currency": "GBP"}
    assert data["held"] == {"amount": "12.50", "currency": "GBP"}
    assert data["available"] == {"amount": "87.50", "currency": "GBP"}
    assert data["credit_limit"] == {"amount": "0.00", "currency": "GBP"}
    assert data["type"] == {"code": "family", "name": "Family wallets"}
    assert (data["status"], data["active"], data["primary_user"]) == ("open", True, "barry")
    # The raw body has no JSON number for money anywhere.
    assert '"amount": "100.00"' in response.content.decode().replace('":"', '": "')


def test_an_account_without_a_credit_limit_shows_null_available(world):
    response = world.client(world.clerk).get(API + "accounts/%s/" % world.sales.pk)
    assert response.json()["available"] == {"amount": "0.00", "currency": "GBP"}
    bank = Account.objects.source_account()
    response = world.client(world.clerk).get(API + "accounts/%s/" % bank.pk)
    assert response.json()["available"] is None
    assert response.json()["credit_limit"] is None


def test_staff_with_view_account_see_every_account_and_filter_them(world):
    client = world.client(world.clerk)
    everything = ids(client.get(API + "accounts/", {"page_size": 200}))
    assert everything == list(Account.objects.order_by("pk").values_list("pk", flat=True))
    assert ids(client.get(API + "accounts/", {"type": "wallets"})) == [
        world.household.pk,
        world.loot.pk,
        world.euro.pk,
    ]
    world.loot.freeze()
    assert ids(client.get(API + "accounts/", {"status": "frozen"})) == [world.loot.pk]
    assert ids(client.get(API + "accounts/", {"currency": "EUR", "user": "barry"})) == [
        world.euro.pk
    ]
    assert ids(client.get(API + "accounts/", {"user": "alice"})) == [world.household.pk]
    card = AccountFactory(name=None, code="7KQ2M9XDHT4RWB3N")
    assert ids(client.get(API + "accounts/", {"code": "7kq2-m9xd-ht4r-wb3n"})) == [card.pk]


def test_filters_only_narrow_what_a_customer_may_see(world):
    client = world.client(world.barry)
    assert ids(client.get(API + "accounts/", {"user": "mallory"})) == []
    assert ids(client.get(API + "accounts/", {"type": "wallets"})) == [
        world.household.pk,
        world.euro.pk,
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"stauts": "open"}, "stauts"),
        ({"status": "asleep"}, "status"),
        ({"currency": "XYZ"}, "currency"),
        ({"type": "no-such-type"}, "type"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "201"}, "page_size"),
        ({"cursor": "not-a-cursor"}, "cursor"),
    ],
)
def test_a_bad_filter_is_400_naming_it(world, params, field):
    response = world.client(world.clerk).get(API + "accounts/", params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert list(body["fields"]) == [field]


def test_the_account_list_pages_with_a_cursor_both_ways(world):
    client = world.client(world.clerk)
    expected = list(Account.objects.order_by("pk").values_list("pk", flat=True))
    seen, url = [], API + "accounts/?page_size=3"
    pages = []
    while url:
        page = client.get(url).json()
        pages.append(page)
        seen += [row["id"] for row in page["results"]]
        url = page["next"]
    assert seen == expected
    assert pages[0]["previous"] is None
    last = len(pages[-1]["results"])
    back = client.get(pages[-1]["previous"]).json()
    assert [row["id"] for row in back["results"]] == expected[-3 - last : -last]


# Statements ----------------------------------------------------------------------


def test_a_statement_has_running_balances_and_the_period_balances(world):
    facade.transfer(world.household, world.sales, Decimal("30.00"))
    facade.transfer(world.credit, world.household, Decimal("5.50"))
    response = world.client(world.alice).get(API + "accounts/%s/statement/" % world.household.pk)
    assert response.status_code == 200
    data = response.json()
    lines = [(row["amount"]["amount"], row["balance_after"]["amount"]) for row in data["results"]]
    assert lines == [("100.00", "100.00"), ("-30.00", "70.00"), ("5.50", "75.50")]
    assert data["opening_balance"] == {"amount": "0.00", "currency": "GBP"}
    assert data["closing_balance"] == {"amount": "75.50", "currency": "GBP"}
    assert (data["next"], data["previous"]) == (None, None)


def test_a_statement_over_a_period_opens_with_the_balance_before_it(world):
    past = timezone.now() - datetime.timedelta(days=10)
    with ledger_time(past):
        account = AccountFactory(primary_user=world.barry, created=past)
        facade.transfer(Account.objects.source_account(), account, Decimal("40.00"))
    facade.transfer(account, world.sales, Decimal("15.00"))
    today = timezone.localdate().isoformat()
    response = world.client(world.barry).get(
        API + "accounts/%s/statement/" % account.pk, {"start": today, "end": today}
    )
    data = response.json()
    assert data["opening_balance"]["amount"] == "40.00"
    assert data["closing_balance"]["amount"] == "25.00"
    assert [row["amount"]["amount"] for row in data["results"]] == ["-15.00"]


def test_statement_pages_follow_the_cursor_forwards_and_back(world):
    for n in range(1, 6):
        facade.transfer(world.household, world.sales, Decimal(n))
    client = world.client(world.barry)
    url = API + "accounts/%s/statement/?page_size=2" % world.household.pk
    first = client.get(url).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    amounts = [
        row["amount"]["amount"] for page in (first, second, third) for row in page["results"]
    ]
    assert amounts == ["100.00", "-1.00", "-2.00", "-3.00", "-4.00", "-5.00"]
    assert third["next"] is None
    assert client.get(third["previous"]).json()["results"] == second["results"]
    assert client.get(second["previous"]).json()["results"] == first["results"]
    newest = client.get(url + "&order=newest").json()
    older = client.get(newest["next"]).json()
    assert [row["amount"]["amount"] for row in newest["results"] + older["results"]] == [
        "-5.00",
        "-4.00",
        "-3.00",
        "-2.00",
    ]
    assert client.get(older["previous"]).json()["results"] == newest["results"]


def test_a_statement_page_costs_the_same_queries_whatever_the_history(
    world, django_assert_num_queries
):
    def client():
        # A fresh user object each time: its permissions are read again, as
        # in every real request.
        return world.client(type(world.barry).objects.get(pk=world.barry.pk))

    url = API + "accounts/%s/statement/?start=2020-01-01&page_size=2" % world.household.pk
    # The user's permissions (2), the account, the opening and closing
    # balances, one page of lines.
    facade.transfer(world.household, world.sales, Decimal("1.00"))
    first, second, third = client(), client(), client()
    with django_assert_num_queries(6):
        short = first.get(url)
    for _ in range(30):
        facade.transfer(world.household, world.sales, Decimal("1.00"))
    with django_assert_num_queries(6):
        long = second.get(url)
    with django_assert_num_queries(6):
        third.get(long.json()["next"])
    assert len(short.json()["results"]) == len(long.json()["results"]) == 2


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-02-30"}, "start"),
        ({"end": "2026-03-01T10:00:00"}, "end"),
        ({"start": "2026-03-02", "end": "2026-03-01"}, "end"),
        ({"from": "2026-03-01"}, "from"),
        ({"order": "latest"}, "order"),
    ],
)
def test_a_bad_statement_period_is_400_naming_the_parameter(world, params, field):
    response = world.client(world.barry).get(
        API + "accounts/%s/statement/" % world.household.pk, params
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]


def test_staff_with_view_account_read_any_statement(world):
    response = world.client(world.clerk).get(API + "accounts/%s/statement/" % world.loot.pk)
    assert response.status_code == 200
    assert response.json()["closing_balance"]["amount"] == "20.00"


# Guessing ids ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["accounts/{id}/", "accounts/{id}/statement/"])
@pytest.mark.parametrize("who", ["barry", "alice", "service"])
def test_another_customers_account_is_not_found_like_a_missing_one(world, path, who):
    client = world.client(getattr(world, who))
    theirs = client.get(API + path.format(id=world.loot.pk))
    missing = client.get(API + path.format(id=999999))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"code": "not_found", "message": "Not found."}


@pytest.mark.parametrize("who", ["barry", "alice", "clerk"])
def test_paying_from_another_customers_account_is_refused_like_a_missing_one(world, who):
    before = ledger_totals()
    user = getattr(world, who)
    theirs = pay(world, user, world.loot, world.household)
    missing = post(
        world.client(user),
        "transfers/",
        {"source": 999999, "destination": world.household.pk, "amount": "5.00", "currency": "GBP"},
    )
    assert theirs.status_code == missing.status_code == 400
    assert theirs.json() == missing.json()
    assert theirs.json()["fields"] == {"source": ["No account you may pay from has this id."]}
    assert ledger_totals() == before


def test_another_customers_transfer_and_hold_are_not_found(world):
    theirs = facade.hold(world.loot, world.sales, Decimal("1.00"))
    client = world.client(world.barry)
    for path in (
        "transfers/%s/" % world.mallory_top_up.reference,
        "holds/%s/" % theirs.reference,
        "transfers/NO-SUCH-REFERENCE/",
        "holds/NO-SUCH-REFERENCE/",
    ):
        response = client.get(API + path)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    "path", ["transfers/{transfer}/reverse/", "holds/{hold}/capture/", "holds/{hold}/release/"]
)
def test_a_customer_cannot_reverse_capture_or_release_even_their_own(world, path):
    own = facade.hold(world.household, world.sales, Decimal("1.00"))
    spent = facade.transfer(world.household, world.sales, Decimal("1.00"))
    before = ledger_totals()
    response = post(
        world.client(world.barry), path.format(transfer=spent.reference, hold=own.reference), {}
    )
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert ledger_totals() == before
    own.refresh_from_db()
    assert own.status == Hold.Status.ACTIVE


# Transfers ----------------------------------------------------------------------


def test_a_customer_pays_from_their_account_into_a_payable_wallet(world):
    response = pay(
        world,
        world.barry,
        world.credit,
        world.loot,
        "12.50",
        description="Birthday",
        merchant_reference="GIFT-1",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    transfer = Transfer.objects.get(reference=data["reference"])
    assert response["Location"] == "http://testserver%s" % (
        API + "transfers/%s/" % transfer.reference
    )
    assert data["amount"] == {"amount": "12.50", "currency": "GBP"}
    assert (data["source"], data["destination"]) == (world.credit.pk, world.loot.pk)
    assert (data["description"], data["merchant_reference"]) == ("Birthday", "GIFT-1")
    assert data["reversible_amount"] == {"amount": "12.50", "currency": "GBP"}
    assert transfer.username == "barry"
    assert balance(world.credit) == Decimal("37.50")
    assert balance(world.loot) == Decimal("32.50")
    assert_ledger_consistent()


def test_a_secondary_user_pays_from_the_shared_account(world):
    response = pay(world, world.alice, world.household, world.loot, "3.00")
    assert response.status_code == 201
    assert balance(world.household) == Decimal("97.00")


@pytest.mark.parametrize("destination", ["sales", "credit"])
def test_a_customer_cannot_pay_an_account_the_policy_does_not_allow(world, destination):
    before = ledger_totals()
    response = pay(world, world.barry, world.household, getattr(world, destination))
    missing = post(
        world.client(world.barry),
        "transfers/",
        {"source": world.household.pk, "destination": 999999, "amount": "5.00", "currency": "GBP"},
    )
    assert response.status_code == missing.status_code == 400
    assert response.json() == missing.json()
    assert response.json()["fields"] == {
        "destination": ["No account you may pay into has this id."]
    }
    assert ledger_totals() == before


def test_without_payable_types_a_customer_may_pay_nobody(world):
    with override_settings(ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES=[]):
        response = pay(world, world.barry, world.credit, world.household)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["destination"]


def allow_sales_only(user, source, destination):
    """A payment policy for the test below: customers pay the shop, nothing else."""
    return destination.role == Account.Role.SALES and user.username != "alice"


def test_a_payment_policy_hook_decides_instead_of_the_types(world):
    with override_settings(ACCOUNTS_API_PAYMENT_POLICY="tests.test_api.allow_sales_only"):
        assert pay(world, world.barry, world.household, world.sales).status_code == 201
        assert pay(world, world.barry, world.household, world.loot).status_code == 400
        assert pay(world, world.alice, world.household, world.sales).status_code == 400
    assert balance(world.sales) == Decimal("5.00")


@pytest.mark.parametrize("who", ["cashier", "service"])
def test_users_who_move_money_move_it_between_any_accounts(world, who):
    response = pay(world, getattr(world, who), world.loot, world.sales, "20.00")
    assert response.status_code == 201
    assert balance(world.loot) == Decimal("0.00")
    assert Transfer.objects.get(reference=response.json()["reference"]).username == (
        getattr(world, who).username
    )


def test_a_clerk_without_move_money_pays_only_from_their_own_accounts(world):
    response = pay(world, world.clerk, world.credit, world.loot)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["source"]


def test_insufficient_funds_is_422_with_the_facts(world):
    before = ledger_totals()
    response = pay(world, world.barry, world.credit, world.loot, "80.00")
    assert response.status_code == 422
    assert response.json() == {
        "code": "insufficient_funds",
        "message": "Barry's store credit has only £50.00 available to spend.",
        "facts": {
            "account": world.credit.pk,
            "amount": {"amount": "80.00", "currency": "GBP"},
            "available": {"amount": "50.00", "currency": "GBP"},
            "credit_limit": {"amount": "0.00", "currency": "GBP"},
        },
    }
    assert ledger_totals() == before


def test_allow_partial_moves_what_the_source_can_cover(world):
    response = pay(world, world.barry, world.credit, world.loot, "80.00", allow_partial=True)
    assert response.status_code == 201
    assert response.json()["amount"]["amount"] == "50.00"


def test_a_frozen_destination_is_422_account_frozen(world):
    world.loot.freeze()
    response = pay(world, world.barry, world.credit, world.loot)
    assert response.status_code == 422
    assert response.json()["code"] == "account_frozen"
    assert response.json()["facts"] == {"account": world.loot.pk}


def test_an_amount_in_another_currency_is_422_currency_mismatch(world):
    body = {
        "source": world.credit.pk,
        "destination": world.loot.pk,
        "amount": "5.00",
        "currency": "EUR",
    }
    response = post(world.client(world.barry), "transfers/", body)
    assert response.status_code == 422
    assert response.json()["code"] == "currency_mismatch"
    assert response.json()["facts"] == {"currency": "EUR", "expected": "GBP"}


def test_paying_between_accounts_of_two_currencies_is_422(world):
    response = pay(world, world.cashier, world.household, world.euro)
    assert response.status_code == 422
    assert response.json()["facts"] == {
        "source": world.household.pk,
        "destination": world.euro.pk,
        "source_currency": "GBP",
        "destination_currency": "EUR",
    }


def test_paying_an_account_to_itself_is_400_same_account(world):
    response = pay(world, world.cashier, world.loot, world.loot)
    assert response.status_code == 400
    assert response.json()["code"] == "same_account"


def good_body(world):
    return {
        "source": world.credit.pk,
        "destination": world.loot.pk,
        "amount": "5.00",
        "currency": "GBP",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 5.0}, "amount"),
        ({"amount": 5}, "amount"),
        ({"amount": "5.001"}, "amount"),
        ({"amount": "1e3"}, "amount"),
        ({"amount": "-5.00"}, "amount"),
        ({"amount": "0.00"}, "amount"),
        ({"amount": " 5.00"}, "amount"),
        ({"amount": "NaN"}, "amount"),
        ({"amount": "10000000000000000"}, "amount"),
        ({"amount": None}, "amount"),
        ({"currency": "gbp"}, "currency"),
        ({"currency": "USD"}, "currency"),
        ({"source": str}, "source"),
        ({"source": True}, "source"),
        ({"destination": 1.0}, "destination"),
        ({"description": 12}, "description"),
        ({"merchant_reference": "x" * 129}, "merchant_reference"),
        ({"allow_partial": "yes"}, "allow_partial"),
        ({"allow_partial": 1}, "allow_partial"),
        ({"colour": "blue"}, "colour"),
        ({"amount": ...}, "amount"),
        ({"source": ...}, "source"),
    ],
)
def test_bad_input_is_400_naming_the_field_and_writes_nothing(world, change, field):
    body = good_body(world)
    for name, value in change.items():
        if value is ...:
            del body[name]
        elif value is str:
            body[name] = str(body[name])
        else:
            body[name] = value
    before = ledger_totals()
    response = post(world.client(world.barry), "transfers/", body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [field]
    assert ledger_totals() == before


def test_a_json_number_for_an_amount_is_refused_with_a_message_saying_why(world):
    body = {**good_body(world), "amount": 5.1}
    response = post(world.client(world.barry), "transfers/", body)
    assert response.json()["fields"] == {
        "amount": ['Amounts are decimal strings such as "10.00", never JSON numbers (got float).']
    }
    body = {**good_body(world), "currency": "USD"}
    response = post(world.client(world.barry), "transfers/", body)
    assert response.json()["fields"] == {
        "currency": ["'USD' is not one of the currencies in use (GBP, EUR, JPY)."]
    }


def test_an_amount_with_more_places_than_the_currency_allows_is_400(world):
    jpy = AccountFactory(currency="JPY", primary_user=world.barry, account_type=world.wallets)
    facade.transfer(Account.objects.source_account("JPY"), jpy, Decimal("1000"))
    other = AccountFactory(currency="JPY", account_type=world.wallets)
    response = pay(world, world.barry, jpy, other, "10.5")
    assert response.status_code == 400
    assert "JPY" in response.json()["fields"]["amount"][0]
    assert pay(world, world.barry, jpy, other, "10").status_code == 201


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ('{"source": 1,', "application/json", 400, "parse_error"),
        ('{"amount": NaN}', "application/json", 400, "parse_error"),
        ("[1, 2]", "application/json", 400, "invalid"),
        ('"text"', "application/json", 400, "invalid"),
        (
            "source=1&amount=5.00",
            "application/x-www-form-urlencoded",
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_a_body_that_is_not_a_json_object_is_refused(world, body, content_type, status, code):
    before = ledger_totals()
    response = world.client(world.barry).generic(
        "POST", API + "transfers/", body, content_type=content_type
    )
    assert response.status_code == status
    assert response.json()["code"] == code
    assert ledger_totals() == before


def test_a_retry_with_the_same_idempotency_key_moves_the_money_once(world):
    first = pay(world, world.barry, world.credit, world.loot, "7.00", key="order-1001")
    again = pay(world, world.barry, world.credit, world.loot, "7.00", key="order-1001")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert balance(world.credit) == Decimal("43.00")
    assert Transfer.objects.filter(destination=world.loot).count() == 2  # top-up + one


def test_the_same_key_for_a_different_request_is_409(world):
    pay(world, world.barry, world.credit, world.loot, "7.00", key="order-1002")
    before = ledger_totals()
    response = pay(world, world.barry, world.credit, world.loot, "8.00", key="order-1002")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "idempotency_conflict"
    existing = Transfer.objects.get(idempotency_key__endswith=":order-1002")
    assert body["facts"] == {"existing": existing.reference}
    assert ledger_totals() == before


def test_idempotency_keys_are_kept_per_user(world):
    barry = pay(world, world.barry, world.credit, world.loot, "1.00", key="k-1")
    alice = pay(world, world.alice, world.household, world.loot, "2.00", key="k-1")
    assert barry.status_code == alice.status_code == 201
    assert barry.json()["reference"] != alice.json()["reference"]


@pytest.mark.parametrize("key", ["", "with space", "x" * 101, "caf\u00e9"])
def test_a_malformed_idempotency_key_is_400_naming_the_header(world, key):
    client = world.client(world.barry)
    response = client.post(
        API + "transfers/", good_body(world), format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["Idempotency-Key"]


def test_a_transfer_is_read_by_those_on_either_side_and_by_staff(world):
    reference = pay(world, world.barry, world.credit, world.loot).json()["reference"]
    path = API + "transfers/%s/" % reference
    for user in (world.barry, world.mallory, world.clerk, world.cashier, world.service):
        response = world.client(user).get(path)
        assert response.status_code == 200, user
        assert response.json()["reference"] == reference
    assert world.client(world.alice).get(path).status_code == 404  # not her account


# Reversals ----------------------------------------------------------------------


def test_staff_who_move_money_reverse_in_part_then_in_full(world):
    original = pay(world, world.barry, world.credit, world.loot, "10.00").json()["reference"]
    client = world.client(world.cashier)
    part = post(
        client,
        "transfers/%s/reverse/" % original,
        {"amount": "4.00", "currency": "GBP", "description": "Half back"},
    )
    assert part.status_code == 201
    assert part.json()["parent"] == original
    assert part.json()["reversible_amount"] == {"amount": "0.00", "currency": "GBP"}
    rest = post(client, "transfers/%s/reverse/" % original, {})
    assert rest.status_code == 201
    assert rest.json()["amount"]["amount"] == "6.00"
    assert balance(world.credit) == Decimal("50.00")
    detail = client.get(API + "transfers/%s/" % original).json()
    assert detail["reversed_amount"]["amount"] == "10.00"
    assert detail["reversible_amount"]["amount"] == "0.00"
    again = post(client, "transfers/%s/reverse/" % original, {})
    assert again.status_code == 422
    assert again.json()["code"] == "invalid_reversal"
    assert again.json()["facts"] == {"transfer": original}


def test_reversing_more_than_is_left_is_422_with_what_is_left(world):
    original = pay(world, world.barry, world.credit, world.loot, "10.00").json()["reference"]
    response = post(
        world.client(world.service),
        "transfers/%s/reverse/" % original,
        {"amount": "12.00", "currency": "GBP"},
    )
    assert response.status_code == 422
    assert response.json()["facts"]["remaining"] == {"amount": "10.00", "currency": "GBP"}


def test_a_reversal_retried_with_its_key_happens_once(world):
    original = pay(world, world.barry, world.credit, world.loot, "10.00").json()["reference"]
    client = world.client(world.cashier)
    body = {"amount": "1.00", "currency": "GBP"}
    first = post(client, "transfers/%s/reverse/" % original, body, key="refund-1")
    again = post(client, "transfers/%s/reverse/" % original, body, key="refund-1")
    assert first.json() == again.json()
    assert Transfer.objects.filter(parent__reference=original).count() == 1


def test_reverse_needs_amount_and_currency_together(world):
    original = pay(world, world.barry, world.credit, world.loot).json()["reference"]
    response = post(
        world.client(world.cashier), "transfers/%s/reverse/" % original, {"amount": "1.00"}
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["currency"]


def test_reversing_an_unknown_transfer_is_404(world):
    response = post(world.client(world.cashier), "transfers/NOPE/reverse/", {})
    assert response.status_code == 404


# Holds ----------------------------------------------------------------------


def place(world, user=None, key=None, **fields):
    body = {
        "source": world.household.pk,
        "destination": world.sales.pk,
        "amount": "6.00",
        "currency": "GBP",
        **fields,
    }
    return post(world.client(user or world.service), "holds/", body, key=key)


def test_a_service_places_and_captures_part_of_a_hold(world):
    expires = (timezone.now() + datetime.timedelta(days=3)).isoformat()
    response = place(world, merchant_reference="ORDER-2001", expires_at=expires)
    assert response.status_code == 201
    hold = response.json()
    assert (hold["status"], hold["capture"], hold["amount"]["amount"]) == ("active", None, "6.00")
    assert response["Location"].endswith(API + "holds/%s/" % hold["reference"])
    world.household.refresh_from_db()
    assert world.household.held.amount == Decimal("6.00")
    captured = post(
        world.client(world.service),
        "holds/%s/capture/" % hold["reference"],
        {"amount": "5.00", "currency": "GBP"},
    )
    assert captured.status_code == 201
    assert captured.json()["amount"]["amount"] == "5.00"
    assert captured.json()["merchant_reference"] == "ORDER-2001"
    after = world.client(world.barry).get(API + "holds/%s/" % hold["reference"]).json()
    assert (after["status"], after["capture"]) == ("captured", captured.json()["reference"])
    world.household.refresh_from_db()
    assert (world.household.balance.amount, world.household.held.amount) == (
        Decimal("95.00"),
        Decimal("0.00"),
    )
    assert_ledger_consistent()


def test_a_hold_is_released_once_then_409_with_its_status(world):
    reference = place(world).json()["reference"]
    client = world.client(world.cashier)
    released = post(client, "holds/%s/release/" % reference, {})
    assert released.status_code == 200
    assert released.json()["status"] == "released"
    again = post(client, "holds/%s/release/" % reference, {})
    assert again.status_code == 409
    assert again.json()["code"] == "hold_resolved"
    assert again.json()["facts"] == {"hold": reference, "status": "released"}


def test_capturing_more_than_the_hold_is_422(world):
    reference = place(world).json()["reference"]
    response = post(
        world.client(world.service),
        "holds/%s/capture/" % reference,
        {"amount": "7.00", "currency": "GBP"},
    )
    assert response.status_code == 422
    assert response.json()["code"] == "capture_exceeds_hold"
    assert response.json()["facts"]["held"] == {"amount": "6.00", "currency": "GBP"}


def test_capturing_an_expired_hold_is_422_hold_expired(world):
    expires = timezone.now() + datetime.timedelta(minutes=5)
    reference = place(world, expires_at=expires.isoformat()).json()["reference"]
    with ledger_time(expires + datetime.timedelta(1)):
        response = post(world.client(world.service), "holds/%s/capture/" % reference, {})
    assert response.status_code == 422
    assert response.json()["code"] == "hold_expired"


def test_a_hold_beyond_what_is_available_is_422(world):
    response = place(world, amount="100.01")
    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_funds"


def test_a_hold_retried_with_its_key_is_placed_once(world):
    first = place(world, key="auth-1")
    again = place(world, key="auth-1")
    assert first.json() == again.json()
    assert Hold.objects.count() == 1
    conflict = place(world, key="auth-1", amount="7.00")
    assert conflict.status_code == 409
    assert conflict.json()["facts"] == {"existing": first.json()["reference"]}


def test_a_capture_retried_with_its_key_moves_once(world):
    reference = place(world).json()["reference"]
    client = world.client(world.service)
    first = post(client, "holds/%s/capture/" % reference, {}, key="cap-1")
    again = post(client, "holds/%s/capture/" % reference, {}, key="cap-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert balance(world.household) == Decimal("94.00")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"expires_at": "2030-01-01T12:00:00"}, "expires_at"),
        ({"expires_at": "soon"}, "expires_at"),
        ({"source": 999999}, "source"),
        ({"destination": 999999}, "destination"),
        ({"amount": 6}, "amount"),
        ({"note": "x"}, "note"),
    ],
)
def test_bad_hold_input_is_400_naming_the_field(world, change, field):
    response = place(world, **change)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert Hold.objects.count() == 0


def test_an_expiry_in_the_past_is_400(world):
    response = place(world, expires_at="2020-01-01T00:00:00+00:00")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_argument"


@pytest.mark.parametrize("who", ["barry", "alice", "clerk"])
def test_only_users_who_move_money_place_holds(world, who):
    response = place(world, user=getattr(world, who))
    assert response.status_code == 403
    assert Hold.objects.count() == 0


def test_release_refuses_a_body_with_fields(world):
    reference = place(world).json()["reference"]
    response = post(world.client(world.service), "holds/%s/release/" % reference, {"all": True})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["all"]


# The balance check by code ----------------------------------------------------------------------


@pytest.fixture
def card(world):
    from django.core.cache import caches

    for cache in caches.all(initialized_only=True):
        cache.clear()
    card = AccountFactory(name=None, code="7KQ2M9XDHT4RWB3N", end_date=None)
    facade.transfer(Account.objects.source_account(), card, Decimal("25.00"))
    yield card
    for cache in caches.all(initialized_only=True):
        cache.clear()


def check_code(client, code):
    return client.post(API + "balance-check/", {"code": code}, format="json")


def test_the_balance_check_needs_no_login_and_answers_like_the_page(world, card):
    response = check_code(world.client(), "7kq2 m9xd-ht4r-wb3n")
    assert response.status_code == 200
    data = response.json()
    assert data["code"] == "7KQ2-M9XD-HT4R-WB3N"
    assert data["balance"] == {"amount": "25.00", "currency": "GBP"}
    assert data["available"] == {"amount": "25.00", "currency": "GBP"}
    assert (data["state"], data["message"]) == ("ready", "Ready to use: £25.00 to spend.")
    html = Client().post("/gift-cards/balance/", {"code": card.code})
    assert data["message"] in html.content.decode()


def test_the_balance_check_tells_a_frozen_card(world, card):
    card.freeze()
    data = check_code(world.client(), card.code).json()
    assert (data["status"], data["state"]) == ("frozen", "frozen")
    assert data["message"] == "This card is frozen and cannot be used for now. Please contact us."


def test_a_mistyped_code_is_400_and_an_unknown_one_404(world, card):
    mistyped = check_code(world.client(), "7KQ2M9XDHT4RWB3M")
    assert mistyped.status_code == 400
    assert mistyped.json()["code"] == "invalid_code"
    from accounts.codes import check_character

    well_formed = check_code(world.client(), "2" * 15 + check_character("2" * 15))
    assert well_formed.status_code == 404
    assert well_formed.json()["code"] == "card_not_found"


def test_failed_lookups_are_blocked_with_429_and_retry_after_shared_with_the_page(world, card):
    client = world.client()
    html = Client()
    for attempt in range(5):
        if attempt % 2:
            html.post("/gift-cards/balance/", {"code": "NOPE%d" % attempt})
        else:
            assert check_code(client, "NOPE%d" % attempt).status_code == 400
    blocked = check_code(client, card.code)  # even the right code, now
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "lookup_blocked"
    assert int(blocked["Retry-After"]) == blocked.json()["facts"]["retry_after"] > 0
    assert html.post("/gift-cards/balance/", {"code": card.code}).status_code == 429


def test_the_balance_check_ignores_a_logged_in_session_without_csrf(world, card):
    client = CheckedAPIClient(enforce_csrf_checks=True)
    client.force_login(world.barry)
    assert check_code(client, card.code).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"), [({"code": ""}, "code"), ({"code": 42}, "code"), ({"pin": "1"}, "pin")]
)
def test_a_bad_balance_check_body_is_400(world, card, body, field):
    response = world.client().post(API + "balance-check/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


# Errors ----------------------------------------------------------------------


def test_every_ledger_exception_has_its_own_machine_code():
    import inspect

    from accounts import exceptions
    from accounts.api.errors import LEDGER_ERRORS

    classes = {
        cls
        for _name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.AccountException)
    }
    assert classes - set(LEDGER_ERRORS) == set()
    codes = [kind.code for kind in LEDGER_ERRORS.values()]
    assert len(codes) == len(set(codes))
    # The API answers with the code each exception carries (a decline's reason too).
    assert {cls: LEDGER_ERRORS[cls].code for cls in classes} == {
        cls: cls.__dict__.get("code") for cls in classes
    }


def test_an_exception_without_its_own_code_answers_as_its_nearest_ancestor():
    from accounts.api.errors import exception_handler
    from accounts.exceptions import FrozenAccount

    class StolenCard(FrozenAccount):
        message = "Card %(account)s was reported stolen."
        user_template = "This card was reported stolen."

    response = exception_handler(StolenCard(account="X"), {})
    assert response.status_code == 422
    assert response.data["code"] == "account_frozen"
    assert response.data["message"] == "This card was reported stolen."


def test_the_message_is_the_exceptions_user_message_when_it_has_one():
    from accounts.api.errors import exception_handler
    from accounts.exceptions import InsufficientFunds

    class Friendly(InsufficientFunds):
        @property
        def user_message(self):
            return "Not enough money on this card."

    exc = Friendly(account="A", amount=Money("5.00", "GBP"), available=Money("1.00", "GBP"))
    data = exception_handler(exc, {}).data
    assert data["message"] == "Not enough money on this card."
    assert data["facts"]["available"] == {"amount": "1.00", "currency": "GBP"}


def test_an_unexpected_error_is_left_to_django(world):
    from django.db import DatabaseError

    with mock.patch("accounts.facade.transfer", side_effect=DatabaseError("boom")):
        with pytest.raises(DatabaseError, match="boom"):
            pay(world, world.barry, world.credit, world.loot)


def test_a_method_the_endpoint_does_not_have_is_405(world):
    # Not checked by the schema client: DELETE is (rightly) not in the schema.
    client = APIClient()
    client.force_authenticate(world.barry)
    response = client.delete(API + "accounts/%s/" % world.credit.pk)
    assert response.status_code == 405
    assert check_error_body(response.json())["code"] == "method_not_allowed"


def test_json_bodies_never_carry_money_as_numbers(world):
    """Every amount in every answer is a string: no float can creep in."""
    pay(world, world.barry, world.credit, world.loot)
    client = world.client(world.clerk)

    def numbers(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from numbers(value, path + "." + key)
        elif isinstance(node, list):
            for item in node:
                yield from numbers(item, path)
        elif isinstance(node, float):
            yield path

    for url in ("accounts/", "accounts/%s/statement/" % world.loot.pk):
        body = json.loads(client.get(API + url).content)
        assert list(numbers(body)) == []


def test_every_ledger_exception_answers_with_its_status():
    """The status of each class in accounts.exceptions, written out: a change is deliberate."""
    import inspect

    from accounts import exceptions
    from accounts.api.errors import LEDGER_ERRORS

    expected = {
        "AccountException": 422,
        "InvalidArgument": 400,
        "InvalidAmount": 400,
        "InvalidAccount": 400,
        "SameAccount": 400,
        "UnsupportedCurrency": 400,
        "InvalidCollectionPeriod": 400,
        "CollectionBeforeFreeze": 400,
        "InvalidCollectionSource": 400,
        "CurrencyMismatch": 422,
        "MixedCurrencyScope": 422,
        "InactiveAccount": 422,
        "ClosedAccount": 422,
        "FrozenAccount": 422,
        "AccountExpired": 422,
        "AccountNotYetActive": 422,
        "InsufficientFunds": 422,
        "SpendingLimitExceeded": 422,
        "IdempotencyConflict": 409,
        "InvalidReversal": 422,
        "HoldError": 422,
        "HoldResolved": 409,
        "HoldExpired": 422,
        "CaptureExceedsHold": 422,
        "AccountNotEmpty": 409,
        "ProtectedAccount": 422,
        "CodeGenerationError": 503,
        "CodeLookupBlocked": 429,
        "RetryableConflict": 409,
        "LedgerImmutable": 409,
        "CollectionError": 422,
        "CollectionRunConflict": 409,
        "CollectionRunNotDue": 422,
        "DebtResolved": 409,
        "SettlementExceedsDebt": 422,
    }
    classes = {
        name: cls
        for name, cls in inspect.getmembers(exceptions, inspect.isclass)
        if issubclass(cls, exceptions.AccountException)
    }
    assert {name: LEDGER_ERRORS[cls].status for name, cls in classes.items()} == expected


def test_a_refused_request_of_a_batch_names_its_position_in_the_facts():
    from accounts.api.errors import exception_handler
    from accounts.exceptions import SameAccount

    exc = SameAccount(account=3)
    exc.index = 2
    response = exception_handler(exc, {})
    assert response.status_code == 400
    assert response.data == {
        "code": "same_account",
        "message": "Money cannot be moved from an account to itself.",
        "facts": {"index": 2},
    }


# Spending limits ----------------------------------------------------------------------


def limit(account, period, amount):
    return SpendingLimit.objects.create(account=account, period=period, amount=Decimal(amount))


def test_an_account_shows_its_spending_limits_and_what_they_allow_now(world):
    limit(world.household, "day", "30.00")
    limit(world.household, "month", "200.00")
    facade.transfer(world.household, world.loot, Decimal("12.00"))
    data = world.client(world.alice).get(API + "accounts/%s/" % world.household.pk).json()
    assert data["spending_available"] == {"amount": "18.00", "currency": "GBP"}
    day, month = data["spending_limits"]
    assert (day["period"], day["limit"], day["used"], day["available"]) == (
        "day",
        {"amount": "30.00", "currency": "GBP"},
        {"amount": "12.00", "currency": "GBP"},
        {"amount": "18.00", "currency": "GBP"},
    )
    assert (month["period"], month["used"]["amount"], month["available"]["amount"]) == (
        "month",
        "12.00",
        "188.00",
    )
    assert day["starts"] == timezone.localdate().isoformat()
    assert datetime.datetime.fromisoformat(day["resets_at"]) > timezone.now()


def test_an_account_without_spending_limits_shows_null_and_none(world):
    data = world.client(world.barry).get(API + "accounts/%s/" % world.credit.pk).json()
    assert (data["spending_available"], data["spending_limits"]) == (None, [])


def test_an_accounts_own_limit_overrides_its_types_in_the_list(world):
    SpendingLimit.objects.create(account_type=world.wallets, period="day", amount=Decimal("40"))
    SpendingLimit.objects.create(account_type=world.family, period="week", amount=Decimal("90"))
    limit(world.household, "week", "60.00")
    rows = world.client(world.clerk).get(API + "accounts/", {"page_size": 200}).json()["results"]
    shown = {
        row["id"]: [(e["period"], e["limit"]["amount"]) for e in row["spending_limits"]]
        for row in rows
    }
    # Limits belong to the type itself, not to its subtypes.
    assert shown[world.household.pk] == [("week", "60.00")]
    assert shown[world.loot.pk] == [("day", "40.00")]
    assert shown[world.credit.pk] == []
    assert shown[world.sales.pk] == []  # core accounts are never limited


def test_the_account_list_costs_the_same_queries_for_any_number_of_limited_accounts(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.clock import NOW_SQL

    def statements():
        user = type(world.clerk).objects.get(pk=world.clerk.pk)
        with CaptureQueriesContext(connection) as queries:
            response = world.client(user).get(API + "accounts/", {"page_size": 200})
        assert response.status_code == 200
        return data_statements(queries), response.json()["results"]

    limit(world.household, "day", "30.00")
    few, rows = statements()
    assert sum(row["spending_available"] is not None for row in rows) == 1
    for n in range(8):
        account = AccountFactory(primary_user=world.barry, account_type=world.wallets)
        limit(account, "day", "%d.00" % (n + 1))
        limit(account, "month", "100.00")
    many, rows = statements()
    assert sum(row["spending_available"] is not None for row in rows) == 9
    # The user's permissions (2), the page, the limits of its accounts, the
    # database's clock (where the database has one: not SQLite's, see
    # accounts.clock): the same whatever the number of accounts.
    assert len(few) == len(many) == 4 + (connection.vendor in NOW_SQL)


def test_a_debit_past_a_spending_limit_is_422_with_the_period_and_figures(world):
    limit(world.household, "day", "30.00")
    facade.transfer(world.household, world.loot, Decimal("25.00"))
    before = ledger_totals()
    response = pay(world, world.alice, world.household, world.loot, "10.00")
    assert response.status_code == 422
    assert response.json() == {
        "code": "spending_limit_reached",
        "message": "Household wallet can spend only £5.00 more today.",
        "facts": {
            "account": world.household.pk,
            "amount": {"amount": "10.00", "currency": "GBP"},
            "period": "day",
            "limit": {"amount": "30.00", "currency": "GBP"},
            "used": {"amount": "25.00", "currency": "GBP"},
            "available": {"amount": "5.00", "currency": "GBP"},
        },
    }
    assert ledger_totals() == before


def test_a_hold_past_a_spending_limit_is_422_too(world):
    limit(world.household, "week", "5.00")
    response = place(world)
    assert response.status_code == 422
    assert response.json()["code"] == "spending_limit_reached"
    assert response.json()["facts"]["period"] == "week"
    assert Hold.objects.count() == 0


# Declined payments ----------------------------------------------------------------------


def declines_of(client, account, **params):
    return client.get(API + "accounts/%s/declines/" % account.pk, params)


@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_a_customer_reads_the_declined_payments_of_an_account_they_use(world):
    limit(world.household, "day", "30.00")
    facade.transfer(world.household, world.loot, Decimal("25.00"))
    assert pay(world, world.alice, world.household, world.loot, "10.00",
               merchant_reference="ORDER-7", description="Teapot").status_code == 422  # fmt: skip
    world.household.freeze()
    assert pay(world, world.barry, world.household, world.loot, "1.00").status_code == 422
    response = declines_of(world.client(world.barry), world.household)
    assert response.status_code == 200
    data = response.json()
    assert (data["account"], data["next"], data["previous"]) == (world.household.pk, None, None)
    frozen, limited = data["results"]
    assert (frozen["reason"], frozen["reason_text"], frozen["facts"]) == (
        "account_frozen",
        "account frozen",
        {},
    )
    assert limited["operation"] == "transfer"
    assert (limited["source"], limited["destination"], limited["hold"]) == (
        world.household.pk,
        world.loot.pk,
        None,
    )
    assert limited["amount"] == {"amount": "10.00", "currency": "GBP"}
    assert (limited["reason"], limited["reason_text"]) == (
        "spending_limit_reached",
        "daily limit reached",
    )
    assert limited["facts"] == {
        "period": "day",
        "limit": {"amount": "30.00", "currency": "GBP"},
        "used": {"amount": "25.00", "currency": "GBP"},
        "available": {"amount": "5.00", "currency": "GBP"},
    }
    assert (limited["merchant_reference"], limited["description"]) == ("ORDER-7", "Teapot")
    assert limited["created"] <= frozen["created"]


@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_declines_page_newest_first_with_a_cursor_both_ways(world):
    for n in range(5):
        with pytest.raises(InsufficientFunds, match="only £50.00 is available"):
            facade.transfer(world.credit, world.loot, Decimal("100.0%d" % n))
    client = world.client(world.barry)
    first = declines_of(client, world.credit, page_size=2).json()
    second = client.get(first["next"]).json()
    third = client.get(second["next"]).json()
    amounts = [r["amount"]["amount"] for page in (first, second, third) for r in page["results"]]
    assert amounts == ["100.04", "100.03", "100.02", "100.01", "100.00"]
    assert (first["previous"], third["next"]) == (None, None)
    assert client.get(second["previous"]).json()["results"] == first["results"]


@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_a_declined_capture_names_its_hold(world):
    hold = facade.hold(world.household, world.sales, Decimal("6.00"))
    response = post(
        world.client(world.service),
        "holds/%s/capture/" % hold.reference,
        {"amount": "7.00", "currency": "GBP"},
    )
    assert response.status_code == 422
    [decline] = declines_of(world.client(world.alice), world.household).json()["results"]
    assert (decline["operation"], decline["hold"], decline["reason"]) == (
        "capture",
        hold.reference,
        "capture_exceeds_hold",
    )


@pytest.mark.parametrize("who", ["barry", "alice", "service"])
@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_another_customers_declines_are_not_found(world, who):
    with pytest.raises(InsufficientFunds, match="only £20.00 is available"):
        facade.transfer(world.loot, world.sales, Decimal("500.00"))
    assert Decline.objects.filter(source=world.loot).count() == 1
    client = world.client(getattr(world, who))
    theirs = declines_of(client, world.loot)
    missing = client.get(API + "accounts/999999/declines/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


@pytest.mark.parametrize("who", ["clerk", "cashier"])
@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_staff_with_view_account_read_any_accounts_declines(world, who):
    with pytest.raises(InsufficientFunds, match="only £20.00 is available"):
        facade.transfer(world.loot, world.sales, Decimal("500.00"))
    response = declines_of(world.client(getattr(world, who)), world.loot)
    assert [r["reason"] for r in response.json()["results"]] == ["insufficient_funds"]


@pytest.mark.parametrize(
    ("params", "field"), [({"page_size": "0"}, "page_size"), ({"reason": "x"}, "reason")]
)
def test_a_bad_declines_parameter_is_400_naming_it(world, params, field):
    response = declines_of(world.client(world.barry), world.household, **params)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]


# Repaying debts ----------------------------------------------------------------------


@pytest.fixture
def card_wallet(world):
    """A card wallet of barry's on credit, £40.00 in debt."""
    card_wallet = AccountFactory(
        name="Barry's card wallet",
        primary_user=world.barry,
        account_type=world.wallets,
        credit_limit=Decimal("100.00"),
    )
    facade.transfer(card_wallet, world.sales, Decimal("40.00"))
    return card_wallet


def repay(world, user, source, destination, amount="10.00", key=None, **fields):
    body = {
        "source": source.pk,
        "destination": destination.pk,
        "amount": amount,
        "currency": "GBP",
        **fields,
    }
    return post(world.client(user), "repayments/", body, key=key)


@pytest.mark.parametrize("who", ["cashier", "service"])
def test_a_repayment_moves_no_more_than_the_debt_and_answers_201(world, card_wallet, who):
    response = repay(world, getattr(world, who), world.household, card_wallet, "55.00",
                     description="Reimbursement")  # fmt: skip
    assert response.status_code == 201
    data = response.json()
    assert data["amount"] == data["debt"] == {"amount": "40.00", "currency": "GBP"}
    transfer = data["transfer"]
    assert (transfer["source"], transfer["destination"]) == (world.household.pk, card_wallet.pk)
    assert transfer["amount"] == {"amount": "40.00", "currency": "GBP"}
    assert transfer["description"] == "Reimbursement"
    assert response["Location"].endswith(API + "transfers/%s/" % transfer["reference"])
    assert (balance(card_wallet), balance(world.household)) == (Decimal("0.00"), Decimal("60.00"))
    assert_ledger_consistent()


def test_a_repayment_less_than_the_debt_moves_all_of_it(world, card_wallet):
    data = repay(world, world.cashier, world.household, card_wallet, "15.00").json()
    assert data["amount"]["amount"] == "15.00"
    assert data["debt"]["amount"] == "40.00"
    assert balance(card_wallet) == Decimal("-25.00")


def test_without_a_debt_a_repayment_answers_200_and_moves_nothing(world):
    before = ledger_totals()
    response = repay(world, world.cashier, world.credit, world.household)
    assert response.status_code == 200
    assert response.json() == {
        "transfer": None,
        "amount": {"amount": "0.00", "currency": "GBP"},
        "debt": {"amount": "0.00", "currency": "GBP"},
    }
    assert ledger_totals() == before


def test_a_repayment_retried_with_its_key_has_the_same_outcome(world, card_wallet):
    first = repay(world, world.cashier, world.household, card_wallet, "15.00", key="refund-77")
    again = repay(world, world.cashier, world.household, card_wallet, "15.00", key="refund-77")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert balance(card_wallet) == Decimal("-25.00")
    conflict = repay(world, world.cashier, world.household, card_wallet, "16.00", key="refund-77")
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"


def test_a_repayment_without_debt_retried_stays_without_debt(world):
    wallet = AccountFactory(account_type=world.wallets, credit_limit=Decimal("50.00"))
    first = repay(world, world.cashier, world.credit, wallet, key="pay-back-1")
    facade.transfer(wallet, world.sales, Decimal("30.00"))  # a debt now
    again = repay(world, world.cashier, world.credit, wallet, key="pay-back-1")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.json()["transfer"] is None
    assert balance(wallet) == Decimal("-30.00")
    stored = Repayment.objects.get(idempotency_key="api:%s:pay-back-1" % world.cashier.pk)
    assert (stored.transfer, stored.debt.amount) == (None, Decimal("0.00"))
    fresh = repay(world, world.cashier, world.credit, wallet, key="pay-back-2")
    assert fresh.status_code == 201
    assert balance(wallet) == Decimal("-20.00")


@pytest.mark.parametrize("who", ["barry", "alice", "clerk"])
def test_only_users_who_move_money_repay(world, card_wallet, who):
    before = ledger_totals()
    response = repay(world, getattr(world, who), world.household, card_wallet)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert ledger_totals() == before


def test_a_repayment_the_source_cannot_cover_is_422(world, card_wallet):
    response = repay(world, world.cashier, world.loot, card_wallet, "30.00")
    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_funds"
    assert response.json()["facts"]["available"] == {"amount": "20.00", "currency": "GBP"}
    assert balance(card_wallet) == Decimal("-40.00")


def test_a_repayment_past_the_sources_spending_limit_is_422(world, card_wallet):
    limit(world.household, "day", "10.00")
    response = repay(world, world.cashier, world.household, card_wallet, "30.00")
    assert response.status_code == 422
    assert response.json()["code"] == "spending_limit_reached"
    assert response.json()["facts"]["available"] == {"amount": "10.00", "currency": "GBP"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": 10.0}, "amount"),
        ({"amount": "10.001"}, "amount"),
        ({"source": 999999}, "source"),
        ({"destination": 999999}, "destination"),
        ({"destination": "7"}, "destination"),
        ({"currency": "XYZ"}, "currency"),
        ({"note": "x"}, "note"),
    ],
)
def test_bad_repayment_input_is_400_naming_the_field(world, card_wallet, change, field):
    before = ledger_totals()
    body = {
        "source": world.household.pk,
        "destination": card_wallet.pk,
        "amount": "10.00",
        "currency": "GBP",
        **change,
    }
    response = post(world.client(world.cashier), "repayments/", body)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert ledger_totals() == before


# Batches ----------------------------------------------------------------------


def item(source, destination, amount, **fields):
    return {
        "source": source.pk,
        "destination": destination.pk,
        "amount": amount,
        "currency": "GBP",
        **fields,
    }


def post_batch(world, user, transfers, key=None, **fields):
    return post(world.client(user), "batches/", {"transfers": transfers, **fields}, key=key)


@pytest.mark.parametrize("who", ["cashier", "service"])
def test_a_linked_batch_posts_every_transfer_in_order(world, who):
    response = post_batch(
        world,
        getattr(world, who),
        [
            item(world.household, world.sales, "9.50", merchant_reference="ORDER-3001"),
            item(world.household, world.sales, "0.50", description="Card fee"),
        ],
        description="Order 3001",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    batch = Batch.objects.get(reference=data["reference"])
    assert response["Location"].endswith(API + "batches/%s/" % batch.reference)
    assert (data["atomic"], data["size"], data["reverses"], data["description"]) == (
        True,
        2,
        None,
        "Order 3001",
    )
    references = [t["reference"] for t in data["transfers"]]
    assert [(i["index"], i["status"], i["transfer"], i["error"]) for i in data["items"]] == [
        (0, "posted", references[0], None),
        (1, "posted", references[1], None),
    ]
    assert [t["description"] for t in data["transfers"]] == ["Order 3001", "Card fee"]
    assert data["transfers"][0]["merchant_reference"] == "ORDER-3001"
    assert balance(world.household) == Decimal("90.00")
    assert batch.username == getattr(world, who).username
    assert world.client(world.cashier).get(API + "batches/%s/" % batch.reference).json() == data
    assert_ledger_consistent()


def test_a_linked_batch_refused_answers_with_the_position_and_writes_nothing(world):
    before = ledger_totals()
    response = post_batch(
        world,
        world.cashier,
        [item(world.household, world.sales, "60.00"), item(world.household, world.sales, "60.00")],
    )
    assert response.status_code == 422
    assert response.json()["code"] == "insufficient_funds"
    assert response.json()["facts"]["index"] == 1
    assert response.json()["facts"]["available"] == {"amount": "40.00", "currency": "GBP"}
    assert ledger_totals() == before
    assert Batch.objects.count() == 0


def test_an_independent_batch_posts_the_good_ones_and_says_why_the_others_failed(world):
    transfers = [
        item(world.household, world.sales, "60.00"),
        item(world.household, world.sales, "60.00"),
        item(world.credit, world.sales, "5.00"),
    ]
    first = post_batch(world, world.cashier, transfers, key="payroll-1", atomic=False)
    assert first.status_code == 201
    data = first.json()
    assert [i["status"] for i in data["items"]] == ["posted", "refused", "posted"]
    error = data["items"][1]["error"]
    assert (error["code"], error["facts"]["index"]) == ("insufficient_funds", 1)
    assert [t["amount"]["amount"] for t in data["transfers"]] == ["60.00", "5.00"]
    assert (balance(world.household), balance(world.credit)) == (
        Decimal("40.00"),
        Decimal("45.00"),
    )
    # A retry answers with the same batch; the refusal itself was not kept.
    again = post_batch(world, world.cashier, transfers, key="payroll-1", atomic=False)
    assert again.status_code == 201
    assert again.json()["reference"] == data["reference"]
    assert again.json()["transfers"] == data["transfers"]
    assert again.json()["items"][1] == {
        "index": 1,
        "status": "refused",
        "transfer": None,
        "error": None,
    }
    assert Batch.objects.count() == 1
    assert balance(world.household) == Decimal("40.00")
    conflict = post_batch(world, world.cashier, transfers, key="payroll-1", atomic=True)
    assert conflict.status_code == 409
    assert conflict.json()["code"] == "idempotency_conflict"


@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_a_refused_request_of_an_independent_batch_is_among_the_declines(world):
    transfers = [
        item(world.household, world.sales, "60.00"),
        item(world.household, world.sales, "60.00", merchant_reference="ORDER-2"),
    ]
    assert post_batch(world, world.service, transfers, atomic=False).status_code == 201
    [decline] = declines_of(world.client(world.barry), world.household).json()["results"]
    assert (decline["operation"], decline["reason"], decline["merchant_reference"]) == (
        "batch",
        "insufficient_funds",
        "ORDER-2",
    )
    assert decline["facts"]["available"] == {"amount": "40.00", "currency": "GBP"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ([], "transfers"),
        ("not a list", "transfers"),
        ([{"destination": None}], "transfers.0.destination"),
        ([{"amount": 5.0}], "transfers.0.amount"),
        ([{"source": 999999}], "transfers.0.source"),
        ([{}, {"destination": 999999}], "transfers.1.destination"),
        ([{}, {"note": "x"}], "transfers.1.note"),
        ([{"allow_partial": "yes"}], "transfers.0.allow_partial"),
    ],
)
def test_bad_batch_input_is_400_naming_the_field_by_its_path(world, changes, field):
    """Each change is applied to a good request (None: the field left out)."""
    transfers = changes
    if isinstance(changes, list):
        transfers = []
        for change in changes:
            body = {**item(world.household, world.sales, "1.00"), **change}
            transfers.append({key: value for key, value in body.items() if value is not None})
    response = post_batch(world, world.cashier, transfers)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert Batch.objects.count() == 0


def test_a_batch_over_the_maximum_size_is_400(world):
    with override_settings(ACCOUNTS_BATCH_MAX_SIZE=2):
        response = post_batch(
            world, world.cashier, [item(world.household, world.sales, "1.00")] * 3
        )
    assert response.status_code == 400
    assert response.json()["fields"] == {"transfers": ["Give from 1 to 2 transfers."]}


def test_bad_input_the_ledger_finds_in_a_batch_names_the_position(world):
    response = post_batch(
        world,
        world.cashier,
        [item(world.household, world.sales, "1.00"), item(world.loot, world.loot, "1.00")],
    )
    assert response.status_code == 400
    assert response.json()["code"] == "same_account"
    assert response.json()["facts"]["index"] == 1


@pytest.mark.parametrize("who", ["barry", "alice", "clerk"])
def test_only_users_who_move_money_post_batches(world, who):
    response = post_batch(world, getattr(world, who), [item(world.household, world.sales, "1.00")])
    assert response.status_code == 403
    assert Batch.objects.count() == 0


@pytest.fixture
def batch(world):
    return facade.transfer_many(
        [
            facade.TransferRequest(world.household, world.loot, Decimal("2.00")),
            facade.TransferRequest(world.loot, world.sales, Decimal("1.00")),
        ]
    )


@pytest.mark.parametrize("who", ["barry", "alice", "mallory"])
def test_customers_do_not_find_a_batch_even_with_their_transfers_in_it(world, batch, who):
    client = world.client(getattr(world, who))
    theirs = client.get(API + "batches/%s/" % batch.reference)
    missing = client.get(API + "batches/NO-SUCH-BATCH/")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json()


@pytest.mark.parametrize("who", ["clerk", "cashier", "service"])
def test_staff_and_services_read_a_batch_with_its_transfers(world, batch, who):
    facade.reverse(batch.transfers.first(), amount=Decimal("0.50"))
    data = world.client(getattr(world, who)).get(API + "batches/%s/" % batch.reference).json()
    assert [t["amount"]["amount"] for t in data["transfers"]] == ["2.00", "1.00"]
    assert [t["reversed_amount"]["amount"] for t in data["transfers"]] == ["0.50", "0.00"]
    assert [t["reversible_amount"]["amount"] for t in data["transfers"]] == ["1.50", "1.00"]


def test_a_batch_reversing_another_shows_what_it_skipped(world, batch):
    facade.reverse(batch.transfers.last())
    reversal = facade.reverse_batch(batch)
    data = world.client(world.clerk).get(API + "batches/%s/" % reversal.reference).json()
    assert data["reverses"] == batch.reference
    assert [i["status"] for i in data["items"]] == ["posted", "skipped"]


def test_reading_a_batch_costs_the_same_queries_whatever_its_size(world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def statements(size):
        made = facade.transfer_many(
            [facade.TransferRequest(world.household, world.sales, Decimal("1.00"))] * size
        )
        user = type(world.clerk).objects.get(pk=world.clerk.pk)
        with CaptureQueriesContext(connection) as queries:
            response = world.client(user).get(API + "batches/%s/" % made.reference)
        assert len(response.json()["transfers"]) == size
        return data_statements(queries)

    # The user's permissions (2), the batch, its transfers, their reversals.
    assert len(statements(1)) == len(statements(20)) == 5


# Metadata, effective dates, notification marks (issue 15) ---------------------------

PAST = "2025-06-01T09:30:00+01:00"
META = {"order": "3001", "lines": [1, 2], "gift": True, "note": None}


def moment(text):
    from django.utils.dateparse import parse_datetime

    return parse_datetime(text)


def written():
    """Everything a refused write must leave as it was."""
    return ledger_totals(), Hold.objects.count(), Batch.objects.count()


class Endpoint:
    """A write of the API that takes metadata and effective_at: who posts what, where."""

    def __init__(self, name, world, request):
        self.name, self.world = name, world
        self.user = world.barry if name == "transfers" else world.cashier
        if name == "transfers":
            self.path, self.body = "transfers/", good_body(world)
        elif name == "reverse":
            original = facade.transfer(world.household, world.sales, Decimal("4.00"))
            self.path, self.body = "transfers/%s/reverse/" % original.reference, {}
        elif name == "holds":
            self.path = "holds/"
            self.body = {
                "source": world.household.pk,
                "destination": world.sales.pk,
                "amount": "6.00",
                "currency": "GBP",
            }
        elif name == "capture":
            held = facade.hold(world.household, world.sales, Decimal("10.00"))
            self.path, self.body = "holds/%s/capture/" % held.reference, {}
        elif name == "repayments":
            wallet = request.getfixturevalue("card_wallet")
            self.path = "repayments/"
            self.body = {
                "source": world.household.pk,
                "destination": wallet.pk,
                "amount": "10.00",
                "currency": "GBP",
            }
        else:
            self.path = "batches/"
            self.body = {"transfers": [item(world.household, world.sales, "1.00")]}

    def post(self, key=None, **fields):
        if self.name == "batches":
            first = {**self.body["transfers"][0], **fields}
            body = {"transfers": [item(self.world.household, self.world.sales, "1.00"), first]}
        else:
            body = {**self.body, **fields}
        return post(self.world.client(self.user), self.path, body, key=key)

    def field(self, name):
        """How a 400 names the field: a batch's second transfer by its path."""
        return "transfers.1.%s" % name if self.name == "batches" else name

    def shown(self, response):
        """The transfer or hold the answer shows, and its row."""
        data = response.json()
        if self.name == "repayments":
            data = data["transfer"]
        elif self.name == "batches":
            data = data["transfers"][1]
        model = Hold if self.name == "holds" else Transfer
        return data, model.objects.get(reference=data["reference"])


ENDPOINTS = ["transfers", "reverse", "holds", "capture", "repayments", "batches"]


@pytest.fixture(params=ENDPOINTS)
def endpoint(request, world):
    return Endpoint(request.param, world, request)


def test_metadata_and_effective_at_go_in_and_come_out_of_every_write(endpoint):
    response = endpoint.post(metadata=META, effective_at=PAST)
    assert response.status_code == 201, response.json()
    data, row = endpoint.shown(response)
    assert data["metadata"] == row.metadata == META
    assert moment(data["effective_at"]) == row.effective_at == moment(PAST)
    assert data["notified_at"] is None


def test_without_them_metadata_is_the_default_and_effective_at_the_posting_time(endpoint):
    response = endpoint.post()
    assert response.status_code == 201, response.json()
    data, row = endpoint.shown(response)
    assert data["metadata"] == row.metadata
    assert moment(data["effective_at"]) == row.effective_at == row.created


@pytest.mark.parametrize(
    "metadata",
    [["a", "list"], "a string", 12, None, {"note": "x" * 80}],
    ids=["list", "string", "number", "null", "too-large"],
)
@override_settings(ACCOUNTS_METADATA_MAX_BYTES=64)
def test_bad_metadata_is_400_naming_the_field_and_writes_nothing(endpoint, metadata):
    before = written()
    response = endpoint.post(metadata=metadata)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [endpoint.field("metadata")]
    assert written() == before


def test_metadata_over_the_maximum_says_so(world):
    with override_settings(ACCOUNTS_METADATA_MAX_BYTES=64):
        response = pay(world, world.barry, world.credit, world.loot, metadata={"n": "x" * 80})
    assert response.status_code == 400
    (message,) = response.json()["fields"]["metadata"]
    assert "ACCOUNTS_METADATA_MAX_BYTES" in message


@pytest.mark.parametrize(
    "effective_at",
    ["2025-06-01T09:30:00", "2025-02-30T09:30:00+00:00", "yesterday", 1748770200, None],
    ids=["naive", "no-such-day", "words", "number", "null"],
)
def test_a_bad_effective_at_is_400_naming_the_field_and_writes_nothing(endpoint, effective_at):
    before = written()
    response = endpoint.post(effective_at=effective_at)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid"
    assert list(response.json()["fields"]) == [endpoint.field("effective_at")]
    assert written() == before


def test_a_future_effective_at_is_refused_by_the_ledger_and_writes_nothing(endpoint):
    tomorrow = timezone.now() + datetime.timedelta(days=1)
    before = written()
    response = endpoint.post(effective_at=tomorrow.isoformat())
    assert response.status_code == 400, response.json()
    body = response.json()
    assert body["code"] == "invalid_argument"
    assert moment(body["facts"]["effective_at"]) == tomorrow
    assert "now" in body["facts"]
    assert written() == before


def test_a_batchs_own_metadata_and_effective_at_are_shown_and_inherited(world):
    response = post_batch(
        world,
        world.cashier,
        [
            item(world.household, world.sales, "1.00"),
            item(world.household, world.sales, "2.00", metadata={"line": 2}),
        ],
        metadata={"order": "3001"},
        effective_at=PAST,
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["metadata"] == Batch.objects.get().metadata == {"order": "3001"}
    assert [t["metadata"] for t in data["transfers"]] == [{}, {"line": 2}]
    assert [moment(t["effective_at"]) for t in data["transfers"]] == [moment(PAST)] * 2
    again = world.client(world.clerk).get(API + "batches/%s/" % data["reference"]).json()
    assert again["metadata"] == {"order": "3001"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"metadata": ["not", "an", "object"]}, "metadata"),
        ({"effective_at": "2025-06-01T09:30:00"}, "effective_at"),
    ],
)
def test_a_batchs_own_bad_metadata_or_effective_at_is_400(world, fields, field):
    response = post_batch(
        world, world.cashier, [item(world.household, world.sales, "1.00")], **fields
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
    assert Batch.objects.count() == 0


def test_a_reversal_and_a_capture_default_to_the_originals_metadata(world):
    original = facade.transfer(world.household, world.sales, Decimal("4.00"), metadata=META)
    held = facade.hold(world.household, world.sales, Decimal("3.00"), metadata={"h": 1})
    cashier = world.client(world.cashier)
    reversal = post(cashier, "transfers/%s/reverse/" % original.reference, {})
    capture = post(cashier, "holds/%s/capture/" % held.reference, {})
    assert reversal.json()["metadata"] == META
    assert capture.json()["metadata"] == {"h": 1}
    shown = cashier.get(API + "holds/%s/" % held.reference).json()
    assert shown["metadata"] == {"h": 1}


def test_the_same_key_with_other_metadata_is_409_and_writes_nothing(endpoint):
    first = endpoint.post(key="meta-1", metadata={"order": "1"})
    assert first.status_code == 201, first.json()
    again = endpoint.post(key="meta-1", metadata={"order": "1"})
    assert again.status_code == 201
    assert again.json() == first.json()
    before = written()
    response = endpoint.post(key="meta-1", metadata={"order": "2"})
    assert response.status_code == 409, response.json()
    assert response.json()["code"] == "idempotency_conflict"
    assert written() == before


def test_the_same_key_with_another_effective_at_is_409(world):
    first = pay(world, world.barry, world.credit, world.loot, key="eff-1", effective_at=PAST)
    assert first.status_code == 201
    before = written()
    response = pay(
        world, world.barry, world.credit, world.loot, key="eff-1",
        effective_at="2025-06-02T09:30:00+01:00",
    )  # fmt: skip
    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_conflict"
    assert written() == before


def test_notified_at_is_null_until_the_transfer_or_hold_is_marked(world, hold):
    made = pay(world, world.barry, world.credit, world.loot).json()
    client = world.client(world.cashier)
    transfer_url, hold_url = (
        API + "transfers/%s/" % made["reference"],
        API + "holds/%s/" % hold.reference,
    )
    assert client.get(transfer_url).json()["notified_at"] is None
    assert client.get(hold_url).json()["notified_at"] is None
    assert Transfer.objects.filter(reference=made["reference"]).mark_notified() == 1
    assert Hold.objects.filter(pk=hold.pk).mark_notified() == 1
    transfer = Transfer.objects.get(reference=made["reference"])
    assert moment(client.get(transfer_url).json()["notified_at"]) == transfer.notified_at
    hold.refresh_from_db()
    assert moment(client.get(hold_url).json()["notified_at"]) == hold.notified_at


def test_accounts_show_their_metadata(world):
    Account.objects.filter(pk=world.credit.pk).update(metadata={"crm": "C-17"})
    client = world.client(world.barry)
    assert client.get(API + "accounts/%s/" % world.credit.pk).json()["metadata"] == {"crm": "C-17"}
    listed = {a["id"]: a["metadata"] for a in client.get(API + "accounts/").json()["results"]}
    assert listed[world.credit.pk] == {"crm": "C-17"}
    assert listed[world.household.pk] == {}


@override_settings(ACCOUNTS_RECORD_DECLINES=True)
def test_a_decline_shows_the_metadata_of_the_refused_request(world):
    response = pay(world, world.barry, world.credit, world.loot, "500.00", metadata={"o": "9"})
    assert response.status_code == 422
    (declined,) = declines_of(world.client(world.barry), world.credit).json()["results"]
    assert declined["metadata"] == {"o": "9"}


def statement_of(world, **params):
    return world.client(world.barry).get(
        API + "accounts/%s/statement/" % world.household.pk, params
    )


def test_statement_lines_show_their_transfers_effective_at_and_metadata(world):
    facade.transfer(
        world.household, world.sales, Decimal("3.00"), metadata=META, effective_at=moment(PAST)
    )
    data = statement_of(world).json()
    assert data["date_field"] == "created"
    top_up, paid = data["results"]
    assert moment(paid["effective_at"]) == moment(PAST)
    assert paid["metadata"] == META
    assert top_up["metadata"] == {}


def test_a_statement_by_effective_date_filters_and_sorts_by_it(world):
    early = facade.transfer(
        world.household, world.sales, Decimal("3.00"), effective_at=moment(PAST)
    )
    late = facade.transfer(
        world.household,
        world.sales,
        Decimal("2.00"),
        effective_at=moment("2025-07-01T09:30:00+00:00"),
    )
    by_created = statement_of(world, start="2025-06-15")
    assert len(by_created.json()["results"]) == 3  # all posted today
    data = statement_of(world, start="2025-06-01", end="2025-06-30", date_field="effective_at")
    assert data.status_code == 200
    body = data.json()
    assert body["date_field"] == "effective_at"
    assert [line["transfer"] for line in body["results"]] == [early.reference]
    everything = statement_of(world, date_field="effective_at", order="newest").json()
    assert [line["transfer"] for line in everything["results"]][:2] == [
        Transfer.objects.filter(destination=world.household).get().reference,
        late.reference,
    ]


def test_a_statement_by_effective_date_pages_with_a_cursor_both_ways(world):
    for day in range(1, 6):
        facade.transfer(
            world.household,
            world.sales,
            Decimal(day),
            effective_at=moment("2025-06-%02dT09:30:00+00:00" % (6 - day)),
        )
    client = world.client(world.barry)
    url = API + "accounts/%s/statement/?date_field=effective_at&page_size=2" % world.household.pk
    first = client.get(url).json()
    second = client.get(first["next"]).json()
    amounts = [line["amount"]["amount"] for line in first["results"] + second["results"]]
    assert amounts == ["-5.00", "-4.00", "-3.00", "-2.00"]
    assert client.get(second["previous"]).json()["results"] == first["results"]


@pytest.mark.parametrize("value", ["posted", "effective", ""])
def test_a_bad_statement_date_field_is_400_naming_it(world, value):
    response = statement_of(world, date_field=value)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["date_field"]


def test_a_statement_by_effective_date_costs_the_same_queries_whatever_the_history(
    world, django_assert_num_queries
):
    def client():
        return world.client(type(world.barry).objects.get(pk=world.barry.pk))

    url = API + "accounts/%s/statement/?date_field=effective_at&page_size=2" % world.household.pk
    facade.transfer(world.household, world.sales, Decimal("1.00"), metadata=META)
    first, second, third = client(), client(), client()
    # The user's permissions (2), the account, the closing balance, one page
    # of lines with their transfers (metadata and effective_at included).
    with django_assert_num_queries(5):
        short = first.get(url)
    for _ in range(30):
        facade.transfer(world.household, world.sales, Decimal("1.00"), metadata=META)
    with django_assert_num_queries(5):
        long = second.get(url)
    with django_assert_num_queries(5):
        third.get(long.json()["next"])
    assert len(short.json()["results"]) == len(long.json()["results"]) == 2


def test_an_expiry_that_is_no_date_is_400_not_a_server_error(world):
    before = written()
    response = place(world, expires_at="2026-02-30T12:00:00+00:00")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["expires_at"]
    assert written() == before
