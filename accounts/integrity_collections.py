"""
The ledger checker's checks of collecting debts: debts against their settlements,
runs against their debts (see :mod:`accounts.integrity`).
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from .collection_models import CollectionRun, Debt, Settlement
from .integrity_report import Check, Problem, number
from .models import Account, Transfer

__all__ = ["collection_checks"]


def collection_checks(connection: BaseDatabaseWrapper) -> list[Check]:
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
                expected=number(r[3]),
                found=number(r[2]),
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
                % (r[0], r[2], number(r[3]), number(r[4])),
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
                    number(r[3]),
                    number(r[5]),
                    number(r[7]),
                    number(r[9]),
                    r[12],
                ),  # fmt: skip
                expected="%s debts, %s owed, %s recovered, %s initiated, %s failed"
                % (r[2], number(r[4]), number(r[6]), number(r[8]), number(r[10])),
                found="%s debts, %s owed, %s recovered, %s initiated, %s failed"
                % (r[1], number(r[3]), number(r[5]), number(r[7]), number(r[9])),
            ),
        ),
    ]
