"""
Collecting debts under concurrency: real threads, each with its own connection.

SQLite has no row locks, so these run on PostgreSQL and MariaDB only.
"""

import datetime
import threading
import time
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from djmoney.money import Money

from accounts import collections, facade, signals
from accounts.collection_models import CollectionRun, Debt, Settlement
from accounts.exceptions import DebtResolved, SettlementExceedsDebt
from accounts.integrity import check_ledger
from accounts.models import Account, AccountType, Transfer

from .factories import AccountFactory
from .utils import assert_ledger_consistent, ledger_time, moment, needs_row_locks, run_concurrently

pytestmark = [needs_row_locks, pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]


def wallets_in_debt(count, amount="40.00"):
    """``count`` wallets that spent ``amount`` each on credit in January 2026."""
    wallets = AccountType.objects.create(name="Wallets", code="wallets-%d" % count)
    sales = Account.objects.sales_account()
    accounts = []
    for n in range(count):
        account = AccountFactory(
            name="Wallet %d" % n, account_type=wallets, credit_limit=Decimal(500)
        )
        with ledger_time(moment(2026, 1, 10)):
            facade.transfer(account, sales, Decimal(amount))
        accounts.append(account)
    return wallets, accounts


def january(wallets):
    return collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )


def test_a_settlement_racing_payments_by_the_debtor_is_neither_lost_nor_capped_by_them():
    wallets, (wallet,) = wallets_in_debt(1)
    run = january(wallets)
    collections.run_collection(run)
    debt = Debt.objects.get()
    bank = Account.objects.source_account()

    def work(i):
        if i % 2:
            return collections.settle(debt, Decimal("10.00"), reference="DD-%d" % i).amount
        # The debtor pays in by card while the direct debit comes back.
        return facade.transfer(bank, wallet.pk, Decimal("7.00")).amount

    results, refusals, unexpected = run_concurrently(8, work)

    assert unexpected == [] and refusals == []
    wallet.refresh_from_db()
    # -40, four settlements of 10.00 and four payments of 7.00, all of them:
    # the debt is what was frozen, and the debtor's own payments are theirs.
    assert wallet.balance == Money("28.00", "GBP")
    debt.refresh_from_db()
    assert (debt.status, debt.recovered) == ("succeeded", Money("40.00", "GBP"))
    assert CollectionRun.objects.get().status == "succeeded"
    assert_ledger_consistent()


def test_racing_settlements_never_recover_more_than_is_owed():
    wallets, _accounts = wallets_in_debt(1)
    run = january(wallets)
    collections.run_collection(run)
    debt = Debt.objects.get()

    def work(i):
        return collections.settle(debt, Decimal("10.00"), reference="DD-%d" % i)

    results, refusals, unexpected = run_concurrently(8, work)

    assert unexpected == []
    assert len(results) == 4 and len(refusals) == 4
    assert all(isinstance(exc, (SettlementExceedsDebt, DebtResolved)) for exc in refusals)
    debt.refresh_from_db()
    assert debt.recovered == Money("40.00", "GBP") and debt.transfers.count() == 4
    assert_ledger_consistent()


def test_the_same_settlement_sent_at_once_is_recorded_once():
    wallets, _accounts = wallets_in_debt(1)
    run = january(wallets)
    collections.run_collection(run)
    debt = Debt.objects.get()

    results, refusals, unexpected = run_concurrently(
        6, lambda i: collections.settle(debt, Decimal("25.00"), reference="DD-ONCE").pk
    )

    assert unexpected == [] and refusals == []
    assert len(set(results)) == 1
    assert Settlement.objects.count() == 1
    assert Transfer.objects.filter(merchant_reference="DD-ONCE").count() == 1
    assert_ledger_consistent()


def test_a_settlement_racing_a_failure_of_the_same_debt_one_wins():
    wallets, _accounts = wallets_in_debt(1)
    run = january(wallets)
    collections.run_collection(run)
    debt = Debt.objects.get()

    def work(i):
        if i == 0:
            return collections.settle(debt, Decimal("40.00"), reference="DD-1")
        return collections.fail(debt, "Returned")

    results, refusals, unexpected = run_concurrently(2, work)

    assert unexpected == []
    assert len(results) == 1 and len(refusals) == 1
    assert isinstance(refusals[0], DebtResolved)
    debt.refresh_from_db()
    assert debt.status in ("succeeded", "failed")
    assert (debt.status == "succeeded") == Settlement.objects.exists()
    assert CollectionRun.objects.get().status == debt.status
    assert_ledger_consistent()


