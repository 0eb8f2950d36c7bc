"""
Read replicas: a real PostgreSQL streaming standby of the test server.

``tests/cluster/standby.py`` takes a base backup of the test server, starts
it as a hot standby for this module and removes it afterwards. The
``replica`` alias (a mirror of ``default`` in ``tests/settings.py``) is
pointed at it, and the router from the README sends every read there.

What decides (the facade, the sweeps, idempotency, core accounts) must read
and write the primary only, whatever the router says: a standby refuses
writes, so a leak would fail loudly, and these tests also count the queries
the replica receives. With the standby's replay paused, the replica is
stale on purpose: decisions must not notice, reads that only show do.

Runs in the PostgreSQL run of the suite; skipped, with the reason, where the
standby cannot start (a failure with ``CI=true``).
"""

from __future__ import annotations

import datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import InternalError, connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.urls import reverse
from django.utils import timezone

from accounts import collections, expiry, exports, facade, reports
from accounts.codes import generate_code
from accounts.collection_models import CollectionRun, Debt
from accounts.models import Account, AccountType, Hold, Transfer

from .cluster.harness import ReadsOnlyRouter, unavailable
from .cluster.standby import PostgresStandby
from .cluster.system import Unavailable
from .factories import AccountFactory, UserFactory
from .utils import assert_ledger_consistent, ledger_time, moment

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the replica tests run in the PostgreSQL run of the suite "
        "(ACCOUNTS_TEST_DB=postgresql)",
    ),
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]

README = Path(__file__).resolve().parent.parent / "README.rst"


def readme_router():
    """The router class the README tells users to copy, taken from the README itself."""
    lines = README.read_text(encoding="utf-8").splitlines()
    first = lines.index("    class PrimaryReplicaRouter:")
    assert lines[first - 2] == ".. code-block:: python"
    block = []
    for line in lines[first:]:
        if line and not line.startswith("    "):
            break
        block.append(line[4:])
    namespace: dict = {}
    exec(compile("\n".join(block), str(README), "exec"), namespace)  # noqa: S102
    return namespace["PrimaryReplicaRouter"]


@pytest.fixture(scope="module")
def standby():
    server = PostgresStandby()
    try:
        server.start()
    except Unavailable as exc:
        unavailable("A PostgreSQL standby", exc)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["readme router", "reads-only router"])
def router(request):
    return readme_router()() if request.param == "readme router" else ReadsOnlyRouter()


@pytest.fixture
def replica(standby, router):
    """``replica`` on the standby, reads routed there; the replay resumed at the end."""
    wrapper = connections["replica"]
    mirrored = wrapper.settings_dict
    wrapper.close()
    wrapper.settings_dict = {**mirrored, "HOST": "127.0.0.1", "PORT": str(standby.port)}
    try:
        with override_settings(DATABASE_ROUTERS=[router]):
            yield standby
    finally:
        standby.resume_replay()
        wrapper.close()
        wrapper.settings_dict = mirrored


class WritesToReplica:
    def db_for_write(self, model, **hints):
        return "replica"


def on_replica(statement, *params):
    with connections["replica"].cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchone()


# The standby ------------------------------------------------------------------------------


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_the_replica_is_a_hot_standby_of_the_test_database_and_refuses_writes(replica):
    account = AccountFactory(name="seen on the replica")
    replica.wait_for_replay()
    assert on_replica("SELECT pg_is_in_recovery(), current_database()") == (
        True,
        connection.settings_dict["NAME"],
    )
    assert Account.objects.using("replica").get(pk=account.pk).name == "seen on the replica"
    with pytest.raises(InternalError, match="read-only transaction"):
        Account.objects.using("replica").create(name="written to the replica")
    # So a facade that wrote through the replica would be caught: a router
    # that (wrongly) sends writes there makes every operation fail.
    with override_settings(DATABASE_ROUTERS=[WritesToReplica()]):
        with pytest.raises(InternalError, match="read-only transaction"):
            facade.transfer(Account.objects.source_account().pk, account.pk, Decimal("1.00"))


# What decides: the primary only ---------------------------------------------------------------


