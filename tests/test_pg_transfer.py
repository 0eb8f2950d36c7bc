"""
PostgreSQL's one-statement transfer takes the decisions of the generic locked path.

The rules of a transfer exist twice on PostgreSQL: in Python
(``accounts.rules.decide_transfer``, which every backend runs) and as the SQL
of the one statement (``accounts.pg_transfer``). Here random accounts, holds,
settings and amounts meet both paths, each in a savepoint rolled back
afterwards, and must give the same outcome: the same exception with the same
message, or the same amount moved and the same rows written.
"""

import datetime
import os
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from accounts import amounts, facade, limits, pg_transfer, pg_transfer_sql
from accounts.exceptions import AccountException, InsufficientFunds, SpendingLimitExceeded
from accounts.limits import USAGE_COLUMNS
from accounts.models import Account, Hold, SpendingLimit, Transaction, Transfer
from accounts.sql import prepared

from .utils import ledger_time, statement_verbs

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one statement"),
]

NOW = timezone.now()
WHEN = st.sampled_from(
    [None] * 8 + [NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=1)]
)
MONEY = st.decimals(min_value=Decimal("-500"), max_value=Decimal("500"), places=2)


def side():
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from(["open"] * 8 + ["frozen", "closed"]),
            "currency": st.sampled_from(["GBP"] * 12 + ["EUR", "JPY"]),
            "start_date": WHEN,
            "end_date": WHEN,
            "balance": MONEY,
            "credit_limit": st.one_of(st.none(), st.sampled_from([Decimal(0), Decimal("100")])),
            "active_hold": st.sampled_from([None, Decimal("5"), Decimal("50")]),
            "lapsed_hold": st.sampled_from([None, Decimal("7"), Decimal("70")]),
            "role": st.sampled_from([None, None, None, "source"]),
            # Spending limits, and what was spent in the current periods
            # (or in past ones: a stored amount of an earlier day counts as zero).
            "day_limit": st.sampled_from([None, None, Decimal(0), Decimal("20"), Decimal("120")]),
            "month_limit": st.sampled_from([None, None, Decimal("60"), Decimal("300.5")]),
            "spent": st.sampled_from([Decimal(0), Decimal("15"), Decimal("55.55")]),
            "spent_when": st.sampled_from(["now", "now", "yesterday", "last month"]),
            "to_expired": st.sampled_from([False] * 9 + [True]),
        }
    )


def starts(when):
    moment = {
        "now": NOW,
        "yesterday": NOW - datetime.timedelta(days=1),
        "last month": NOW - datetime.timedelta(days=40),
    }[when]
    return limits.starts(moment)


def account(state, shop, *, may_be_source=True):
    """An account in ``state``, written around the facade (the rules must cope with anything).

    ``role`` "source" takes the core source account of the currency instead.
    """
    if state["role"] == "source" and may_be_source:
        created = Account.objects.source_account(state["currency"])
    else:
        created = Account.objects.create(currency=state["currency"])
    with connection.cursor() as cursor:
        held = sum(h for h in (state["active_hold"], state["lapsed_hold"]) if h) or Decimal(0)
        cursor.execute(
            "UPDATE accounts_account SET status = %s, start_date = %s, end_date = %s, "
            "balance = %s, held = %s, credit_limit = %s WHERE id = %s",
            [
                state["status"],
                state["start_date"],
                state["end_date"],
                state["balance"],
                held,
                state["credit_limit"],
                created.pk,
            ],
        )
        for amount, expires in (
            (state["active_hold"], None),
            (state["lapsed_hold"], NOW - datetime.timedelta(hours=1)),
        ):
            if amount:
                cursor.execute(
                    "INSERT INTO accounts_hold (reference, source_id, destination_id, currency, "
                    "amount, status, expires_at, description, username, resolved_by, created, "
                    "effective_at, metadata) "
                    "VALUES (%s, %s, %s, %s, %s, 'active', %s, '', '', '', %s, %s, '{}')",
                    [
                        "H%d%s" % (created.pk, amount),
                        created.pk,
                        shop.pk,
                        state["currency"],
                        amount,
                        expires,
                        NOW - datetime.timedelta(days=2),
                        NOW - datetime.timedelta(days=2),
                    ],
                )
        first = starts(state["spent_when"])
        cursor.execute(
            "UPDATE accounts_account SET spent_day = %s, spent_day_from = %s, "
            "spent_week = %s, spent_week_from = %s, spent_month = %s, spent_month_from = %s "
            "WHERE id = %s",
            [
                state["spent"],
                first["day"],
                state["spent"] * 2,
                first["week"],
                state["spent"] * 3,
                first["month"],
                created.pk,
            ],
        )
    if created.role is None:
        for period in ("day", "month"):
            amount = state["%s_limit" % period]
            if amount is not None:
                if created.currency == "JPY":
                    amount = amount.to_integral_value()
                SpendingLimit.objects.create(account=created, period=period, amount=amount)
    return created


