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


def statement(connection: Any) -> str:
    """The statement, built once per database and set of currencies."""
    places = tuple((code, amounts.currency_places(code)) for code in conf.CURRENCIES)
    key = (connection.alias, "pg transfer", places)
    return cached(key, lambda: _build(connection, places))


def _build(connection: Any, places: tuple[tuple[str, int], ...]) -> str:
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
    decimal_places = "CASE s.currency %s END" % " ".join(
        "WHEN '%s' THEN %d" % (code, count) for code, count in places
    )
    value = "%(value)s::numeric"
    # What the funds allow, then what the spending limits allow of that.
    funded = (
        f"CASE WHEN s.credit_limit IS NULL OR {value} <= f.available "
        f"THEN {value} ELSE f.available END"
    )
    moved = (
        f"CASE WHEN sp.available IS NULL OR {funded} <= sp.available "
        f"THEN {funded} ELSE sp.available END"
    )
    # The spending usage: what each current period has used (after lapsed
    # holds gave theirs back), what each limit still allows, the new usage.
    used_columns = ",\n           ".join(
        f"greatest(CASE WHEN s.spent_{p}_from = %({p}_from)s::date THEN s.spent_{p} ELSE 0 END"
        " - coalesce((SELECT sum(amount) FROM lapsing"
        f" WHERE created >= %({p}_start)s::timestamptz), 0), 0) AS {p}_used"
        for p in limits.PERIODS
    )
    limit_columns = ",\n           ".join(
        "%s AS %s_limit" % (column, p)
        for column, p in zip(sql.limit_columns(connection, "s"), limits.PERIODS, strict=True)
    )
    left = ", ".join(
        f"CASE WHEN lim.{p}_limit IS NOT NULL THEN "
        f"greatest(trunc(lim.{p}_limit - u.{p}_used, {decimal_places}), 0) END"
        for p in limits.PERIODS
    )
    counts = "s.role IS NULL AND d.role IS DISTINCT FROM 'expired'"
    usage_sets = ",\n        ".join(
        f"spent_{p} = CASE WHEN a.id <> s.id OR s.role IS NOT NULL THEN a.spent_{p} "
        f"WHEN {counts} THEN least(u.{p}_used + decision.moved, %(usage_cap)s::numeric) "
        f"WHEN s.spent_{p}_from = %({p}_from)s::date THEN u.{p}_used "
        f"ELSE a.spent_{p} END,\n        "
        f"spent_{p}_from = CASE WHEN a.id = s.id AND {counts} THEN %({p}_from)s::date "
        f"ELSE a.spent_{p}_from END"
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
        (
            FALLBACK,
            "c.now < %(day_start)s::timestamptz OR c.now >= %(day_end)s::timestamptz",
        ),
        # Bad input judged on the clock: effective no later than posted.
        (
            "effective",
            "%(effective_at)s::timestamptz IS NOT NULL AND %(effective_at)s::timestamptz > c.now",
        ),
        ("currency", "s.currency <> d.currency"),
        ("currency", "%(currency)s::text IS NOT NULL AND %(currency)s::text <> s.currency"),
        ("source", "s.status <> 'open'"),
        ("source", "s.start_date IS NOT NULL AND c.now < s.start_date"),
        ("source", "s.end_date IS NOT NULL AND c.now > s.end_date"),
        ("destination", "d.status <> 'open'"),
        ("destination", "d.start_date IS NOT NULL AND c.now < d.start_date"),
        ("destination", "d.end_date IS NOT NULL AND c.now > d.end_date"),
        (FALLBACK, "(%s) IS NULL" % decimal_places),
        ("places", "%s <> round(%s, %s)" % (value, value, decimal_places)),
        (
            "funds",
            f"s.credit_limit IS NOT NULL AND {value} > f.available "
            "AND NOT (%(partial)s::boolean AND f.available > 0)",
        ),
        (
            "spending",
            f"sp.available IS NOT NULL AND {funded} > sp.available "
            "AND NOT (%(partial)s::boolean AND sp.available > 0)",
        ),
        (
            "minimum",
            "s.role = 'source' AND %%(minimum)s::numeric IS NOT NULL "
            "AND %s < %%(minimum)s::numeric" % moved,
        ),
        (
            "maximum",
            "s.role = 'source' AND %%(maximum)s::numeric IS NOT NULL "
            "AND d.balance + %s > %%(maximum)s::numeric" % moved,
        ),
        (
            "storable",
            f"abs(s.balance - {moved}) >= %(limit)s::numeric "
            f"OR abs(d.balance + {moved}) >= %(limit)s::numeric",
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
c AS MATERIALIZED (
    SELECT coalesce(%(travelled)s::timestamptz, max(t)) AS now
    FROM (SELECT clock_timestamp() AS t FROM locked) AS times
),
s AS (SELECT * FROM locked WHERE id = %(source)s),
d AS (SELECT * FROM locked WHERE id = %(destination)s),
lim AS MATERIALIZED (
    SELECT {limit_columns}
    FROM s
),
lapsing AS MATERIALIZED (
    SELECT h.id, h.amount, h.created FROM {hold} h, s, c, lim
    WHERE h.source_id = s.id AND h.status = 'active' AND h.expires_at <= c.now
      AND (s.credit_limit IS NOT NULL OR lim.day_limit IS NOT NULL
           OR lim.week_limit IS NOT NULL OR lim.month_limit IS NOT NULL)
      AND s.held <> 0
    FOR UPDATE OF h
),
u AS MATERIALIZED (
    SELECT {used_columns}
    FROM s
),
sp AS MATERIALIZED (
    SELECT CASE WHEN {counts} THEN least({left}) END AS available FROM s, d, lim, u
),
f AS MATERIALIZED (
    SELECT coalesce((SELECT sum(amount) FROM lapsing), 0) AS lapsed,
           s.balance + s.credit_limit - s.held
             + coalesce((SELECT sum(amount) FROM lapsing), 0) AS available
    FROM s
),
decision AS MATERIALIZED (
    SELECT {decision} AS refused, {moved} AS moved FROM s, d, c, f, sp
),
new_transfer AS (
    INSERT INTO {qn(Transfer._meta.db_table)} ({transfer_columns})
    SELECT %(reference)s, s.id, d.id, s.currency, decision.moved, %(merchant_reference)s,
           %(description)s, %(user)s, %(username)s, %(key)s, %(fingerprint)s, c.now,
           coalesce(%(effective_at)s::timestamptz, c.now), %(metadata)s::jsonb
    FROM s, d, c, decision WHERE decision.refused IS NULL
    ON CONFLICT DO NOTHING
    RETURNING id
),
new_legs AS (
    INSERT INTO {qn(Transaction._meta.db_table)} ({leg_columns})
    SELECT t.id, s.id, s.currency, -decision.moved, s.balance - decision.moved, c.now
      FROM new_transfer t, s, c, decision
    UNION ALL
    SELECT t.id, d.id, s.currency, decision.moved, d.balance + decision.moved, c.now
      FROM new_transfer t, s, d, c, decision
),
lapsed AS (
    UPDATE {hold} h SET status = 'expired', resolved_at = c.now, resolved_by = ''
    FROM new_transfer t, c WHERE h.id IN (SELECT id FROM lapsing)
    RETURNING h.id
),
balances AS (
    UPDATE {account} a
    SET balance = CASE WHEN a.id = s.id THEN s.balance - decision.moved
                       ELSE d.balance + decision.moved END,
        held = CASE WHEN a.id = s.id THEN s.held - f.lapsed ELSE a.held END,
        {usage_sets}
    FROM new_transfer t, s, d, f, u, decision
    WHERE a.id IN (s.id, d.id)
)
SELECT locked.*, c.now, decision.refused, decision.moved,
       (SELECT id FROM new_transfer), (SELECT array_agg(id) FROM lapsed), f.lapsed,
       lim.day_limit, lim.week_limit, lim.month_limit, u.day_used, u.week_used, u.month_used
FROM locked CROSS JOIN c LEFT JOIN decision ON true LEFT JOIN f ON true
     LEFT JOIN lim ON true LEFT JOIN u ON true
"""


def _column(model: Any, name: str) -> str:
    column: str = model._meta.get_field(name).column
    return column
