"""
Signals the accounts app sends: documented hooks for your code.

The ledger never depends on a receiver. Signals that report something that
happened are sent after the database transaction commits, so a receiver
never sees (or e-mails a customer about) a transfer that was rolled back.
An exception raised by a receiver is logged by Django
(``django.db.backends.base``) and does not reach the caller: the money has
already moved.
"""

from django.dispatch import Signal

#: Sent after a transfer (a reversal too) has been committed.
#: Arguments: sender (the Transfer class), transfer (the Transfer).
transfer_posted = Signal()

#: Sent after a hold has been placed and committed.
#: Arguments: sender (the Hold class), hold (the Hold).
hold_created = Signal()

#: Sent after a hold was captured, released or expired, once committed.
#: Arguments: sender (the Hold class), hold (the Hold; see hold.status and,
#: for a capture, hold.capture, the Transfer).
hold_resolved = Signal()

#: Sent after a batch of transfers has been committed (after the
#: ``transfer_posted`` of each of its transfers).
#: Arguments: sender (the Batch class), batch (the Batch; ``batch.transfers``).
batch_posted = Signal()

# Collecting debts (accounts.collections) -----------------------------------------

#: Sent after a debt of a collection run was initiated, once committed: start
#: the direct debit or card charge here, for ``debt.amount`` on
#: ``debt.run.collect_on``.
#: Arguments: sender (the Debt class), debt (the Debt).
debt_initiated = Signal()

#: Sent after money that came back for a debt was recorded, once committed.
#: Arguments: sender (the Debt class), debt (the Debt; see debt.status and
#: debt.recovered), transfer (the Transfer that recorded it).
debt_settled = Signal()

#: Sent after a debt was marked failed, once committed; what it still owed is
#: owed again in the next run.
#: Arguments: sender (the Debt class), debt (the Debt; see debt.failure_reason).
debt_failed = Signal()
