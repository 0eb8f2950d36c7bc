"""facade.transfer_many and facade.reverse_batch: many transfers, one lock set, one commit."""

import datetime
import random
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from djmoney.money import Money

from accounts import expiry, facade, signals
from accounts.exceptions import (
    AccountExpired,
    ClosedAccount,
    FrozenAccount,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAccount,
    InvalidAmount,
    InvalidArgument,
    InvalidReversal,
    LedgerImmutable,
    RetryableConflict,
    SameAccount,
)
from accounts.integrity import check_ledger
from accounts.models import Account, Batch, Hold, Transaction, Transfer

from .factories import AccountFactory, UserFactory
from .utils import (
    assert_ledger_consistent,
    data_statements,
    ledger_time,
    ledger_totals,
    needs_row_locks,
    run_concurrently,
    statement_verbs,
)

pytestmark = pytest.mark.django_db
Request = facade.TransferRequest


def gbp(amount):
    return Money(amount, "GBP")


def stored(account):
    return Account.objects.get(pk=account.pk)


@pytest.fixture
def world(fund):
    wallet = AccountFactory(name="Wallet")
    fund(wallet, "100.00")
    return {
        "wallet": wallet,
        "merchant": AccountFactory(name="Merchant"),
        "fees": AccountFactory(name="Fees"),
        "other": AccountFactory(name="Other"),
    }


def test_a_linked_batch_posts_every_transfer_in_request_order(world):
    staff = UserFactory(username="staff")
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("95.00")),
            Request(world["wallet"], world["fees"], Decimal("5.00"), description="Card fee"),
        ],
        user=staff,
        description="Order 1001",
        idempotency_key="order-1001",
    )
    transfers = list(batch.transfers.all())
    assert [(t.destination_id, t.amount, t.description) for t in transfers] == [
        (world["merchant"].pk, gbp("95.00"), "Order 1001"),
        (world["fees"].pk, gbp("5.00"), "Card fee"),
    ]
    assert batch.results == transfers
    assert (batch.size, batch.atomic, batch.username) == (2, True, "staff")
    assert all(t.batch_id == batch.pk and t.user == staff for t in transfers)
    assert stored(world["wallet"]).balance == gbp("0.00")
    assert_ledger_consistent()


def test_each_request_sees_the_balances_the_earlier_ones_leave(world):
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("60.00")),
            Request(world["merchant"], world["other"], Decimal("50.00")),
            Request(world["wallet"], world["other"], Decimal("40.00")),
        ]
    )
    legs = Transaction.objects.filter(transfer__batch=batch).order_by("pk")
    after = [(leg.account_id, leg.balance_after) for leg in legs]
    assert after == [
        (world["wallet"].pk, gbp("40.00")),
        (world["merchant"].pk, gbp("60.00")),
        (world["merchant"].pk, gbp("10.00")),
        (world["other"].pk, gbp("50.00")),
        (world["wallet"].pk, gbp("0.00")),
        (world["other"].pk, gbp("90.00")),
    ]
    assert_ledger_consistent()


def test_a_linked_batch_is_all_or_nothing_and_names_the_refused_request(world):
    before = ledger_totals()
    with pytest.raises(InsufficientFunds, match="only £10.00 is available") as refused:
        facade.transfer_many(
            [
                Request(world["wallet"], world["merchant"], Decimal("90.00")),
                Request(world["wallet"], world["fees"], Decimal("10.01")),
            ]
        )
    assert refused.value.index == 1
    assert ledger_totals() == before
    assert Batch.objects.count() == 0


def test_a_refusal_is_the_exception_a_single_transfer_raises(world):
    world["merchant"].freeze()
    with pytest.raises(FrozenAccount, match="Merchant is frozen") as refused:
        facade.transfer_many(
            [
                Request(world["wallet"], world["fees"], Decimal("1.00")),
                Request(world["wallet"], world["merchant"], Decimal("1.00")),
            ]
        )
    assert refused.value.index == 1


