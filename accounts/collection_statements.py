"""
The statement of a debt: the account's legs of the run's period, up to the freeze.

What a debtor is shown of how a debt came about, and the same as rows of a
CSV file (text from people written so a spreadsheet never runs it).
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import router
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import arguments
from .collection_models import CollectionRun, Debt
from .exports import text
from .models import Account, Statement

if TYPE_CHECKING:
    from _typeshed import SupportsWrite
    from djmoney.money import Money

    from .managers import TransactionQuerySet

__all__ = ["debt_statement", "DebtStatement"]


@dataclass
class DebtStatement:
    """A debt and the account's history that made it up (see :func:`debt_statement`)."""

    debt: Debt
    run: CollectionRun
    account: Account
    #: The account's legs from the period's start to the freeze, oldest first,
    #: with the balances before and after them.
    statement: Statement

    @property
    def opening_balance(self) -> Money:
        """The balance at the start of the period (before its first leg)."""
        balance: Money = self.statement.opening_balance
        return balance

    @property
    def closing_balance(self) -> Money:
        """The balance at the freeze: minus it is the account's debt then."""
        balance: Money = self.statement.closing_balance
        return balance

    @property
    def transactions(self) -> TransactionQuerySet:
        """The account's legs from the period's start to the freeze, oldest first."""
        return self.statement.transactions

    def rows(self) -> Iterator[list[str]]:
        """The statement as rows for a CSV file, a header row first (see :meth:`write_csv`)."""
        debt, run = self.debt, self.run
        yield [
            "line",
            "date",
            "transfer",
            "counterparty",
            "description",
            "merchant_reference",
            "amount",
            "balance_after",
            "currency",
        ]
        currency = debt.currency
        start = self.statement.start or run.period_start
        yield ["opening balance", _iso(start), "", "", "", "", "", _plain(self.opening_balance),
               currency]  # fmt: skip
        legs = self.transactions.select_related(
            "transfer__source", "transfer__destination"
        ).iterator(chunk_size=500)
        for leg in legs:
            transfer = leg.transfer
            mine = transfer.source_id == leg.account_id
            other = transfer.destination if mine else transfer.source
            yield [
                "transaction",
                _iso(leg.created),
                transfer.reference,
                text(str(other)),
                text(transfer.description),
                text(transfer.merchant_reference or ""),
                _plain(leg.amount),
                _plain(leg.balance_after),
                currency,
            ]
        yield ["closing balance", _iso(run.freeze_at), "", "", "", "", "",
               _plain(self.closing_balance), currency]  # fmt: skip
        for line, value in (
            ("debt at the freeze", debt.debt_at_freeze),
            ("collected by other runs", debt.claimed_elsewhere),
            ("owed in this run", debt.amount),
            ("recovered", debt.recovered),
            ("still owed", debt.remaining),
        ):
            yield [line, "", "", "", "", "", _plain(value), "", currency]

    def write_csv(self, out: SupportsWrite[str]) -> None:
        """Write :meth:`rows` as CSV to ``out`` (a text file)."""
        writer = csv.writer(out)
        for row in self.rows():
            writer.writerow(row)


def _iso(moment: datetime.date | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, datetime.datetime) and timezone.is_aware(moment):
        moment = timezone.localtime(moment)
    return moment.isoformat()


def _plain(value: object) -> str:
    return "" if value is None else str(getattr(value, "amount", value))


def debt_statement(debt: Debt) -> DebtStatement:
    """The statement of a debt: the account's legs of the run's period, up to the freeze.

    From the start of the period to ``freeze_at``, with the balance before
    the first (opening) and after the last (closing, minus which is the
    account's debt at the freeze). Three indexed queries, as
    ``Account.statement``, plus the debt's, whatever the account's history.
    """
    debt_id = arguments.saved_pk(debt, Debt, _("debt"))
    using = router.db_for_read(Debt)
    stored = Debt.objects.using(using).select_related("run", "account").get(pk=debt_id)
    account, run = stored.account, stored.run
    return DebtStatement(
        debt=stored,
        run=run,
        account=account,
        statement=account.statement(run.period_start, run.freeze_at),
    )
