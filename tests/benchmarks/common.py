"""
Shared set-up for the benchmark scripts.

Each script runs against one backend, chosen with --backend, in a database of
its own (test_bench_<backend>), created with migrations at the start and
dropped at the end, so benchmarks never touch the test suite's databases.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def configure(backend: str) -> None:
    """Point Django at the benchmark database of ``backend`` and set it up."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    os.environ["ACCOUNTS_TEST_DB"] = backend
    # ACCOUNTS_BENCH_DB_NAME keeps the benchmarks of two people on one server apart.
    os.environ["ACCOUNTS_TEST_DB_NAME"] = "%s_%s" % (
        os.environ.get("ACCOUNTS_BENCH_DB_NAME", "bench"),
        backend,
    )
    if backend == "sqlite":
        import tempfile

        os.environ["ACCOUNTS_TEST_SQLITE_PATH"] = os.path.join(
            tempfile.mkdtemp(prefix="accounts-bench-"), "bench.sqlite3"
        )
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()


@contextmanager
def bench_database() -> Iterator[None]:
    """Create the benchmark database (migrated, with core accounts); drop it afterwards."""
    from django.test.utils import setup_databases, teardown_databases

    old = setup_databases(verbosity=0, interactive=False, keepdb=False)
    try:
        yield
    finally:
        teardown_databases(old, verbosity=0)


def median_of(repeats: int, measure: Callable[[], float]) -> float:
    """Median of ``repeats`` measurements (each a number, e.g. items per second)."""
    return statistics.median(measure() for _ in range(repeats))


class Timer:
    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.seconds = time.perf_counter() - self.started


def parser(description: str) -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(description=description)
    result.add_argument(
        "--backend", choices=("sqlite", "postgresql", "mariadb"), default="postgresql"
    )
    result.add_argument("--repeat", type=int, default=3, help="measurements per workload")
    return result
