"""
Property-based tests: random sequences of operations (accounts, transfers,
full and partial reversals, holds, captures and releases, freezes, closes,
date changes and the expiry sweep, with idempotency keys reused at random),
checked step by step against a small in-memory model of the rules, with the
ledger checker run at the end of every sequence.

``ACCOUNTS_HYPOTHESIS_EXAMPLES`` sets the number of sequences (default 60).
"""

import datetime
import os
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from accounts import expiry, facade
from accounts.exceptions import (
    AccountExpired,
    AccountNotEmpty,
    AccountNotYetActive,
    CaptureExceedsHold,
    ClosedAccount,
    CurrencyMismatch,
    FrozenAccount,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidReversal,
    ProtectedAccount,
    SameAccount,
)
from accounts.integrity import check_ledger
from accounts.models import Account, Hold, Transfer

CURRENCIES = ("GBP", "JPY")
KEYS = st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3", "k4"]))
HOLD_KEYS = st.one_of(st.none(), st.sampled_from(["h1", "h2", "h3"]))


@dataclass
class ModelAccount:
    pk: int
    currency: str
    limit: Decimal | None
    core: bool = False
    balance: Decimal = Decimal(0)
    held: Decimal = Decimal(0)
    status: str = "open"
    start: datetime.datetime | None = None
    end: datetime.datetime | None = None


@dataclass
class ModelTransfer:
    pk: int
    source: int
    destination: int
    amount: Decimal
    parent: int | None
    reversed: Decimal = Decimal(0)
    reversals: list = field(default_factory=list)


@dataclass
class ModelHold:
    pk: int
    source: int
    destination: int
    amount: Decimal
    status: str = "active"
    capture: int | None = None


