"""
Running an operation again when the database aborted it for a concurrent change.

Some databases end a transaction that collides with a concurrent one and
expect the client to run it again:

* a Galera cluster (MariaDB): row locks are local to one node, so the same
  rows can be locked on two nodes at once and both transactions can pass
  their checks. The cluster certifies every transaction's writes in one
  global order at commit: the later of two that wrote the same rows is
  aborted with error 1213 ("Deadlock found when trying to get lock; try
  restarting transaction"), and so is a transaction still running on a node
  when a replicated write needs its locks;
* PostgreSQL at ``SERIALIZABLE`` or ``REPEATABLE READ``: SQLSTATE 40001
  ("could not serialize access"), e.g. when a row locked ``FOR UPDATE``
  changed after the transaction's snapshot was taken;
* a deadlock on one server (1213, SQLSTATE 40P01). The facade takes its
  locks in one order, so on one server this does not happen; it is retried
  all the same.

Such a transaction has been rolled back whole, so running the operation
again from its start is safe: the new attempt re-reads every row under the
lock and decides again. Nothing is doubled: the aborted attempt wrote
nothing, the signals it registered with ``on_commit`` were discarded with
it, and an idempotency key committed meanwhile by a concurrent call answers
the new attempt as a repeat.

:func:`retry_on_conflict` does this. Every public operation of
``accounts.facade`` is decorated with it:

* when it runs in its own transaction (no ``atomic`` block open on the
  ledger's database), it runs up to ``ACCOUNTS_RETRY_ATTEMPTS`` times,
  waiting a random time before each new attempt (up to
  ``ACCOUNTS_RETRY_BACKOFF`` seconds before the second, doubling each
  time), then raises ``RetryableConflict``;
* inside a caller's transaction it cannot retry alone (the caller's earlier
  writes were rolled back with it, or its snapshot is stale): it marks the
  transaction for rollback and raises ``RetryableConflict`` at once; the
  caller may run its whole transaction again, for example by decorating it
  with :func:`retry_on_conflict` too.

A conflict found only when the caller's own transaction commits (on a Galera
cluster, the usual case) surfaces from the caller's ``atomic`` block as the
database's ``OperationalError``; :func:`is_conflict` recognises both, and a
function decorated with :func:`retry_on_conflict` retries on both.

Each retry is logged at INFO on the ``accounts.retry`` logger, each
operation that gave up at WARNING: on a cluster, watch their rate.

Rejected alternatives: retrying inside the facade's atomic block (a
savepoint cannot undo a transaction the server already rolled back), and
retrying every ``OperationalError`` (a lost connection may have committed;
only these errors say for certain that nothing was).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

from django.db import DatabaseError, router, transaction

from .conf import conf
from .exceptions import RetryableConflict

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

#: ER_LOCK_DEADLOCK: an InnoDB deadlock victim, or a transaction a Galera
#: cluster aborted (certification failure, or a replicated write needing its locks).
MYSQL_CODES = frozenset({1213})
#: serialization_failure and deadlock_detected.
SQLSTATES = frozenset({"40001", "40P01"})

#: The longest wait before one attempt, in seconds, whatever the backoff.
MAX_WAIT = 1.0


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` says the transaction lost a conflict and was rolled back whole.

    True for ``RetryableConflict`` and for the database errors listed in this
    module (MariaDB/MySQL error 1213, PostgreSQL SQLSTATE 40001 and 40P01).
    Lock wait timeouts and ``NOWAIT`` refusals are not conflicts: they end
    one statement, not the transaction.
    """
    if isinstance(exc, RetryableConflict):
        return True
    if not isinstance(exc, DatabaseError):
        return False
    cause = exc.__cause__ or exc
    for attribute in ("sqlstate", "pgcode"):  # psycopg 3, psycopg2
        if getattr(cause, attribute, None) in SQLSTATES:
            return True
    args: tuple[Any, ...] = getattr(cause, "args", ())
    return bool(args) and args[0] in MYSQL_CODES


def backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th attempt failed ("full jitter").

    A random time between zero and ``ACCOUNTS_RETRY_BACKOFF × 2^(attempt−1)``
    (at most ``MAX_WAIT``): the random part keeps the losers of one conflict
    from colliding again in step.
    """
    window = min(float(conf.RETRY_BACKOFF) * 2 ** (attempt - 1), MAX_WAIT)
    return random.uniform(0, window)


def _in_transaction(using: str) -> bool:
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        return True
    # Not connected yet means nothing is open (and costs no connection to find out).
    return connection.connection is not None and not connection.get_autocommit()


def _ledger_database() -> str:
    from .models import Account

    return router.db_for_write(Account)


@overload
def retry_on_conflict(function: Callable[P, T], /) -> Callable[P, T]: ...


@overload
def retry_on_conflict(
    function: None = None, /, *, using: str | None = None
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...


def retry_on_conflict(
    function: Callable[P, T] | None = None, /, *, using: str | None = None
) -> Callable[P, T] | Callable[[Callable[P, T]], Callable[P, T]]:
    """Run ``function`` again when the database aborts it for a conflict (see the module).

    Use it bare (``@retry_on_conflict``) or with the database alias whose
    transactions ``function`` opens (``@retry_on_conflict(using="ledger")``;
    default: where the router writes ``Account``). ``function`` must do all
    its writes in one transaction (an ``atomic`` block, or one facade call),
    so that an aborted attempt leaves nothing behind.

    Raises ``RetryableConflict`` when the attempts run out, or at the first
    conflict when called inside an open transaction. Other exceptions pass
    through untouched.
    """

    def decorate(function: Callable[P, T]) -> Callable[P, T]:
        name = getattr(function, "__qualname__", repr(function))

        @functools.wraps(function)
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            alias = using or _ledger_database()
            if _in_transaction(alias):
                try:
                    return function(*args, **kwargs)
                except DatabaseError as exc:
                    if not is_conflict(exc):
                        raise
                    if transaction.get_connection(alias).in_atomic_block:
                        # Whatever the caller wrote before is gone or stale:
                        # its transaction must not go on to commit.
                        transaction.set_rollback(True, using=alias)
                    raise RetryableConflict(
                        RetryableConflict.in_transaction_message,
                        operation=name,
                        attempts=1,
                        in_transaction=True,
                        error=exc,
                    ) from exc
            attempt = 1
            while True:
                try:
                    return function(*args, **kwargs)
                except (DatabaseError, RetryableConflict) as exc:
                    if not is_conflict(exc):
                        raise
                    attempts = max(1, conf.RETRY_ATTEMPTS)
                    if attempt >= attempts:
                        logger.warning(
                            "%s gave up after %d attempts: %s", name, attempt, _first_line(exc)
                        )
                        raise RetryableConflict(
                            operation=name, attempts=attempt, in_transaction=False, error=exc
                        ) from exc
                    pause(name, attempt, attempts, exc)
                    attempt += 1

        return run

    if function is not None:
        return decorate(function)
    return decorate


def pause(operation: str, attempt: int, attempts: int, exc: BaseException) -> None:
    """Log the conflict that ended attempt ``attempt`` of ``attempts``, then wait ``backoff``."""
    wait = backoff(attempt)
    logger.info(
        "%s lost a write conflict (attempt %d of %d): %s; retrying in %.0f ms",
        operation,
        attempt,
        attempts,
        _first_line(exc),
        wait * 1000,
    )
    time.sleep(wait)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
