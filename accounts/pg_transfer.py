"""
A transfer in one statement and one round trip, on PostgreSQL.

A transfer on the generic locked path (``accounts.transfers``) costs the
round trips of its transaction (``BEGIN``, the locking read, the writes,
``COMMIT``): most of its time on a fast network, and the time its row locks
are held. On PostgreSQL a plain transfer (no reversal) is instead one
statement, which takes the locks, reads the clock, judges every rule and
writes, or writes nothing:

* ``locked``: the two accounts, ``SELECT ... ORDER BY id FOR UPDATE`` (the
  same lock order as everywhere else), then the database's clock once both
  locks are granted (``accounts.clock``);
* ``lapsing``: the source's active holds past their expiry, which no longer
  reserve money (and are marked expired if the transfer is written, as on
  the generic path). They are read ``FOR UPDATE``, after the accounts: the
  statement's snapshot was taken before it waited for the account locks,
  and only a locking read re-checks a hold that the transaction it waited
  for resolved (reading them plainly would count such a hold twice).
  Holds lapse rarely, so there are two statements: the common one does
  not lapse holds, and when the source has some to lapse (and a credit or
  spending limit they matter to) it writes nothing and hands over to the
  full one, which does (``accounts.pg_transfer_sql.LAPSING``);
* ``decision``: a given ``effective_at`` no later than that clock (bad
  input, judged first, as the generic path does), then the rules of
  ``accounts.rules.decide_transfer``, in the same order, as SQL over the
  locked rows; the first that refuses names itself;
* the writes (the transfer with its metadata and effective date, its two
  legs, both balances and held amounts, the lapsed holds) happen only when
  no rule refused. ``ON CONFLICT DO NOTHING`` on the transfer: a key
  another request committed first writes nothing here either.

Outside a transaction the statement runs in autocommit mode: it is a
transaction of its own, committed when it returns, so a transfer is one
round trip. Inside the caller's transaction it runs in a savepoint, as the
generic path does.

What Python decides: nothing that the statement did not already decide.
When a rule refused, the same rules in Python (``decide_transfer``, judged
on the rows the statement returns, as locked, at the moment it read) raise
the exception with its context; if they find nothing to refuse, the two
sets of rules disagree and ``RuntimeError`` says so (nothing was written).
``tests/test_pg_transfer.py`` checks, on random accounts and amounts, that
both paths take the same decision.

Rejected alternatives: a PL/pgSQL function (the rules would live in the
database, outside the migrations' reach and out of the Python rules'
sight); writing first and checking in Python after (it needs a transaction
of its own, ``BEGIN`` and ``COMMIT`` being two more round trips).

The generic path still handles what this statement hands back (``None``):
a repeated idempotency key (replay or conflict), a lost race on a key, and
an account in a currency the settings no longer list.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments, clock, limits, pg_transfer_sql, posting, rules, signals, sql
from .conf import conf
from .exceptions import InvalidAccount
from .idempotency import Request
from .models import Account, Transfer, generate_reference
from .pg_transfer_sql import ANSWER, FALLBACK, KEY, LAPSING, PARAMETERS
from .sql import prepared as statements
from .sql.base import cached


def post(
    using: str, request: Request, order: posting.Order, *, allow_partial: bool
) -> Transfer | None:
    """Post a plain transfer in one statement; ``None``: run the generic path instead."""
    source_id, destination_id = order.accounts
    value, currency, user = order.amount, order.currency, order.user
    merchant_reference, description = order.merchant_reference, order.description
    metadata, effective_at = order.metadata, order.effective_at
    connection = connections[using]
    reference = generate_reference()
    username = posting.username(user)
    fingerprint = request.fingerprint()
    params: dict[str, Any] = {
        "source": source_id,
        "destination": destination_id,
        "value": value,
        "currency": currency,
        "partial": allow_partial,
        "minimum": conf.MIN_INITIAL_VALUE,
        "maximum": conf.MAX_INITIAL_VALUE,
        "limit": amounts.LIMIT,
        "reference": reference,
        "merchant_reference": merchant_reference,
        "description": description,
        "user": user.pk if user is not None else None,
        "username": username,
        "key": request.key,
        "fingerprint": fingerprint,
        # Checked (accounts.arguments.metadata): JSON text, cast to jsonb.
        "metadata": json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))
        if metadata
        else "{}",
        "effective_at": effective_at,
        "travelled": clock.travelled(),
        **_period_parameters(),
    }
    rows = _execute(using, pg_transfer_sql.statement(connection), params)
    width = len(sql.LOCKED_FIELDS)
    if rows and rows[0][width + 1] == LAPSING:
        # The source has expired holds to lapse: the full statement (rare).
        rows = _execute(using, pg_transfer_sql.statement(connection, lapse=True), params)
    if not rows:
        # No pair of accounts to decide on: say which is missing.
        _missing(using, source_id, destination_id)
        return None
    answer = dict(zip(ANSWER, rows[0][width:], strict=True))
    refused, moved, transfer_id = answer["refused"], answer["moved"], answer["transfer"]
    now = clock.from_database(answer["now"])
    usage = {period: answer["%s_used" % period] for period in limits.PERIODS}
    if refused is not None or transfer_id is None:
        if refused in (KEY, FALLBACK) or transfer_id is None and refused is None:
            return None
        found = sql.accounts_from_rows(using, rows)
        spending_limits = sql.limits_from_rows(using, rows, width + ANSWER.index("day_limit"))
        arguments.check_effective_at(effective_at, now)
        _explain(found[source_id], found[destination_id], value, currency, now, allow_partial,
                 answer["lapsed"], spending_limits[source_id], usage)  # fmt: skip
    # Success: one row, no Account objects built, only the figures the
    # caller's instances get.
    posted = posting.new_transfer(
        id=transfer_id,
        reference=reference,
        source_id=source_id,
        destination_id=destination_id,
        currency=answer["s_currency"],
        amount=moved,
        merchant_reference=merchant_reference,
        description=description,
        user_id=user.pk if user is not None else None,
        username=username,
        idempotency_key=request.key,
        request_fingerprint=fingerprint,
        created=now,
        effective_at=effective_at or now,
        metadata=metadata,
    )
    if user is not None:
        posted.user = user
    posted._state.adding, posted._state.db = False, using
    posting.after_commit(using, signals.transfer_posted, Transfer, transfer=posted)
    if answer["lapsed_holds"]:
        posting.after_commit_resolved(using, answer["lapsed_holds"])
    written: dict[int, dict[str, Any]] = {
        source_id: {
            "balance": answer["s_balance"] - moved,
            "held": answer["s_held"] - answer["lapsed"],
            **_usage_written(answer, usage, moved, params),
        },
        destination_id: {"balance": answer["d_balance"] + moved},
    }
    for instance in order.instances:
        if isinstance(instance, Account) and instance.pk in written:
            instance.__dict__.update(written[instance.pk])
            instance._remember(list(written[instance.pk]))
    return posted


def _usage_written(
    answer: dict[str, Any], usage: dict[str, Decimal], moved: Decimal, params: dict[str, Any]
) -> dict[str, Any]:
    """The spending usage the statement wrote on the source's row (as its ``balances`` do)."""
    if answer["s_role"] is not None:
        return {}
    counts = answer["d_role"] != "expired"
    found: dict[str, Any] = {}
    for period, (amount_column, from_column) in limits.COLUMNS.items():
        current = params["%s_from" % period]
        if counts:
            found[amount_column] = min(usage[period] + moved, limits.USAGE_CAP)
            found[from_column] = current
        elif answer["s_" + from_column] == current:
            found[amount_column] = usage[period]
    return found


