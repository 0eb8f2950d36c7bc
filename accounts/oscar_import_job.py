"""
The state and the checks of an import from django-oscar-accounts.

:class:`ImportJob` holds what an import has written so far and the
problems it found; the steps (``oscar_import_accounts``,
``oscar_import_transfers``) and :mod:`accounts.oscar_import` build on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connections
from django.utils.translation import gettext_lazy as _

from . import amounts
from .arguments import storable
from .exceptions import AccountException, InvalidArgument
from .models import Account, Hold, Transfer
from .oscar_tables import TABLES, OscarNames, oscar_models

__all__ = ["ImportRefused", "ImportReport", "ImportJob", "SHOWN"]

#: Problems listed (all are counted).
SHOWN = 50


class ImportRefused(AccountException):
    """The import would not give the same ledger, or has run already; nothing was written.

    ``problems`` lists what is wrong (at most 50; ``count`` has them all).
    """

    def __init__(self, problems: list[str], count: int | None = None) -> None:
        self.problems = problems[:SHOWN]
        self.count = len(problems) if count is None else count
        more = self.count - len(self.problems)
        text = "\n".join(["- %s" % problem for problem in self.problems])
        if more > 0:
            text += "\n- ... and %d more" % more
        super().__init__(
            _("The import was refused; nothing was written:\n%(problems)s"), problems=text
        )


@dataclass
class ImportReport:
    """What :func:`import_oscar_accounts` did (or, with ``dry_run``, would do)."""

    dry_run: bool
    currency: str
    account_types: int = 0
    accounts: int = 0
    transfers: int = 0
    #: Transfers imported with their link to the transfer they reverse.
    reversals: int = 0
    #: (oscar's account name, the core account it became).
    core: list[tuple[str, str]] = field(default_factory=list)
    #: Accounts whose balance was compared with the one oscar stored (all equal).
    balances_checked: int = 0
    #: What was imported differently from oscar's rows, or not imported.
    notes: list[str] = field(default_factory=list)


class ImportJob:
    """One import: where from and to, what was written, what was found wrong."""

    def __init__(
        self, source: str, target: str, currency: str, names: OscarNames, dry_run: bool
    ) -> None:
        self.source, self.target, self.currency, self.names = source, target, currency, names
        self.places = amounts.currency_places(currency)
        self.oscar = oscar_models()
        self.problems: list[str] = []
        self.problem_count = 0
        self.report = ImportReport(dry_run=dry_run, currency=currency)
        #: oscar account id -> ours
        self.accounts: dict[int, int] = {}
        #: oscar's core accounts' ids -> ours
        self.core: dict[int, int] = {}
        #: oscar's user ids -> ours
        self.users: dict[int, int] = {}
        #: our account id -> (label, oscar's balance)
        self.expected: dict[int, tuple[str, Decimal]] = {}
        self.balances: dict[int, Decimal] = {}

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < SHOWN:
            self.problems.append(text)

    def note(self, text: str) -> None:
        self.report.notes.append(text)

    def refuse_if_any(self) -> None:
        if self.problem_count:
            raise ImportRefused(self.problems, self.problem_count)

    # Checks --------------------------------------------------------------------------------

    def text(self, value: str | None, what: str, max_length: int | None = None) -> str | None:
        """``value`` (text read from oscar's tables), noting a problem if it cannot be stored."""
        if value is None:
            return None
        try:
            storable(value, what)
        except InvalidArgument as exc:
            self.problem(str(exc))
        if max_length is not None and len(value) > max_length:
            self.problem(
                "%s is %d characters long; the most is %d." % (what, len(value), max_length)
            )
        return value

    def amount(self, value: Decimal | None, what: str, *, positive: bool = False) -> bool:
        if value is None:
            return True
        if not value.is_finite() or value != value.quantize(Decimal(1).scaleb(-self.places)):
            self.problem(
                "%s %s has more decimal places than %s allows." % (what, value, self.currency)
            )
            return False
        if abs(value) >= amounts.LIMIT or (positive and value <= 0):
            self.problem("%s %s is out of range for the ledger." % (what, value))
            return False
        return True

    def check_tables(self) -> None:
        present = set(connections[self.source].introspection.table_names())
        missing = [table for table in TABLES if table not in present]
        if missing:
            raise ImportRefused(
                [
                    "database %r has no table %s: is django-oscar-accounts migrated there?"
                    % (self.source, ", ".join(missing))
                ]
            )

    def check_empty(self) -> None:
        transfers = Transfer.objects.using(self.target).count()
        holds = Hold.objects.using(self.target).count()
        accounts = Account.objects.using(self.target).filter(role__isnull=True).count()
        if transfers or holds or accounts:
            raise ImportRefused(
                [
                    "this ledger already has %d transfer(s), %d hold(s) and %d account(s) "
                    "besides the core accounts: the import runs once, into a new ledger "
                    "(a second run over the same data is refused, never merged)"
                    % (transfers, holds, accounts)
                ]
            )
