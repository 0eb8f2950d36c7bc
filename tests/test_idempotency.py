"""
Idempotency keys (``accounts.idempotency``): only an identical request is a
replay. A repeat is answered with what the first call wrote, writing nothing;
the same key with any other detail is an ``IdempotencyConflict``.

How each operation compares its own arguments is in ``test_trust_boundary.py``;
concurrent repeats are in ``test_concurrency.py``.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from accounts import facade, idempotency
from accounts.exceptions import IdempotencyConflict
from accounts.idempotency import Request
from accounts.models import Account, Transfer

from .factories import AccountFactory
from .utils import ledger_totals

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 10, 9, 30, tzinfo=datetime.UTC)


# Through the operations --------------------------------------------------------------


def test_repeating_a_call_with_the_same_key_returns_the_original(source, account):
    first = facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    before = ledger_totals()
    with CaptureQueriesContext(connection) as queries:
        again = facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    assert again.pk == first.pk
    assert ledger_totals() == before
    assert not any(
        q["sql"].upper().startswith(("INSERT", "UPDATE")) for q in queries.captured_queries
    )


def test_a_repeat_is_answered_even_if_the_account_can_no_longer_pay(source, fund):
    account = AccountFactory()
    fund(account, "10.00")
    sales = Account.objects.sales_account()
    first = facade.transfer(account, sales, Decimal("10.00"), idempotency_key="pay-1")
    assert facade.transfer(account, sales, Decimal("10.00"), idempotency_key="pay-1") == first


@pytest.mark.parametrize("change", ["amount", "destination", "source"])
def test_the_same_key_with_different_details_is_a_conflict(source, account, change):
    facade.transfer(source, account, Decimal("10.00"), idempotency_key="order-1")
    args = {"source": source, "destination": account, "amount": Decimal("10.00")}
    if change == "amount":
        args["amount"] = Decimal("11.00")
    elif change == "destination":
        args["destination"] = AccountFactory()
    else:
        args["source"] = Account.objects.create(credit_limit=None)
    before = ledger_totals()
    with pytest.raises(
        IdempotencyConflict, match="was already used, by .* with different details"
    ):
        facade.transfer(idempotency_key="order-1", **args)
    assert ledger_totals() == before


def test_reverse_with_a_key_is_idempotent(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    first = facade.reverse(trans, amount=Decimal("4.00"), idempotency_key="refund-1")
    again = facade.reverse(trans, amount=Decimal("4.00"), idempotency_key="refund-1")
    assert again == first
    assert trans.reversible_amount() == Money("6.00", "GBP")


def test_allow_partial_with_a_key_is_idempotent(fund, sales):
    card = AccountFactory()
    fund(card, "7.25")
    first = facade.transfer(card, sales, Decimal("20.00"), allow_partial=True, idempotency_key="p")
    again = facade.transfer(card, sales, Decimal("20.00"), allow_partial=True, idempotency_key="p")
    assert again == first


# The functions ------------------------------------------------------------------------


def test_a_fingerprint_is_the_same_for_the_same_amount_however_it_is_written():
    fingerprint = idempotency.fingerprint
    assert fingerprint("transfer", amount=Decimal("20")) == fingerprint(
        "transfer", amount=Decimal("20.00")
    )
    assert fingerprint("transfer", amount=Decimal("0")) == fingerprint(
        "transfer", amount=Decimal("0.00")
    )
    assert fingerprint("transfer", a=1, b=None) == fingerprint("transfer", b=None, a=1)


@pytest.mark.parametrize(
    "other",
    [
        ("hold", {"amount": Decimal("20.00"), "metadata": {}}),
        ("transfer", {"amount": Decimal("20.01"), "metadata": {}}),
        ("transfer", {"amount": Decimal("20.00"), "metadata": {"a": [1]}}),
        ("transfer", {"amount": Decimal("20.00"), "metadata": {}, "description": ""}),
    ],
)
def test_any_other_operation_or_argument_is_another_fingerprint(other):
    operation, arguments = other
    first = idempotency.fingerprint("transfer", amount=Decimal("20.00"), metadata={})
    assert idempotency.fingerprint(operation, **arguments) != first


def test_a_fingerprint_takes_rows_by_primary_key_and_moments_exactly(account):
    same = Account(pk=account.pk)
    assert idempotency.fingerprint("t", account=account, at=NOW) == idempotency.fingerprint(
        "t", account=same, at=NOW
    )
    later = NOW + datetime.timedelta(microseconds=1)
    assert idempotency.fingerprint("t", at=NOW) != idempotency.fingerprint("t", at=later)


def test_a_value_without_a_canonical_form_is_a_programming_error():
    with pytest.raises(TypeError, match="No canonical form for"):
        idempotency.fingerprint("transfer", accounts={1, 2})


def test_a_request_without_a_key_is_never_looked_up():
    request = Request("transfer", None, amount=Decimal("1.00"))
    assert request.fingerprint() is None
    with CaptureQueriesContext(connection) as queries:
        assert request.find(Transfer, "default") is None
    assert queries.captured_queries == []


def test_replay_answers_only_the_identical_request(source, account):
    request = Request("transfer", "k-1", amount=Decimal("1.00"))
    first = facade.transfer(source, account, Decimal("1.00"))
    first.request_fingerprint = request.fingerprint()
    assert request.replay(first, legacy_match=False) is first
    other = Request("transfer", "k-1", amount=Decimal("1.01"))
    with pytest.raises(IdempotencyConflict, match="'k-1' was already used, by .* different"):
        other.replay(first, legacy_match=True)


def test_a_row_without_a_fingerprint_is_answered_by_the_callers_comparison(source, account):
    legacy = facade.transfer(source, account, Decimal("1.00"))
    assert legacy.request_fingerprint is None
    request = Request("transfer", "k-1", amount=Decimal("1.00"))
    assert request.replay(legacy, legacy_match=True) is legacy
    with pytest.raises(IdempotencyConflict, match="'k-1' was already used"):
        request.replay(legacy, legacy_match=False)


def test_after_a_race_the_row_that_won_is_found_or_the_error_raised_again(source, account):
    error = IntegrityError("duplicate key")
    with pytest.raises(IntegrityError, match="duplicate key"):
        idempotency.after_race(Transfer, "default", "k-1", error)
    with pytest.raises(IntegrityError, match="duplicate key"):
        idempotency.after_race(Transfer, "default", None, error)
    won = facade.transfer(source, account, Decimal("1.00"), idempotency_key="k-1")
    assert idempotency.after_race(Transfer, "default", "k-1", error) == won
