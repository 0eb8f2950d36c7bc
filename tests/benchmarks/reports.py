"""
Benchmark: the admin's financial reports on 100,000 accounts and 1,000,000 legs.

    python -m tests.benchmarks.reports [--backend B] [--accounts N] [--transfers N]

Builds a two-year ledger with set-based SQL (a few statements, so building
takes seconds to a minute rather than the hours half a million facade calls
would), confirms ``check_ledger`` finds nothing, then times each report
(median of ``--repeat`` runs): outstanding balances and the trial balance
now and at the middle of the history, and movements over the last month and
over the whole two years. Target: each under 2 s on PostgreSQL. ``make
bench`` runs the same measurement as its "reports" workload.

The ledger, in EUR and JPY (the other workloads of ``make bench`` use GBP, so
their rows never interleave with these): ``accounts`` customer accounts in
five account types, one in ten in JPY, and ``transfers`` transfers (two legs
each), dealt out to the accounts round-robin in rounds of five: a top-up, a
purchase, a partial refund of that purchase (a reversal), another purchase,
then an expiry of what is left, a transfer to another account, or a second
top-up.
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from .common import Timer, bench_database, configure, median_of, parser

ACCOUNTS = 100_000
TRANSFERS = 500_000
TYPES = ("Gift cards", "Store credit", "Wallets", "Loyalty", "Business")
#: EUR amounts per round (JPY: a hundred times as many yen, whole numbers).
ROUNDS = ("50.00", "20.00", "5.00", "10.00")
EXPIRY, BETWEEN, SECOND_TOP_UP = "25.00", "7.50", "12.34"
HISTORY = datetime.timedelta(days=730)


def series(vendor: str, count: int) -> str:
    """SQL for a one-column table ``n`` of the integers 0 .. count - 1."""
    if vendor == "postgresql":
        return "(SELECT generate_series(0, %d) AS n)" % (count - 1)
    if vendor == "mysql":
        # MariaDB's SEQUENCE engine (on by default since 10.1).
        return "(SELECT seq AS n FROM seq_0_to_%d)" % (count - 1)
    return (
        "(WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < %d) "
        "SELECT n FROM s)" % (count - 1)
    )


def moment(vendor: str, seconds: str) -> str:
    """SQL for the build's start (the one parameter) plus ``seconds`` (an SQL expression)."""
    if vendor == "postgresql":
        return "({start}::timestamptz + (%s) * interval '1 second')" % seconds
    if vendor == "mysql":
        return "TIMESTAMPADD(SECOND, %s, {start})" % seconds
    return "datetime({start}, '+' || (%s) || ' seconds')" % seconds