def test_every_decision_reads_and_writes_the_primary_while_the_replica_lags(replica, fund):
    soon = timezone.now() + datetime.timedelta(minutes=5)
    later = soon + datetime.timedelta(minutes=1)
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    debtor = AccountFactory(credit_limit=Decimal("50.00"))
    facade.transfer(debtor, shop, Decimal("20.00"))
    replica.wait_for_replay()
    replica.pause_replay()
    # Loaded through the router: from the replica, where Django would write it back.
    wallet = Account.objects.get(pk=wallet.pk)
    debtor = Account.objects.get(pk=debtor.pk)
    assert wallet._state.db == "replica"
    with CaptureQueriesContext(connections["replica"]) as on_the_replica:
        bank = Account.objects.source_account()
        ending = Account.objects.create(name="ends soon", end_date=soon, code=generate_code())
        facade.transfer(bank, ending, Decimal("7.00"))
        paid = facade.transfer(wallet, shop, Decimal("10.00"), idempotency_key="order-1")
        again = facade.transfer(wallet, shop, Decimal("10.00"), idempotency_key="order-1")
        partly = facade.transfer(wallet, shop, Decimal("500"), allow_partial=True)
        facade.reverse(paid, amount=Decimal("4.00"))
        captured = facade.hold(wallet, shop, Decimal("3.00"))
        facade.capture(captured, Decimal("2.00"))
        facade.release(facade.hold(shop, wallet, Decimal("1.00")))
        lapsing = facade.hold(shop, wallet, Decimal("1.00"), expires_at=soon)
        wallet.freeze()
        wallet.thaw()
        batch = facade.transfer_many(
            [
                facade.TransferRequest(wallet, shop, Decimal("1.00")),
                facade.TransferRequest(shop, debtor, Decimal("2.00")),
            ],
            idempotency_key="batch-1",
        )
        again_batch = facade.transfer_many(
            [
                facade.TransferRequest(wallet, shop, Decimal("1.00")),
                facade.TransferRequest(shop, debtor, Decimal("2.00")),
            ],
            idempotency_key="batch-1",
        )
        independent = facade.transfer_many(
            [
                facade.TransferRequest(wallet, shop, Decimal("900.00")),  # refused
                facade.TransferRequest(shop, debtor, Decimal("5.00")),
            ],
            atomic=False,
        )
        facade.reverse_batch(batch)
        repaid = facade.repay(shop, debtor, Decimal("50.00"), idempotency_key="repay-1")
        with ledger_time(later):  # the hold has lapsed, the account ended
            holds = expiry.release_expired_holds()
            accounts = expiry.close_expired_accounts()
    assert on_the_replica.captured_queries == []
    assert again.pk == paid.pk
    assert partly.amount.amount == Decimal("90.00")  # all that was left on the wallet
    assert again_batch.pk == batch.pk
    # The replay's transfers, read on the primary (the replica has none yet).
    assert [t.pk for t in again_batch.results] == [t.pk for t in batch.results]
    assert [type(r).__name__ for r in independent.results] == ["InsufficientFunds", "Transfer"]
    # The debt read under the lock on the primary (20.00 less the 5.00 of the
    # independent batch), not the 20.00 the replica shows.
    assert repaid.amount.amount == Decimal("15.00")
    assert (holds.expired, accounts.swept_accounts) == (1, 1)
    assert Hold.objects.using("default").get(pk=lapsing.pk).status == "expired"
    # The replica has seen none of it yet.
    assert not Transfer.objects.using("replica").filter(idempotency_key="order-1").exists()
    assert_ledger_consistent()
    replica.resume_replay()
    replica.wait_for_replay()
    assert sorted(Account.objects.using("replica").values_list("pk", "balance", "status")) == (
        sorted(Account.objects.using("default").values_list("pk", "balance", "status"))
    )


