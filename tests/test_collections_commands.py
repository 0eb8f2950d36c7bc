"""The collection commands: create_collection_run, list_collection_runs, run_collections."""

import datetime
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts import collection_initiate, collections, facade
from accounts.collection_models import CollectionRun, Debt
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType

from .factories import AccountFactory
from .utils import ledger_time, moment

pytestmark = pytest.mark.django_db


def run(command, *args):
    out = StringIO()
    call_command(command, *args, stdout=out, stderr=out)
    return out.getvalue()


def refused(command, *args, match, returncode):
    """The CommandError a command raises (its message matching ``match``, and its exit status)."""
    with pytest.raises(CommandError, match=match) as info:
        call_command(command, *args, stdout=StringIO(), stderr=StringIO())
    assert info.value.returncode == returncode, info.value
    return str(info.value)


def written():
    return (
        CollectionRun.objects.count(),
        Debt.objects.count(),
        sorted(Debt.objects.values_list("status", flat=True)),
    )


@pytest.fixture
def wallets(db):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    sales = Account.objects.sales_account()
    for name, amount, day in (("Alice", "40.00", 5), ("Bob", "30.00", 10)):
        account = AccountFactory(name=name, account_type=wallets, credit_limit=Decimal(100))
        with ledger_time(moment(2026, 1, day)):
            facade.transfer(account, sales, Decimal(amount))
    return wallets


# create_collection_run ------------------------------------------------------------------


def test_create_makes_the_run_of_a_month_and_says_it_exists_the_second_time(wallets):
    output = run("create_collection_run", "--period", "2026-01", "--type", "wallets")

    created = CollectionRun.objects.get()
    assert output.startswith("Created run %s: account type Wallets, GBP, " % created.reference)
    assert "2026-01-01 00:00 to 2026-01-31 23:59, frozen at 2026-01-31 23:59" in output
    assert "collected on 2026-02-05" in output  # five days after the freeze's day
    assert (created.account_type, created.collect_on) == (wallets, datetime.date(2026, 2, 5))

    again = run("create_collection_run", "--period", "2026-01", "--type", "wallets")
    assert again.startswith("Exists, unchanged: run %s" % created.reference)
    assert CollectionRun.objects.count() == 1


def test_create_takes_dates_a_freeze_and_a_collection_day(wallets):
    run(
        "create_collection_run", "--start", "2026-01-01", "--end", "2026-01-15",
        "--freeze-at", "2026-01-16T06:00", "--collect-on", "2026-01-20",
    )  # fmt: skip

    created = CollectionRun.objects.get()
    assert created.scope == "all"
    assert created.freeze_at == moment(2026, 1, 16, 6)
    assert created.collect_on == datetime.date(2026, 1, 20)


def test_create_makes_one_run_per_currency_of_the_scope(wallets):
    euro = AccountFactory(name="Euro", account_type=wallets, currency="EUR", credit_limit=None)
    facade.transfer(euro, Account.objects.sales_account("EUR"), Decimal("5.00"))

    output = run("create_collection_run", "--period", "2026-01", "--type", "wallets", "-v", "1")

    assert sorted(CollectionRun.objects.values_list("currency", flat=True)) == ["EUR", "GBP"]
    assert output.count("Created run") == 2
    run("create_collection_run", "--period", "2026-02", "--type", "wallets", "--currency", "EUR")
    assert CollectionRun.objects.filter(currency="EUR").count() == 2


def test_a_dry_run_of_create_writes_nothing(wallets):
    output = run("create_collection_run", "--period", "2026-01", "--dry-run")

    assert output.startswith("Would create a run of every account, GBP, 2026-01-01 00:00")
    assert output.rstrip().endswith("(dry run: nothing written)")
    assert written() == (0, 0, [])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--period", "January"], "is not a month"),
        (["--period", "2026-13"], "is not a month"),
        (["--start", "2026-01-01"], "--start needs --end"),
        (["--start", "2026-01-31", "--end", "2026-01-01"], "ends .* before it starts"),
        (["--period", "2026-01", "--collect-on", "2026-01-31"], "is not after the freeze"),
        (["--period", "2026-01", "--collect-on", "soon"], "is not an ISO date"),
        (["--period", "2026-01", "--freeze-at", "later"], "is not an ISO date or datetime"),
        (["--period", "2026-01", "--type", "nope"], "no account type with code 'nope'"),
        (["--period", "2026-01", "--currency", "XYZ"], "'XYZ' is not one of"),
        (["--period", "2026-01", "--collect-after", "0"], "at least 1"),
    ],
)
def test_bad_arguments_are_a_usage_error_and_nothing_is_written(wallets, args, match):
    refused("create_collection_run", *args, match=match, returncode=2)

    assert written() == (0, 0, [])


def test_a_run_for_the_period_with_other_dates_is_refused_with_status_1(wallets):
    run("create_collection_run", "--period", "2026-01", "--type", "wallets")
    err = StringIO()

    with pytest.raises(CommandError, match="1 run\\(s\\) refused") as info:
        call_command(
            "create_collection_run", "--period", "2026-01", "--type", "wallets",
            "--collect-on", "2026-02-09", stdout=StringIO(), stderr=err,
        )  # fmt: skip

    assert info.value.returncode == 1
    assert "REFUSED: Collection run" in err.getvalue()
    assert "collect_on (2026-02-05, not 2026-02-09)" in err.getvalue()
    assert CollectionRun.objects.get().collect_on == datetime.date(2026, 2, 5)


def test_last_month_is_the_month_before_today(wallets):
    with ledger_time(moment(2026, 3, 1)):
        run("create_collection_run", "--period", "last-month")

    created = CollectionRun.objects.get()
    assert timezone.localtime(created.period_start).date() == datetime.date(2026, 2, 1)
    assert timezone.localtime(created.period_end).date() == datetime.date(2026, 2, 28)


