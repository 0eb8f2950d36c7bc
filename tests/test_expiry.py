import datetime
import threading
from decimal import Decimal
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.utils import timezone
from djmoney.money import Money

from accounts import expiry, facade
from accounts.exceptions import InvalidArgument
from accounts.models import Account, Hold, Transfer
from accounts.sql import writing

from .factories import AccountFactory
from .utils import assert_ledger_consistent, ledger_time, ledger_totals, needs_row_locks

pytestmark = pytest.mark.django_db

NOW = timezone.now()
PAST = NOW - datetime.timedelta(days=1)
FUTURE = NOW + datetime.timedelta(days=1)


def expired_account(fund, balance="0.00", currency="GBP", **kwargs):
    """An account funded while it was valid, whose end date has since passed."""
    account = AccountFactory(currency=currency, **kwargs)
    if Decimal(balance) > 0:
        fund(account, balance)
    elif Decimal(balance) < 0:
        Account.objects.filter(pk=account.pk).update(credit_limit=-Decimal(balance))
        facade.transfer(account, Account.objects.sales_account(currency), -Decimal(balance))
    Account.objects.filter(pk=account.pk).update(end_date=PAST)
    return Account.objects.get(pk=account.pk)


def reload(account):
    return Account.objects.get(pk=account.pk)


def run(*args):
    out, err = StringIO(), StringIO()
    call_command("close_expired_accounts", *args, stdout=out, stderr=err)
    return out.getvalue()


def test_positive_balance_is_swept_to_the_expired_account_and_closed(fund):
    account = expired_account(fund, "12.34")
    sink = Account.objects.expired_account("GBP")
    result = expiry.close_expired_accounts()
    assert (result.closed, result.swept_accounts, result.swept) == (
        1,
        1,
        {"GBP": Decimal("12.34")},
    )
    account = reload(account)
    assert account.is_closed()
    assert account.balance == Money("0.00", "GBP")
    assert reload(sink).balance == Money("12.34", "GBP")
    sweep = Transfer.objects.get(source=account)
    assert sweep.destination == sink
    assert sweep.user is None and sweep.username == ""
    assert "expired account" in sweep.description.lower()
    assert_ledger_consistent()


def test_each_currency_goes_to_its_own_expired_account(fund):
    expired_account(fund, "5.00", currency="EUR")
    expired_account(fund, "700", currency="JPY")
    result = expiry.close_expired_accounts()
    assert result.swept == {"EUR": Decimal("5.00"), "JPY": Decimal("700")}
    assert Account.objects.expired_account("EUR").balance == Money("5.00", "EUR")
    assert Account.objects.expired_account("JPY").balance == Money("700", "JPY")


def test_zero_balance_is_closed_without_a_transfer(fund):
    account = expired_account(fund, "0.00")
    before = Transfer.objects.count()
    result = expiry.close_expired_accounts()
    assert (result.closed, result.swept_accounts) == (1, 0)
    assert reload(account).is_closed()
    assert Transfer.objects.count() == before


def test_negative_balance_stays_open_and_is_reported_every_run(fund):
    account = expired_account(fund, "-25.00")
    for _ in range(2):
        output = run()
        assert "Expired with outstanding debt (left open): 1" in output
        assert "-£25.00" in output
        account = reload(account)
        assert account.is_open() and account.balance == Money("-25.00", "GBP")


def test_frozen_accounts_are_skipped_and_reported(fund):
    account = expired_account(fund, "3.00")
    account.freeze()
    output = run("--verbosity", "2")
    assert "Skipped, frozen: 1" in output
    assert str(account) in output
    account = reload(account)
    assert account.is_frozen() and account.balance == Money("3.00", "GBP")


def test_accounts_not_yet_expired_and_core_accounts_are_untouched(fund):
    current = AccountFactory(end_date=FUTURE)
    fund(current, "4.00")
    no_end = AccountFactory()
    fund(no_end, "4.00")
    bank = Account.objects.source_account()
    Account.objects.filter(pk=bank.pk).update(end_date=PAST)
    before = ledger_totals()
    result = expiry.close_expired_accounts()
    assert result.closed == 0
    assert ledger_totals() == before
    assert reload(current).is_open() and reload(no_end).is_open() and reload(bank).is_open()


def test_active_holds_lapse_with_the_account(fund):
    account = AccountFactory()
    fund(account, "10.00")
    hold = facade.hold(account, Account.objects.sales_account(), Decimal("4.00"))
    Account.objects.filter(pk=account.pk).update(end_date=PAST)
    result = expiry.close_expired_accounts()
    assert (result.closed, result.holds_expired) == (1, 1)
    assert Hold.objects.get(pk=hold.pk).status == Hold.Status.EXPIRED
    account = reload(account)
    assert (account.balance, account.held) == (Money("0.00", "GBP"), Money("0.00", "GBP"))
    assert reload(Account.objects.expired_account()).balance == Money("10.00", "GBP")
    assert_ledger_consistent()