class Ledger(RuleBasedStateMachine):
    """The facade and the sweep against a model of the rules."""

    customers = Bundle("customers")
    banks = Bundle("banks")
    transfers = Bundle("transfers")
    holds = Bundle("holds")

    def __init__(self):
        super().__init__()
        self.atomic = transaction.atomic()
        self.atomic.__enter__()
        self.model = {}
        self.transfers_by_pk = {}
        self.holds_by_pk = {}
        self.keys = {}
        self.hold_keys = {}
        #: Each key's request as it was first asked: only the identical one is a replay.
        self.requests = {}
        self.hold_requests = {}
        self.sinks = {}
        self.shops = {}

    def teardown(self):
        # The whole checker (about thirty queries) runs once per sequence;
        # the invariants below compare every account and hold with the model
        # after every step. Not on a transaction a failed step broke: its
        # error is the one to see.
        try:
            if not transaction.get_connection().needs_rollback:
                report = check_ledger()
                assert report.ok, report.problems
        finally:
            transaction.set_rollback(True)
            self.atomic.__exit__(None, None, None)

    # Accounts ---------------------------------------------------------------------------

    def track(self, account, **kwargs):
        self.model[account.pk] = ModelAccount(
            account.pk,
            account.currency,
            account.credit_limit.amount if account.credit_limit is not None else None,
            balance=account.balance.amount,
            held=account.held.amount,
            **kwargs,
        )

    def track_core_accounts(self):
        """Track the core accounts (once; initializers run in any order)."""
        if self.sinks:
            return
        for currency in CURRENCIES:
            self.track(Account.objects.source_account(currency), core=True)
            sink = Account.objects.expired_account(currency)
            self.track(sink, core=True)
            self.sinks[currency] = sink.pk
            shop = Account.objects.sales_account(currency)
            self.track(shop, core=True)
            self.shops[currency] = shop.pk

    @initialize(target=banks)
    def core_accounts(self):
        self.track_core_accounts()
        return multiple(*(Account.objects.source_account(c).pk for c in CURRENCIES))

    @initialize(target=customers)
    def starting_customers(self):
        """Two GBP customers, one funded and one on credit, so that short
        sequences already reach the interesting rules."""
        self.track_core_accounts()
        bank = Account.objects.source_account("GBP")
        funded = Account.objects.create(currency="GBP")
        on_credit = Account.objects.create(currency="GBP", credit_limit=Decimal("30.00"))
        self.track(funded)
        self.track(on_credit)
        self.record(
            facade.transfer(bank, funded, Decimal("40.00")),
            self.model[bank.pk],
            self.model[funded.pk],
            Decimal("40.00"),
            None,
            None,
        )
        return multiple(funded.pk, on_credit.pk)

    @rule(
        target=customers,
        # Mostly GBP: accounts in different currencies only ever meet a refusal.
        currency=st.sampled_from(["GBP", "GBP", "GBP", "JPY"]),
        limit=st.one_of(st.none(), st.sampled_from([Decimal(0), Decimal(50)])),
    )
    def create_account(self, currency, limit):
        account = Account.objects.create(currency=currency, credit_limit=limit)
        self.track(account)
        return account.pk

    @rule(pk=customers | banks, status=st.sampled_from(["frozen", "open", "open", "closed"]))
    def change_status(self, pk, status):
        account = Account.objects.get(pk=pk)
        model = self.model[pk]
        action = {"frozen": account.freeze, "open": account.thaw, "closed": account.close}[status]
        if model.core:
            expected = ProtectedAccount
        elif model.status == status:
            expected = None
        elif model.status == "closed":
            expected = ClosedAccount
        elif status == "closed" and (model.balance != 0 or model.held != 0):
            expected = AccountNotEmpty
        else:
            expected = None
        self.expect(expected, action)
        if expected is None:
            model.status = status

    @rule(pk=customers, window=st.sampled_from(["none", "expired", "future", "current"]))
    def change_dates(self, pk, window):
        now = timezone.now()
        day = datetime.timedelta(days=1)
        start, end = {
            "none": (None, None),
            "expired": (now - 2 * day, now - day),
            "future": (now + day, now + 2 * day),
            "current": (now - day, now + day),
        }[window]
        Account.objects.filter(pk=pk).update(start_date=start, end_date=end)
        self.model[pk].start, self.model[pk].end = start, end

    # Rules of the model ---------------------------------------------------------------------

    def amount_for(self, cents, currency):
        return Decimal(cents) if currency == "JPY" else Decimal(cents) / 100

    def inactive_error(self, model):
        now = timezone.now()
        if model.status == "closed":
            return ClosedAccount
        if model.status == "frozen":
            return FrozenAccount
        if model.start and now < model.start:
            return AccountNotYetActive
        if model.end and now > model.end:
            return AccountExpired
        return None

    def pair_error(self, source, destination):
        if source.currency != destination.currency:
            return CurrencyMismatch
        return self.inactive_error(source) or self.inactive_error(destination)

    def short_of_funds(self, source, amount):
        return source.limit is not None and source.balance - source.held - amount < -source.limit

    def expected_outcome(self, source, destination, amount, key, parent, request):
        """The error the rules demand, or None; and the amount that would move."""
        if source.pk == destination.pk:
            return SameAccount, amount
        if key is not None and key in self.keys:
            same = self.requests[key] == request
            return ("replay" if same else IdempotencyConflict), amount
        error = self.pair_error(source, destination)
        if error:
            return error, amount
        if parent is not None:
            remaining = parent.amount - parent.reversed
            if remaining <= 0 or (amount is not None and amount > remaining):
                return InvalidReversal, amount
            amount = remaining if amount is None else amount
        if self.short_of_funds(source, amount):
            return InsufficientFunds, amount
        return None, amount

    def expect(self, error, call):
        """Run ``call``; it must raise ``error`` (or succeed, for None).

        Not ``pytest.raises``: its failure is a BaseException, which does not
        fail a Hypothesis state machine step.
        """
        if error is None:
            return call()
        try:
            call()
        except error:
            return None
        raise AssertionError("expected %s, but the call succeeded" % error.__name__)

    def record(self, transfer, source, destination, amount, key, parent, request=None):
        source.balance -= amount
        destination.balance += amount
        self.transfers_by_pk[transfer.pk] = ModelTransfer(
            transfer.pk, source.pk, destination.pk, amount, parent.pk if parent else None
        )
        if parent is not None:
            parent.reversed += amount
        if key is not None:
            self.keys[key] = transfer.pk
            self.requests[key] = request

    # Transfers and reversals ----------------------------------------------------------------

    @rule(
        target=transfers,
        source_pk=customers | customers | banks,
        destination_pk=customers | banks,
        cents=st.integers(min_value=1, max_value=5000),
        key=KEYS,
    )
    def move(self, source_pk, destination_pk, cents, key):
        amount = self.amount_for(cents, self.model[source_pk].currency)
        return self.post_transfer(source_pk, destination_pk, amount, key)

    def post_transfer(self, source_pk, destination_pk, amount, key):
        source, destination = self.model[source_pk], self.model[destination_pk]
        request = ("transfer", source_pk, destination_pk, amount)
        error, amount = self.expected_outcome(source, destination, amount, key, None, request)
        if error == "replay":
            transfer = facade.transfer(source_pk, destination_pk, amount, idempotency_key=key)
            assert transfer.pk == self.keys[key]
            return multiple()
        transfer = self.expect(
            error,
            lambda: facade.transfer(source_pk, destination_pk, amount, idempotency_key=key),
        )
        if transfer is None:
            return multiple()
        self.record(transfer, source, destination, amount, key, None, request)
        return transfer.pk

    @rule(target=transfers, source_pk=customers, over=st.booleans(), key=KEYS)
    def spend_at_the_limit(self, source_pk, over, key):
        """Pay a shop exactly what the model says is available, or one minor unit more."""
        source = self.model[source_pk]
        destination_pk = self.shops[source.currency]
        if source.limit is None:
            return multiple()
        unit = Decimal(1) if source.currency == "JPY" else Decimal("0.01")
        amount = source.balance - source.held + source.limit + (unit if over else 0)
        if amount <= 0:
            return multiple()
        return self.post_transfer(source_pk, destination_pk, amount, key)

    @rule(
        target=transfers,
        original_pk=transfers,
        cents=st.one_of(st.none(), st.integers(min_value=1, max_value=3000)),
        key=KEYS,
    )
    def reverse(self, original_pk, cents, key):
        original = self.transfers_by_pk[original_pk]
        source, destination = self.model[original.destination], self.model[original.source]
        amount = None if cents is None else self.amount_for(cents, source.currency)
        transfer_row = Transfer.objects.get(pk=original_pk)
        if original.parent is not None:
            self.expect(
                InvalidReversal,
                lambda: facade.reverse(transfer_row, amount=amount, idempotency_key=key),
            )
            return multiple()
        request = ("reverse", original_pk, amount)
        asked = amount
        error, amount = self.expected_outcome(source, destination, amount, key, original, request)
        if error == "replay":
            assert (
                facade.reverse(transfer_row, amount=asked, idempotency_key=key).pk
                == (self.keys[key])
            )
            return multiple()
        reversal = self.expect(
            error, lambda: facade.reverse(transfer_row, amount=asked, idempotency_key=key)
        )
        if reversal is None:
            return multiple()
        self.record(reversal, source, destination, amount, key, original, request)
        return reversal.pk

    # Holds --------------------------------------------------------------------------------

    @rule(
        target=holds,
        source_pk=customers | customers | banks,
        destination_pk=customers | banks,
        cents=st.integers(min_value=1, max_value=5000),
        key=HOLD_KEYS,
    )
    def place_hold(self, source_pk, destination_pk, cents, key):
        source, destination = self.model[source_pk], self.model[destination_pk]
        amount = self.amount_for(cents, source.currency)
        call = lambda: facade.hold(source_pk, destination_pk, amount, idempotency_key=key)  # noqa: E731
        if source_pk == destination_pk:
            error = SameAccount
        elif key is not None and key in self.hold_keys:
            earlier = self.holds_by_pk[self.hold_keys[key]]
            if self.hold_requests[key] == (source_pk, destination_pk, amount):
                assert call().pk == earlier.pk
                return multiple()
            error = IdempotencyConflict
        else:
            error = self.pair_error(source, destination) or (
                InsufficientFunds if self.short_of_funds(source, amount) else None
            )
        placed = self.expect(error, call)
        if placed is None:
            return multiple()
        source.held += amount
        self.holds_by_pk[placed.pk] = ModelHold(placed.pk, source_pk, destination_pk, amount)
        if key is not None:
            self.hold_keys[key] = placed.pk
            self.hold_requests[key] = (source_pk, destination_pk, amount)
        return placed.pk

    @rule(
        target=transfers,
        hold_pk=holds,
        cents=st.one_of(st.none(), st.integers(min_value=1, max_value=6000)),
        key=KEYS,
    )
    def capture(self, hold_pk, cents, key):
        held = self.holds_by_pk[hold_pk]
        source, destination = self.model[held.source], self.model[held.destination]
        amount = None if cents is None else self.amount_for(cents, source.currency)
        call = lambda: facade.capture(  # noqa: E731
            Hold.objects.get(pk=hold_pk), amount, idempotency_key=key
        )
        request = ("capture", hold_pk, amount)
        if key is not None and key in self.keys:
            if self.requests[key] == request:
                assert call().pk == self.keys[key]
                return multiple()
            error = IdempotencyConflict
        elif held.status != "active":
            error = HoldResolved
        elif amount is not None and amount > held.amount:
            error = CaptureExceedsHold
        else:
            error = self.pair_error(source, destination)
        captured = self.expect(error, call)
        if captured is None:
            return multiple()
        amount = held.amount if amount is None else amount
        source.held -= held.amount
        held.status, held.capture = "captured", captured.pk
        self.record(captured, source, destination, amount, key, None, request)
        return captured.pk

    @rule(hold_pk=holds)
    def release(self, hold_pk):
        held = self.holds_by_pk[hold_pk]
        error = None if held.status == "active" else HoldResolved
        self.expect(error, lambda: facade.release(Hold.objects.get(pk=hold_pk)))
        if error is None:
            self.model[held.source].held -= held.amount
            held.status = "released"

    # The expiry sweep -------------------------------------------------------------------------

    @rule()
    def sweep(self):
        now = timezone.now()
        expected_closed = 0
        for model in list(self.model.values()):
            if model.core or model.status != "open" or not (model.end and model.end < now):
                continue
            for held in self.holds_by_pk.values():
                if held.source == model.pk and held.status == "active":
                    held.status = "expired"
            model.held = Decimal(0)
            if model.balance < 0:
                continue  # debt: left open, its holds lapsed
            self.model[self.sinks[model.currency]].balance += model.balance
            model.balance = Decimal(0)
            model.status = "closed"
            expected_closed += 1
        result = expiry.close_expired_accounts(now=now)
        assert result.closed == expected_closed and not result.failures

    # Invariants ---------------------------------------------------------------------------------

    @invariant()
    def accounts_match_the_model(self):
        stored = {
            pk: (balance, held, status)
            for pk, balance, held, status in Account.objects.filter(
                pk__in=list(self.model)
            ).values_list("pk", "balance", "held", "status")
        }
        assert stored == {pk: (m.balance, m.held, m.status) for pk, m in self.model.items()}

    @invariant()
    def holds_match_the_model(self):
        stored = dict(
            Hold.objects.filter(pk__in=list(self.holds_by_pk)).values_list("pk", "status")
        )
        assert stored == {pk: h.status for pk, h in self.holds_by_pk.items()}

    @invariant()
    def reversals_never_exceed_their_transfer(self):
        for model in self.transfers_by_pk.values():
            assert model.reversed <= model.amount


@pytest.mark.django_db
def test_ledger_follows_the_rules_through_random_operations():
    run_state_machine_as_test(
        Ledger,
        settings=settings(
            max_examples=int(os.environ.get("ACCOUNTS_HYPOTHESIS_EXAMPLES", 60)),
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
