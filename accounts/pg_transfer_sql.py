"""
The SQL of the one-statement transfer on PostgreSQL (``accounts.pg_transfer``).

One statement locks the two accounts, reads the clock, judges the rules of
``accounts.rules.decide_transfer`` in the same order and writes, or writes
nothing and names the first rule that refused. Built once per database and
set of currencies; its parameters are :data:`PARAMETERS`.
"""

from __future__ import annotations

from typing import Any

from . import amounts, limits, sql
from .conf import conf
from .models import Account, Hold, Transaction, Transfer
from .sql.base import cached

#: Why the statement wrote nothing, besides the rules: hand over to the generic path.
KEY, FALLBACK = "key", "fallback"
#: Why the common statement wrote nothing: the source has holds to lapse first,
#: which only the full statement does.
LAPSING = "lapsing"


#: The parameters of the statement, in the order of its prepared form, with their types.
PARAMETERS = [
    ("source", "bigint"),
    ("destination", "bigint"),
    ("value", "numeric"),
    ("currency", "text"),
    ("partial", "boolean"),
    ("minimum", "numeric"),
    ("maximum", "numeric"),
    ("limit", "numeric"),
    ("reference", "text"),
    ("merchant_reference", "text"),
    ("description", "text"),
    ("user", "bigint"),
    ("username", "text"),
    ("key", "text"),
    ("fingerprint", "text"),
    ("metadata", "jsonb"),
    ("effective_at", "timestamptz"),
    ("travelled", "timestamptz"),
    ("day_from", "date"),
    ("week_from", "date"),
    ("month_from", "date"),
    ("day_start", "timestamptz"),
    ("day_end", "timestamptz"),
    ("week_start", "timestamptz"),
    ("month_start", "timestamptz"),
    ("usage_cap", "numeric"),
]


#: What the statement answers, after the locked accounts' columns: one row,
#: its account columns empty, when no rule refused; a row per locked account
#: when one did (Python explains the refusal on them); none when an account
#: is missing.
ANSWER = (
    "now",
    "refused",
    "moved",
    "transfer",
    "lapsed_holds",
    "lapsed",
    # The source's spending limits, and what each period has used (after
    # lapsed holds gave theirs back): in accounts.limits.PERIODS order.
    "day_limit",
    "week_limit",
    "month_limit",
    "day_used",
    "week_used",
    "month_used",
    # What the writes changed, as the accounts were locked.
    "s_currency",
    "s_balance",
    "s_held",
    "s_role",
    "d_balance",
    "d_role",
    "s_spent_day_from",
    "s_spent_week_from",
    "s_spent_month_from",
)


def statement(connection: Any, *, lapse: bool = False) -> str:
    """The statement, built once per database and set of currencies.

    The common statement (``lapse=False``) does not lapse expired holds: when
    the source has some that matter to the rules, it writes nothing and says
    :data:`LAPSING`, and the full statement (``lapse=True``) runs instead.
    """
    currencies = conf.CURRENCIES
    return cached(
        (connection.alias, "pg transfer", currencies, lapse),
        lambda: _build(
            connection,
            tuple((code, amounts.currency_places(code)) for code in currencies),
            lapse=lapse,
        ),
    )