def test_dry_run_writes_nothing_and_reports(fund):
    expired_account(fund, "7.00")
    expired_account(fund, "0.00")
    expired_account(fund, "-1.00")
    before = ledger_totals(), list(Account.objects.values_list("status", flat=True))
    output = run("--dry-run")
    assert "Would close 2 expired account(s)" in output
    assert "dry run: nothing written" in output
    assert "would sweep 7.00 GBP" in output
    assert "  swept" not in output and "Closed" not in output
    assert "outstanding debt (left open): 1" in output
    assert (ledger_totals(), list(Account.objects.values_list("status", flat=True))) == before


def test_as_of_treats_that_moment_as_now(fund):
    account = AccountFactory(end_date=datetime.date(2030, 6, 30))
    fund(account, "2.00")
    with ledger_time(timezone.make_aware(datetime.datetime(2030, 7, 2))):
        assert "Closed 0 expired" in run("--as-of", "2030-06-30")  # the start of the last day
        assert "Closed 0 expired" in run("--as-of", "2030-06-30T23:59:59")
        assert reload(account).is_open()
        assert "Closed 1 expired" in run("--as-of", "2030-07-01")
    assert reload(account).is_closed()


def test_a_cut_off_later_than_the_database_clock_closes_nothing_not_yet_due(fund):
    account = AccountFactory(end_date=datetime.date(2030, 6, 30))
    fund(account, "2.00")
    result = expiry.close_expired_accounts(now=timezone.make_aware(datetime.datetime(2031, 1, 1)))
    # Picked as a candidate by the cut-off, then judged under the lock by the
    # database's clock, which says the card is still valid.
    assert (result.closed, result.skipped) == (0, 1)
    assert reload(account).is_open() and reload(account).balance == Money("2.00", "GBP")
    with pytest.raises(CommandError, match="'next week' is not an ISO date"):
        run("--as-of", "next week")


@pytest.mark.parametrize("size", ["0", "-3", "many"])
def test_a_batch_size_below_one_is_refused_before_anything_happens(fund, size):
    account = expired_account(fund, "2.00")
    with pytest.raises(CommandError, match="--batch-size: must be a whole number of at least 1"):
        run("--batch-size", size)
    with pytest.raises(CommandError, match="at least 1, not '%s'" % size):
        call_command("release_expired_holds", "--batch-size", size, stdout=StringIO())
    with pytest.raises(InvalidArgument, match="at least 1, not 0"):
        expiry.close_expired_accounts(batch_size=0)
    with pytest.raises(InvalidArgument, match="at least 1, not 2.5"):
        expiry.release_expired_holds(batch_size=2.5)
    assert reload(account).is_open() and reload(account).balance == Money("2.00", "GBP")


def test_running_it_again_changes_nothing(fund):
    for balance in ("1.00", "0.00", "-2.00"):
        expired_account(fund, balance)
    expiry.close_expired_accounts(batch_size=2)
    before = ledger_totals(), list(Account.objects.values_list("status", flat=True))
    result = expiry.close_expired_accounts(batch_size=2)
    assert (result.closed, result.swept) == (0, {})
    assert (ledger_totals(), list(Account.objects.values_list("status", flat=True))) == before


def test_a_failure_on_one_account_does_not_affect_the_others(fund):
    accounts = [expired_account(fund, "1.00") for _ in range(4)]
    real = expiry.expire_account

    def flaky(account, **kwargs):
        if account.pk == accounts[1].pk:
            raise RuntimeError("injected")
        return real(account, **kwargs)

    err = StringIO()
    with mock.patch.object(expiry, "expire_account", flaky):
        with pytest.raises(CommandError, match="1 account\\(s\\) could not be closed"):
            call_command("close_expired_accounts", "--batch-size", "2", stdout=StringIO(),
                         stderr=err)  # fmt: skip
    assert "injected" in err.getvalue()
    assert [reload(a).is_closed() for a in accounts] == [True, False, True, True]
    assert reload(accounts[1]).balance == Money("1.00", "GBP")


def test_a_failure_while_closing_rolls_back_the_sweep_too(fund):
    account = expired_account(fund, "9.00")
    other = expired_account(fund, "1.00")
    before = ledger_totals()
    real_statement = writing.ledger_statement

    def fail_for_account(connection, rows):
        # Building the statement that closes the account fails: the sweep's
        # transfer, written in the same atomic block, must go too.
        if account.pk in rows:
            raise RuntimeError("disk full")
        return real_statement(connection, rows)

    with mock.patch.object(writing, "ledger_statement", fail_for_account):
        result = expiry.close_expired_accounts()
    assert [a.pk for a, _ in result.failures] == [account.pk]
    assert reload(account).is_open() and reload(account).balance == Money("9.00", "GBP")
    assert Transfer.objects.filter(source=account).count() == 0  # its sweep was rolled back
    assert reload(other).is_closed()
    assert Transfer.objects.count() == before[0] + 1
    expiry.close_expired_accounts()  # the next run finishes the job
    assert reload(account).is_closed()
    assert_ledger_consistent()


