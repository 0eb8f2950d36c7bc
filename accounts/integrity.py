"""
The ledger checker: proves, from the database alone, that the books balance.

Every check is one SQL aggregate (or window) query whose result holds only
the rows that are wrong, read in chunks, so the cost is a few scans of the
tables however many rows they have, and memory stays flat. Comparisons are
rounded to the columns' four decimal places, which makes them exact on
PostgreSQL and MariaDB and immune to SQLite's floating-point sums.

Run it with ``./manage.py check_ledger`` or call :func:`check_ledger`.

This module is the public import path (``check_ledger``, ``LedgerReport``,
``Problem``, ``exact_columns``, ``inexact_columns``); the checks are in
``accounts.integrity_checks`` and ``accounts.integrity_collections``, what
they report in ``accounts.integrity_report``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.utils import CursorWrapper

from .collection_models import Debt
from .fields import exact_collation
from .integrity_checks import exact_columns, inexact_columns, ledger_checks, spending_problems
from .integrity_report import LedgerReport, Problem
from .models import Account, Batch, Hold, Transaction, Transfer

__all__ = ["check_ledger", "LedgerReport", "Problem", "exact_columns", "inexact_columns"]


def _rows(cursor: CursorWrapper, chunk: int = 1000) -> Iterator[Any]:
    while True:
        rows = cursor.fetchmany(chunk)
        if not rows:
            return
        yield from rows


def check_ledger(using: str = DEFAULT_DB_ALIAS, *, limit: int | None = 100) -> LedgerReport:
    """Check the whole ledger and return a :class:`LedgerReport`.

    Verifies that every currency sums to zero, that each account's stored
    balance equals the sum of its legs and its held amount the sum of its
    active holds, that each transfer has exactly two legs summing to zero
    (minus the amount on the source, plus it on the destination), that each
    leg's ``balance_after`` is the running balance, that no transfer is
    reversed beyond its amount, that captured holds match their capture, that
    no account is below minus its credit limit (holds included) unless a
    lowering of the limit explains it, that each debt of a collection run
    recovered exactly what its settlements' transfers moved (transfers from
    the run's source into the debtor's account) and each run's totals match
    its debts, that what each account spent in its current day, week and
    month (stored for its spending limits) is what its transfers and holds
    of those periods count, that keys, references and codes are unique
    compared exactly, and (MariaDB/MySQL) that their columns compare
    exactly. ``limit`` caps the problems kept per check (all are counted).
    """
    connection = connections[using]
    report = LedgerReport()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for name, model in (
            ("accounts", Account),
            ("transfers", Transfer),
            ("legs", Transaction),
            ("holds", Hold),
            ("batches", Batch),
            ("debts", Debt),
        ):
            cursor.execute(
                "SELECT COUNT(*) FROM %s" % connection.ops.quote_name(model._meta.db_table)
            )
            report.rows[name] = cursor.fetchone()[0]
        for name, query, problem in ledger_checks(connection):
            cursor.execute(query)
            count = 0
            for row in _rows(cursor):
                count += 1
                if limit is None or count <= limit:
                    report.problems.append(problem(row))
            report.counts[name] = count
    spending = spending_problems(using)
    report.counts["spending-usage"] = len(spending)
    report.problems.extend(spending[:limit])
    collations = inexact_columns(connection)
    report.counts["collation"] = len(collations)
    for table, column, collation in collations[:limit]:
        report.problems.append(
            Problem(
                "collation",
                "%s.%s compares under %s, which folds case, accents or trailing spaces: "
                "distinct keys would collide (run migrate, or see accounts.W003)"
                % (table, column, collation),
                expected=exact_collation(connection),
                found=collation,
            )
        )
    report.seconds = time.perf_counter() - started
    return report