def outcome(call):
    """What a transfer does, then rolled back: its refusal, or the rows it writes."""
    with transaction.atomic():
        try:
            posted = call()
        except AccountException as exc:
            found = ("refused", type(exc).__name__, str(exc))
        else:
            found = (
                "posted",
                posted.amount,
                sorted(Account.objects.values_list("pk", "balance", "held", *USAGE_COLUMNS)),
                sorted(Hold.objects.values_list("reference", "status")),
                sorted(
                    Transaction.objects.filter(transfer=posted.pk).values_list(
                        "account", "amount", "balance_after"
                    )
                ),
                # What the statement wrote besides the money: the instance
                # returned and the row stored agree.
                (posted.effective_at, posted.metadata),
                Transfer.objects.filter(pk=posted.pk)
                .values_list("effective_at", "metadata")
                .get(),
            )
        transaction.set_rollback(True)
    return found


def generic(call):
    with mock.patch.object(pg_transfer, "post", return_value=None):
        return outcome(call)


@settings(
    max_examples=int(os.environ.get("ACCOUNTS_HYPOTHESIS_EXAMPLES", 60)) * 3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    source=side(),
    destination=side(),
    cents=st.one_of(st.integers(min_value=1, max_value=30000), st.sampled_from([1, 500, 5000])),
    places=st.sampled_from([2, 2, 3]),
    money=st.sampled_from([None] * 6 + ["GBP", "EUR"]),
    partial=st.booleans(),
    bounds=st.sampled_from([(None, None), (Decimal("10"), Decimal("400"))]),
    metadata=st.sampled_from([None, {}, {"mcc": "5411", "city": "Leeds", "n": [1, 2.5, None]}]),
    effective=st.sampled_from([None, None, "now", "earlier", "later"]),
)
def test_both_paths_decide_the_same(
    source, destination, cents, places, money, partial, bounds, metadata, effective
):
    shop = Account.objects.sales_account()
    # Both paths read the same clock: effective_at is judged against it, and
    # a refusal's message names it.
    clock = timezone.now()
    effective_at = {
        None: None,
        "now": clock,
        "earlier": clock - datetime.timedelta(days=1, microseconds=1),
        "later": clock + datetime.timedelta(microseconds=1),
    }[effective]
    with transaction.atomic():
        src, dst = account(source, shop), account(destination, shop, may_be_source=False)
        if destination["to_expired"]:
            dst = Account.objects.expired_account(destination["currency"])
        amount = Decimal(cents).scaleb(-places)
        value = amount if money is None else amounts.money(amount, money)
        minimum, maximum = bounds

        def call():
            return facade.transfer(
                src.pk,
                dst.pk,
                value,
                allow_partial=partial,
                metadata=metadata,
                effective_at=effective_at,
            )

        with (
            override_settings(
                ACCOUNTS_MIN_INITIAL_VALUE=minimum, ACCOUNTS_MAX_INITIAL_VALUE=maximum
            ),
            ledger_time(clock),
        ):
            found = outcome(call)
            event(found[0] if found[0] == "posted" else found[1])
            assert found == generic(call)
        transaction.set_rollback(True)