def test_an_independent_batch_writes_the_good_requests_and_lists_the_refusals(world):
    world["fees"].end_date = timezone.now() - datetime.timedelta(days=1)
    world["fees"].save()
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("70.00")),
            Request(world["wallet"], world["fees"], Decimal("1.00")),
            Request(world["wallet"], world["other"], Decimal("31.00")),
            Request(world["wallet"], world["other"], Decimal("30.00")),
        ],
        atomic=False,
        idempotency_key="payroll-1",
    )
    first, expired, short, last = batch.results
    assert isinstance(expired, AccountExpired) and expired.index == 1
    assert isinstance(short, InsufficientFunds) and short.index == 2
    assert [t.amount for t in batch.transfers] == [gbp("70.00"), gbp("30.00")]
    assert (first.batch_position, last.batch_position) == (0, 3)
    assert stored(world["wallet"]).balance == gbp("0.00")
    # The same request again: the same batch, its refusals not kept.
    again = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("70.00")),
            Request(world["wallet"], world["fees"], Decimal("1.00")),
            Request(world["wallet"], world["other"], Decimal("31.00")),
            Request(world["wallet"], world["other"], Decimal("30.00")),
        ],
        atomic=False,
        idempotency_key="payroll-1",
    )
    assert again == batch and again.results == [first, None, None, last]
    assert_ledger_consistent()


def test_an_independent_batch_with_every_request_refused_is_kept_empty(world):
    balances = {name: stored(account).balance for name, account in world.items()}
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("100.01")),
            Request(world["merchant"], world["fees"], Decimal("1.00")),
        ],
        atomic=False,
    )
    assert [type(result) for result in batch.results] == [InsufficientFunds] * 2
    assert Batch.objects.get(pk=batch.pk).size == 2
    assert list(batch.transfers.all()) == []
    assert {name: stored(account).balance for name, account in world.items()} == balances
    assert_ledger_consistent()


@pytest.mark.parametrize("atomic", [True, False])
def test_bad_input_in_any_request_is_refused_with_its_index_and_writes_nothing(world, atomic):
    before = ledger_totals()
    cases = [
        (InvalidAmount, "has type float", Request(world["wallet"], world["fees"], 1.5)),
        (SameAccount, "to itself", Request(world["wallet"], world["wallet"], Decimal("1"))),
        (InvalidAccount, "must be an Account", Request("x", world["fees"], Decimal("1"))),
        (InvalidArgument, "NUL character", Request(world["wallet"], world["fees"],
                                                   Decimal("1"), description="a\x00")),
    ]  # fmt: skip
    for error, message, bad in cases:
        good = Request(world["wallet"], world["merchant"], Decimal("1.00"))
        with pytest.raises(error, match=message) as refused:
            facade.transfer_many([good, good, bad], atomic=atomic)
        assert refused.value.index == 2
    with pytest.raises(InvalidArgument, match="takes TransferRequest objects") as refused:
        facade.transfer_many([good, (1, 2, 3)], atomic=atomic)
    assert refused.value.index == 1
    assert ledger_totals() == before


@override_settings(ACCOUNTS_BATCH_MAX_SIZE=3)
def test_the_batch_size_is_capped_by_a_setting(world):
    one = Request(world["wallet"], world["merchant"], Decimal("1.00"))
    with pytest.raises(InvalidArgument, match="from 1 to 3 transfer requests, not 4"):
        facade.transfer_many([one] * 4)
    with pytest.raises(InvalidArgument, match="from 1 to 3 transfer requests, not 0"):
        facade.transfer_many([])
    assert len(facade.transfer_many([one] * 3).results) == 3


