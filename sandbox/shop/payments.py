"""
Paying an order through the ledger: ``accounts.facade`` called from a view.

The checkout view (``views.checkout``) validates the form and calls
:func:`place_order`; this is the part worth copying.
"""

from collections.abc import Sequence
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils.translation import gettext as _
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import InsufficientFunds
from accounts.models import Account

from .basket import Basket
from .models import Order, OrderLine


def place_order(
    user: Any, basket: Basket, *, key: str, cards: Sequence[Account] = (), account: Any = None
) -> Order:
    """Create the order for ``basket``, pay for it and return it.

    Gift cards are charged first, in the order given, then the customer's own
    ``account``: each for as much of what is still due as it can cover. An
    account given twice (a card's code typed twice, or the customer's own
    account entered as a gift card and also chosen) pays once. The rest is
    paid by card (simulated). The debits are one linked batch
    (``facade.transfer_many``): they stand or fall together, and the order
    number is each one's merchant reference, so that the payments plus the
    card amount are the total.

    How much each account pays is planned from what it has available when
    the order is placed; the batch then checks it under the locks. If an
    account spent meanwhile, the batch is refused as a whole and planned once
    more. Any other refusal (a frozen or expired card, ...) propagates as its
    ``AccountException``: no debit is kept and no order exists.

    ``key`` is the order's idempotency key (the checkout form's one-time
    token): calling again with it, after a double click or a reload, returns
    the order already paid and charges nothing.
    """
    with transaction.atomic():
        # One checkout per customer at a time: a second submit of the same
        # form waits here until the first commits (then finds its order) or
        # rolls back (then tries again, and is refused again). Without this,
        # submits meeting at the Order's unique key deadlock on MariaDB when
        # the first one rolls back: InnoDB gives each waiter a shared lock on
        # the key, and each then needs an exclusive one.
        get_user_model().objects.select_for_update().filter(pk=user.pk).first()
        order, created = Order.objects.get_or_create(
            idempotency_key=key, user=user, defaults={"total": basket.total}
        )
        if not created:
            return order
        OrderLine.objects.bulk_create(basket.order_lines(order))
        sales = Account.objects.sales_account(order.currency)
        paid = Money(0, order.currency)
        for attempt in range(2):
            plan = plan_payments(payers(cards, account), order.total)
            if not plan:
                break
            try:
                batch = facade.transfer_many(
                    [
                        facade.TransferRequest(
                            payer, sales, amount, merchant_reference=order.number
                        )
                        for payer, amount in plan
                    ],
                    user=user,
                    description=_("Order %(number)s") % {"number": order.number},
                    # The request exactly: this order, these accounts, these amounts.
                    idempotency_key="order:%s:%s" % (key, attempt),
                )
            except InsufficientFunds:
                if attempt:
                    raise
                continue  # an account spent since the plan: plan again
            paid = sum((t.amount for t in batch.transfers), Money(0, order.currency))
            break
        order.card_amount = order.total - paid
        order.save(update_fields=["card_amount", "card_amount_currency"])
    return order


def payers(cards: Sequence[Account], account: Any) -> list[Account]:
    """The accounts to charge, in order, each once."""
    unique: dict[int, Account] = {}
    for payer in [*cards, *([account] if account else [])]:
        unique.setdefault(payer.pk, payer)
    return list(unique.values())


def plan_payments(accounts: Sequence[Account], total: Money) -> list[tuple[Account, Money]]:
    """How much each account pays, in order: as much of what is still due as it has available.

    Read from the accounts as they are now; the batch decides under its locks.
    An account the customer chose that has nothing available is asked for
    what is due all the same: the ledger then refuses it, and the customer is
    told why, rather than finding the card was skipped.
    """
    due = total
    plan = []
    fresh = Account.objects.in_bulk([a.pk for a in accounts])
    for payer in accounts:
        if not due.amount:
            break
        available = fresh[payer.pk].available_amount
        amount = due if available is None or available.amount <= 0 else min(due, available)
        plan.append((payer, amount))
        due -= amount
    return plan
