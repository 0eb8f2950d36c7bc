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

from accounts import facade
from accounts.models import Account

from .basket import Basket
from .models import Order, OrderLine


def place_order(
    user: Any, basket: Basket, *, key: str, cards: Sequence[Account] = (), account: Any = None
) -> Order:
    """Create the order for ``basket``, pay for it and return it.

    Gift cards are charged first, in the order given, then the customer's own
    ``account``: each for as much of what is still due as it can cover
    (``allow_partial``). An account given twice (a card's code typed twice,
    or the customer's own account entered as a gift card and also chosen)
    pays once. The rest is paid by card (simulated). Each debit is a ledger
    transfer to the sales account with the order number as its merchant
    reference, so that the payments plus the card amount are the total.

    It all happens in one atomic block: if the ledger refuses any debit (a
    frozen or expired card, nothing available, ...) its ``AccountException``
    propagates, no debit is kept and no order exists.

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
        due = order.total
        for payer in payers(cards, account):
            if not due.amount:
                break
            payment = facade.transfer(
                payer,
                sales,
                due,
                allow_partial=True,
                user=user,
                merchant_reference=order.number,
                description=_("Order %(number)s") % {"number": order.number},
                # The request exactly: this order, this account, this amount.
                idempotency_key="%s:%s:%s" % (key, payer.pk, due.amount),
            )
            due -= payment.amount
        order.card_amount = due
        order.save(update_fields=["card_amount", "card_amount_currency"])
    return order


def payers(cards: Sequence[Account], account: Any) -> list[Account]:
    """The accounts to charge, in order, each once."""
    unique: dict[int, Account] = {}
    for payer in [*cards, *([account] if account else [])]:
        unique.setdefault(payer.pk, payer)
    return list(unique.values())