def test_a_crash_mid_batch_leaves_the_batch_untouched(fund):
    accounts = [expired_account(fund, "2.00") for _ in range(3)]
    before = ledger_totals()
    real = expiry.expire_account
    calls = []

    def crash_on_third(account, **kwargs):
        calls.append(account.pk)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed on the third account")  # not an Exception: dies here
        return real(account, **kwargs)

    with mock.patch.object(expiry, "expire_account", crash_on_third):
        with pytest.raises(KeyboardInterrupt, match="killed on the third account"):
            expiry.close_expired_accounts(batch_size=10)
    assert ledger_totals() == before
    assert all(reload(a).is_open() for a in accounts)
    assert expiry.close_expired_accounts().closed == 3


def test_summary_output(fund):
    expired_account(fund, "1.50")
    expired_account(fund, "2.50")
    expired_account(fund, "0.00")
    output = run()
    assert "Closed 3 expired account(s)" in output
    assert "swept 4.00 GBP to Expired accounts (GBP)" in output
    assert "accounts swept: 2" in output


def test_progress_is_printed_on_a_terminal_only(fund):
    for _ in range(3):
        expired_account(fund, "1.00")

    class Terminal(StringIO):
        def isatty(self):
            return True

    out = Terminal()
    call_command("close_expired_accounts", "--batch-size", "2", stdout=out)
    assert "... 2 looked at" in out.getvalue() and "... 3 looked at" in out.getvalue()
    for _ in range(2):
        expired_account(fund, "1.00")
    assert "looked at" not in run("--batch-size", "1")


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_runs_never_sweep_an_account_twice():
    bank = Account.objects.source_account()
    accounts = []
    for n in range(40):
        account = AccountFactory()
        facade.transfer(bank, account, Decimal(n + 1))
        accounts.append(account)
    Account.objects.filter(pk__in=[a.pk for a in accounts]).update(end_date=PAST)
    results, errors = [], []
    barrier = threading.Barrier(2)

    def sweep():
        try:
            barrier.wait()
            results.append(expiry.close_expired_accounts(batch_size=7))
        except Exception as exc:  # noqa: BLE001 - asserted empty
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert all(not r.failures for r in results)
    assert sum(r.swept_accounts for r in results) == 40
    sink = Account.objects.expired_account()
    assert Transfer.objects.filter(destination=sink).count() == 40
    assert sink.balance.amount == sum(Decimal(n + 1) for n in range(40))
    assert all(a.is_closed() for a in Account.objects.filter(pk__in=[a.pk for a in accounts]))
    assert_ledger_consistent()


def test_a_future_as_of_is_refused_on_a_real_run(fund):
    # --as-of 2030-01-01 would have closed live cards.
    account = AccountFactory(end_date=datetime.date(2029, 12, 31))
    fund(account, "2.00")
    before = ledger_totals()

    with pytest.raises(
        CommandError, match="--as-of 2030-01-01T00:00:00\\+00:00 is in the future"
    ) as info:
        run("--as-of", "2030-01-01")

    assert info.value.returncode == 2  # a usage error, nothing looked at
    assert "--dry-run" in str(info.value)
    assert ledger_totals() == before and reload(account).is_open()
    assert "Would close 1 expired account(s)" in run("--as-of", "2030-01-01", "--dry-run")
    assert reload(account).is_open()


def test_verbosity_zero_prints_nothing_and_two_lists_each_account(fund):
    swept = expired_account(fund, "7.00")
    emptied = expired_account(fund, "0.00")

    assert run("--dry-run", "-v", "0") == ""
    listing = run("--dry-run", "-v", "2")
    assert "would sweep 7.00 GBP from account %s (#%s) to Expired accounts (GBP), and close it" % (
        swept, swept.pk) in listing  # fmt: skip
    assert "would close account %s (#%s) (nothing on it)" % (emptied, emptied.pk) in listing
    assert Account.objects.filter(status="closed").count() == 0

    listing = run("-v", "2")
    assert "swept 7.00 GBP from account %s (#%s) to Expired accounts (GBP), closed" % (
        swept, swept.pk) in listing  # fmt: skip
    assert "closed account %s (#%s) (nothing on it)" % (emptied, emptied.pk) in listing
    assert run("-v", "0") == ""


def test_a_dry_run_for_a_new_currency_creates_no_core_account(fund, settings):
    settings.ACCOUNTS_CURRENCIES = ["GBP", "EUR", "JPY", "USD"]
    account = AccountFactory(currency="USD")
    Account.objects.filter(pk=account.pk).update(end_date=PAST)
    before = Account.objects.count()

    output = run("--dry-run", "-v", "2")

    assert "Would close 1 expired account(s)" in output
    assert Account.objects.count() == before
