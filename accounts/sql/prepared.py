"""
PostgreSQL: the write path's long statements, parsed and planned once per
server session (SQL's ``PREPARE`` and ``EXECUTE``).

With Django's default (client-side binding) PostgreSQL parses and plans
every statement it is sent. For the one-statement transfer
(``accounts.pg_transfer``) and a batch's statements that costs more than
running them. Each is prepared the first time a server session runs it, and
run with ``EXECUTE`` after that; what was prepared is remembered per psycopg
connection (weakly: a closed connection's entry goes with it, and a new
one, whatever its ``id()``, starts with none).

Not used when ``ACCOUNTS_PREPARE_STATEMENTS`` is ``False`` (a pooler that
hands each transaction to another server session, such as PgBouncer in
transaction mode, cannot keep them), nor with server-side binding, where
psycopg prepares statements itself and deallocates every prepared
statement of the session on a ``ROLLBACK``. A session that lost one anyway
fails with SQLSTATE 26000 (:func:`lost`); the callers run the statement
once more unprepared, and it is prepared again next time.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import DatabaseError

from ..conf import conf
from .base import cached

#: The statements prepared on each server session, by its psycopg connection.
_PREPARED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def usable(connection: Any) -> bool:
    """Whether the connection may run our prepared statements."""
    return (
        connection.vendor == "postgresql"
        and conf.PREPARE_STATEMENTS
        and not server_side_binding(connection)
    )


def server_side_binding(connection: Any) -> bool:
    """Whether the connection binds parameters on the server (OPTIONS "server_side_binding")."""
    return bool(connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"))


def names(connection: Any) -> set[str]:
    """The statements prepared on the connection's current server session."""
    return _PREPARED.setdefault(connection.connection, set())


def forget(connection: Any) -> None:
    """After :func:`lost`: prepare each statement again the next time it runs."""
    names(connection).clear()


def lost(error: BaseException) -> bool:
    """Whether ``error`` says a prepared statement no longer exists (SQLSTATE 26000)."""
    return getattr(error.__cause__, "sqlstate", None) == "26000"


T = TypeVar("T")


def retry_unprepared(connection: Any, run: Callable[[bool], T], *, prepare: bool) -> T:
    """``run(prepare)``; if the session lost a prepared statement, ``run(False)`` once more.

    ``run`` must have undone everything when it raises (its own transaction
    or savepoint): the statements are prepared again the next time.
    """
    try:
        return run(prepare)
    except DatabaseError as error:
        if not (prepare and lost(error)):
            raise
        forget(connection)
        return run(False)


def name(statement: str, prefix: str = "accounts") -> str:
    """The statement's name: the same text, the same name, on every server session."""
    return cached(
        ("prepared name", prefix, statement),
        lambda: "%s_%s" % (prefix, hashlib.sha256(statement.encode()).hexdigest()[:12]),
    )


def run(connection: Any, statement: str, params: list[Any]) -> list[Any]:
    """Run ``statement`` (``%s`` placeholders) prepared; return its rows.

    The placeholders become ``$1``, ``$2``, ... in the prepared form, whose
    parameter types PostgreSQL infers from where they stand (a cast, a
    column written). Each argument goes to ``EXECUTE`` as a literal,
    quoted by the driver.
    """
    found = name(statement)
    with connection.cursor() as cursor:
        if found not in names(connection):
            cursor.execute("PREPARE %s AS %s" % (found, numbered(statement)))
            names(connection).add(found)
        execute = cached(
            ("prepared execute", found, len(params)),
            lambda: "EXECUTE %s(%s)" % (found, ", ".join(["%s"] * len(params))),
        )
        cursor.execute(execute, params)
        return list(cursor.fetchall())


def numbered(statement: str) -> str:
    """``statement`` with its ``%s`` placeholders numbered (``$1``, ...) and ``%%`` as ``%``."""
    parts = statement.split("%%")
    count = 0
    numbered_parts = []
    for part in parts:
        pieces = part.split("%s")
        text = pieces[0]
        for piece in pieces[1:]:
            count += 1
            text += "$%d%s" % (count, piece)
        numbered_parts.append(text)
    return "%".join(numbered_parts)