def _build(connection: Any, places: tuple[tuple[str, int], ...], *, lapse: bool) -> str:
    """The statement's text: a chain of one-row steps, then the writes.

    Each step reads only the one before it (no joins of one-row CTEs: each
    join is a node PostgreSQL sets up at every run), and each value the
    rules need is worked out once, in the step that names it:

    * ``locked``: the two accounts, locked in id order;
    * ``v0``: the two accounts' columns the rules read (``s_...``, ``d_...``),
      the source's spending limits, the currency's places, and the clock
      (``accounts.clock``), read as v0's one row is formed: from a row of
      each account, so once both locks are granted;
    * ``lapsing`` (full statement only): the holds to lapse;
    * ``v1``: what each spending period has used, what the funds allow;
    * ``v2``: what the credit limit lets move (``funded``), what the
      spending limits let move (``spendable``);
    * ``v3``: what moves; ``decision``: the first rule that refuses.
    """
    qn = connection.ops.quote_name
    account = qn(Account._meta.db_table)
    hold = qn(Hold._meta.db_table)
    transfer_columns = ", ".join(
        qn(_column(Transfer, name))
        for name in (
            "reference",
            "source",
            "destination",
            "currency",
            "amount",
            "merchant_reference",
            "description",
            "user",
            "username",
            "idempotency_key",
            "request_fingerprint",
            "created",
            "effective_at",
            "metadata",
        )
    )
    leg_columns = ", ".join(
        qn(_column(Transaction, name))
        for name in ("transfer", "account", "currency", "amount", "balance_after", "created")
    )
    # The columns of the two accounts the rules read, as v0 names them.
    source_columns = {
        "id": "s_id",
        "currency": "s_currency",
        "role": "s_role",
        "status": "s_status",
        "start_date": "s_start",
        "end_date": "s_end",
        "balance": "s_balance",
        "held": "s_held",
        "credit_limit": "s_credit",
        **{column: "s_" + column for pair in limits.COLUMNS.values() for column in pair},
    }
    destination_columns = {
        "id": "d_id",
        "currency": "d_currency",
        "role": "d_role",
        "status": "d_status",
        "start_date": "d_start",
        "end_date": "d_end",
        "balance": "d_balance",
    }
    account_values = ",\n           ".join(
        [f"s.{qn(column)} AS {name}" for column, name in source_columns.items()]
        + [f"d.{qn(column)} AS {name}" for column, name in destination_columns.items()]
    )
    limit_columns = ",\n           ".join(
        "%s AS %s_limit" % (column, p)
        for column, p in zip(sql.limit_columns(connection, "s"), limits.PERIODS, strict=True)
    )
    decimal_places = "CASE s.currency %s END" % " ".join(
        "WHEN '%s' THEN %d" % (code, count) for code, count in places
    )
    value = "%(value)s::numeric"
    # Whether lapsing holds matter: only to a source with a credit limit or
    # a spending limit, and only while it holds money.
    limited = (
        "{v}s_held <> 0 AND ({v}s_credit IS NOT NULL OR {v}day_limit IS NOT NULL "
        "OR {v}week_limit IS NOT NULL OR {v}month_limit IS NOT NULL)"
    )
    if lapse:
        lapsing = f"""lapsing AS MATERIALIZED (
    SELECT h.id, h.amount, h.created FROM {hold} h, v0
    WHERE h.source_id = v0.s_id AND h.status = 'active' AND h.expires_at <= v0.now
      AND {limited.format(v="v0.")}
    FOR UPDATE OF h
),
"""
        lapsed = f"""lapsed AS (
    UPDATE {hold} h SET status = 'expired', resolved_at = x.now, resolved_by = ''
    FROM new_transfer t, decision x WHERE h.id IN (SELECT id FROM lapsing)
    RETURNING h.id
),
"""
        lapsed_total = "coalesce((SELECT sum(amount) FROM lapsing), 0)"
        lapsed_ids = "(SELECT array_agg(id) FROM lapsed)"
    else:
        lapsing = lapsed = ""
        lapsed_total, lapsed_ids = "0", "NULL::bigint[]"
    # The spending usage: what each current period has used (after lapsed
    # holds gave theirs back).
    current = "CASE WHEN s_spent_{p}_from = %({p}_from)s::date THEN s_spent_{p} ELSE 0 END"
    used_columns = ",\n           ".join(
        (
            f"greatest({current.format(p=p)}"
            " - coalesce((SELECT sum(amount) FROM lapsing"
            f" WHERE created >= %({p}_start)s::timestamptz), 0), 0) AS {p}_used"
            if lapse
            else f"{current.format(p=p)} AS {p}_used"
        )
        for p in limits.PERIODS
    )
    # What each spending limit still allows.
    left = ", ".join(
        f"CASE WHEN {p}_limit IS NOT NULL "
        f"THEN greatest(trunc({p}_limit - {p}_used, places), 0) END"
        for p in limits.PERIODS
    )
    counts = "{v}s_role IS NULL AND {v}d_role IS DISTINCT FROM 'expired'"
    usage_sets = ",\n        ".join(
        f"spent_{p} = CASE WHEN a.id <> x.s_id OR x.s_role IS NOT NULL THEN a.spent_{p} "
        f"WHEN {counts.format(v='x.')} THEN least(x.{p}_used + x.moved, %(usage_cap)s::numeric) "
        f"WHEN x.s_spent_{p}_from = %({p}_from)s::date THEN x.{p}_used "
        f"ELSE a.spent_{p} END,\n        "
        f"spent_{p}_from = CASE WHEN a.id = x.s_id AND {counts.format(v='x.')} "
        f"THEN %({p}_from)s::date ELSE a.spent_{p}_from END"
        for p in limits.PERIODS
    )
    # In the order of accounts.rules.decide_transfer; the first to refuse names itself.
    checks = [
        (
            KEY,
            "EXISTS (SELECT 1 FROM %s WHERE idempotency_key = %%(key)s::text)"
            % qn(Transfer._meta.db_table),
        ),  # fmt: skip
        # The spending periods given are not the database's time's.
        (FALLBACK, "now < %(day_start)s::timestamptz OR now >= %(day_end)s::timestamptz"),
        # Only the full statement lapses holds. Read without a lock: a hold
        # that the transaction this one waited for resolved may still look
        # active here (the full statement then runs, and reads it locked); one
        # it placed is out of sight of either statement's snapshot.
        *(
            []
            if lapse
            else [
                (
                    LAPSING,
                    f"{limited.format(v='')} AND EXISTS (SELECT 1 FROM {hold} h "
                    "WHERE h.source_id = s_id AND h.status = 'active' AND h.expires_at <= now)",
                )
            ]
        ),
        # Bad input judged on the clock: effective no later than posted.
        (
            "effective",
            "%(effective_at)s::timestamptz IS NOT NULL AND %(effective_at)s::timestamptz > now",
        ),
        ("currency", "s_currency <> d_currency"),
        ("currency", "%(currency)s::text IS NOT NULL AND %(currency)s::text <> s_currency"),
        ("source", "s_status <> 'open'"),
        ("source", "s_start IS NOT NULL AND now < s_start"),
        ("source", "s_end IS NOT NULL AND now > s_end"),
        ("destination", "d_status <> 'open'"),
        ("destination", "d_start IS NOT NULL AND now < d_start"),
        ("destination", "d_end IS NOT NULL AND now > d_end"),
        (FALLBACK, "places IS NULL"),
        ("places", f"{value} <> round({value}, places)"),
        (
            "funds",
            f"s_credit IS NOT NULL AND {value} > available "
            "AND NOT (%(partial)s::boolean AND available > 0)",
        ),
        (
            "spending",
            "spendable IS NOT NULL AND funded > spendable "
            "AND NOT (%(partial)s::boolean AND spendable > 0)",
        ),
        (
            "minimum",
            "s_role = 'source' AND %(minimum)s::numeric IS NOT NULL "
            "AND moved < %(minimum)s::numeric",
        ),
        (
            "maximum",
            "s_role = 'source' AND %(maximum)s::numeric IS NOT NULL "
            "AND d_balance + moved > %(maximum)s::numeric",
        ),
        (
            "storable",
            "abs(s_balance - moved) >= %(limit)s::numeric "
            "OR abs(d_balance + moved) >= %(limit)s::numeric",
        ),
    ]
    decision = "CASE %s END" % " ".join(
        "WHEN %s THEN '%s'" % (condition, code) for code, condition in checks
    )
    return f"""
WITH locked AS MATERIALIZED (
    SELECT {sql.account_columns(connection)} FROM {account}
    WHERE id IN (%(source)s, %(destination)s) ORDER BY id FOR UPDATE
),
v0 AS MATERIALIZED (
    SELECT {account_values},
           coalesce(%(travelled)s::timestamptz, clock_timestamp()) AS now,
           {decimal_places} AS places,
           {limit_columns}
    FROM locked s, locked d
    WHERE s.id = %(source)s AND d.id = %(destination)s
),
{lapsing}v1 AS MATERIALIZED (
    SELECT v0.*, {lapsed_total} AS lapsed,
           s_balance + s_credit - s_held + {lapsed_total} AS available,
           {used_columns}
    FROM v0
),
v2 AS MATERIALIZED (
    SELECT v1.*,
           CASE WHEN s_credit IS NULL OR {value} <= available THEN {value}
                ELSE available END AS funded,
           CASE WHEN {counts.format(v="")} THEN least({left}) END AS spendable
    FROM v1
),
v3 AS MATERIALIZED (
    SELECT v2.*,
           CASE WHEN spendable IS NULL OR funded <= spendable THEN funded
                ELSE spendable END AS moved
    FROM v2
),
decision AS MATERIALIZED (SELECT v3.*, {decision} AS refused FROM v3),
new_transfer AS (
    INSERT INTO {qn(Transfer._meta.db_table)} ({transfer_columns})
    SELECT %(reference)s, s_id, d_id, s_currency, moved, %(merchant_reference)s,
           %(description)s, %(user)s, %(username)s, %(key)s, %(fingerprint)s, now,
           coalesce(%(effective_at)s::timestamptz, now), %(metadata)s::jsonb
    FROM decision WHERE refused IS NULL
    ON CONFLICT DO NOTHING
    RETURNING id
),
new_legs AS (
    INSERT INTO {qn(Transaction._meta.db_table)} ({leg_columns})
    SELECT t.id, leg.account, x.s_currency, leg.amount, leg.after, x.now
    FROM new_transfer t, decision x,
         LATERAL (VALUES (x.s_id, -x.moved, x.s_balance - x.moved),
                         (x.d_id, x.moved, x.d_balance + x.moved)) AS leg(account, amount, after)
),
{lapsed}balances AS (
    UPDATE {account} a
    SET balance = CASE WHEN a.id = x.s_id THEN x.s_balance - x.moved
                       ELSE x.d_balance + x.moved END,
        held = CASE WHEN a.id = x.s_id THEN x.s_held - x.lapsed ELSE a.held END,
        {usage_sets}
    FROM new_transfer t, decision x
    WHERE a.id IN (%(source)s, %(destination)s)
)
SELECT locked.*, x.now, x.refused, x.moved, (SELECT id FROM new_transfer), {lapsed_ids},
       {", ".join("x." + name for name in ANSWER[5:])}
FROM decision x LEFT JOIN locked ON x.refused IS NOT NULL
"""


def _column(model: Any, name: str) -> str:
    column: str = model._meta.get_field(name).column
    return column
