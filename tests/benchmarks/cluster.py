"""
The cluster rows of ``make bench``: transfers per second on a three-node
MariaDB Galera cluster, with 4 worker processes on one node and spread over
the three, for two workloads, with the write conflicts counted.

    python -m tests.benchmarks.cluster [--repeat N]    # prints one JSON line

The cluster is started for the run (``tests.cluster.galera``, in a state
directory of its own) and stopped at the end. Workloads, as in ``run.py``:

hot      500 top-ups per process from the one source account: every transfer
         writes that one row
spread   500 transfers per process between random pairs of 100 accounts

Each worker is a process with its own connection to one node: all to the
first node ("1 node"), or worker i to node i mod 3 ("3 nodes"). A conflict
the facade retried is counted from the ``accounts.retry`` log; an operation
that used up its ``ACCOUNTS_RETRY_ATTEMPTS`` counts as given up (and not as
done); a write refused by a broken trigger cache (a MariaDB issue, see
``BROKEN_TRIGGERS``) is counted apart; anything else is an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
from decimal import Decimal
from typing import Any

from .common import ROOT

PER_WORKER = 500
WORKERS = 4
#: MariaDB 10.11 with Galera: a table instance whose triggers failed to load
#: (we see it only while nodes abort each other's transactions) refuses every
#: write with error 1064 until FLUSH TABLES; nothing is written. See the
#: README, "A Galera cluster (MariaDB)".
BROKEN_TRIGGERS = "Unknown trigger has an error in its body"


class Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.retried = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            self.retried += 1


def on_node(port: int) -> Counter:
    """Point this worker process's connection at one node; count its retries."""
    from django.db import connections

    connections["default"].close()
    connections["default"].settings_dict["PORT"] = str(port)
    counter = Counter()
    logger = logging.getLogger("accounts.retry")
    logger.setLevel(logging.INFO)
    logger.addHandler(counter)
    return counter


def applied_everywhere(ports: list[int]) -> None:
    """Return once every node has applied what was committed so far (the accounts)."""
    import MySQLdb

    for port in ports:
        node = MySQLdb.connect(host="127.0.0.1", port=port, user="root", password="")
        try:
            cursor = node.cursor()
            cursor.execute("SET SESSION wsrep_sync_wait = 1")
            cursor.execute("SELECT 1")
        finally:
            node.close()


def measure(ports: list[int], layout: str, workload: str, pks: list[int]) -> dict[str, float]:
    """One run of ``workload`` by 4 processes placed as ``layout``; rates and counts."""
    from .run import in_processes

    def work(i: int) -> dict[str, int]:
        from accounts import facade
        from accounts.exceptions import AccountException, RetryableConflict
        from accounts.models import Account

        counter = on_node(ports[0] if layout == "1 node" else ports[i % len(ports)])
        rng = random.Random(i)
        bank = Account.objects.source_account().pk
        done = gave_up = broken = errors = 0
        first_error = ""
        for _ in range(PER_WORKER):
            if workload == "hot":
                source, destination = bank, rng.choice(pks)
            else:
                source, destination = rng.sample(pks, 2)
            try:
                facade.transfer(source, destination, Decimal(rng.randint(1, 500)) / 100)
                done += 1
            except RetryableConflict:
                gave_up += 1
            except (AccountException, Exception) as exc:  # noqa: BLE001 - counted
                if BROKEN_TRIGGERS in str(exc):
                    broken += 1
                    continue
                errors += 1
                first_error = first_error or "%s: %s" % (type(exc).__name__, exc)
        return {
            "done": done,
            "retried": counter.retried,
            "gave up": gave_up,
            "broken": broken,
            "errors": errors,
            "first error": first_error,
        }

    elapsed, results = in_processes(WORKERS, work)
    crashed = [r["crashed"] for r in results if "crashed" in r]
    if crashed:
        raise RuntimeError("a worker crashed: %s" % crashed[0])
    totals: dict[str, Any] = {
        key: sum(r[key] for r in results)
        for key in ("done", "retried", "gave up", "broken", "errors")
    }
    totals["first error"] = next((r["first error"] for r in results if r["first error"]), "")
    if totals["first error"]:
        print("  %s, %s: %s" % (workload, layout, totals["first error"]), file=sys.stderr)
    return {**totals, "rate": totals["done"] / elapsed}


def run(repeat: int, ports: list[int]) -> dict[str, Any]:
    import statistics

    import django

    from .common import bench_database
    from .run import funded_accounts

    results: dict[str, Any] = {}
    with bench_database():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            results["server"] = "galera (3 nodes) %s" % cursor.fetchone()[0].split("-")[0]
        results["django"] = django.get_version()
        pks = funded_accounts(100)
        applied_everywhere(ports)
        gave_up = broken = errors = 0
        for workload in ("hot", "spread"):
            for layout in ("1 node", "3 nodes"):
                runs = [measure(ports, layout, workload, pks) for _ in range(repeat)]
                done = sum(r["done"] for r in runs)
                name = "galera %s transfers/s (4 workers, %s)" % (workload, layout)
                results[name] = statistics.median(r["rate"] for r in runs)
                results["galera %s retries per 100 transfers (%s)" % (workload, layout)] = (
                    100.0 * sum(r["retried"] for r in runs) / max(done, 1)
                )
                gave_up += sum(r["gave up"] for r in runs)
                broken += sum(r["broken"] for r in runs)
                errors += sum(r["errors"] for r in runs)
        results["galera transfers that gave up (of %d)" % (4 * repeat * WORKERS * PER_WORKER)] = (
            gave_up
        )
        results["galera writes refused by a broken trigger cache"] = broken
        results["galera errors"] = errors
        from accounts.integrity import check_ledger

        results["galera ledger checked"] = "clean" if check_ledger().ok else "PROBLEMS"
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from tests.cluster.galera import GaleraCluster
    from tests.cluster.system import Unavailable, state_root

    cluster = GaleraCluster(state_root("galera-bench"))
    try:
        cluster.start()
    except Unavailable as exc:
        raise SystemExit("cannot start the Galera cluster: %s" % exc) from exc
    try:
        ports = [node.port for node in cluster.nodes]
        os.environ["ACCOUNTS_TEST_MYSQL_HOST"] = "127.0.0.1"
        os.environ["ACCOUNTS_TEST_MYSQL_PORT"] = str(ports[0])
        os.environ["ACCOUNTS_TEST_MYSQL_USER"] = "root"
        os.environ["ACCOUNTS_TEST_MYSQL_PASSWORD"] = ""
        from .common import configure

        configure("mariadb")
        results = run(args.repeat, ports)
    finally:
        from django.db import connections

        connections.close_all()
        cluster.stop()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