def test_a_batch_key_answers_only_the_identical_request(world):
    requests = [Request(world["wallet"], world["merchant"], Decimal("10.00"))]
    batch = facade.transfer_many(requests, description="Order 7", idempotency_key="o-7")
    assert facade.transfer_many(requests, description="Order 7", idempotency_key="o-7") == batch
    for other in (
        {"requests": [Request(world["wallet"], world["merchant"], Decimal("10.01"))]},
        {"description": "Order 8"},
        {"atomic": False},
    ):
        arguments = {"requests": requests, "description": "Order 7", **other}
        with pytest.raises(IdempotencyConflict, match="'o-7' was already used"):
            facade.transfer_many(arguments.pop("requests"), idempotency_key="o-7", **arguments)
    assert Transfer.objects.filter(batch__isnull=False).count() == 1


@pytest.mark.parametrize("size", [2, 10, 60])
def test_a_batch_costs_the_same_statements_whatever_its_size(world, size):
    accounts = [AccountFactory() for _ in range(4)]
    requests = [Request(world["wallet"], accounts[n % 4], Decimal("0.01")) for n in range(size)]
    facade.transfer_many(requests[:1])  # anything prepared once per connection is
    with CaptureQueriesContext(connection) as queries:
        facade.transfer_many(requests)
    statements = [
        q["sql"] for q in queries if q["sql"].split(None, 1)[0].upper() not in (
            "SAVEPOINT", "RELEASE")
    ]  # fmt: skip
    # Lock, then the batch, its transfers, their legs and the balances: all
    # four in one statement on PostgreSQL (its two-legs guard checks each
    # statement), and where INSERT cannot return keys the keys read back.
    if connection.vendor == "postgresql":
        expected = 2
    else:
        expected = 5 if connection.features.can_return_rows_from_bulk_insert else 6
    assert len(statements) == expected, statements
    assert_ledger_consistent()


def test_a_batch_across_many_accounts_writes_each_balance_and_spending(world, fund):
    # More accounts than the statements written once per shape: every
    # backend writes the balances of such a batch from one row per account.
    wallets = [AccountFactory() for _ in range(12)]
    shops = [AccountFactory() for _ in range(12)]
    for wallet in wallets:
        fund(wallet, "50.00")
    rng = random.Random(7)
    pairs = [(rng.choice(wallets), rng.choice(shops)) for _ in range(60)]
    amounts = [Decimal(rng.choice(["0.01", "1.5", "2.25", "7", "0.1"])) for _ in pairs]
    requests = [Request(s, d, a) for (s, d), a in zip(pairs, amounts, strict=True)]
    expected = {account.pk: stored(account).balance.amount for account in wallets + shops}
    spent = dict.fromkeys(expected, Decimal(0))
    # The first request is posted twice: alone first, then after the batch.
    moves = list(zip(pairs, amounts, strict=True))
    for (source, destination), amount in [*moves, moves[0]]:
        expected[source.pk] -= amount
        expected[destination.pk] += amount
        spent[source.pk] += amount
    facade.transfer_many(requests[:1])  # what is prepared once per connection
    with CaptureQueriesContext(connection) as queries:
        batch = facade.transfer_many(requests[1:])
    with CaptureQueriesContext(connection) as small:
        facade.transfer_many(requests[:1])
    assert len(data_statements(queries)) == len(data_statements(small))
    assert len(batch.transfers.all()) == 59
    for account in wallets + shops:
        row = stored(account)
        assert row.balance.amount == expected[account.pk]
        assert row.held.amount == 0
        assert row.spent_day.amount == spent[account.pk]
        assert (row.spent_day_from is not None) == (spent[account.pk] > 0)
    assert_ledger_consistent()


needs_our_prepared_statements = pytest.mark.skipif(
    connection.vendor != "postgresql"
    or bool(connection.settings_dict["OPTIONS"].get("server_side_binding")),
    reason="our PREPARE and EXECUTE: PostgreSQL with client-side binding",
)


