"""
The Django side of the multi-server tests: database aliases added at run time,
routers, worker threads pinned to a node, and counting retries.

The servers themselves are started by ``tests.cluster.galera`` and
``tests.cluster.standby``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.db import connections

from .system import Unavailable, strict

#: The node the current thread reads and writes through (see ``NodeRouter``).
current_node: ContextVar[str | None] = ContextVar("accounts_test_node", default=None)


def unavailable(what: str, exc: Unavailable) -> None:
    """Skip the test, with the reason, or fail it when ``CI=true``."""
    import pytest

    reason = "%s cannot start here: %s" % (what, exc)
    if strict():
        pytest.fail(reason + " (CI=true: the multi-server tests must run)")
    pytest.skip(reason)


# Database aliases ----------------------------------------------------------------------


def add_database(alias: str, settings_dict: dict[str, Any]) -> None:
    """Make ``alias`` usable through ``django.db.connections`` from now on."""
    configured = {"default": connections.settings["default"], alias: dict(settings_dict)}
    connections.settings[alias] = connections.configure_settings(configured)[alias]


def remove_database(alias: str) -> None:
    if alias in connections.settings:
        connections[alias].close()
        del connections[alias]
        del connections.settings[alias]


def mariadb_settings(name: str, port: int) -> dict[str, Any]:
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": name,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "USER": "root",
        "PASSWORD": "",
        "OPTIONS": {"charset": "utf8mb4"},
    }


def database_name(suffix: str) -> str:
    return "test_%s_%s" % (os.environ.get("ACCOUNTS_TEST_DB_NAME", "accounts"), suffix)


# Routers ---------------------------------------------------------------------------------


class NodeRouter:
    """Every read and write goes to the node the current thread is pinned to.

    As a web server behind a load balancer would do it: each process (here,
    each thread) talks to one node of the cluster, for everything.
    """

    default = "node1"

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return current_node.get() or self.default

    def db_for_write(self, model: Any, **hints: Any) -> str:
        return current_node.get() or self.default

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool:
        return True


class ReadsOnlyRouter:
    """Sends reads to ``replica`` and says nothing about writes.

    Django then writes a model instance back to the database it was read from,
    which is the trap this router sets for the ledger: the facade must still
    write to ``default``.
    """

    def db_for_read(self, model: Any, **hints: Any) -> str:
        return "replica"


# Threads ------------------------------------------------------------------------------------


def run_on_nodes(
    aliases: list[str], count: int, work: Callable[[int], Any]
) -> tuple[list[Any], list[Exception], list[Exception]]:
    """Run ``work(i)`` in ``count`` threads released together, thread i on ``aliases[i % n]``.

    Each thread has its own connection to its node. Returns (results,
    ``AccountException``s, anything else).
    """
    from accounts.exceptions import AccountException

    barrier = threading.Barrier(count)
    lock = threading.Lock()
    results: list[Any] = []
    expected: list[Exception] = []
    unexpected: list[Exception] = []

    def target(i: int) -> None:
        current_node.set(aliases[i % len(aliases)])
        try:
            barrier.wait(timeout=30)
            outcome = work(i)
            with lock:
                results.append(outcome)
        except AccountException as exc:
            with lock:
                expected.append(exc)
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty
            with lock:
                unexpected.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a worker hung"
    return results, expected, unexpected


@contextmanager
def on_node(alias: str) -> Iterator[None]:
    token = current_node.set(alias)
    try:
        yield
    finally:
        current_node.reset(token)


# Retries -------------------------------------------------------------------------------------


class RetryLog(logging.Handler):
    """Counts what ``accounts.retry`` logs: conflicts retried, operations that gave up."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.retried = 0
        self.gave_up = 0
        self.messages: list[str] = []
        #: The most attempts one operation took (retried ones only).
        self.most_attempts = 1
        self._lock_counts = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock_counts:
            self.messages.append(record.getMessage())
            if record.levelno >= logging.WARNING:
                self.gave_up += 1
            else:
                self.retried += 1
                attempt = record.args[1] if isinstance(record.args, tuple) else 0
                self.most_attempts = max(self.most_attempts, int(attempt) + 1)


@contextmanager
def retry_log() -> Iterator[RetryLog]:
    """Count ``accounts.retry``'s records (from every thread) while the block runs."""
    logger = logging.getLogger("accounts.retry")
    handler = RetryLog()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