def build(accounts: int = ACCOUNTS, transfers: int = TRANSFERS) -> dict[str, Any]:
    """Write the ledger; return what the timings need (its start and end)."""
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Account, AccountType, Transaction, Transfer

    vendor = connection.vendor
    qn = connection.ops.quote_name
    account_table = qn(Account._meta.db_table)
    transfer_table = qn(Transfer._meta.db_table)
    leg_table = qn(Transaction._meta.db_table)
    types = [
        AccountType.objects.create(name=name, code="bench-%d" % i).pk
        for i, name in enumerate(TYPES)
    ]
    core = {
        (currency, role): Account.objects.core(role, currency).pk
        for currency in ("EUR", "JPY")
        for role in ("source", "sales", "expired")
    }
    end = timezone.now().replace(microsecond=0) - datetime.timedelta(minutes=5)
    start = end - HISTORY
    step = int(HISTORY.total_seconds()) // transfers
    adapt = connection.ops.adapt_datetimefield_value

    def next_id(table: str) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM %s" % table)
            return int(cursor.fetchone()[0])

    def core_of(role: str) -> str:
        return "CASE WHEN x.k %% 10 = 0 THEN %d ELSE %d END" % (
            core["JPY", role],
            core["EUR", role],
        )

    def amount(eur: str) -> str:
        return "CASE WHEN x.k %% 10 = 0 THEN %s ELSE %s END" % (
            Decimal(eur) * 100,
            eur,
        )

    first_account, first_transfer, first_leg = (
        next_id(account_table),
        next_id(transfer_table),
        next_id(leg_table),
    )
    div = "DIV" if vendor == "mysql" else "/"
    concat = "CONCAT('BENCHR', x.i)" if vendor == "mysql" else "'BENCHR' || x.i"

    def run(sql: str, params: Any = None) -> None:
        # Built with Python's %-formatting: the SQL's own % (modulo) is
        # escaped for the driver, and {start} is the one parameter.
        cursor.execute(sql.replace("%", "%%").replace("{start}", "%s"), params)

    with connection.cursor() as cursor:
        if vendor == "postgresql":
            # Rows correct by construction: skip the per-transfer commit triggers.
            cursor.execute("SET session_replication_role = replica")
        run(
            "INSERT INTO %s (id, name, code, description, account_type_id, primary_user_id, "
            "role, status, currency, balance, held, credit_limit, credit_limit_changed_at, "
            "start_date, end_date, created, spent_day, spent_week, spent_month, metadata) "
            "SELECT %d + s.n, NULL, NULL, '', CASE s.n %% 5 %s END, NULL, NULL, 'open', "
            "CASE WHEN s.n %% 10 = 0 THEN 'JPY' ELSE 'EUR' END, 0, 0, 0, NULL, NULL, NULL, "
            "{start}, 0, 0, 0, '{}' "
            "FROM %s s"
            % (
                account_table,
                first_account,
                " ".join("WHEN %d THEN %d" % (i, pk) for i, pk in enumerate(types)),
                series(vendor, accounts),
            ),
            [adapt(start - datetime.timedelta(days=1))],
        )
        account = "%d + x.k" % first_account
        other = "%d + (x.k + 10) %% %d" % (first_account, accounts)
        source = (
            "CASE x.r %% 5 WHEN 0 THEN %s WHEN 1 THEN %s WHEN 2 THEN %s WHEN 3 THEN %s "
            "ELSE CASE WHEN x.k %% 3 = 2 THEN %s ELSE %s END END"
            % (core_of("source"), account, core_of("sales"), account, core_of("source"), account)
        )
        destination = (
            "CASE x.r %% 5 WHEN 0 THEN %s WHEN 1 THEN %s WHEN 2 THEN %s WHEN 3 THEN %s "
            "ELSE CASE x.k %% 3 WHEN 0 THEN %s WHEN 1 THEN %s ELSE %s END END"
            % (account, core_of("sales"), account, core_of("sales"), core_of("expired"), other,
               account)
        )  # fmt: skip
        value = (
            "CASE x.r %% 5 %s ELSE CASE x.k %% 3 WHEN 0 THEN %s WHEN 1 THEN %s ELSE %s END END"
            % (
                " ".join("WHEN %d THEN %s" % (r, amount(a)) for r, a in enumerate(ROUNDS)),
                amount(EXPIRY),
                amount(BETWEEN),
                amount(SECOND_TOP_UP),
            )
        )
        run(
            "INSERT INTO %s (id, reference, source_id, destination_id, currency, amount, "
            "parent_id, merchant_reference, description, user_id, username, idempotency_key, "
            "request_fingerprint, created, effective_at, metadata) "
            "SELECT %d + x.i, %s, %s, %s, CASE WHEN x.k %% 10 = 0 THEN 'JPY' ELSE 'EUR' END, "
            "%s, CASE WHEN x.r %% 5 = 2 THEN %d + x.i - %d END, NULL, '', NULL, '', NULL, NULL, "
            "%s, %s, '{}' FROM (SELECT s.n AS i, s.n %% %d AS k, s.n %s %d AS r FROM %s s) x"
            % (
                transfer_table,
                first_transfer,
                concat,
                source,
                destination,
                value,
                first_transfer,
                accounts,
                moment(vendor, "(x.i + 1) * %d" % step),
                moment(vendor, "(x.i + 1) * %d" % step),
                accounts,
                div,
                accounts,
                series(vendor, transfers),
            ),
            [adapt(start), adapt(start)],
        )
        # The legs: minus on the source, plus on the destination, each with
        # the running balance of its account (continuing from its balance).
        run(
            "INSERT INTO %(leg)s (id, transfer_id, account_id, currency, amount, balance_after, "
            "created) SELECT y.id, y.transfer_id, y.account_id, y.currency, y.amount, "
            "a.balance + SUM(y.amount) OVER (PARTITION BY y.account_id ORDER BY y.id "
            "ROWS UNBOUNDED PRECEDING), y.created FROM ("
            "SELECT %(first_leg)d + 2 * (t.id - %(first_transfer)d) AS id, t.id AS transfer_id, "
            "t.source_id AS account_id, t.currency, -t.amount AS amount, t.created "
            "FROM %(transfer)s t WHERE t.id >= %(first_transfer)d UNION ALL "
            "SELECT %(first_leg)d + 2 * (t.id - %(first_transfer)d) + 1, t.id, t.destination_id, "
            "t.currency, t.amount, t.created FROM %(transfer)s t "
            "WHERE t.id >= %(first_transfer)d) y JOIN %(account)s a ON a.id = y.account_id"
            % {
                "leg": leg_table,
                "transfer": transfer_table,
                "account": account_table,
                "first_leg": first_leg,
                "first_transfer": first_transfer,
            }
        )
        run(
            "UPDATE %(account)s SET balance = balance + COALESCE((SELECT SUM(l.amount) "
            "FROM %(leg)s l WHERE l.account_id = %(account)s.id AND l.id >= %(first)d), 0) "
            "WHERE id >= %(first_account)d OR id IN (%(core)s)"
            % {
                "account": account_table,
                "leg": leg_table,
                "first": first_leg,
                "first_account": first_account,
                "core": ", ".join(str(pk) for pk in core.values()),
            }
        )
        if vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")
            for table in (account_table, transfer_table, leg_table):
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                    "(SELECT MAX(id) FROM " + table + "))",
                    [table.strip('"')],
                )
            cursor.execute("ANALYZE")
        elif vendor == "mysql":
            cursor.execute("ANALYZE TABLE %s, %s, %s" % (account_table, transfer_table, leg_table))
        else:
            cursor.execute("ANALYZE")
    return {"start": start, "end": end}


