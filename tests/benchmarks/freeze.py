"""
Benchmark: freezing a collection run of N indebted accounts with long histories.

    python -m tests.benchmarks.freeze --backend postgresql --accounts 10000 --legs 10 100

For each history length, N accounts each get that many card payments (legs)
on credit, nine in ten of them before the run's freeze; then the run of
their account type is frozen (``accounts.collections.freeze``) and timed.
Prints the time per run and per account, the statements it took, and the
ratio of the longest history's time to the shortest's: the cost must follow
the accounts, not their histories (about 1). Medians of --repeat runs; the
debts of one run are deleted before the next (raw SQL, outside the timing).
"""

from __future__ import annotations

from typing import Any

from .common import Timer, bench_database, configure, parser


def build(count: int, legs: int) -> tuple[Any, Any]:
    """``count`` accounts of a new type, each with ``legs`` debits of 1.00 to sales.

    Written in bulk, as ``tests.benchmarks.run.build_history`` does: rows
    correct by construction (on PostgreSQL the per-transfer commit triggers
    are skipped for the load). Returns the account type and the freeze
    moment (after nine in ten of each account's legs).
    """
    import datetime
    from decimal import Decimal

    from django.db import connection, transaction
    from django.utils import timezone

    from accounts.models import Account, AccountType, Transaction, Transfer
    from accounts.sql.base import insertable

    account_type = AccountType.objects.create(
        name="Bench wallets, %d legs" % legs, code="bench-%d-legs" % legs
    )
    sales = Account.objects.sales_account()
    created = Account.objects.bulk_create(
        Account(account_type=account_type, credit_limit=Decimal(legs)) for _ in range(count)
    )
    ids = [account.pk for account in created]
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM %s" % qn(Transfer._meta.db_table))
        next_id = cursor.fetchone()[0] + 1
    sales_balance = Account.objects.get(pk=sales.pk).balance.amount
    start = timezone.now() - datetime.timedelta(days=legs + 2)
    transfer_fields = insertable(Transfer)
    leg_fields = insertable(Transaction)
    transfer_sql = "INSERT INTO %s (id, %s) VALUES (%s)" % (
        qn(Transfer._meta.db_table),
        ", ".join(qn(f.column) for f in transfer_fields),
        ", ".join(["%s"] * (len(transfer_fields) + 1)),
    )
    leg_sql = "INSERT INTO %s (%s) VALUES (%s)" % (
        qn(Transaction._meta.db_table),
        ", ".join(qn(f.column) for f in leg_fields),
        ", ".join(["%s"] * len(leg_fields)),
    )
    one = Decimal("1.00")
    # One transaction: in autocommit, each row of an executemany would be a commit.
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        for leg in range(legs):
            # A day apart, the same for every account: the freeze falls between two.
            moment = start + datetime.timedelta(days=leg)
            transfers, rows = [], []
            for pk in ids:
                transfer = Transfer(
                    source_id=pk,
                    destination_id=sales.pk,
                    currency="GBP",
                    amount=one,
                    description="Card payment",
                    created=moment,
                )
                transfers.append(
                    [next_id]
                    + [
                        f.get_db_prep_save(getattr(transfer, f.attname), connection)
                        for f in transfer_fields
                    ]
                )
                sales_balance += one
                for leg_row in (
                    Transaction(
                        transfer_id=next_id,
                        account_id=pk,
                        currency="GBP",
                        amount=-one,
                        balance_after=-Decimal(leg + 1),
                        created=moment,
                    ),
                    Transaction(
                        transfer_id=next_id,
                        account_id=sales.pk,
                        currency="GBP",
                        amount=one,
                        balance_after=sales_balance,
                        created=moment,
                    ),
                ):
                    rows.append(
                        [
                            f.get_db_prep_save(getattr(leg_row, f.attname), connection)
                            for f in leg_fields
                        ]
                    )
                next_id += 1
            cursor.executemany(transfer_sql, transfers)
            cursor.executemany(leg_sql, rows)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = origin")
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('accounts_transfer', 'id'), %s)", [next_id]
            )
        table = qn(Account._meta.db_table)
        cursor.execute(
            "UPDATE %s SET balance = %%s WHERE id = %%s" % table, [sales_balance, sales.pk]
        )
        cursor.execute(
            "UPDATE %s SET balance = %%s WHERE account_type_id = %%s" % table,
            [-legs, account_type.pk],
        )
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute("ANALYZE TABLE %s, %s" % (qn(Transaction._meta.db_table), table))
        else:
            cursor.execute("ANALYZE")
    freeze_at = start + datetime.timedelta(days=legs - legs // 10 - 1, hours=12)
    return account_type, freeze_at


def freeze_once(account_type: Any, freeze_at: Any, owed: int) -> tuple[float, int, int]:
    """Create the run, freeze it (timed), then delete it. (seconds, statements, debts).

    Every debt must be ``owed`` (the legs of 1.00 before the freeze).
    """
    import datetime

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts import collections
    from accounts.collection_models import CollectionRun, Debt

    run = collections.create_run(
        account_type=account_type,
        period_start=freeze_at - datetime.timedelta(days=30),
        period_end=freeze_at,
        collect_on=(freeze_at + datetime.timedelta(days=5)).date(),
    )
    with CaptureQueriesContext(connection) as queries, Timer() as timer:
        collections.freeze(run)
    debts = Debt.objects.filter(run=run).count()
    assert not Debt.objects.filter(run=run).exclude(amount=owed).exists()
    qn = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM %s WHERE run_id = %%s" % qn(Debt._meta.db_table), [run.pk])
        cursor.execute(
            "DELETE FROM %s WHERE id = %%s" % qn(CollectionRun._meta.db_table), [run.pk]
        )
    return timer.seconds, len(queries), debts


def measure(count: int, legs_list: list[int], repeat: int) -> dict[str, Any]:
    """The table rows of ``make bench`` for these history lengths."""
    from statistics import median

    results: dict[str, Any] = {}
    per_account = {}
    for legs in legs_list:
        account_type, freeze_at = build(count, legs)
        owed = legs - legs // 10
        runs = [freeze_once(account_type, freeze_at, owed) for _ in range(repeat)]
        seconds = median(run[0] for run in runs)
        # Every account is in debt at the freeze, by the legs before it.
        assert all(run[2] == count for run in runs), runs
        per_account[legs] = seconds / count * 1e6
        label = "%s accounts x %d legs" % (format(count, ","), legs)
        results["freeze a run, %s (s)" % label] = seconds
        results["freeze per account, %d legs (us)" % legs] = per_account[legs]
        results["freeze statements, %s" % label] = runs[0][1]
    shortest, longest = min(legs_list), max(legs_list)
    results["freeze %d/%d legs ratio" % (longest, shortest)] = (
        per_account[longest] / per_account[shortest]
    )
    return results


def main() -> None:
    options = parser(__doc__.strip().splitlines()[0])
    options.add_argument("--accounts", type=int, default=10000)
    options.add_argument("--legs", type=int, nargs="+", default=[10, 100])
    args = options.parse_args()
    configure(args.backend)
    with bench_database():
        results = measure(args.accounts, sorted(args.legs), args.repeat)
    for name, value in results.items():
        print("%-50s %s" % (name, "%.3f" % value if isinstance(value, float) else value))


if __name__ == "__main__":
    main()
