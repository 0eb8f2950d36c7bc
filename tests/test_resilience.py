"""
Crash and soak tests: separate processes hammering a real database.

The soak runs for ACCOUNTS_SOAK_SECONDS (a few seconds in the normal suite;
``make soak`` runs it for a minute) in ACCOUNTS_SOAK_WORKERS processes.
"""

import json
import os
import signal
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts import facade
from accounts.models import Account, Transfer

from .factories import AccountFactory
from .utils import assert_ledger_consistent, needs_row_locks, worker

pytestmark = [needs_row_locks, pytest.mark.django_db(transaction=True)]


def wait_for_row_lock(account):
    """Block until this connection can lock ``account``'s row, i.e. until no other
    transaction holds it (at most 30 s on PostgreSQL; MariaDB's lock wait timeout)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '30s'")
        Account.objects.select_for_update().get(pk=account.pk)


def test_kill_9_in_the_middle_of_transfers_loses_nothing_reported_and_breaks_nothing():
    source = Account.objects.source_account()
    destination = AccountFactory()
    process = worker("crash", connection.settings_dict["NAME"], source.pk, destination.pk)
    reported = []
    try:
        while len(reported) < 40:
            line = process.stdout.readline()
            assert line, "the worker stopped early: %s" % process.stderr.read()
            reported.append(line.strip())
    finally:
        os.kill(process.pid, signal.SIGKILL)  # no cleanup, no rollback from the client
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    # The server notices the dead connection and ends its transaction (a
    # rollback, or the commit it was sent): until then it holds the lock.
    wait_for_row_lock(destination)
    stored = set(Transfer.objects.values_list("reference", flat=True))
    assert set(reported) <= stored
    assert len(stored) >= len(reported)
    destination.refresh_from_db()
    assert destination.balance.amount == Decimal("0.01") * len(stored)
    assert_ledger_consistent()


def test_soak_several_processes_doing_random_operations():
    seconds = float(os.environ.get("ACCOUNTS_SOAK_SECONDS", "4"))
    workers = int(os.environ.get("ACCOUNTS_SOAK_WORKERS", "4"))
    bank = Account.objects.source_account()
    pks = []
    for n in range(10):
        account = AccountFactory(credit_limit=Decimal("20.00") if n % 3 == 0 else Decimal(0))
        facade.transfer(bank, account, Decimal("100.00"))
        pks.append(account.pk)
    processes = [
        worker("soak", connection.settings_dict["NAME"], seconds, seed, *pks)
        for seed in range(workers)
    ]
    summaries = []
    for process in processes:
        out, err = process.communicate(timeout=seconds + 120)
        assert process.returncode == 0, err
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    errors = [error for summary in summaries for error in summary["errors"]]
    assert errors == []  # no deadlock, no serialization failure, nothing unexpected
    done = sum(sum(summary["done"].values()) for summary in summaries)
    refused = sum(sum(summary["refused"].values()) for summary in summaries)
    print(
        "soak on %s: %d processes, %.0f s, %d operations done, %d refused by the rules"
        % (connection.vendor, workers, seconds, done, refused)
    )
    assert done > 0
    assert_ledger_consistent()
