"""
CSV exports: an account's statement, a list of transfers, a report, and the
ledger as a journal an accountant can import (``manage.py export_ledger``).

Rows are produced one at a time from pages of 1,000 read by keyset (the
last page's ``(created, id)`` starts the next one, an index range scan on
every backend), so a million rows never sit in memory, on the server or in
the database driver (MariaDB's driver would fetch a whole result set at
once). Each page is a consistent read; rows committed while an export runs
may or may not appear, but none appears twice or goes missing from the
pages already written.

The format, for spreadsheets and accounting software alike:

* money as plain decimal text with the currency's own places and a leading
  minus sign (``1234.50``, ``-3.00``, ``1200`` for yen), never with a symbol
  or thousands separators; the currency in its own column;
* moments in ISO 8601 with their UTC offset, in the current time zone
  (``2026-03-01T09:30:05+00:00``), dates as ``2026-03-01``;
* UTF-8, comma-separated, quoted where needed (Python's ``csv.excel``);
* free text (names, descriptions, references, usernames) that a spreadsheet
  would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or
  a carriage return) is prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime
import json
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from . import amounts
from .fields import window_bound
from .models import Account, AccountType, Transaction, Transfer, check_date_field
from .reports import Report

#: Rows read per query.
PAGE = 1000
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def money_text(value: Any, currency: str) -> str:
    """An amount as plain decimal text in the currency's places: ``"-1234.50"``."""
    if value is None:
        return ""
    amount = value.amount if isinstance(value, amounts.MONEY_TYPES) else value
    return format(amounts.money(Decimal(amount), currency).amount, "f")


def moment_text(value: datetime.datetime | None) -> str:
    """A moment in ISO 8601, to the second, with its offset in the current time zone."""
    if value is None:
        return ""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.isoformat(timespec="seconds")


def date_text(value: datetime.datetime) -> str:
    """The day of a moment in the current time zone: ``"2026-03-01"``."""
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.date().isoformat()


def text(value: object) -> str:
    """Free text, safe to open in a spreadsheet (see the module's docstring)."""
    if value is None:
        return ""
    value = str(value)
    return "'" + value if value.startswith(_FORMULA) else value


def pages(
    queryset: QuerySet[Any], *, descending: bool = False, size: int = PAGE, by: str = "created"
) -> Iterator[Any]:
    """The rows of ``queryset`` by (``by``, id), read ``size`` at a time by keyset.

    ``by`` is a date lookup of the rows: ``"created"``, ``"effective_at"``,
    or one through a relation (``"transfer__effective_at"``, selected with
    the rows).
    """
    queryset = queryset.order_by(*(("-" + by, "-pk") if descending else (by, "pk")))
    page = queryset
    while True:
        rows = list(page[:size])
        yield from rows
        if len(rows) < size:
            return
        moment, pk = _follow(rows[-1], by), rows[-1].pk
        if descending:
            later = Q(**{by + "__lt": moment}) | Q(**{by: moment, "pk__lt": pk})
        else:
            later = Q(**{by + "__gt": moment}) | Q(**{by: moment, "pk__gt": pk})
        page = queryset.filter(later)


def _follow(row: Any, lookup: str) -> Any:
    """The value of ``lookup`` (``"transfer__effective_at"``) on a row."""
    for name in lookup.split("__"):
        row = getattr(row, name)
    return row


def metadata_text(value: Any) -> str:
    """Metadata as compact JSON text (empty for none), safe to open in a spreadsheet."""
    if not value:
        return ""
    return text(json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True))