@needs_our_prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_batch_in_its_own_transaction_is_prepared_once_and_again_when_lost(fund):
    wallet, shops = AccountFactory(), [AccountFactory() for _ in range(20)]
    fund(wallet, "100.00")
    # More accounts than the statements built once per count: the lock too
    # takes one array, and is prepared.
    requests = [Request(wallet, shop, Decimal("0.50")) for shop in shops]
    facade.transfer_many(requests)
    assert statement_verbs(lambda: facade.transfer_many(requests)) == [
        "BEGIN",
        "EXECUTE",
        "EXECUTE",
        "COMMIT",
    ]
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")  # what a pooler's DISCARD ALL does
    # Refused by the server, the batch rolled back and posted again, unprepared.
    lost = statement_verbs(lambda: facade.transfer_many(requests))
    assert lost == ["BEGIN", "EXECUTE", "ROLLBACK", "BEGIN", "WITH", "WITH", "COMMIT"]
    assert statement_verbs(lambda: facade.transfer_many(requests)) == [
        "BEGIN", "PREPARE", "EXECUTE", "PREPARE", "EXECUTE", "COMMIT",
    ]  # fmt: skip
    # Four batches, each posted once.
    assert stored(wallet).balance == gbp("60.00")
    assert all(stored(shop).balance == gbp("2.00") for shop in shops)
    assert Batch.objects.count() == 4
    assert Transfer.objects.filter(batch__isnull=False).count() == 80
    assert_ledger_consistent()


@needs_our_prepared_statements
@pytest.mark.django_db(transaction=True)
def test_a_batch_in_the_callers_transaction_or_with_the_setting_off_is_not_prepared(fund):
    wallet, shops = AccountFactory(), [AccountFactory() for _ in range(20)]
    fund(wallet, "100.00")
    requests = [Request(wallet, shop, Decimal("1.00")) for shop in shops]

    def in_atomic():
        with transaction.atomic():
            facade.transfer_many(requests)

    # A server's refusal would end the caller's transaction with the batch.
    assert "EXECUTE" not in statement_verbs(in_atomic)
    with override_settings(ACCOUNTS_PREPARE_STATEMENTS=False):
        assert "EXECUTE" not in statement_verbs(lambda: facade.transfer_many(requests))
    assert stored(wallet).balance == gbp("60.00")
    assert_ledger_consistent()


def test_lapsed_holds_free_their_money_for_a_batch_and_are_marked_expired(world):
    placed_at = timezone.now() - datetime.timedelta(hours=1)
    with ledger_time(placed_at):
        lapsing = facade.hold(
            world["wallet"],
            world["merchant"],
            Decimal("80.00"),
            expires_at=placed_at + datetime.timedelta(minutes=1),
        )
    facade.transfer_many([Request(world["wallet"], world["fees"], Decimal("100.00"))])
    assert Hold.objects.get(pk=lapsing.pk).status == Hold.Status.EXPIRED
    assert stored(world["wallet"]).held == gbp("0.00")
    assert check_ledger().ok


@pytest.mark.django_db(transaction=True)
def test_signals_fire_once_per_transfer_then_once_per_batch_after_commit(fund):
    wallet, shop = AccountFactory(), AccountFactory()
    fund(wallet, "10.00")
    heard = []

    def on_transfer(sender, transfer, **kwargs):
        heard.append(("transfer", transfer.batch_position))

    def on_batch(sender, batch, **kwargs):
        heard.append(("batch", batch.size))

    signals.transfer_posted.connect(on_transfer, dispatch_uid="t")
    signals.batch_posted.connect(on_batch, dispatch_uid="b")
    try:
        with transaction.atomic():
            facade.transfer_many([Request(wallet, shop, Decimal("1"))] * 3)
            assert heard == []
        assert heard == [("transfer", 0), ("transfer", 1), ("transfer", 2), ("batch", 3)]
    finally:
        signals.transfer_posted.disconnect(dispatch_uid="t")
        signals.batch_posted.disconnect(dispatch_uid="b")


# Reversing a batch ------------------------------------------------------------------------


