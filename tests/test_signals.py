"""
The signals the ledger sends (``accounts.signals``): each after the commit of
what it reports, never for what was rolled back, to every receiver even when
one of them fails.

Batches' ``batch_posted`` is tested with batches (``test_batches.py``), the
debt signals with collections (``test_collections.py``).
"""

import inspect
from decimal import Decimal

import pytest
from django.db import transaction
from django.dispatch import Signal

from accounts import facade, signals
from accounts.models import Account, Transfer

from .factories import AccountFactory


@pytest.mark.django_db(transaction=True)
def test_transfer_posted_is_sent_after_commit_only(source, account):
    received = []

    def receiver(sender, transfer, **kwargs):
        received.append((transfer.pk, Transfer.objects.filter(pk=transfer.pk).exists()))

    signals.transfer_posted.connect(receiver)
    try:
        with transaction.atomic():
            trans = facade.transfer(source, account, Decimal("1.00"))
            assert received == []  # not yet committed
        assert received == [(trans.pk, True)]

        with pytest.raises(RuntimeError, match="the caller's transaction fails"):
            with transaction.atomic():
                facade.transfer(source, account, Decimal("1.00"))
                raise RuntimeError("the caller's transaction fails")
        assert len(received) == 1  # rolled back: no signal
    finally:
        signals.transfer_posted.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_a_failing_receiver_does_not_undo_or_hide_the_transfer(source, account, caplog):
    def receiver(sender, transfer, **kwargs):
        raise ValueError("mail server down")

    heard = []

    def next_receiver(sender, transfer, **kwargs):
        heard.append(transfer.pk)

    signals.transfer_posted.connect(receiver)
    signals.transfer_posted.connect(next_receiver)
    try:
        trans = facade.transfer(source, account, Decimal("1.00"))
    finally:
        signals.transfer_posted.disconnect(receiver)
        signals.transfer_posted.disconnect(next_receiver)
    assert Transfer.objects.filter(pk=trans.pk).exists()
    assert "mail server down" in caplog.text
    assert heard == [trans.pk]  # the receivers after a failing one still run


@pytest.mark.django_db(transaction=True)
def test_hold_signals_are_sent_after_commit(fund):
    wallet = AccountFactory()
    fund(wallet, "10.00")
    sales = Account.objects.sales_account()
    seen = []

    def created(sender, hold, **kwargs):
        seen.append(("created", hold.pk))

    def resolved(sender, hold, **kwargs):
        seen.append((hold.status, hold.pk))

    signals.hold_created.connect(created)
    signals.hold_resolved.connect(resolved)
    try:
        with transaction.atomic():
            hold = facade.hold(wallet, sales, Decimal("5.00"))
            assert seen == []
        facade.capture(hold, Decimal("2.00"))
        other = facade.hold(wallet, sales, Decimal("1.00"))
        facade.release(other)
    finally:
        signals.hold_created.disconnect(created)
        signals.hold_resolved.disconnect(resolved)
    assert seen == [
        ("created", hold.pk),
        ("captured", hold.pk),
        ("created", other.pk),
        ("released", other.pk),
    ]


def test_every_signal_is_a_documented_hook():
    source = inspect.getsource(signals)
    sent = sorted(name for name, value in vars(signals).items() if isinstance(value, Signal))
    assert sent == [
        "batch_posted",
        "debt_failed",
        "debt_initiated",
        "debt_settled",
        "hold_created",
        "hold_resolved",
        "transfer_posted",
    ]
    for name in sent:
        comment = source.split("\n%s = Signal()" % name)[0].rsplit("\n\n", 1)[-1]
        assert comment.startswith("#: Sent after"), name
        assert "#: Arguments: sender" in comment, name
