"""
Paying an order through the ledger: ``accounts.facade`` called from a view.

The checkout view (``views.checkout``) validates the form and calls
:func:`place_order`; this is the part worth copying.
"""

from collections.abc import Sequence
from typing import Any

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
    (``allow_partial``). The rest is paid by card (simulated). Each debit is a
    ledger transfer to the sales account with the order number as its
    merchant reference.

    It all happens in one atomic block: if the ledger refuses any debit (a
    frozen or expired card, nothing available, ...) its ``AccountException``
    propagates, no debit is kept and no order exists.

    ``key`` is the order's idempotency key (the checkout form's one-time
    token): calling again with it, after a double click or a reload, returns
    the order already paid and charges nothing.
    """
    with transaction.atomic():
        # A second submit waits here on the unique key until the first one
        # commits, then finds its order.
        order, created = Order.objects.get_or_create(
            idempotency_key=key, user=user, defaults={"total": basket.total}
        )
        if not created:
            return order
        OrderLine.objects.bulk_create(basket.order_lines(order))
        sales = Account.objects.sales_account(order.currency)
        due = order.total
        for payer in [*cards, *([account] if account else [])]:
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
                # Per order and account: a repeated call returns this payment.
                idempotency_key="%s:%s" % (key, payer.pk),
            )
            due -= payment.amount
        order.card_amount = due
        order.save(update_fields=["card_amount", "card_amount_currency"])
    return order