def test_reverse_batch_reverses_what_is_left_of_every_transfer(world):
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("95.00")),
            Request(world["wallet"], world["fees"], Decimal("5.00")),
        ],
        description="Order 1001",
    )
    first, second = batch.transfers
    facade.reverse(first, amount=Decimal("20.00"))
    facade.reverse(second)  # nothing left of it
    undone = facade.reverse_batch(batch, idempotency_key="undo-1001")
    assert undone.reverses == batch
    assert undone.results[1] is None
    (reversal,) = undone.transfers
    assert (reversal.parent_id, reversal.amount) == (first.pk, gbp("75.00"))
    assert reversal.description == "Reversal of batch %s" % batch.reference
    assert stored(world["wallet"]).balance == gbp("100.00")
    assert facade.reverse_batch(batch, idempotency_key="undo-1001") == undone
    with pytest.raises(InvalidReversal, match="has already been fully reversed"):
        facade.reverse_batch(batch)
    assert_ledger_consistent()


def test_reverse_batch_is_all_or_nothing(world):
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("60.00")),
            Request(world["wallet"], world["fees"], Decimal("40.00")),
        ]
    )
    facade.transfer(world["fees"], world["other"], Decimal("40.00"))  # the money moved on
    before = ledger_totals()
    with pytest.raises(InsufficientFunds, match="Fees cannot be debited £40.00") as refused:
        facade.reverse_batch(batch)
    assert refused.value.index == 1
    assert ledger_totals() == before


def test_a_reversal_batch_cannot_be_reversed(world):
    batch = facade.transfer_many([Request(world["wallet"], world["merchant"], Decimal("5"))])
    undone = facade.reverse_batch(batch)
    with pytest.raises(InvalidReversal, match="is itself a reversal"):
        facade.reverse_batch(undone)


# The ledger's guards ----------------------------------------------------------------------


def test_batches_are_written_only_by_the_facade_and_never_changed(world):
    batch = facade.transfer_many([Request(world["wallet"], world["merchant"], Decimal("5"))])
    with pytest.raises(LedgerImmutable, match="written only by accounts.facade"):
        Batch(description="forged").save()
    with pytest.raises(LedgerImmutable, match="append-only and cannot be deleted"):
        batch.delete()
    with pytest.raises(LedgerImmutable, match="append-only and cannot be updated"):
        Batch.objects.filter(pk=batch.pk).update(size=9)
    for table, column, value, pk in (
        ("accounts_batch", "size", 9, batch.pk),
        ("accounts_batch", "reference", "FORGED", batch.pk),
        ("accounts_transfer", "batch_position", 7, batch.transfers[0].pk),
        ("accounts_transfer", "batch_id", None, batch.transfers[0].pk),
    ):
        with pytest.raises(DatabaseError, match="append-only"):
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("UPDATE %s SET %s = %%s WHERE id = %%s" % (table, column),
                               [value, pk])  # fmt: skip
    assert Batch.objects.get(pk=batch.pk).size == 1