def test_a_refusal_writes_nothing_and_raises_what_the_generic_path_raises(fund):
    wallet = Account.objects.create(credit_limit=Decimal("0"))
    fund(wallet, "5.00")
    shop = Account.objects.sales_account()
    before = (Transfer.objects.count(), sorted(Account.objects.values_list("pk", "balance")))
    with pytest.raises(InsufficientFunds, match="only £5.00 is available"):
        facade.transfer(wallet, shop, Decimal("5.01"))
    assert (Transfer.objects.count(), sorted(Account.objects.values_list("pk", "balance"))) == (
        before
    )


def test_rules_that_disagree_are_a_loud_error_and_write_nothing(fund):
    wallet = Account.objects.create(credit_limit=Decimal("0"))
    fund(wallet, "5.00")
    shop = Account.objects.sales_account()
    before = Transfer.objects.count()
    # The Python rules allow what the statement refused: say so, never guess.
    with mock.patch.object(pg_transfer.rules, "decide_transfer", return_value=Decimal("6")):
        with pytest.raises(RuntimeError, match="SQL rules refused a transfer"):
            facade.transfer(wallet, shop, Decimal("6.00"))
    assert Transfer.objects.count() == before


SERVER_SIDE_BINDING = bool(connection.settings_dict["OPTIONS"].get("server_side_binding"))


@pytest.mark.skipif(SERVER_SIDE_BINDING, reason="with server-side binding psycopg prepares it")
@pytest.mark.django_db(transaction=True)
def test_the_statement_is_prepared_once_per_connection_and_again_when_lost(fund):
    wallet, shop = Account.objects.create(), Account.objects.create()
    fund(wallet, "10.00")
    facade.transfer(wallet, shop, Decimal("1.00"))
    assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == ["EXECUTE"]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    # Refused by the server, then run unprepared; prepared again next time.
    assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == [
        "EXECUTE",
        "WITH",
    ]
    assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == [
        "PREPARE",
        "EXECUTE",
    ]
    assert Account.objects.get(pk=shop.pk).balance.amount == Decimal("4.00")


@pytest.mark.skipif(SERVER_SIDE_BINDING, reason="with server-side binding psycopg prepares it")
@pytest.mark.django_db(transaction=True)
def test_each_day_prepares_its_own_form_and_lets_the_last_one_go(fund):
    wallet, shop = Account.objects.create(), Account.objects.create()
    fund(wallet, "10.00")

    # The forms of the common statement, whatever their day.
    family = prepared.name(pg_transfer_sql.statement(connection), "accounts_transfer") + "_"

    def ours_prepared():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT name FROM pg_prepared_statements WHERE name LIKE %s", [family + "%"]
            )
            return {row[0] for row in cursor.fetchall()}

    facade.transfer(wallet, shop, Decimal("1.00"))
    today = ours_prepared()
    assert len(today) == 1
    # The day's spending periods are written into the prepared form: the
    # next day has a form of its own, and the last one is deallocated.
    with ledger_time(timezone.now() + datetime.timedelta(days=1)):
        assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == [
            "DEALLOCATE",
            "PREPARE",
            "EXECUTE",
        ]
        tomorrow = ours_prepared()
        assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == [
            "EXECUTE"
        ]
    assert len(tomorrow) == 1 and tomorrow != today
    wallet.refresh_from_db()
    assert wallet.balance.amount == Decimal("7.00")
    # Each day's form judges by its own day: the next day's usage of a daily
    # spending limit starts from nothing.
    limited = Account.objects.create()
    fund(limited, "10.00")
    SpendingLimit.objects.create(account=limited, period="day", amount=Decimal("3.00"))
    facade.transfer(limited, shop, Decimal("3.00"))
    with pytest.raises(SpendingLimitExceeded, match="daily spending limit is £3.00"):
        facade.transfer(limited, shop, Decimal("0.01"))
    with ledger_time(timezone.now() + datetime.timedelta(days=1)):
        facade.transfer(limited, shop, Decimal("3.00"))
    limited.refresh_from_db()
    assert limited.balance.amount == Decimal("4.00")


