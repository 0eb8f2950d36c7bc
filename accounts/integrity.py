"""
The ledger checker: proves, from the database alone, that the books balance.

Every check is one SQL aggregate (or window) query whose result holds only
the rows that are wrong, read in chunks, so the cost is a few scans of the
tables however many rows they have, and memory stays flat. Comparisons are
rounded to the columns' four decimal places, which makes them exact on
PostgreSQL and MariaDB and immune to SQLite's floating-point sums.

Run it with ``./manage.py check_ledger`` or call :func:`check_ledger`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Q

from . import clock, limits
from .collection_models import CollectionRun, Debt, Settlement
from .fields import ExactCharField, exact_collation
from .models import Account, Batch, Hold, Transaction, Transfer


@dataclass(frozen=True)
class Problem:
    """One thing wrong in the ledger."""

    check: str
    message: str
    account: int | None = None
    transfer: int | None = None
    expected: Any = None
    found: Any = None

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


def _number(value: Any) -> Decimal | None:
    # SQLite hands decimals back as floats; show them as the column stores them.
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(str(value)).quantize(Decimal("0.0001"))


def exact_columns(*, unique: bool = False) -> list[tuple[str, str]]:
    """The (table, column) pairs that identify something and must compare exactly.

    ``unique=True``: only those that must also be unique (keys, references,
    codes; merchant references are not).
    """
    return [
        (model._meta.db_table, field.column)
        for model in (Account, Transfer, Hold, Batch, CollectionRun, Debt, Settlement)
        for field in model._meta.concrete_fields
        if isinstance(field, ExactCharField) and (field.unique or not unique)
    ]


def inexact_columns(connection: Any) -> list[tuple[str, str, str]]:
    """Exact columns whose live collation is not the exact one: (table, column, collation).

    Only MariaDB/MySQL have collations that fold case, accents or trailing
    spaces; elsewhere this is always empty.
    """
    expected = exact_collation(connection)
    if expected is None:
        return []
    wanted = exact_columns()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (%s)"
            % ", ".join(["%s"] * len({t for t, _c in wanted})),
            sorted({t for t, _c in wanted}),
        )
        live = {(table, column): collation for table, column, collation in cursor.fetchall()}
    return [
        (table, column, live[table, column])
        for table, column in wanted
        if (table, column) in live and live[table, column] != expected
    ]


def _checks(connection: Any) -> list[tuple[str, str, Any]]:
    """(name, SQL returning only wrong rows, row -> Problem)."""
    qn = connection.ops.quote_name
    # Byte-for-byte, whatever the column's collation (MySQL's binary strings
    # also keep trailing spaces significant).
    exact = "BINARY %s" if connection.vendor == "mysql" else "%s"
    account = qn(Account._meta.db_table)
    transfer = qn(Transfer._meta.db_table)
    leg = qn(Transaction._meta.db_table)
    hold = qn(Hold._meta.db_table)
    batch = qn(Batch._meta.db_table)
    return [
        (
            "currency",
            "SELECT currency, SUM(amount) FROM %s GROUP BY currency "
            "HAVING ROUND(SUM(amount), 4) <> 0" % leg,
            lambda r: Problem(
                "currency",
                "the legs in %s do not sum to zero" % r[0],
                expected=Decimal(0),
                found=_number(r[1]),
            ),
        ),
        (
            "balance",
            "SELECT a.id, a.balance, COALESCE(l.total, 0) FROM %s a LEFT JOIN "
            "(SELECT account_id, SUM(amount) AS total FROM %s GROUP BY account_id) l "
            "ON l.account_id = a.id WHERE ROUND(a.balance - COALESCE(l.total, 0), 4) <> 0"
            % (account, leg),
            lambda r: Problem(
                "balance",
                "the stored balance is not the sum of the account's legs",
                account=r[0],
                expected=_number(r[2]),
                found=_number(r[1]),
            ),
        ),
        (
            "legs",
            "SELECT tr.id, COUNT(t.id), COALESCE(SUM(t.amount), 0) FROM %s tr "
            "LEFT JOIN %s t ON t.transfer_id = tr.id GROUP BY tr.id "
            "HAVING COUNT(t.id) <> 2 OR ROUND(COALESCE(SUM(t.amount), 0), 4) <> 0"
            % (transfer, leg),
            lambda r: Problem(
                "legs",
                "a transfer needs exactly two legs summing to zero; it has %s summing to %s"
                % (r[1], _number(r[2])),
                transfer=r[0],
                expected="2 legs, sum 0",
                found="%s legs, sum %s" % (r[1], _number(r[2])),
            ),
        ),
        (
            "leg-shape",
            "SELECT t.transfer_id, t.account_id, t.amount, tr.amount FROM %s t "
            "JOIN %s tr ON tr.id = t.transfer_id JOIN %s a ON a.id = t.account_id "
            "WHERE NOT ((t.account_id = tr.source_id AND ROUND(t.amount + tr.amount, 4) = 0) "
            "OR (t.account_id = tr.destination_id AND ROUND(t.amount - tr.amount, 4) = 0)) "
            "OR t.currency <> tr.currency OR a.currency <> tr.currency" % (leg, transfer, account),
            lambda r: Problem(
                "leg-shape",
                "a leg must be minus the amount on the source or plus it on the "
                "destination, in the accounts' currency",
                account=r[1],
                transfer=r[0],
                expected="±%s" % _number(r[3]),
                found=_number(r[2]),
            ),
        ),
        (
            "running-balance",
            "SELECT transfer_id, account_id, balance_after, COALESCE(prev, 0) + amount FROM "
            "(SELECT transfer_id, account_id, amount, balance_after, LAG(balance_after) "
            "OVER (PARTITION BY account_id ORDER BY id) AS prev FROM %s) w "
            "WHERE ROUND(balance_after - (COALESCE(prev, 0) + amount), 4) <> 0" % leg,
            lambda r: Problem(
                "running-balance",
                "balance_after is not the previous balance plus the leg's amount",
                account=r[1],
                transfer=r[0],
                expected=_number(r[3]),
                found=_number(r[2]),
            ),
        ),
        (
            "reversed",
            "SELECT p.id, p.amount, SUM(r.amount) FROM %s r JOIN %s p ON p.id = r.parent_id "
            "GROUP BY p.id, p.amount HAVING ROUND(SUM(r.amount) - p.amount, 4) > 0"
            % (transfer, transfer),
            lambda r: Problem(
                "reversed",
                "the transfer is reversed beyond its amount",
                transfer=r[0],
                expected="at most %s" % _number(r[1]),
                found=_number(r[2]),
            ),
        ),
        (
            "reversal-shape",
            "SELECT r.id, p.id FROM %s r JOIN %s p ON p.id = r.parent_id "
            "WHERE p.parent_id IS NOT NULL OR r.source_id <> p.destination_id "
            "OR r.destination_id <> p.source_id" % (transfer, transfer),
            lambda r: Problem(
                "reversal-shape",
                "a reversal must move money back from transfer #%s's destination to its "
                "source, and a reversal cannot be reversed" % r[1],
                transfer=r[0],
            ),
        ),
        (
            "held",
            "SELECT a.id, a.held, COALESCE(h.total, 0) FROM %s a LEFT JOIN "
            "(SELECT source_id, SUM(amount) AS total FROM %s WHERE status = 'active' "
            "GROUP BY source_id) h ON h.source_id = a.id "
            "WHERE ROUND(a.held - COALESCE(h.total, 0), 4) <> 0" % (account, hold),
            lambda r: Problem(
                "held",
                "the held amount is not the sum of the account's active holds",
                account=r[0],
                expected=_number(r[2]),
                found=_number(r[1]),
            ),
        ),
        (
            "capture",
            "SELECT h.id, h.source_id, c.id FROM %s h LEFT JOIN %s c ON c.id = h.capture_id "
            "WHERE (h.status = 'captured' AND (c.id IS NULL OR ROUND(c.amount - h.amount, 4) > 0 "
            "OR c.source_id <> h.source_id OR c.destination_id <> h.destination_id)) "
            "OR (h.status <> 'captured' AND h.capture_id IS NOT NULL)" % (hold, transfer),
            lambda r: Problem(
                "capture",
                "hold #%s and its capture do not match (a captured hold has one capture of "
                "at most its amount between its accounts; no other hold has one)" % r[0],
                account=r[1],
                transfer=r[2],
            ),
        ),
        (
            "overdrawn",
            # An account below minus its credit limit (holds included) is
            # wrong unless the one documented rule explains it: its limit was
            # lowered below what it already owed or had reserved, and nothing
            # was debited from it (other than the capture of a hold placed
            # before) and no hold placed on it since.
            "SELECT a.id, a.balance, a.held, a.credit_limit FROM %(account)s a "
            "WHERE a.credit_limit IS NOT NULL "
            "AND ROUND(a.balance - a.held + a.credit_limit, 4) < 0 "
            "AND NOT (a.credit_limit_changed_at IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM %(leg)s t WHERE t.account_id = a.id "
            "AND t.amount < 0 AND t.created > a.credit_limit_changed_at "
            "AND NOT EXISTS (SELECT 1 FROM %(hold)s c WHERE c.capture_id = t.transfer_id "
            "AND c.created <= a.credit_limit_changed_at)) "
            "AND NOT EXISTS (SELECT 1 FROM %(hold)s h WHERE h.source_id = a.id "
            "AND h.created > a.credit_limit_changed_at))"
            % {"account": account, "leg": leg, "hold": hold},
            lambda r: Problem(
                "overdrawn",
                "the account is below minus its credit limit (balance %s, held %s, limit %s), "
                "and no lowering of the limit explains it"
                % (_number(r[1]), _number(r[2]), _number(r[3])),
                account=r[0],
                expected="balance - held >= -%s" % _number(r[3]),
                found="balance - held = %s" % ((_number(r[1]) or 0) - (_number(r[2]) or 0)),
            ),
        ),
        *_collection_checks(connection),
        (
            "batch",
            # A batch's transfers stand at distinct positions below its size;
            # a linked batch (but a reversal of one, which leaves out what was
            # fully reversed already) wrote every request.
            "SELECT b.id, b.size, COUNT(t.id) FROM %(batch)s b "
            "LEFT JOIN %(transfer)s t ON t.batch_id = b.id GROUP BY b.id, b.size, b.atomic, "
            "b.reverses_id HAVING COUNT(t.id) > b.size "
            "OR COUNT(DISTINCT t.batch_position) <> COUNT(t.id) "
            "OR MIN(t.batch_position) < 0 OR MAX(t.batch_position) >= b.size "
            "OR (b.atomic = %(true)s AND b.reverses_id IS NULL AND COUNT(t.id) <> b.size)"
            % {
                "batch": batch,
                "transfer": transfer,
                "true": "TRUE" if connection.vendor == "postgresql" else "1",
            },
            lambda r: Problem(
                "batch",
                "batch #%s of %s request(s) has %s transfer(s), or their positions do not "
                "match the requests" % (r[0], r[1], r[2]),
                expected="one transfer per position below %s" % r[1],
                found="%s transfer(s)" % r[2],
            ),
        ),
        (
            "effective-date",
            "SELECT 'transfer', id, created, effective_at FROM %s WHERE effective_at > created "
            "UNION ALL "
            "SELECT 'hold', id, created, effective_at FROM %s WHERE effective_at > created"
            % (transfer, hold),
            lambda r: Problem(
                "effective-date",
                "%s #%s takes effect after it was posted" % (r[0], r[1]),
                transfer=r[1] if r[0] == "transfer" else None,
                expected="at most %s" % r[2],
                found=r[3],
            ),
        ),
        (
            "batch-position",
            "SELECT id FROM %s WHERE (batch_id IS NULL AND batch_position IS NOT NULL) "
            "OR (batch_id IS NOT NULL AND batch_position IS NULL)" % transfer,
            lambda r: Problem(
                "batch-position",
                "a transfer has a batch without a position in it, or a position without a batch",
                transfer=r[0],
            ),
        ),
        (
            "duplicate-key",
            " UNION ALL ".join(
                "SELECT '%(table)s.%(column)s', MIN(%(col)s), COUNT(*) FROM %(qtable)s "
                "WHERE %(col)s IS NOT NULL GROUP BY %(exact)s HAVING COUNT(*) > 1"
                % {
                    "table": table,
                    "column": column,
                    "qtable": qn(table),
                    "col": qn(column),
                    "exact": exact % qn(column),
                }
                for table, column in exact_columns(unique=True)
            ),
            lambda r: Problem(
                "duplicate-key",
                "%s %r is stored %s times: keys, references and codes must be unique, "
                "compared exactly" % (r[0], r[1], r[2]),
                expected=1,
                found=r[2],
            ),
        ),
    ]


def _spending(using: str) -> list[Problem]:
    """Accounts whose stored spending differs from what their rows of the periods count.

    Only the periods running now matter (a past period's usage counts as
    zero). Counted again from the last five weeks' transfers and holds
    (``accounts.limits.recount``), at the database's time.
    """
    now = clock.database_now(using)
    counted = limits.recount(using, now)
    current = limits.starts(now)
    accounts = Account.objects.using(using).filter(role__isnull=True)
    stored_now = Q()
    for period, (_amount, first) in limits.COLUMNS.items():
        stored_now |= Q(**{first: current[period]})
    ids = set(accounts.filter(stored_now).values_list("pk", flat=True)) | set(counted)
    problems = []
    pks = sorted(ids)
    for start in range(0, len(pks), 1000):
        for account in accounts.filter(pk__in=pks[start : start + 1000]).order_by("pk"):
            stored = limits.stored(account, now)
            expected = counted.get(account.pk, {})
            for period in limits.PERIODS:
                want = expected.get(period, Decimal(0))
                if stored[period] != want:
                    problems.append(
                        Problem(
                            "spending-usage",
                            "what the account spent in the %s from %s (for its spending "
                            "limits) is not what its transfers and holds count"
                            % (period, current[period].isoformat()),
                            account=account.pk,
                            expected=want,
                            found=stored[period],
                        )
                    )
    return problems


def _collection_checks(connection: Any) -> list[tuple[str, str, Any]]:
    """Collecting debts: each debt's recovered amount against its transfers, and the runs'
    totals against their debts."""
    qn = connection.ops.quote_name
    tables = {
        "account": qn(Account._meta.db_table),
        "transfer": qn(Transfer._meta.db_table),
        "run": qn(CollectionRun._meta.db_table),
        "debt": qn(Debt._meta.db_table),
        "settlement": qn(Settlement._meta.db_table),
    }
    left = "(d.amount - d.recovered)"
    return [
        (
            "debt-recovered",
            "SELECT d.id, d.account_id, d.recovered, COALESCE(s.total, 0) FROM %(debt)s d "
            "LEFT JOIN (SELECT st.debt_id, SUM(t.amount) AS total FROM %(settlement)s st "
            "JOIN %(transfer)s t ON t.id = st.transfer_id GROUP BY st.debt_id) s "
            "ON s.debt_id = d.id WHERE ROUND(d.recovered - COALESCE(s.total, 0), 4) <> 0" % tables,
            lambda r: Problem(
                "debt-recovered",
                "debt #%s: what it recovered is not the sum of its settlements' transfers" % r[0],
                account=r[1],
                expected=_number(r[3]),
                found=_number(r[2]),
            ),
        ),
        (
            "settlement-shape",
            "SELECT st.debt_id, d.account_id, t.id FROM %(settlement)s st "
            "JOIN %(debt)s d ON d.id = st.debt_id JOIN %(run)s r ON r.id = d.run_id "
            "JOIN %(transfer)s t ON t.id = st.transfer_id "
            "WHERE t.destination_id <> d.account_id OR t.source_id <> r.source_id "
            "OR t.currency <> d.currency OR t.parent_id IS NOT NULL" % tables,
            lambda r: Problem(
                "settlement-shape",
                "a settlement of debt #%s must be a transfer from its run's source account "
                "into the debtor's account, in the debt's currency, and not a reversal" % r[0],
                account=r[1],
                transfer=r[2],
            ),
        ),
        (
            "run-source",
            # The one reference without a constraint in the database (see
            # CollectionRun.source): the account must exist, in the run's currency.
            "SELECT r.id, r.source_id FROM %(run)s r LEFT JOIN %(account)s a "
            "ON a.id = r.source_id WHERE a.id IS NULL OR a.currency <> r.currency" % tables,
            lambda r: Problem(
                "run-source",
                "collection run #%s: its source account #%s is missing or in another "
                "currency" % (r[0], r[1]),
                account=r[1],
            ),
        ),
        (
            "debt-state",
            # What a debt recovered is between 0 and its amount; a succeeded
            # debt recovered all of it, an open one not all, a pending one nothing.
            "SELECT d.id, d.account_id, d.status, d.amount, d.recovered FROM %(debt)s d "
            "JOIN %(run)s r ON r.id = d.run_id JOIN %(account)s a ON a.id = d.account_id "
            "WHERE d.amount <= 0 OR d.recovered < 0 OR ROUND(d.recovered - d.amount, 4) > 0 "
            "OR d.currency <> r.currency OR a.currency <> d.currency "
            "OR (d.status = 'succeeded' AND ROUND(%(left)s, 4) <> 0) "
            "OR (d.status IN ('pending', 'initiated') AND ROUND(%(left)s, 4) <= 0) "
            "OR (d.status = 'pending' AND ROUND(d.recovered, 4) <> 0)" % {**tables, "left": left},
            lambda r: Problem(
                "debt-state",
                "debt #%s is %s with %s owed and %s recovered: a succeeded debt recovered "
                "all of it, an open one less, a pending one nothing"
                % (r[0], r[2], _number(r[3]), _number(r[4])),
                account=r[1],
            ),
        ),
        (
            "run-totals",
            "SELECT r.id, r.debt_count, COALESCE(x.n, 0), r.total_owed, COALESCE(x.owed, 0), "
            "r.total_recovered, COALESCE(x.recovered, 0), r.total_initiated, "
            "COALESCE(x.initiated, 0), r.total_failed, COALESCE(x.failed, 0), r.status, "
            "COALESCE(x.open_debts, 0) FROM %(run)s r LEFT JOIN (SELECT run_id, COUNT(*) AS n, "
            "SUM(amount) AS owed, SUM(recovered) AS recovered, "
            "SUM(CASE WHEN status = 'initiated' THEN %(left)s ELSE 0 END) AS initiated, "
            "SUM(CASE WHEN status = 'failed' THEN %(left)s ELSE 0 END) AS failed, "
            "SUM(CASE WHEN status IN ('pending', 'initiated') THEN 1 ELSE 0 END) AS open_debts "
            "FROM %(debt)s d GROUP BY run_id) x ON x.run_id = r.id "
            "WHERE r.debt_count <> COALESCE(x.n, 0) "
            "OR ROUND(r.total_owed - COALESCE(x.owed, 0), 4) <> 0 "
            "OR ROUND(r.total_recovered - COALESCE(x.recovered, 0), 4) <> 0 "
            "OR ROUND(r.total_initiated - COALESCE(x.initiated, 0), 4) <> 0 "
            "OR ROUND(r.total_failed - COALESCE(x.failed, 0), 4) <> 0 "
            "OR (r.status IN ('succeeded', 'failed') AND COALESCE(x.open_debts, 0) > 0)"
            % {**tables, "left": left},
            lambda r: Problem(
                "run-totals",
                "collection run #%s (%s): its totals do not match its debts (stored: %s debts, "
                "%s owed, %s recovered, %s initiated, %s failed; %s open)"
                % (
                    r[0],
                    r[11],
                    r[1],
                    _number(r[3]),
                    _number(r[5]),
                    _number(r[7]),
                    _number(r[9]),
                    r[12],
                ),  # fmt: skip
                expected="%s debts, %s owed, %s recovered, %s initiated, %s failed"
                % (r[2], _number(r[4]), _number(r[6]), _number(r[8]), _number(r[10])),
                found="%s debts, %s owed, %s recovered, %s initiated, %s failed"
                % (r[1], _number(r[3]), _number(r[5]), _number(r[7]), _number(r[9])),
            ),
        ),
    ]


def _rows(cursor: Any, chunk: int = 1000) -> Iterator[Any]:
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
    lowering of the limit explains it, that what each account spent in its
    current day, week and month (stored for its spending limits) is what its
    transfers and holds of those periods count, that keys, references and
    codes are unique compared exactly, and (MariaDB/MySQL) that their
    columns compare exactly. ``limit`` caps the problems kept per check (all are counted).


    lowering of the limit explains it, that each debt of a collection run
    recovered exactly what its settlements' transfers moved (transfers from
    the run's source into the debtor's account) and each run's totals match
    its debts, that keys, references and codes are unique compared exactly,
    and (MariaDB/MySQL) that their columns compare exactly. ``limit`` caps the
    problems kept per check (all are counted).
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
        for name, query, problem in _checks(connection):
            cursor.execute(query)
            count = 0
            for row in _rows(cursor):
                count += 1
                if limit is None or count <= limit:
                    report.problems.append(problem(row))
            report.counts[name] = count
    spending = _spending(using)
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