# Under concurrency (PostgreSQL, MariaDB) --------------------------------------------------


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_batches_single_transfers_and_holds_race_without_deadlock_or_overdraft():
    bank = Account.objects.source_account()
    accounts = [AccountFactory() for _ in range(6)]
    for account in accounts:
        facade.transfer(bank, account, Decimal("50.00"))

    def work(i):
        rng = random.Random(i)
        for _ in range(8):
            a, b, c = rng.sample(accounts, 3)
            amount = Decimal(rng.randint(1, 2500)) / 100
            try:
                if i % 3 == 0:
                    facade.transfer_many(
                        [Request(a, b, amount), Request(b, c, amount), Request(c, a, amount)],
                        atomic=bool(rng.getrandbits(1)),
                    )
                elif i % 3 == 1:
                    facade.transfer(a, b, amount)
                else:
                    facade.release(facade.hold(a, b, amount))
            except InsufficientFunds:
                pass
        return i

    results, expected, unexpected = run_concurrently(6, work)
    assert unexpected == [] and sorted(results) == list(range(6))
    assert all(stored(a).balance.amount >= 0 for a in accounts)
    assert sum(stored(a).balance.amount for a in accounts) == Decimal("300.00")
    assert_ledger_consistent()


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_batches_single_transfers_and_both_expiry_sweeps_race_without_deadlock_or_overdraft():
    bank = Account.objects.source_account()
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    soon = an_hour_ago + datetime.timedelta(minutes=5)
    # Set up an hour ago: by the database's clock the ending accounts have
    # ended and the holds have lapsed, so each sweep has work to race for.
    with ledger_time(an_hour_ago):
        open_accounts = [AccountFactory() for _ in range(4)]
        ending = [AccountFactory(end_date=soon) for _ in range(3)]
        for account in open_accounts + ending:
            facade.transfer(bank, account, Decimal("50.00"))
        for account in open_accounts + ending:
            facade.hold(account, Account.objects.sales_account(), Decimal("5.00"), expires_at=soon)
    everyone = open_accounts + ending
    sweeps = []

    def work(i):
        rng = random.Random(i)
        for _ in range(6):
            a, b, c = rng.sample(everyone, 3)
            amount = Decimal(rng.randint(1, 2500)) / 100
            try:
                if i % 4 == 0:
                    facade.transfer_many(
                        [Request(a, b, amount), Request(b, c, amount), Request(c, a, amount)],
                        atomic=bool(rng.getrandbits(1)),
                    )
                elif i % 4 == 1:
                    facade.transfer(a, b, amount)
                elif i % 4 == 2:
                    sweeps.append(expiry.release_expired_holds(batch_size=2))
                else:
                    sweeps.append(expiry.close_expired_accounts(batch_size=2))
            except (InsufficientFunds, AccountExpired, ClosedAccount):
                pass
        return i

    results, expected, unexpected = run_concurrently(8, work)
    assert unexpected == [] and expected == [] and sorted(results) == list(range(8))
    # A sweep gives up an item whose transaction kept conflicting; none here
    # may have failed for any other reason.
    for sweep in sweeps:
        assert all(isinstance(error, RetryableConflict) for _, error in sweep.failures)
    # What a busy lock made a sweep skip, the next run does.
    expiry.release_expired_holds()
    expiry.close_expired_accounts()
    assert not Hold.objects.filter(status=Hold.Status.ACTIVE).exists()
    for account in ending:
        assert (stored(account).status, stored(account).balance) == ("closed", gbp("0.00"))
    assert all(stored(a).balance.amount >= 0 for a in open_accounts)
    expired = Account.objects.expired_account()
    # Money neither created nor lost: what the bank paid in is on the open
    # accounts or was swept to the expired account.
    total = sum(stored(a).balance.amount for a in open_accounts) + stored(expired).balance.amount
    assert total == Decimal("350.00")
    assert check_ledger().ok
    assert_ledger_consistent()


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_racing_batches_drain_an_account_exactly_once():
    wallet, shop = AccountFactory(), AccountFactory()
    facade.transfer(Account.objects.source_account(), wallet, Decimal("100.00"))

    def work(i):
        return facade.transfer_many([Request(wallet, shop, Decimal("25.00"))] * 2)

    results, expected, unexpected = run_concurrently(4, work)
    assert unexpected == []
    assert len(results) == 2 and len(expected) == 2
    assert all(isinstance(exc, InsufficientFunds) for exc in expected)
    assert stored(wallet).balance == gbp("0.00")
    assert_ledger_consistent()