@pytest.mark.skipif(SERVER_SIDE_BINDING, reason="with server-side binding psycopg prepares it")
@pytest.mark.django_db(transaction=True)
def test_only_a_source_with_holds_to_lapse_pays_for_the_full_statement(fund):
    wallet = Account.objects.create(credit_limit=Decimal("0"))
    shop = Account.objects.create()
    fund(wallet, "10.00")
    now = timezone.now()
    lapsing = facade.hold(
        wallet, shop, Decimal("6.00"), expires_at=now + datetime.timedelta(minutes=5)
    )
    facade.hold(wallet, shop, Decimal("1.00"), expires_at=now + datetime.timedelta(days=1))

    def executed(call):
        """The prepared statements ``call`` runs, by name less the day's part."""
        with CaptureQueriesContext(connection) as queries:
            call()
        return [
            q["sql"].split("(")[0].split()[1].rsplit("_", 1)[0]
            for q in queries
            if q["sql"].startswith("EXEC")
        ]

    # Money held, none of it lapsing yet: the common statement alone.
    facade.transfer(wallet, shop, Decimal("1.00"))
    common = executed(lambda: facade.transfer(wallet, shop, Decimal("1.00")))
    assert len(common) == 1
    with pytest.raises(InsufficientFunds, match="only £1.00 is available"):
        facade.transfer(wallet, shop, Decimal("1.01"))
    # Past the first hold's expiry the common statement hands over to the
    # full one, which lapses the hold and uses what it gave back.
    with ledger_time(now + datetime.timedelta(minutes=10)):
        both = executed(lambda: facade.transfer(wallet, shop, Decimal("7.00")))
    assert both[0] == common[0] and len(both) == 2 and both[1] != common[0]
    lapsing.refresh_from_db()
    wallet.refresh_from_db()
    assert (lapsing.status, wallet.balance.amount, wallet.held.amount) == (
        "expired",
        Decimal("1.00"),
        Decimal("1.00"),
    )
    # Nothing left to lapse: the common statement alone again.
    fund(wallet, "1.00")
    assert len(executed(lambda: facade.transfer(wallet, shop, Decimal("0.50")))) == 1


@pytest.mark.skipif(
    not SERVER_SIDE_BINDING,
    reason="server-side binding: the run with ACCOUNTS_TEST_PG_PREPARED=1 (make test-newest)",
)
@pytest.mark.django_db(transaction=True)
def test_with_server_side_binding_psycopg_prepares_it_and_a_rollback_loses_nothing(fund):
    wallet, shop = Account.objects.create(), Account.objects.create()
    fund(wallet, "20.00")

    def ours_prepared():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_prepared_statements"
                " WHERE NOT from_sql AND statement LIKE %s",
                ["%WITH locked AS MATERIALIZED%"],
            )
            return cursor.fetchone()[0]

    # No key, no user, no limits: NULL arguments, each typed in the statement.
    for _ in range(6):
        assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == ["WITH"]
    assert ours_prepared() == 1  # by psycopg, after prepare_threshold runs
    with pytest.raises(InsufficientFunds, match="cannot be debited"):
        with transaction.atomic():
            facade.transfer(wallet, shop, Decimal("1.00"))
            facade.transfer(wallet, shop, Decimal("100.00"))
    # psycopg deallocated its statements at the ROLLBACK: nothing fails for it.
    assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == ["WITH"]
    assert Account.objects.get(pk=shop.pk).balance.amount == Decimal("7.00")


@override_settings(ACCOUNTS_PREPARE_STATEMENTS=False)
def test_statements_are_not_prepared_when_the_setting_says_so(fund):
    wallet, shop = Account.objects.create(), Account.objects.create()
    fund(wallet, "10.00")
    assert statement_verbs(lambda: facade.transfer(wallet, shop, Decimal("1.00"))) == ["WITH"]
    assert Account.objects.get(pk=shop.pk).balance.amount == Decimal("1.00")