def _period_parameters() -> dict[str, Any]:
    """The current spending periods, by the application's clock: checked by the statement.

    The statement falls back to the generic path when the database's clock
    is outside the day given here (around midnight, for a clock that is a
    moment off): the periods are always those of the database's time.
    Worked out once a day (and again when the time zone setting changes).
    """
    moment = clock.travelled() or timezone.now()
    key = (conf.TIME_ZONE, settings.USE_TZ)
    found = _PERIODS.get(key)
    if found is not None and found["day_start"] <= moment < found["day_end"]:
        return found
    first = limits.starts(moment)
    day_start, day_end = limits.bounds("day", first["day"])
    found = {
        "day_from": first["day"],
        "week_from": first["week"],
        "month_from": first["month"],
        "day_start": day_start,
        "day_end": day_end,
        "week_start": limits.instant(first["week"]),
        "month_start": limits.instant(first["month"]),
        "usage_cap": limits.USAGE_CAP,
    }
    _PERIODS.clear()
    _PERIODS[key] = found
    return found


#: The last day's periods, by the settings they were worked out with.
_PERIODS: dict[tuple[str, bool], dict[str, Any]] = {}


def _missing(using: str, source_id: int, destination_id: int) -> None:
    """Raise ``InvalidAccount`` for the account of the two that does not exist."""
    found = set(
        Account.objects.using(using)
        .filter(pk__in=(source_id, destination_id))
        .values_list("pk", flat=True)
    )
    missing = {source_id, destination_id} - found
    if missing:
        raise InvalidAccount(
            _("Account %(account)s does not exist (was it deleted?)."), account=min(missing)
        )


def _execute(using: str, statement: str, params: dict[str, Any]) -> list[Any]:
    """Run the statement in its own transaction, or in a savepoint of the caller's.

    Prepared once per connection (see :func:`_run`); a connection that lost
    the prepared statement (a pooler's ``DISCARD ALL``, a reconnect) runs it
    once more, unprepared, and prepares it again next time.
    """
    connection = connections[using]
    # With server-side binding psycopg prepares statements itself (after
    # "prepare_threshold" runs), and deallocates every prepared statement of
    # the session on a ROLLBACK: ours would be lost at each one.

    def run(prepared: bool) -> list[Any]:
        if connection.in_atomic_block:
            with transaction.atomic(using=using):
                return _run(connection, statement, params, prepared=prepared)
        return _run(connection, statement, params, prepared=prepared)

    return statements.retry_unprepared(connection, run, prepare=statements.usable(connection))


