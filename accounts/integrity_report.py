"""
What the ledger checker reports: each problem found, and the report of a run.

See :mod:`accounts.integrity`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeAlias

__all__ = ["Problem", "LedgerReport", "Check", "number"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the ledger."""

    check: str
    message: str
    account: int | None = None
    transfer: int | None = None
    expected: object = None
    found: object = None

    def __str__(self) -> str:
        where = []
        if self.account is not None:
            where.append("account #%s" % self.account)
        if self.transfer is not None:
            where.append("transfer #%s" % self.transfer)
        text = "[%s] %s%s" % (self.check, ", ".join(where) + ": " if where else "", self.message)
        if self.expected is not None or self.found is not None:
            text += " (expected %s, found %s)" % (self.expected, self.found)
        return text


@dataclass
class LedgerReport:
    """What :func:`check_ledger` found."""

    #: The problems found, at most ``limit`` per check.
    problems: list[Problem] = field(default_factory=list)
    #: How many problems each check found (all of them, past the limit too).
    counts: dict[str, int] = field(default_factory=dict)
    #: Rows looked at: accounts, transfers, legs, holds.
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not any(self.counts.values())

    @property
    def total(self) -> int:
        return sum(self.counts.values())


#: A check: its name, SQL returning only the wrong rows, and a row -> Problem.
Check: TypeAlias = tuple[str, str, Callable[[Any], Problem]]


def number(value: Any) -> Decimal | None:
    """A decimal read back from the database, as the column stores it."""
    # SQLite hands decimals back as floats; show them as the column stores them.
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value)).quantize(Decimal("0.0001"))
