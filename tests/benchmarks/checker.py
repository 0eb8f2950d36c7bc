"""
Benchmark: check_ledger on a ledger of about a million legs (PostgreSQL).

    python -m tests.benchmarks.checker --legs 1000000

Builds the ledger with set-based SQL (round-robin top-ups from the bank to
1,000 accounts, each leg with its running balance), so building takes
seconds rather than the hours a million facade calls would, then times
check_ledger (median of --repeat runs) and confirms it finds nothing.
"""

from __future__ import annotations

from .common import Timer, bench_database, configure, median_of, parser

ACCOUNTS = 1000


def build(legs: int) -> None:
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Account

    transfers = legs // 2
    bank = Account.objects.source_account()
    Account.objects.bulk_create(Account() for _ in range(ACCOUNTS))
    first = (
        Account.objects.filter(role__isnull=True).order_by("pk").values_list("pk", flat=True)[0]
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        # A bulk load of rows that are correct by construction: the ledger's
        # own triggers would check each transfer again at commit.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            "INSERT INTO accounts_transfer (id, reference, source_id, destination_id, currency, "
            "amount, description, username, created, effective_at, metadata) "
            "SELECT i, 'BENCH' || i, %s, %s + (i - 1) %% %s, 'GBP', 1, '', '', %s, %s, '{}' "
            "FROM generate_series(1, %s) AS i",
            [bank.pk, first, ACCOUNTS, now, now, transfers],
        )
        cursor.execute(
            "INSERT INTO accounts_transaction (transfer_id, account_id, currency, amount, "
            "balance_after, created) "
            "SELECT i, %s, 'GBP', -1, -i, %s FROM generate_series(1, %s) AS i "
            "UNION ALL "
            "SELECT i, %s + (i - 1) %% %s, 'GBP', 1, (i - 1) / %s + 1, %s "
            "FROM generate_series(1, %s) AS i",
            [bank.pk, now, transfers, first, ACCOUNTS, ACCOUNTS, now, transfers],
        )
        cursor.execute("SET session_replication_role = origin")
        cursor.execute(
            "UPDATE accounts_account a SET balance = t.total FROM "
            "(SELECT account_id, SUM(amount) AS total FROM accounts_transaction "
            "GROUP BY account_id) t WHERE t.account_id = a.id"
        )
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence('accounts_transfer', 'id'), %s)", [transfers]
        )
        cursor.execute("ANALYZE")


def main() -> None:
    options = parser(__doc__.strip().splitlines()[0])
    options.add_argument("--legs", type=int, default=1_000_000)
    args = options.parse_args()
    if args.backend != "postgresql":
        raise SystemExit("the million-leg build uses PostgreSQL's generate_series")
    configure(args.backend)
    with bench_database():
        from accounts.integrity import check_ledger

        with Timer() as built:
            build(args.legs)
        reports = []

        def run() -> float:
            with Timer() as timer:
                reports.append(check_ledger())
            return timer.seconds

        seconds = median_of(args.repeat, run)
    report = reports[-1]
    assert report.ok, report.problems
    print(
        "check_ledger on %s: %s in %.2f s (median of %d; built in %.0f s)"
        % (
            args.backend,
            ", ".join("%d %s" % (n, name) for name, n in report.rows.items()),
            seconds,
            args.repeat,
            built.seconds,
        )
    )


if __name__ == "__main__":
    main()