def timings(ledger: dict[str, Any], repeat: int) -> dict[str, float]:
    """Seconds per report (median of ``repeat`` runs), by the names of the bench table."""
    from accounts import reports

    end: datetime.datetime = ledger["end"]
    start: datetime.datetime = ledger["start"]
    middle = start + (end - start) / 2
    month = end - datetime.timedelta(days=30)
    runs = {
        "report: outstanding balances now (s)": lambda: reports.outstanding_balances(end),
        "report: outstanding balances a year ago (s)": lambda: reports.outstanding_balances(
            middle
        ),
        "report: trial balance now (s)": lambda: reports.trial_balance(end),
        "report: movements, last 30 days (s)": lambda: reports.movements(month, end),
        "report: movements, two years (s)": lambda: reports.movements(start, end),
    }
    results = {}
    for name, run in runs.items():

        def measure(run: Any = run) -> float:
            with Timer() as timer:
                run()
            return timer.seconds

        results[name] = median_of(repeat, measure)
    return results


def main() -> None:
    options = parser(__doc__.strip().splitlines()[0])
    options.add_argument("--accounts", type=int, default=ACCOUNTS)
    options.add_argument("--transfers", type=int, default=TRANSFERS)
    options.add_argument(
        "--keep", action="store_true", help="keep (and reuse) the benchmark database"
    )
    args = options.parse_args()
    configure(args.backend)
    with bench_database(keep=args.keep):
        from accounts.integrity import check_ledger
        from accounts.models import Transaction

        if args.keep and Transaction.objects.filter(currency="EUR").exists():
            from accounts.models import Transfer

            first = Transfer.objects.filter(currency="EUR").order_by("created").first()
            assert first is not None
            ledger = {"start": first.created - datetime.timedelta(seconds=1)}
            ledger["end"] = Transfer.objects.filter(currency="EUR").latest("created").created
        else:
            with Timer() as built:
                ledger = build(args.accounts, args.transfers)
            print("built %d transfers in %.1f s" % (args.transfers, built.seconds))
            report = check_ledger()
            assert report.ok, report.problems[:10]
            print("check_ledger: clean (%.1f s)" % report.seconds)
        for name, seconds in timings(ledger, args.repeat).items():
            print("%-50s %.3f" % (name, seconds))


if __name__ == "__main__":
    main()
