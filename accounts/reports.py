"""
Financial reports: outstanding balances, the trial balance and movements.

What finance staff ask without a developer: how much do we owe our customers
at a date, by kind of account (:func:`outstanding_balances`); does the ledger
balance, line by line (:func:`trial_balance`); what was topped up, spent,
refunded and lost to expiry over a period, and do the opening and closing
totals reconcile (:func:`movements`); and how one account's balance moved
(:func:`balance_history`, drawn by ``accounts.charts``).

Where the figures come from. Every leg stores the balance of its account
after it (``Transaction.balance_after``), and the index (account, created,
id) finds an account's latest leg at or before any moment with one seek. So
the balance of an account at a moment is *the balance_after of its latest leg
at or before that moment*, never a sum over its history; a report at a date
costs a seek or two per account, whatever the length of the histories.
Movements are one grouped sum over the period's transfers (see
``report_movements``), in the statement that reads the opening and closing
totals. Totals are summed exactly: PostgreSQL and MariaDB add decimals
exactly, and on SQLite, which would add them as floating-point numbers,
each amount is summed as a whole number of ten-thousandths (the columns'
precision) and divided afterwards.

"Customer accounts" are all accounts that are not core accounts (sources,
sales and expired accounts), grouped by their own account type (not their
type's ancestors) and currency. Money into an account is positive, money
out negative; so balances the business owes are positive (credit balances)
and debts are negative (debit balances).

Rejected alternatives: summing every account's legs up to the date (cost
grows with the ledger's age); reading the current balances and subtracting
later movements (one wrong row would shift every later report, and the
reconciliation in :func:`movements` would check nothing).

Where the code lives (this module gathers the public names):

* ``report_balances``: :func:`outstanding_balances` and :func:`trial_balance`;
* ``report_movements``: :func:`movements` and its kinds (``MOVEMENT_KINDS``);
* ``report_history``: :func:`balance_history`;
* ``report_tables``: what a report is (``Report``, its columns, rows, charts);
* ``report_queries``: the SQL they share; ``report_periods``: days, months,
  buckets and their labels.
"""

from .report_balances import outstanding_balances, trial_balance
from .report_history import MAX_POINTS, BalanceHistory, balance_history
from .report_movements import MOVEMENT_KINDS, Kind, Leg, classify, movements
from .report_periods import Bucket, buckets
from .report_tables import Bar, BarChart, Column, Report, Row

__all__ = [
    "MAX_POINTS",
    "MOVEMENT_KINDS",
    "BalanceHistory",
    "Bar",
    "BarChart",
    "Bucket",
    "Column",
    "Kind",
    "Leg",
    "Report",
    "Row",
    "balance_history",
    "buckets",
    "classify",
    "movements",
    "outstanding_balances",
    "trial_balance",
]
