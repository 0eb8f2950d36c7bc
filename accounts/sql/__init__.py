"""
The SQL of the write path: the few fixed statements every transfer runs.

A transfer is two round trips on PostgreSQL and four elsewhere:

1. ``SELECT ... FOR UPDATE`` of both accounts, in primary-key order;
2. the writes: the transfer, its two legs and both new balances. PostgreSQL
   runs them as one statement (data-modifying ``WITH`` clauses); MariaDB and
   SQLite have no such thing and run an INSERT, an INSERT and an UPDATE.

Fewer round trips also means the row locks are held for less time, which is
what limits throughput on a busy account.

Rejected alternative: building these with QuerySets on every call.
Compiling a ``select_for_update()``, a model ``save()``, a ``bulk_create()``
and a ``Case``/``When`` update costs about twice the database's own work for
these statements (query compilation, expression resolution, model signals).
The statements never change, so they are built once per database alias and
run through Django's cursor, which keeps Django's transaction handling,
error wrapping and query logging (``assertNumQueries`` sees them). Values go
through each field's ``get_db_prep_save`` and rows come back through the
backend's converters, exactly as the ORM would do it.

Only the locked path (``accounts.posting``) calls these, inside its atomic block.
"""

from .base import LEG_FIELDS, cached
from .locking import (
    LOCKED_FIELDS,
    account_columns,
    accounts_from_rows,
    limit_columns,
    limits_from_rows,
    lock_accounts,
    locks_busy,
)
from .writing import insert, insert_legs, write_batch, write_ledger_fields, write_transfer

__all__ = [
    "LEG_FIELDS",
    "LOCKED_FIELDS",
    "account_columns",
    "accounts_from_rows",
    "cached",
    "insert",
    "insert_legs",
    "limit_columns",
    "limits_from_rows",
    "lock_accounts",
    "locks_busy",
    "write_batch",
    "write_ledger_fields",
    "write_transfer",
]
