"""
The ledger checker's checks: SQL queries returning only the rows that are wrong,
the spending counted again, and the columns that must compare exactly
(see :mod:`accounts.integrity`).
"""

from __future__ import annotations

from decimal import Decimal

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Q

from . import clock, limits
from .collection_models import CollectionRun, Debt, Settlement
from .fields import ExactCharField, exact_collation
from .integrity_collections import collection_checks
from .integrity_report import Check, Problem, number
from .models import Account, Batch, Hold, Transaction, Transfer

__all__ = ["exact_columns", "inexact_columns", "ledger_checks", "spending_problems"]


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


def inexact_columns(connection: BaseDatabaseWrapper) -> list[tuple[str, str, str]]:
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


def ledger_checks(connection: BaseDatabaseWrapper) -> list[Check]:
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
                found=number(r[1]),
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
                expected=number(r[2]),
                found=number(r[1]),
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
                % (r[1], number(r[2])),
                transfer=r[0],
                expected="2 legs, sum 0",
                found="%s legs, sum %s" % (r[1], number(r[2])),
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
                expected="±%s" % number(r[3]),
                found=number(r[2]),
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
                expected=number(r[3]),
                found=number(r[2]),
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
                expected="at most %s" % number(r[1]),
                found=number(r[2]),
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
                expected=number(r[2]),
                found=number(r[1]),
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
                % (number(r[1]), number(r[2]), number(r[3])),
                account=r[0],
                expected="balance - held >= -%s" % number(r[3]),
                found="balance - held = %s" % ((number(r[1]) or 0) - (number(r[2]) or 0)),
            ),
        ),
        *collection_checks(connection),
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


def spending_problems(using: str) -> list[Problem]:
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