def test_every_collection_step_reads_and_writes_the_primary_while_the_replica_lags(replica):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    alice = AccountFactory(name="Alice", account_type=wallets, credit_limit=Decimal("200.00"))
    with ledger_time(moment(2026, 1, 5)):
        facade.transfer(alice, Account.objects.sales_account(), Decimal("50.00"))
    replica.wait_for_replay()
    replica.pause_replay()
    # Bob and his debt exist on the primary only: a step that read the
    # replica would leave him out of the run.
    bob = AccountFactory(name="Bob", account_type=wallets, credit_limit=Decimal("200.00"))
    with ledger_time(moment(2026, 1, 10)):
        facade.transfer(bob, Account.objects.sales_account(), Decimal("30.00"))
    with CaptureQueriesContext(connections["replica"]) as on_the_replica:
        run = collections.create_run(
            account_type=wallets,
            period_start=datetime.date(2026, 1, 1),
            period_end=datetime.date(2026, 1, 31),
            collect_on=datetime.date(2026, 2, 5),
        )
        collections.freeze(run)
        debts = {d.account_id: d for d in Debt.objects.using("default").filter(run=run)}
        assert collections.initiate(debts[alice.pk]) is True
        report = collections.run_collection(run)  # initiates Bob's
        collections.settle(debts[alice.pk], Decimal("50.00"), reference="SETTLED-1")
        collections.fail(debts[bob.pk], "R01 insufficient funds")
    assert on_the_replica.captured_queries == []
    assert report.initiated == 1
    assert {pk: d.amount.amount for pk, d in debts.items()} == {
        alice.pk: Decimal("50.00"),
        bob.pk: Decimal("30.00"),
    }
    stored = CollectionRun.objects.using("default").get(pk=run.pk)
    assert (stored.total_recovered.amount, stored.total_failed.amount) == (
        Decimal("50.00"),
        Decimal("30.00"),
    )
    assert not CollectionRun.objects.using("replica").filter(pk=run.pk).exists()
    assert_ledger_consistent()


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_a_lagging_replica_cannot_leave_a_currency_without_a_collection_run(replica):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    AccountFactory(name="Pound wallet", account_type=wallets, credit_limit=Decimal("90.00"))
    replica.wait_for_replay()
    replica.pause_replay()
    # The first euro account of the scope, on the primary only.
    AccountFactory(
        name="Euro wallet", account_type=wallets, currency="EUR", credit_limit=Decimal("90.00")
    )
    call_command(
        "create_collection_run", "--period", "2026-01", "--type", "wallets", stdout=StringIO()
    )
    runs = CollectionRun.objects.using("default").filter(account_type=wallets)
    assert sorted(runs.values_list("currency", flat=True)) == ["EUR", "GBP"]


# What only shows: the router, and it may lag -----------------------------------------------------


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_balance_at_and_statements_follow_the_router_and_lag_with_the_replica(replica, fund):
    account = AccountFactory()
    fund(account, "10.00")
    replica.wait_for_replay()
    replica.pause_replay()
    fund(account, "5.00")  # committed on the primary, not yet replayed
    now = timezone.now()
    with CaptureQueriesContext(connections["default"]) as on_the_primary:
        stale_balance = account.balance_at(now)
        stale_statement = account.statement()
        stale_rows = list(stale_statement)
    assert on_the_primary.captured_queries == []
    assert stale_balance.amount == Decimal("10.00")
    assert stale_statement.closing_balance.amount == Decimal("10.00")
    assert len(stale_rows) == 1
    # using= reads where it says: the primary has it all.
    assert account.balance_at(now, using="default").amount == Decimal("15.00")
    assert len(list(account.statement(using="default"))) == 2
    replica.resume_replay()
    replica.wait_for_replay()
    assert account.balance_at(now).amount == Decimal("15.00")
    assert account.statement().closing_balance.amount == Decimal("15.00")


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_admin_lists_statements_and_the_balance_check_read_the_replica(replica, fund):
    card = AccountFactory(name=None, code=generate_code())
    fund(card, "25.00")
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    replica.wait_for_replay()
    pages = [
        reverse("admin:accounts_account_changelist"),
        reverse("admin:accounts_transfer_changelist"),
        reverse("admin:accounts_account_statement", args=[card.pk]),
    ]
    with CaptureQueriesContext(connections["replica"]) as on_the_replica:
        for page in pages:
            assert client.get(page).status_code == 200
        answer = client.post(reverse("accounts:balance_check"), {"code": card.code})
    assert answer.status_code == 200
    assert "25.00" in answer.content.decode()
    tables = " ".join(q["sql"] for q in on_the_replica.captured_queries)
    for table in ("accounts_account", "accounts_transfer", "accounts_transaction"):
        assert table in tables