class _Echo:
    """A file-like object whose ``write`` returns what it was given."""

    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[list[str]]) -> Iterator[str]:
    """CSV text, one line at a time."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow(row)


def streaming_csv(filename: str, header: list[str], rows: Iterable[list[str]]) -> Any:
    """A ``StreamingHttpResponse`` downloading ``rows`` as ``filename``."""
    response = StreamingHttpResponse(
        csv_lines(header, rows), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = 'attachment; filename="%s"' % filename
    return response


def _bounds(
    start: datetime.datetime | datetime.date | None,
    end: datetime.datetime | datetime.date | None,
    by: str = "created",
) -> Q:
    found = Q()
    if start is not None:
        found &= Q(**{by + "__gte": window_bound(start, end=False)})
    if end is not None:
        found &= Q(**{by + "__lte": window_bound(end, end=True)})
    return found


# A statement ---------------------------------------------------------------------------

STATEMENT_COLUMNS = [
    "created",
    "reference",
    "reverses",
    "counterparty_id",
    "counterparty",
    "description",
    "merchant_reference",
    "currency",
    "amount",
    "balance_after",
    "effective_at",
    "metadata",
]


def statement_rows(
    account: Account,
    start: datetime.datetime | datetime.date | None = None,
    end: datetime.datetime | datetime.date | None = None,
    *,
    date_field: str = "created",
) -> Iterator[list[str]]:
    """An account's legs from ``start`` to ``end`` (dates are whole days), oldest first.

    ``date_field``: the date the range applies to and the rows are sorted
    by, ``"created"`` (posted) or ``"effective_at"`` (the transfer's
    effective date); ``balance_after`` is always the balance after the
    posting (see ``Account.statement``). Raises ``InvalidArgument`` for
    another ``date_field``.
    """
    by = "created" if check_date_field(date_field) == "created" else "transfer__effective_at"
    legs = Transaction.objects.filter(_bounds(start, end, by), account=account.pk).select_related(
        "transfer__parent", "transfer__source", "transfer__destination"
    )
    for leg in pages(legs, by=by):
        transfer = leg.transfer
        other = transfer.destination if transfer.source_id == leg.account_id else transfer.source
        yield [
            moment_text(leg.created),
            transfer.reference,
            transfer.parent.reference if transfer.parent else "",
            str(other.pk),
            text(other),
            text(transfer.description),
            text(transfer.merchant_reference),
            leg.currency,
            money_text(amounts.raw(leg, "amount"), leg.currency),
            money_text(amounts.raw(leg, "balance_after"), leg.currency),
            moment_text(transfer.effective_at),
            metadata_text(transfer.metadata),
        ]


# A list of transfers ----------------------------------------------------------------------

TRANSFER_COLUMNS = [
    "created",
    "reference",
    "source_id",
    "source",
    "destination_id",
    "destination",
    "currency",
    "amount",
    "reverses",
    "merchant_reference",
    "description",
    "username",
    "effective_at",
    "metadata",
]


def transfer_rows(
    queryset: QuerySet[Transfer], *, date_field: str = "created"
) -> Iterator[list[str]]:
    """The transfers of ``queryset`` (its filters kept), newest first by ``date_field``."""
    for transfer in pages(
        queryset.select_related("source", "destination", "parent"),
        descending=True,
        by=check_date_field(date_field),
    ):
        yield [
            moment_text(transfer.created),
            transfer.reference,
            str(transfer.source_id),
            text(transfer.source),
            str(transfer.destination_id),
            text(transfer.destination),
            transfer.currency,
            money_text(amounts.raw(transfer, "amount"), transfer.currency),
            transfer.parent.reference if transfer.parent else "",
            text(transfer.merchant_reference),
            text(transfer.description),
            text(transfer.username),
            moment_text(transfer.effective_at),
            metadata_text(transfer.metadata),
        ]


# A report --------------------------------------------------------------------------------


def report_header(report: Report) -> list[str]:
    return [*report.period, "row", *(column.key for column in report.columns)]


def report_rows(report: Report) -> Iterator[list[str]]:
    """A report's lines: the period it covers, the kind of row ("account type", "core
    account" or "total"), then its cells."""
    period = [moment_text(moment) for moment in report.period.values()]
    for row in report.rows:
        cells = []
        for column in report.columns:
            value = row.cells.get(column.key)
            if column.kind == "money":
                cells.append(money_text(value, row.currency))
            elif column.kind == "count":
                cells.append(str(value or 0))
            else:
                cells.append(text(value))
        yield [*period, row.line, *cells]


# The journal -------------------------------------------------------------------------------

JOURNAL_COLUMNS = [
    "date",
    "created",
    "transfer",
    "reverses",
    "account_id",
    "account",
    "account_code",
    "account_type",
    "account_role",
    "currency",
    "debit",
    "credit",
    "description",
    "merchant_reference",
    "effective_at",
]


def journal_rows(
    start: datetime.datetime | datetime.date | None,
    end: datetime.datetime | datetime.date | None,
    *,
    account_types: Iterable[AccountType] | None = None,
    using: str | None = None,
    progress: Callable[[int], None] | None = None,
    date_field: str = "created",
) -> Iterator[list[str]]:
    """The ledger as a journal: one row per leg, the two legs of a transfer together.

    Transfers from ``start`` to ``end`` (dates are whole days), oldest
    first; with ``account_types``, only transfers touching an account of
    those types or of a type below them (both legs of each, so every
    transfer still balances). A leg taking money out of its account is a
    debit, one putting money in a credit: customer balances, which the
    business owes, are credit balances. ``progress(rows)`` is called after
    each page. ``date_field="effective_at"`` takes the transfers whose
    effective date is in the range, in that order, and dates each row
    (``date``) by it; ``created`` stays the posting time.
    """
    by = check_date_field(date_field)
    transfers = Transfer.objects.using(using) if using else Transfer.objects.all()
    transfers = transfers.filter(_bounds(start, end, by)).select_related("parent")
    if account_types is not None:
        manager = AccountType.objects.using(using) if using else AccountType.objects
        ids = manager.descendant_ids(t.pk for t in account_types)
        transfers = transfers.filter(
            Q(source__account_type__in=ids) | Q(destination__account_type__in=ids)
        )
    legs = Transaction.objects.using(using) if using else Transaction.objects.all()
    written = 0
    batch: list[Transfer] = []

    def flush() -> Iterator[list[str]]:
        found: dict[int, list[Transaction]] = {}
        for leg in legs.filter(transfer__in=[t.pk for t in batch]).select_related(
            "account__account_type"
        ):
            found.setdefault(leg.transfer_id, []).append(leg)
        for transfer in batch:
            # The debit (the source's leg, negative) first.
            for leg in sorted(found.get(transfer.pk, []), key=lambda leg: leg.amount.amount):
                amount = amounts.raw(leg, "amount")
                assert amount is not None
                account = leg.account
                yield [
                    date_text(getattr(transfer, by)),
                    moment_text(transfer.created),
                    transfer.reference,
                    transfer.parent.reference if transfer.parent else "",
                    str(account.pk),
                    text(account),
                    text(account.code),
                    text(account.account_type.code if account.account_type else ""),
                    account.role or "",
                    leg.currency,
                    money_text(-amount, leg.currency) if amount < 0 else "",
                    money_text(amount, leg.currency) if amount > 0 else "",
                    text(transfer.description),
                    text(transfer.merchant_reference),
                    moment_text(transfer.effective_at),
                ]

    for transfer in pages(transfers, by=by):
        batch.append(transfer)
        if len(batch) == PAGE:
            for row in flush():
                written += 1
                yield row
            batch = []
            if progress is not None:
                progress(written)
    if batch:
        for row in flush():
            written += 1
            yield row
    if progress is not None:
        progress(written)
