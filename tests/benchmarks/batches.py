"""
``make bench``'s batch rows: how much a batch buys over single transfers.

Run inside a backend's child process by ``tests.benchmarks.run`` (workload
``batches``):

* linked batches of 100 transfers between random pairs of 100 accounts,
  one process, interleaved round by round with the same transfers posted one
  by one (and, on PostgreSQL, with floor (b), one PL/pgSQL call per
  transfer): transfers/s and the ratios;
* independent batches of 100 top-ups from the one source account, 4
  processes, against the same top-ups posted one by one (the hot account);
* batch sizes 1, 10, 100 and 1,000: transfers/s and the peak memory Python
  allocates for one batch.
"""

from __future__ import annotations

import random
import time
import tracemalloc
from decimal import Decimal
from typing import Any

ROUNDS = 5
TRANSFERS = 1000  # per round and per way of posting


def _pairs(pks: list[int], count: int, seed: int) -> list[tuple[int, int, Decimal]]:
    rng = random.Random(seed)
    return [
        (*rng.sample(pks, 2), Decimal(rng.randint(1, 500)) / 100)  # type: ignore[misc]
        for _ in range(count)
    ]


def _singles(pairs: list[tuple[int, int, Decimal]]) -> float:
    from accounts import facade

    started = time.perf_counter()
    for source, destination, amount in pairs:
        facade.transfer(source, destination, amount)
    return len(pairs) / (time.perf_counter() - started)


def _batched(pairs: list[tuple[int, int, Decimal]], size: int, atomic: bool = True) -> float:
    from accounts import facade

    requests = [facade.TransferRequest(s, d, a) for s, d, a in pairs]
    started = time.perf_counter()
    for start in range(0, len(requests), size):
        facade.transfer_many(requests[start : start + size], atomic=atomic)
    return len(requests) / (time.perf_counter() - started)


def _floor_b(pairs: list[tuple[int, int, Decimal]]) -> float | None:
    """Floor (b), one PL/pgSQL call per transfer, on PostgreSQL; ``None`` elsewhere."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    from accounts.models import generate_reference

    from .run import FLOOR_FUNCTION

    with connection.cursor() as cursor:
        cursor.execute(FLOOR_FUNCTION)
        started = time.perf_counter()
        for source, destination, amount in pairs:
            cursor.execute(
                "SELECT bench_transfer(%s, %s, %s, %s)",
                (source, destination, amount, generate_reference()),
            )
        return len(pairs) / (time.perf_counter() - started)


def batches(repeat: int) -> dict[str, Any]:
    from .run import funded_accounts, in_processes, median

    pks = funded_accounts(100)
    batch_rates, single_rates, floor_rates = [], [], []
    for n in range(max(ROUNDS, repeat)):
        pairs = _pairs(pks, TRANSFERS, seed=n)
        batch_rates.append(_batched(pairs, 100))
        single_rates.append(_singles(pairs))
        floor = _floor_b(pairs)
        if floor is not None:
            floor_rates.append(floor)
    results: dict[str, Any] = {
        "batch of 100 linked, transfers/s": median(batch_rates),
        "single transfers, same pairs, transfers/s": median(single_rates),
        "batch of 100 linked / single transfers": median(
            [b / s for b, s in zip(batch_rates, single_rates, strict=True)]
        ),
    }
    if floor_rates:
        results["batch of 100 linked / floor (b)"] = median(
            [b / f for b, f in zip(batch_rates, floor_rates, strict=True)]
        )

    # The hot account: 4 processes topping up from the one source.
    targets = funded_accounts(100, "1.00")

    def top_ups(i: int, batch: int) -> int:
        from accounts import facade
        from accounts.models import Account

        bank = Account.objects.source_account()
        rng = random.Random(i)
        # Batches run five times as many: long enough for the rate not to
        # hang on when the four processes happen to start.
        chosen = [rng.choice(targets) for _ in range(400 if batch == 1 else 2000)]
        if batch == 1:
            for pk in chosen:
                facade.transfer(bank, pk, Decimal("1.00"))
        else:
            for start in range(0, len(chosen), batch):
                facade.transfer_many(
                    [
                        facade.TransferRequest(bank, pk, Decimal("1.00"))
                        for pk in chosen[start : start + batch]
                    ],
                    atomic=False,
                )
        return len(chosen)

    hot_single, hot_batched = [], []
    # As many rounds as the linked batches: four processes on two cores
    # move more from one round to the next than one process does.
    for _ in range(max(ROUNDS, repeat)):
        elapsed, done = in_processes(4, top_ups, 1)
        hot_single.append(sum(done) / elapsed)
        elapsed, done = in_processes(4, top_ups, 100)
        hot_batched.append(sum(done) / elapsed)
    results["hot account, independent batches of 100 (4 processes), transfers/s"] = median(
        hot_batched
    )
    results["hot account, single transfers (4 processes), transfers/s"] = median(hot_single)
    results["hot account, batches / single"] = median(
        [b / s for b, s in zip(hot_batched, hot_single, strict=True)]
    )

    # Where it flattens: sizes and memory.
    for size in (1, 10, 100, 1000):
        pairs = _pairs(pks, max(size, 1000), seed=1000 + size)
        rate = _batched(pairs, size)
        tracemalloc.start()
        _batched(pairs[:size], size)
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results["batch size %d, transfers/s" % size] = rate
        results["batch size %d, peak Python memory per batch (KiB)" % size] = peak / 1024
    return results
