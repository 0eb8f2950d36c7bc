"""Deprecated: the ledger checker is ``accounts.integrity``; this name still works."""

import warnings

from .integrity import LedgerReport, Problem, check_ledger

warnings.warn(
    "accounts.checker is now accounts.integrity; import check_ledger from there.",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["LedgerReport", "Problem", "check_ledger"]
