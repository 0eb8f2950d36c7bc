"""
Benchmark: close_expired_accounts on N expired accounts with positive balances.

    python -m tests.benchmarks.sweep --backend postgresql --accounts 10000

Prints accounts swept per second (median of --repeat runs). Each run builds
its accounts afresh: funded by real transfers while valid, then moved past
their end date.
"""

from __future__ import annotations

from .common import Timer, bench_database, configure, median_of, parser


def build(count: int) -> None:
    import datetime
    from decimal import Decimal

    from django.utils import timezone

    from accounts import facade
    from accounts.models import Account

    bank = Account.objects.source_account()
    created = Account.objects.bulk_create(Account() for _ in range(count))
    for n, account in enumerate(created):
        facade.transfer(bank, account, Decimal(1 + n % 50) + Decimal("0.25"))
    past = timezone.now() - datetime.timedelta(days=1)
    Account.objects.filter(pk__in=[a.pk for a in created]).update(end_date=past)


def sweep_rate(count: int, batch_size: int) -> float:
    from accounts import expiry

    build(count)
    with Timer() as timer:
        result = expiry.close_expired_accounts(batch_size=batch_size)
    assert result.swept_accounts == count and not result.failures, result
    return count / timer.seconds


def main() -> None:
    options = parser(__doc__.strip().splitlines()[0])
    options.add_argument("--accounts", type=int, default=10000)
    options.add_argument("--batch-size", type=int, default=None)
    args = options.parse_args()
    args_accounts = args.accounts
    configure(args.backend)
    with bench_database():
        from accounts.expiry import DEFAULT_BATCH_SIZE

        batch_size = args.batch_size or DEFAULT_BATCH_SIZE
        rate = median_of(args.repeat, lambda: sweep_rate(args_accounts, batch_size))
    seconds = args_accounts / rate
    print(
        "close_expired_accounts on %s: %d accounts in %.1f s (%.0f accounts/s, batches of %d, "
        "median of %d)" % (args.backend, args_accounts, seconds, rate, batch_size, args.repeat)
    )


if __name__ == "__main__":
    main()