def _run(connection: Any, statement: str, params: dict[str, Any], *, prepared: bool) -> list[Any]:
    """Run the statement; with ``prepared``, through SQL's ``PREPARE`` and ``EXECUTE``.

    The statement is long: parsing and planning it would cost more than
    running it. Django's default (client-side binding) prepares nothing, so
    it is prepared here with SQL's own ``PREPARE`` and run with ``EXECUTE``.
    With server-side binding psycopg prepares it (see :func:`_execute`). A
    pooler that hands each transaction to another server connection
    (PgBouncer in transaction mode) cannot keep it: set
    ``ACCOUNTS_PREPARE_STATEMENTS = False`` there.
    """
    with connection.cursor() as cursor:
        if not prepared:
            if statements.server_side_binding(connection):
                # Bound parameters, each typed: a NULL has no type of its own.
                statement = cached(("pg transfer typed", statement), lambda: _typed(statement))
            cursor.execute(statement, params)
            return list(cursor.fetchall())
        form = _prepared_form(connection, statement, params)
        names = statements.names(connection)
        if form.name not in names:
            # Yesterday's form (or one for other settings) goes first.
            for old in [name for name in names if name.startswith(form.family)]:
                cursor.execute("DEALLOCATE %s" % old)
                names.discard(old)
            cursor.execute(form.prepare)
            names.add(form.name)
        # Prepared only with client-side binding (see _execute): the driver
        # quotes each argument as a literal, and EXECUTE's typed parameters
        # take them, NULLs included.
        cursor.execute(form.execute, [params[key] for key in form.arguments])
        return list(cursor.fetchall())


#: The parameters that stay the same all day (the settings' bounds, the
#: current spending periods): written into the prepared form as literals,
#: so that each run sends and parses only the others.
DAILY = (
    "minimum",
    "maximum",
    "limit",
    "day_from",
    "week_from",
    "month_from",
    "day_start",
    "day_end",
    "week_start",
    "month_start",
    "usage_cap",
)


class PreparedForm(NamedTuple):
    #: The prefix of every form of the statement, whatever its daily values.
    family: str
    name: str
    prepare: str
    execute: str
    arguments: tuple[str, ...]


def _prepared_form(connection: Any, statement: str, params: dict[str, Any]) -> PreparedForm:
    """The statement's prepared form for today's :data:`DAILY` values (the last one kept)."""
    daily = tuple(params[key] for key in DAILY)
    found = _FORMS.get((connection.alias, statement))
    if found is not None and found[0] == daily:
        return found[1]
    positions: dict[str, str] = {}
    arguments = []
    for key, kind in PARAMETERS:
        if key in DAILY:
            # Quoted by the driver, as any argument would be.
            positions[key] = "%s::%s" % (connection.ops.compose_sql("%s", [params[key]]), kind)
        else:
            arguments.append(key)
            positions[key] = "$%d::%s" % (len(arguments), kind)
    text = statement % positions
    family = statements.name(statement, "accounts_transfer") + "_"
    name = family + hashlib.sha256(text.encode()).hexdigest()[:12]
    types = ", ".join(kind for key, kind in PARAMETERS if key not in DAILY)
    form = PreparedForm(
        family=family,
        name=name,
        prepare="PREPARE %s(%s) AS %s" % (name, types, text),
        execute="EXECUTE %s(%s)" % (name, ", ".join(["%s"] * len(arguments))),
        arguments=tuple(arguments),
    )
    _FORMS[(connection.alias, statement)] = (daily, form)
    return form


#: The last prepared form of each statement, by database alias.
_FORMS: dict[tuple[str, str], tuple[tuple[Any, ...], PreparedForm]] = {}


def _typed(statement: str) -> str:
    """The statement with each parameter cast to its type (``%(key)s::numeric``)."""
    return statement % {key: "%%(%s)s::%s" % (key, kind) for key, kind in PARAMETERS}


def _explain(
    src: Account,
    dst: Account,
    value: Decimal,
    currency: str | None,
    now: Any,
    allow_partial: bool,
    lapsed_total: Decimal | None,
    spending_limits: limits.Limits,
    usage: dict[str, Decimal],
) -> None:
    """Raise the exception of the rule the statement found refusing, with its context."""
    if lapsed_total:
        src.__dict__["held"] = posting.amount(src, "held") - lapsed_total
    if limits.tracked(src):
        # What the source spent in the current periods, as the statement
        # counted it (lapsed holds gave theirs back).
        first = limits.starts(now)
        for period, (amount_column, from_column) in limits.COLUMNS.items():
            src.__dict__[amount_column] = usage[period]
            src.__dict__[from_column] = first[period]
    rules.decide_transfer(
        src,
        dst,
        value,
        currency,
        now,
        allow_partial=allow_partial,
        spending_limits=spending_limits,
    )
    raise RuntimeError(
        "The ledger's SQL rules refused a transfer that its Python rules allow: they must "
        "be kept the same (accounts.rules, accounts.pg_transfer)."
    )