@needs_row_locks
@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
def test_two_identical_keyed_batches_at_once_make_one():
    wallet, shop = AccountFactory(), AccountFactory()
    facade.transfer(Account.objects.source_account(), wallet, Decimal("100.00"))

    def work(i):
        return facade.transfer_many(
            [Request(wallet, shop, Decimal("10.00"))] * 3, idempotency_key="same-batch"
        ).pk

    results, expected, unexpected = run_concurrently(4, work)
    assert unexpected == [] and expected == []
    assert len(set(results)) == 1
    assert stored(wallet).balance == gbp("70.00")
    assert_ledger_consistent()


# Faults -----------------------------------------------------------------------------------


def test_a_fault_on_any_statement_of_a_batch_leaves_nothing(world):
    requests = [
        Request(world["wallet"], world["merchant"], Decimal("10.00")),
        Request(world["merchant"], world["fees"], Decimal("5.00")),
    ]
    count = {"n": 0}

    def counter(execute, sql, params, many, context):
        if sql.split(None, 1)[0].upper() not in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
            count["n"] += 1
        return execute(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(counter):
            facade.transfer_many(requests)
        transaction.set_rollback(True)
    before = (ledger_totals(), Batch.objects.count())
    for n in range(1, count["n"] + 1):
        seen = {"n": 0}

        def fail(execute, sql, params, many, context, n=n, seen=seen):
            if sql.split(None, 1)[0].upper() not in ("SAVEPOINT", "RELEASE", "ROLLBACK"):
                seen["n"] += 1
                if seen["n"] == n:
                    raise DatabaseError("injected fault on statement %d" % n)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(fail):
            with pytest.raises(DatabaseError, match="injected fault on statement %d" % n):
                facade.transfer_many(requests)
        assert (ledger_totals(), Batch.objects.count()) == before, n
    facade.transfer_many(requests)
    assert_ledger_consistent()


@pytest.mark.django_db(transaction=connection.vendor == "mysql")
def test_check_ledger_proves_each_batch_has_its_transfers_at_their_positions(world):
    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("10.00")),
            Request(world["wallet"], world["fees"], Decimal("5.00")),
        ]
    )
    assert check_ledger().ok and check_ledger().rows["batches"] == 1
    first = batch.transfers[0]
    with connection.cursor() as cursor:
        # Around every guard: drop the trigger in the test's transaction; on
        # MySQL/MariaDB, which commit DDL, for the test (transaction=True),
        # and create it again exactly as it was.
        restore = None
        if connection.vendor == "postgresql":
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no pending trigger events
            cursor.execute("ALTER TABLE accounts_transfer DISABLE TRIGGER accounts_transfer_fixed")
        elif connection.vendor == "sqlite":
            cursor.execute("DROP TRIGGER accounts_transfer_fixed")
        else:
            cursor.execute("SHOW CREATE TRIGGER accounts_transfer_fixed")
            restore = cursor.fetchone()[2]  # SQL Original Statement
            cursor.execute("DROP TRIGGER accounts_transfer_fixed")
        try:
            cursor.execute(
                "UPDATE accounts_transfer SET batch_position = 1 WHERE id = %s", [first.pk]
            )
            problems = [p for p in check_ledger().problems if p.check == "batch"]
        finally:
            if restore is not None:
                cursor.execute(
                    "UPDATE accounts_transfer SET batch_position = 0 WHERE id = %s", [first.pk]
                )
                cursor.execute(restore)
    assert [str(p) for p in problems] == [
        "[batch] batch #%d of 2 request(s) has 2 transfer(s), or their positions do not match "
        "the requests (expected one transfer per position below 2, found 2 transfer(s))" % batch.pk
    ]
    if restore is not None:
        with pytest.raises(DatabaseError, match="append-only"):
            with connection.cursor() as cursor:
                cursor.execute(
                    "UPDATE accounts_transfer SET batch_position = 1 WHERE id = %s", [first.pk]
                )
        assert check_ledger().ok


# The admin ---------------------------------------------------------------------------------


