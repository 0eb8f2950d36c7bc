"""
The ledger's one clock: the database's, read under the row locks.

Every rule that depends on time (a hold's expiry, an account's start and end
dates, the sweeps' cut-offs) and every timestamp the ledger writes
(``Transfer.created``, legs, holds, ``resolved_at``) uses the moment the
database reports *after* the locks were granted, read in the locking
statement itself (see ``accounts.sql.lock_accounts``). Two operations that
touch the same account are serialized by its row lock, so the later one
always sees the same moment or a later one: a hold that one operation has
judged expired is expired for every later operation, whatever the clocks of
the application servers say.

Where each backend's clock comes from:

* PostgreSQL: ``clock_timestamp()``, evaluated on each row as it leaves the
  locking scan (so after that row's lock was granted);
* MariaDB/MySQL: ``SYSDATE(6)`` (the time of evaluation, not of the
  statement's start like ``NOW()``), evaluated as each locked row is read,
  converted to UTC with the session's offset. A server started with
  ``--sysdate-is-now`` turns it into the statement's start time, which is
  earlier than the lock when the statement had to wait: do not use it;
* SQLite: the process's clock. SQLite runs inside the application's process
  and serializes writers on the whole database, so there is only one clock.

Rejected alternatives: ``timezone.now()`` in Python (each application
server's clock, and the moment before a lock wait); ``now()`` /
``CURRENT_TIMESTAMP`` (the transaction's or statement's start, also before
the lock wait); a separate ``SELECT`` for the time (one more round trip on
every transfer).

Tests, and the sandbox's demo data, move the ledger's clock through one
point: :func:`travelled`, which returns ``None`` in production. Everything
that reads the time honours it: :func:`from_database`, the one-statement
transfer's SQL (``accounts.pg_transfer``) and :class:`DatabaseNow`.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import connections
from django.db.models import DateTimeField, Expression
from django.utils import timezone

#: The SQL expression giving the current UTC time at evaluation, per vendor.
#: SQLite has none that matters: the process's clock is used instead.
NOW_SQL = {
    "postgresql": "clock_timestamp()",
    # NOW() and UTC_TIMESTAMP() are both taken at the statement's start, so
    # their difference is the session's offset from UTC, whatever time zone
    # the server or session uses.
    "mysql": "(SYSDATE(6) - INTERVAL TIMESTAMPDIFF(SECOND, UTC_TIMESTAMP(), NOW()) SECOND)",
}


def travelled() -> datetime.datetime | None:
    """The moment the ledger's clock was moved to; ``None``: the database's clock rules.

    Always ``None`` here: tests and demo data patch this one function (see
    ``tests/utils.py``'s ``ledger_time``). Nothing in the package moves it.
    """
    return None


def from_database(value: object) -> datetime.datetime:
    """The ledger's "now" from a value the database returned under the lock.

    An aware datetime in UTC (naive in the default time zone when
    ``USE_TZ`` is off, as Django stores them then). ``None`` means the
    backend has no clock of its own (SQLite): the process's clock is read.
    """
    value = travelled() or value
    if value is None:
        moment = datetime.datetime.now(datetime.UTC)
    elif isinstance(value, datetime.datetime):
        moment = value if timezone.is_aware(value) else value.replace(tzinfo=datetime.UTC)
    else:
        raise TypeError("Unexpected database time %r" % (value,))
    moment = moment.astimezone(datetime.UTC)
    if not settings.USE_TZ:
        return timezone.make_naive(moment, timezone.get_default_timezone())
    return moment


def database_now(using: str) -> datetime.datetime:
    """The database's current time, in one query (outside the locked path)."""
    connection = connections[using]
    expression = NOW_SQL.get(connection.vendor)
    if expression is None:
        return from_database(None)
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s" % expression)
        return from_database(cursor.fetchone()[0])


class DatabaseNow(Expression):
    """The database's clock at the moment a row is written, as a query expression.

    Used where an ``UPDATE`` stamps a time next to a change it makes (the
    credit limit's ``credit_limit_changed_at``): evaluated on the row after
    the ``UPDATE`` has locked it.
    """

    output_field = DateTimeField()

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        expression = NOW_SQL.get(connection.vendor)
        if expression is None or travelled() is not None:
            value = DateTimeField().get_db_prep_value(from_database(None), connection)
            return "%s", [value]
        return expression, []