def tables(queries):
    return " ".join(q["sql"] for q in queries.captured_queries)


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_reports_csv_exports_and_debt_statements_read_the_replica(replica, fund):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    card = AccountFactory(account_type=wallets, credit_limit=Decimal("100.00"))
    with ledger_time(moment(2026, 1, 5)):
        facade.transfer(card, Account.objects.sales_account(), Decimal("40.00"))
    run = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )
    collections.freeze(run)
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    replica.wait_for_replay()
    (debt,) = Debt.objects.filter(run=run)
    replica.pause_replay()
    fund(card, "15.00")  # on the primary only
    now = timezone.now()
    with CaptureQueriesContext(connections["default"]) as on_the_primary:
        with CaptureQueriesContext(connections["replica"]) as on_the_replica:
            trial = reports.trial_balance(now)
            outstanding = reports.outstanding_balances(now)
            statement = list(exports.statement_rows(card))
            transfers = list(exports.transfer_rows(Transfer.objects.all()))
            owed = collections.debt_statement(debt)
            previewed = collections.preview(run)
            pages = [
                client.get(
                    reverse("admin:accounts_report_outstanding"), {"format": "csv"}
                ).getvalue(),
                client.get(
                    reverse("admin:accounts_account_statement_csv", args=[card.pk])
                ).getvalue(),
                client.get(reverse("admin:accounts_transfer_export")).getvalue(),
            ]
    # Not a query on the primary: not even the session (the router reads it
    # from the replica too).
    assert on_the_primary.captured_queries == []
    for table in ("accounts_transaction", "accounts_transfer", "accounts_debt"):
        assert table in tables(on_the_replica)
    # Stale, as the replica is: the top-up of 15.00 is not there yet.
    assert len(statement) == 1 and len(transfers) == 1
    assert all(b"15.00" not in page for page in pages)
    assert list(exports.report_rows(outstanding)) != list(
        exports.report_rows(reports.outstanding_balances(now, using="default"))
    )
    assert list(exports.report_rows(trial)) != list(
        exports.report_rows(reports.trial_balance(now, using="default"))
    )
    assert owed.debt.pk == debt.pk and [d.pk for d in previewed] == [debt.pk]
    # using= reads where it says; so does export_ledger (--database, default "default").
    assert len(list(exports.journal_rows(None, None, using="default"))) > len(
        list(exports.journal_rows(None, None, using="replica"))
    )
    with CaptureQueriesContext(connections["replica"]) as on_the_replica:
        out = StringIO()
        call_command(
            "export_ledger",
            "--start",
            "2026-01-01",
            "--end",
            "2026-12-31",
            "--output",
            "-",
            stdout=out,
        )
    assert on_the_replica.captured_queries == []
    assert "15.00" in out.getvalue()


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_the_api_account_list_reads_the_replica(replica, fund):
    from rest_framework.test import APIClient

    wallet = AccountFactory(name="Wallet")
    fund(wallet, "10.00")
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    replica.wait_for_replay()
    replica.pause_replay()
    AccountFactory(name="Created during the lag")
    client = APIClient()
    client.force_authenticate(admin)
    with CaptureQueriesContext(connections["default"]) as on_the_primary:
        answer = client.get("/api/accounts/accounts/")
    assert answer.status_code == 200
    names = [row["name"] for row in answer.json()["results"]]
    assert "Wallet" in names and "Created during the lag" not in names
    assert "accounts_account" not in tables(on_the_primary)


@pytest.mark.parametrize("router", ["readme router"], indirect=True)
def test_a_transfer_through_the_api_writes_the_primary_and_answers_while_the_replica_lags(
    replica, fund
):
    from rest_framework.test import APIClient

    wallet, shop = AccountFactory(name="Wallet"), AccountFactory(name="Shop")
    fund(wallet, "10.00")
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    admin.user_permissions.add(*Permission.objects.filter(codename="move_money"))
    replica.wait_for_replay()
    replica.pause_replay()
    client = APIClient()
    client.force_authenticate(admin)
    answer = client.post(
        "/api/accounts/transfers/",
        {"source": wallet.pk, "destination": shop.pk, "amount": "4.00", "currency": "GBP"},
        format="json",
    )
    assert answer.status_code == 201
    assert Account.objects.using("default").get(pk=wallet.pk).balance.amount == Decimal("6.00")
    assert Account.objects.using("replica").get(pk=wallet.pk).balance.amount == Decimal("10.00")
