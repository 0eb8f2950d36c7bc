"""
The exceptions the accounts app raises on purpose, in one tree.

Every one of them subclasses :class:`AccountException`, so a view can catch
that one class. Each has two messages and the facts behind them:

* ``str(exc)``: the precise message for developers, logs and staff (account
  codes as stored, exact timestamps, internal references);
* ``exc.user_message``: a short message for customers, translated into the
  active language when read, with dates in the current time zone and
  locale, gift card codes as printed (``7KQ2-M9XD-HT4R-WB3N``) and no
  internal references;
* the facts as typed attributes (``account``, ``amount``, ``available``,
  ``end_date``, ``credit_limit``, ...; see each class), so callers can build
  their own messages.

None is raised after anything was written: an operation that raises has
changed nothing.

The classes live in modules named for their families (``exception_base``,
``exception_input``, ``exception_refusals``, ``exception_requests``,
``exception_collections``); this module is the one to import them from.

::

    AccountException
    ├── InvalidArgument          bad input, refused before any lock is taken
    │   ├── InvalidAmount
    │   ├── InvalidAccount
    │   ├── SameAccount
    │   ├── UnsupportedCurrency
    │   ├── InvalidCollectionPeriod  a run's period or freeze moment is out of order
    │   ├── CollectionBeforeFreeze   a run's collection date is not after its freeze
    │   └── InvalidCollectionSource  the account collected money comes from is unusable
    ├── CurrencyMismatch
    │   └── MixedCurrencyScope   a collection run's accounts are in several currencies
    ├── InactiveAccount          the account cannot be used now
    │   ├── ClosedAccount
    │   ├── FrozenAccount
    │   ├── AccountExpired
    │   └── AccountNotYetActive
    ├── InsufficientFunds
    ├── SpendingLimitExceeded    past a daily, weekly or monthly spending limit (accounts.limits)
    ├── IdempotencyConflict
    ├── InvalidReversal
    ├── HoldError
    │   ├── HoldResolved         already captured, released or expired
    │   ├── HoldExpired          past its expiry: it can no longer be captured
    │   └── CaptureExceedsHold
    ├── AccountNotEmpty
    ├── ProtectedAccount
    ├── CodeGenerationError      no unused gift card code found (accounts.codes)
    ├── CodeLookupBlocked        too many failed code lookups (accounts.lookup)
    ├── RetryableConflict        the database aborted it for a concurrent change (accounts.retry)
    ├── LedgerImmutable
    └── CollectionError          collecting debts (accounts.collections)
        ├── CollectionRunConflict    a run for this scope and period exists, other details
        ├── CollectionRunNotDue      frozen before its freeze moment
        ├── DebtResolved             already settled in full, or failed
        └── SettlementExceedsDebt    more than the debt still owes
"""

from .exception_base import AccountException, StrOrPromise
from .exception_collections import (
    CollectionBeforeFreeze,
    CollectionError,
    CollectionRunConflict,
    CollectionRunNotDue,
    DebtResolved,
    InvalidCollectionPeriod,
    InvalidCollectionSource,
    MixedCurrencyScope,
    SettlementExceedsDebt,
)
from .exception_input import (
    CurrencyMismatch,
    InvalidAccount,
    InvalidAmount,
    InvalidArgument,
    SameAccount,
    UnsupportedCurrency,
)
from .exception_refusals import (
    AccountExpired,
    AccountNotEmpty,
    AccountNotYetActive,
    CaptureExceedsHold,
    ClosedAccount,
    FrozenAccount,
    HoldError,
    HoldExpired,
    HoldResolved,
    InactiveAccount,
    InsufficientFunds,
    InvalidReversal,
    LedgerImmutable,
    ProtectedAccount,
    SpendingLimitExceeded,
)
from .exception_requests import (
    CodeGenerationError,
    CodeLookupBlocked,
    IdempotencyConflict,
    RetryableConflict,
)

__all__ = [
    "AccountException",
    "AccountExpired",
    "AccountNotEmpty",
    "AccountNotYetActive",
    "CaptureExceedsHold",
    "ClosedAccount",
    "CodeGenerationError",
    "CodeLookupBlocked",
    "CollectionBeforeFreeze",
    "CollectionError",
    "CollectionRunConflict",
    "CollectionRunNotDue",
    "CurrencyMismatch",
    "DebtResolved",
    "FrozenAccount",
    "HoldError",
    "HoldExpired",
    "HoldResolved",
    "IdempotencyConflict",
    "InactiveAccount",
    "InsufficientFunds",
    "InvalidAccount",
    "InvalidAmount",
    "InvalidArgument",
    "InvalidCollectionPeriod",
    "InvalidCollectionSource",
    "InvalidReversal",
    "LedgerImmutable",
    "MixedCurrencyScope",
    "ProtectedAccount",
    "RetryableConflict",
    "SameAccount",
    "SettlementExceedsDebt",
    "SpendingLimitExceeded",
    "StrOrPromise",
    "UnsupportedCurrency",
]

# Shown in tracebacks and reprs, and pickled, under the module to import them
# from: where each is written is this module's business.
for _name in __all__:
    _found = globals()[_name]
    if isinstance(_found, type) and issubclass(_found, AccountException):
        _found.__module__ = __name__
del _name, _found
