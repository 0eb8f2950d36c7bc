"""
Helpers for the tests that inject write conflicts (``tests/test_retry.py``).

A conflict is made by the database itself where it can: PostgreSQL raises
SQLSTATE 40001 from a ``DO`` block, MariaDB error 1213 from ``SIGNAL``, both
through Django's cursor, exactly as a serialization failure or a Galera
certification failure arrives. SQLite has no such error; there the driver's
``OperationalError`` is raised with the SQLSTATE attribute psycopg would set,
so that the retry machinery (not the classification) is tested there too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

CONFLICT_SQL = {
    "postgresql": (
        "DO $$ BEGIN RAISE EXCEPTION 'injected write conflict' USING ERRCODE = '40001'; END $$"
    ),
    "mysql": (
        "SIGNAL SQLSTATE '40001' SET MYSQL_ERRNO = 1213, MESSAGE_TEXT = 'injected write conflict'"
    ),
}

#: Another error, that is no conflict: a unique violation.
OTHER_ERROR_SQL = {
    "postgresql": (
        "DO $$ BEGIN RAISE EXCEPTION 'injected other error' USING ERRCODE = '23505'; END $$"
    ),
    "mysql": (
        "SIGNAL SQLSTATE '23000' SET MYSQL_ERRNO = 1062, MESSAGE_TEXT = 'injected other error'"
    ),
}


class SQLiteConflict(sqlite3.OperationalError):
    """What a conflict would look like from a driver that reports SQLSTATEs."""

    sqlstate = "40001"


def raise_from_database(sql: dict[str, str], execute: Any = None, context: Any = None) -> None:
    """Have the database raise the error ``sql`` makes (SQLite: raise it as its driver would)."""
    if connection.vendor == "sqlite":
        with connection.wrap_database_errors:
            if sql is OTHER_ERROR_SQL:
                raise sqlite3.IntegrityError("injected other error")
            raise SQLiteConflict("injected write conflict")
    if execute is not None:
        execute(sql[connection.vendor], None, False, context)
        return
    with connection.wrap_database_errors:
        connection.connection.cursor().execute(sql[connection.vendor])


def is_write(sql: str) -> bool:
    return sql.lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))


class Injector:
    """How many conflicts are left to inject, and how many were."""

    def __init__(self, times: int, sql: dict[str, str]) -> None:
        self.left = times
        self.injected = 0
        self.sql = sql

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.injected += 1
        return True


@contextmanager
def conflicts(
    times: int, *, at: str = "write", sql: dict[str, str] = CONFLICT_SQL
) -> Iterator[Injector]:
    """Make the next ``times`` writes (``at="write"``) or commits (``at="commit"``) fail.

    Each failure is the database's write-conflict error (``sql``: another
    error instead), raised in place of the statement or before the commit;
    Django then rolls the transaction back as it would after a real one.
    """
    injector = Injector(times, sql)
    if at == "write":

        def wrapper(execute: Any, statement: str, params: Any, many: bool, context: Any) -> Any:
            if is_write(statement) and injector.take():
                raise_from_database(injector.sql, execute, context)
            return execute(statement, params, many, context)

        with connection.execute_wrapper(wrapper):
            yield injector
    elif at == "commit":
        commit = connection._commit

        def failing_commit() -> Any:
            if injector.take():
                raise_from_database(injector.sql)
            return commit()

        connection._commit = failing_commit
        try:
            yield injector
        finally:
            del connection._commit
    else:
        raise ValueError(at)