def test_the_same_run_initiated_twice_at_once_initiates_each_debt_once():
    wallets, accounts = wallets_in_debt(24)
    run = january(wallets)
    collections.freeze(run)
    heard = []
    lock = threading.Lock()

    def receiver(sender, debt, **kwargs):
        with lock:
            heard.append(debt.pk)

    signals.debt_initiated.connect(receiver)
    try:
        results, refusals, unexpected = run_concurrently(
            4, lambda i: collections.run_collection(run, batch_size=5)
        )
    finally:
        signals.debt_initiated.disconnect(receiver)

    assert unexpected == [] and refusals == []
    assert sum(report.initiated for report in results) == 24
    assert sorted(heard) == sorted(Debt.objects.values_list("pk", flat=True))
    assert set(Debt.objects.values_list("status", flat=True)) == {"initiated"}
    run.refresh_from_db()
    assert run.total_initiated == Money("960.00", "GBP")
    assert check_ledger().ok


def test_initiating_a_run_while_its_debts_are_settled_and_failed_never_deadlocks():
    wallets, accounts = wallets_in_debt(16)
    run = january(wallets)
    collections.freeze(run)
    debts = list(Debt.objects.order_by("-pk"))  # the other way round from the initiation

    def work(i):
        if i == 0:
            return collections.run_collection(run, batch_size=4)
        for debt in debts[i - 1 :: 3]:
            if debt.pk % 2:
                collections.settle(debt, Decimal("40.00"), reference="DD-%d" % debt.pk)
            else:
                collections.fail(debt, "Returned")
        return None

    results, refusals, unexpected = run_concurrently(4, work)

    assert unexpected == [] and refusals == []
    run.refresh_from_db()
    assert run.status == "failed" and run.total_initiated == Money("0.00", "GBP")
    assert_ledger_consistent()


def test_two_runs_for_the_same_period_created_at_once_are_one():
    wallets, _accounts = wallets_in_debt(2)

    results, refusals, unexpected = run_concurrently(6, lambda i: january(wallets).pk)

    assert unexpected == [] and refusals == []
    assert len(set(results)) == 1
    assert CollectionRun.objects.count() == 1


def test_a_run_frozen_twice_at_once_freezes_each_account_once():
    wallets, accounts = wallets_in_debt(20)
    run = january(wallets)

    results, refusals, unexpected = run_concurrently(
        3, lambda i: collections.freeze(run, batch_size=4).status
    )

    assert unexpected == [] and refusals == []
    assert results == ["running"] * 3
    assert Debt.objects.count() == 20
    run.refresh_from_db()
    assert (run.debt_count, run.total_owed) == (20, Money("800.00", "GBP"))
    assert check_ledger().ok


def test_freezing_while_the_accounts_pay_and_are_paid_never_deadlocks():
    wallets, accounts = wallets_in_debt(20)
    run = january(wallets)
    ids = [account.pk for account in accounts]

    def work(i):
        if i == 0:
            return collections.freeze(run, batch_size=3).status
        for n in range(15):
            # Between accounts of the scope, in both directions of their ids.
            source, destination = ids[(i + n) % 20], ids[(i * 7 + n * 3 + 1) % 20]
            if source != destination:
                facade.transfer(source, destination, Decimal("1.00"))
        return None

    results, refusals, unexpected = run_concurrently(4, work)

    assert unexpected == [] and refusals == []
    assert "running" in results
    assert Debt.objects.count() == 20
    assert set(Debt.objects.values_list("amount", flat=True)) == {Decimal("40.0000")}
    assert_ledger_consistent()


def test_freezing_waits_for_a_payment_stamped_before_the_freeze_to_commit():
    """A transfer locked its accounts (and took its time) before freeze_at, and commits
    after it: the freeze must see it, so it waits for the account's lock."""
    wallets, (wallet,) = wallets_in_debt(1)
    freeze_at = timezone.now() + datetime.timedelta(seconds=1)
    run = collections.create_run(
        account_type=wallets,
        period_start=moment(2026, 1, 1),
        period_end=freeze_at,
        collect_on=timezone.localdate(freeze_at) + datetime.timedelta(days=1),
    )
    posted, past_freeze = threading.Event(), threading.Event()
    errors = []

    def pay_slowly():
        try:
            with transaction.atomic():
                facade.transfer(wallet.pk, Account.objects.sales_account().pk, Decimal("7.00"))
                posted.set()
                while timezone.now() <= freeze_at + datetime.timedelta(milliseconds=300):
                    time.sleep(0.05)
                past_freeze.set()
                time.sleep(0.5)  # still not committed while the freeze starts
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            from django.db import connections

            connections.close_all()

    payer = threading.Thread(target=pay_slowly)
    payer.start()
    assert posted.wait(10) and past_freeze.wait(10)
    collections.freeze(run)
    payer.join(10)

    assert errors == []
    assert Debt.objects.get().amount == Money("47.00", "GBP")
    assert_ledger_consistent()