# list_collection_runs -------------------------------------------------------------------


def test_list_shows_each_run_with_its_totals(wallets):
    january = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )
    collections.run_collection(january)
    alice, bob = Debt.objects.order_by("account__name")
    collections.settle(alice, Decimal("40.00"), reference="DD-1")
    collections.fail(bob, "Returned")
    february = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 2, 1),
        period_end=datetime.date(2026, 2, 28),
        collect_on=datetime.date(2026, 3, 5),
    )

    lines = run("list_collection_runs", "-v", "0").splitlines()

    assert lines[0].split() == [
        "reference", "scope", "cur", "period", "collect", "on", "status", "debts", "to",
        "recover", "initiated", "recovered", "failed",
    ]  # fmt: skip
    assert lines[1].split() == [
        february.reference, "account", "type", "Wallets", "GBP", "2026-02-01", "–",
        "2026-02-28", "2026-03-05", "pending", "0", "0.00", "0.00", "0.00", "0.00",
    ]  # fmt: skip
    assert lines[2].split() == [
        january.reference, "account", "type", "Wallets", "GBP", "2026-01-01", "–",
        "2026-01-31", "2026-02-05", "failed", "2", "70.00", "0.00", "40.00", "30.00",
    ]  # fmt: skip
    assert len(run("list_collection_runs", "--status", "pending").splitlines()) == 2
    assert "(no collection runs)" in run("list_collection_runs", "--status", "succeeded")
    refused("list_collection_runs", "--type", "nope", match="no account type", returncode=2)


# run_collections ------------------------------------------------------------------------


@pytest.fixture
def january(wallets):
    return collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )


def test_run_freezes_and_initiates_every_due_run(january):
    output = run("run_collections")

    assert output.startswith(
        "Run %s: frozen, 2 debt(s); 2 debt(s) initiated (70.00 GBP); status running; "
        "to recover 70.00 GBP, initiated 70.00 GBP, recovered 0.00 GBP, failed 0.00 GBP."
        % january.reference
    )
    assert sorted(Debt.objects.values_list("status", flat=True)) == ["initiated"] * 2


def test_running_again_initiates_nothing_more(january):
    run("run_collections")
    before = written()

    output = run("run_collections", "-v", "2")

    assert "0 debt(s) initiated" in output
    assert written() == before


def test_run_lists_each_debt_at_verbosity_2_and_nothing_at_0(january):
    assert run("run_collections", "--dry-run", "-v", "0") == ""
    output = run("run_collections", "-v", "2")

    alice = Debt.objects.get(account__name="Alice")
    assert (
        "  initiated debt #%s of Alice (#%s): 40.00 GBP" % (alice.pk, alice.account_id) in output
    )


def test_a_dry_run_says_what_would_be_initiated_and_writes_nothing(january):
    output = run("run_collections", "--dry-run", "-v", "2")

    assert "would initiate debt #(not frozen yet) of Alice (#" in output
    assert "Would freeze it and initiate 2 debt(s) of run %s" % january.reference in output
    assert "(dry run: nothing written)" in output
    assert written() == (1, 0, [])


def test_nothing_due_is_said_and_is_no_error(wallets):
    collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2099, 1, 1),
        period_end=datetime.date(2099, 1, 31),
        collect_on=datetime.date(2099, 2, 5),
    )

    assert run("run_collections").startswith("No collection run is due as of ")
    assert written() == (1, 0, [])


def test_a_run_named_that_is_not_due_fails_with_status_1_and_writes_nothing(wallets):
    future = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2099, 1, 1),
        period_end=datetime.date(2099, 1, 31),
        collect_on=datetime.date(2099, 2, 5),
    )
    err = StringIO()

    with pytest.raises(CommandError, match="1 run\\(s\\) or debt\\(s\\) failed") as info:
        call_command("run_collections", future.reference, stdout=StringIO(), stderr=err)

    assert info.value.returncode == 1
    assert "FAILED run %s: Collection run" % future.reference in err.getvalue()
    assert "cannot be frozen before 2099-" in err.getvalue()
    assert written() == (1, 0, [])
    refused("run_collections", "NOPE", match="No collection run has reference NOPE", returncode=2)


def test_a_debt_that_fails_to_initiate_is_reported_and_the_others_go_on(january):
    real = collection_initiate._initiate
    calls = {"n": 0}

    def flaky(using, debt_id, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("injected")
        return real(using, debt_id, **kwargs)

    err = StringIO()
    with mock.patch.object(collection_initiate, "_initiate", flaky):
        with pytest.raises(CommandError, match="1 run\\(s\\) or debt\\(s\\) failed"):
            call_command("run_collections", stdout=StringIO(), stderr=err)

    assert "FAILED debt #" in err.getvalue() and "injected" in err.getvalue()
    assert sorted(Debt.objects.values_list("status", flat=True)) == ["initiated", "pending"]
    run("run_collections")
    assert sorted(Debt.objects.values_list("status", flat=True)) == ["initiated"] * 2
    assert check_ledger().ok


def test_progress_is_printed_on_a_terminal_only(january):
    class Terminal(StringIO):
        def isatty(self):
            return True

    out = Terminal()
    call_command("run_collections", "--batch-size", "1", stdout=out)

    assert "... 1 looked at" in out.getvalue() and "... 2 looked at" in out.getvalue()
    assert "looked at" not in run("run_collections", "--batch-size", "1")


def test_as_of_in_the_future_needs_a_dry_run(january):
    refused("run_collections", "--as-of", "2099-01-01", match="is in the future", returncode=2)
    assert "Would freeze" in run("run_collections", "--as-of", "2099-01-01", "--dry-run")
