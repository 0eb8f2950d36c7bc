"""
Sending the ledger's notifications: one per transfer and per hold.

A real shop would send a push notification or an e-mail; the sandbox writes
a log line (logger ``sandbox.shop.notifications``) and shows what it sent.
Each row is claimed before it is sent: ``mark_notified()`` on that one row
returns 1 for exactly one of the workers that try at once, so a row is
sent once even when two members of staff press the button together (and
never again: a lost send is not retried, the trade-off of claiming first).
"""

import logging
from typing import Any

from accounts.models import Hold, Transfer

logger = logging.getLogger(__name__)

#: How many transfers, and how many holds, one page lists and one press sends.
BATCH = 50


def waiting(batch: int = BATCH) -> dict[str, list[Any]]:
    """The oldest unnotified transfers and holds, ``batch`` of each (and one more, to
    tell whether more are waiting)."""
    return {
        "transfers": list(
            Transfer.objects.unnotified().select_related("source", "destination")[: batch + 1]
        ),
        "holds": list(
            Hold.objects.unnotified().select_related("source", "destination")[: batch + 1]
        ),
    }


def describe(row: Transfer | Hold) -> str:
    """What the notification says."""
    kind = "Payment on hold" if isinstance(row, Hold) else "Transfer"
    text = "%s of %s from %s to %s" % (kind, row.amount, row.source, row.destination)
    return "%s: %s" % (text, row.description) if row.description else text


def send(batch: int = BATCH) -> list[Transfer | Hold]:
    """Claim and send the oldest ``batch`` unnotified transfers and holds; return them."""
    sent: list[Transfer | Hold] = []
    for model in (Transfer, Hold):
        rows = model.objects.unnotified().select_related("source", "destination")[:batch]
        for row in rows:
            if model.objects.filter(pk=row.pk).mark_notified():
                logger.info("Notification sent: %s", describe(row))
                sent.append(row)
    return sent
