"""
Posting a transfer or a reversal on the locked path (``accounts.transfers``):
what a reversal reads of its original, and what it costs.

The rules a transfer follows are in ``test_rules.py``; the facade's calls in
``test_facade.py``.
"""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from accounts import facade, transfers
from accounts.exceptions import IdempotencyConflict, InvalidArgument
from accounts.idempotency import Request
from accounts.models import Account

from .utils import TRANSFER_WRITES, is_transaction_control

pytestmark = pytest.mark.django_db


def test_reverse_costs_two_statements_more_than_a_transfer(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    with CaptureQueriesContext(connection) as queries:
        facade.reverse(trans, amount=Decimal("1.00"))
    statements = [q["sql"] for q in queries if not is_transaction_control(q["sql"])]
    # The generic path (lock, writes) plus the original, read from the
    # database, and what was already reversed.
    assert len(statements) == 1 + TRANSFER_WRITES + 2, statements


def test_the_original_is_read_as_stored_not_as_the_caller_has_it(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"), merchant_reference="ORD-1")
    trans.amount = Money("99.00", "GBP")
    trans.merchant_reference = "FORGED"
    original = transfers.original("default", trans.pk)
    assert (original.amount, original.merchant_reference) == (Money("10.00", "GBP"), "ORD-1")
    assert original.hold_placed_at is None


def test_the_original_of_a_capture_says_when_its_hold_was_placed(source, account):
    sales = Account.objects.sales_account()
    facade.transfer(source, account, Decimal("10.00"))
    hold = facade.hold(account, sales, Decimal("4.00"))
    capture = facade.capture(hold)
    assert transfers.original("default", capture.pk).hold_placed_at == hold.created
    assert transfers.hold_placed("default", [capture], hold.created) == {capture.pk: hold.created}


def test_a_missing_original_is_refused(source, account):
    missing = facade.transfer(source, account, Decimal("1.00")).pk + 1000
    with pytest.raises(InvalidArgument, match="^Transfer %d does not exist" % missing):
        transfers.original("default", missing)


def test_a_key_written_before_fingerprints_replays_only_the_same_reversal(source, account):
    trans = facade.transfer(source, account, Decimal("10.00"))
    refund = facade.reverse(trans, amount=Decimal("4.00"))  # no key: no fingerprint
    request = Request("reverse", "refund-1", amount=Decimal("4.00"))
    assert (
        transfers.replay(request, refund, account.pk, source.pk, Decimal("4.00"), trans) == refund
    )
    assert transfers.replay(request, refund, account.pk, source.pk, None, trans) == refund
    for other in [
        (account.pk, source.pk, Decimal("4.01"), trans),
        (account.pk, source.pk, Decimal("4.00"), None),
        (source.pk, account.pk, Decimal("4.00"), trans),
    ]:
        with pytest.raises(IdempotencyConflict, match="'refund-1' was already used"):
            transfers.replay(request, refund, *other)
