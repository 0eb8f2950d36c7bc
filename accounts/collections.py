"""
Collecting debts: a run per period for the accounts of a scope that owe money.

The cycle, for one scope (an account type, every account, or accounts the
caller gives), one currency and one period::

    run = create_run(account_type=wallets, period_start=..., period_end=...,
                     collect_on=...)                      # idempotent per scope and period
    freeze(run)        # once freeze_at has passed: one Debt per account that owed money
    run_collection(run)               # initiates each pending debt: signal debt_initiated
    settle(debt, amount, reference=...)      # money came back: a transfer into the account
    fail(debt, reason)                       # it did not: owed again in the next run

What a debt owes (:func:`freeze`)
    The account's debt at ``freeze_at`` (minus its balance after its last leg
    at or before that moment, read from the legs' stored running balances:
    one index seek per account), less what other runs' debts of the account
    are still collecting (pending or initiated) and less what they recovered
    after ``freeze_at`` (money the balance at ``freeze_at`` does not show).
    So a debt that failed is owed again in the next run, and a debt is never
    collected twice, whatever order runs are frozen, settled or failed in.
    Money the debtor pays after the freeze does not change the amount: the
    amounts are final at ``freeze_at``, as the debtor was told.

Money that came back (:func:`settle`)
    A transfer of the amount from the run's source account (see
    ``ACCOUNTS_COLLECTION_SOURCES``) into the debtor's account, through
    ``accounts.facade.transfer`` (so every rule of a transfer applies),
    linked to the debt by a ``Settlement`` carrying the external reference.
    Partial amounts are allowed, never more than the debt still owes. The
    external reference is the idempotency key: the same settlement recorded
    again (a payment provider's retried webhook) records nothing more.

Locks, and their order
    Every lock is taken in one global order: **accounts** (in primary-key
    order, as the facade takes them), then **debts**, then the **run**.
    Every write of a debt holds its account's lock first: settling locks the
    source and debtor accounts (``accounts.posting.locked``, the locked path
    of every transfer), then the debt, then its run; failing and initiating
    lock the debtor's account, the debt, then the run. Freezing locks a
    batch of the scope's accounts, then the run. Nothing locks an account
    while holding a debt or a run, or a debt while holding a run, so these
    never wait on each other in a cycle, nor with transfers and holds
    (accounts, then holds) or the sweeps (which never wait while holding a
    lock). Initiating many debts follows the sweeps' batch pattern (only the
    first debt of a transaction waits for its locks, the others take them
    with ``NOWAIT``; see ``accounts.expiry.run_batch``).

    Why the account first, even to fail a debt: MariaDB's foreign key check
    takes a shared lock on the account when a debt's status changes (its
    index leads with the account), so a debt written without its account's
    lock could wait for a settlement that waits for the debt. And why the
    run's source has no foreign key constraint: see ``CollectionRun.source``.

What each decision reads (the trust boundary)
    * a debt's status, amount, what it recovered, its account and run: the
      debt's row, locked (its account, run and currency, which never change,
      are read first to know which accounts to lock);
    * whether a run may be frozen: the database's clock, read under the
      locks, against ``freeze_at`` from the run's locked row;
    * a debt's amount: the legs' stored ``balance_after``, read after the
      account is locked (any transfer stamped at or before ``freeze_at`` has
      committed by then), and the other debts of the account as stored;
    * a repeated external reference: the stored settlement and the
      fingerprint of the request that wrote it;
    * the money moved: ``accounts.facade.transfer``'s own locked decisions.

    The ``CollectionRun`` and ``Debt`` instances passed in are used for their
    primary key only (and get what was written to their rows).

Where the code lives
    This module is the public import path (``from accounts import
    collections``; every name below is importable from here, as documented);
    the work is done in modules named for their steps:
    ``accounts.collection_runs`` (scopes, creating runs, what the steps
    share), ``accounts.collection_freeze`` (freezing, previewing),
    ``accounts.collection_initiate`` (initiating, running a run),
    ``accounts.collection_settlement`` (settling, failing) and
    ``accounts.collection_statements`` (a debt's statement). The models are
    in ``accounts.collection_models``.
"""

from __future__ import annotations

from .collection_freeze import FREEZE_BATCH_SIZE, freeze, preview
from .collection_initiate import (
    DEFAULT_BATCH_SIZE,
    RunReport,
    initiate,
    run_collection,
    run_due_collections,
)
from .collection_runs import create_run, scope_currencies, scope_key
from .collection_settlement import KEY_PREFIX, REFERENCE_LENGTH, fail, settle
from .collection_statements import DebtStatement, debt_statement

__all__ = [
    "create_run",
    "scope_currencies",
    "scope_key",
    "freeze",
    "preview",
    "initiate",
    "run_collection",
    "run_due_collections",
    "settle",
    "fail",
    "debt_statement",
    "DebtStatement",
    "RunReport",
    "FREEZE_BATCH_SIZE",
    "DEFAULT_BATCH_SIZE",
    "REFERENCE_LENGTH",
    "KEY_PREFIX",
]