def test_the_admin_lists_batches_and_shows_their_transfers_in_order(world, admin_client):
    from django.urls import reverse

    batch = facade.transfer_many(
        [
            Request(world["wallet"], world["merchant"], Decimal("95.00")),
            Request(world["wallet"], world["fees"], Decimal("5.00"), description="Card fee"),
        ],
        description="Order 1001",
    )
    listing = admin_client.get(reverse("admin:accounts_batch_changelist"))
    assert listing.status_code == 200 and batch.reference in listing.content.decode()
    page = admin_client.get(reverse("admin:accounts_batch_change", args=[batch.pk]))
    html = page.content.decode()
    first, second = batch.transfers
    assert html.index(first.reference) < html.index(second.reference)
    assert "Card fee" in html and "Order 1001" in html
    transfer = admin_client.get(reverse("admin:accounts_transfer_change", args=[second.pk]))
    assert "transfer 2 of the batch" in transfer.content.decode()
    assert (
        admin_client.post(reverse("admin:accounts_batch_delete", args=[batch.pk])).status_code
        == 403
    )


@pytest.mark.parametrize(
    "text", ['a "quoted", {braced} \\ back\\slash', "NULL", "", "multi\nline\ttab", "café ☕"]
)
def test_any_text_round_trips_through_a_big_batch_exactly(world, text):
    # Beyond a handful of rows PostgreSQL's batch sends each column as one array.
    requests = [
        Request(world["wallet"], world["merchant"], Decimal("0.01"), description=text,
                merchant_reference=text or None)
        for _ in range(40)
    ]  # fmt: skip
    batch = facade.transfer_many(requests)
    stored_texts = {(t.description, t.merchant_reference) for t in batch.transfers}
    assert stored_texts == {(text, text or None)}
    assert_ledger_consistent()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's one-statement write")
@pytest.mark.parametrize(
    "positions, moved, message",
    [
        # Its legs are made from the transfers, joined by position: two at one
        # position, or one at none, would leave legs without a transfer.
        ((0, 0), "1.00", "each have a position of their own"),
        ((0, None), "1.00", "each have a position of their own"),
        # The legs handed in carry the balances after each transfer: legs
        # that are not the transfer's own would write balances for another.
        ((0, 1), "2.00", "Transfer 0's legs are not its own"),
    ],
)
def test_the_batch_writer_refuses_transfers_and_legs_that_do_not_match(positions, moved, message):
    from accounts import posting, sql
    from accounts.models import generate_reference

    bank, account = Account.objects.source_account(), AccountFactory()
    now = timezone.now()
    batch = Batch(atomic=True, size=2, description="", username="", created=now, metadata={})
    transfers = [
        posting.new_transfer(
            reference=generate_reference(),
            source_id=bank.pk,
            destination_id=account.pk,
            currency="GBP",
            amount=Decimal("1.00"),
            batch_position=position,
            description="",
            username="",
            created=now,
            effective_at=now,
            metadata={},
        )
        for position in positions
    ]
    legs = [
        (n, pk, "GBP", amount, amount, now)
        for n in range(2)
        for pk, amount in ((bank.pk, -Decimal(moved)), (account.pk, Decimal(moved)))
    ]
    before = Transfer.objects.count(), Batch.objects.count()
    with pytest.raises(RuntimeError, match=message):
        sql.write_batch("default", batch, transfers, legs, {}, [])
    assert (Transfer.objects.count(), Batch.objects.count()) == before


def test_equal_metadata_of_other_json_types_is_each_stored_as_given():
    # 1 == 1.0 == True in Python, three different JSON values.
    bank, account = Account.objects.source_account(), AccountFactory()
    given = [{"n": 1}, {"n": 1.0}, {"n": True}, {"n": 1}]
    batch = facade.transfer_many(
        [facade.TransferRequest(bank, account, Decimal("1.00"), metadata=m) for m in given]
    )
    stored = [t.metadata["n"] for t in batch.transfers.order_by("batch_position")]
    assert [(type(n), n) for n in stored] == [(type(m["n"]), m["n"]) for m in given]
