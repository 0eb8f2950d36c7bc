"""
The trust boundary: the ledger decides on its stored, locked rows and its own
clock, and on nothing a caller or an application server holds in memory.

Each test here was written against an attack that created or lost money on
the code before it: idempotency that replayed a result instead of a request,
keys that collided under MariaDB's default collation, a reversal that believed
the Transfer instance, a stale Account.save(), bulk_create around the
zero-balance rule, app-server clocks deciding a hold's expiry, SQLite's
floating-point decimals, and smaller ones of the same kind.
"""

import datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import override_settings
from django.utils import timezone
from djmoney.money import Money

from accounts import expiry, facade
from accounts.exceptions import (
    AccountExpired,
    HoldResolved,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidArgument,
    LedgerImmutable,
)
from accounts.facade import TransferRequest
from accounts.integrity import check_ledger
from accounts.models import Account, Batch, Hold, Repayment, Transaction, Transfer

from .factories import AccountFactory, UserFactory
from .utils import assert_ledger_consistent, ledger_time, ledger_totals

pytestmark = pytest.mark.django_db

GBP = "GBP"


def stored(account):
    return Account.objects.get(pk=account.pk)


@pytest.fixture
def sales(db):
    return Account.objects.sales_account()


@pytest.fixture
def card(fund):
    card = AccountFactory(name="Card")
    fund(card, "7.25")
    return card


# 1. Idempotency is by request ------------------------------------------------------------


def test_a_partial_payment_repeated_with_another_amount_is_a_conflict(card, sales):
    paid = facade.transfer(card, sales, Decimal("20.00"), allow_partial=True, idempotency_key="k")
    assert paid.amount == Money("7.25", GBP)
    # The rest of the order is another payment: it must not be "answered" by
    # the first one (the old code returned it, and 12.75 was never collected).
    with pytest.raises(IdempotencyConflict, match="Idempotency key 'k' was already used"):
        facade.transfer(card, sales, Decimal("12.75"), allow_partial=True, idempotency_key="k")
    # Only the identical request is a replay.
    again = facade.transfer(card, sales, Decimal("20.00"), allow_partial=True, idempotency_key="k")
    assert again == paid
    assert Transfer.objects.filter(idempotency_key="k").count() == 1


def test_a_full_payment_repeated_as_a_partial_one_is_a_conflict(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "50.00")
    facade.transfer(wallet, sales, Decimal("10.00"), idempotency_key="k")
    with pytest.raises(IdempotencyConflict, match="already used"):
        facade.transfer(wallet, sales, Decimal("10.00"), allow_partial=True, idempotency_key="k")


TRANSFER_VARIANTS = {
    "amount": {"amount": Decimal("4.01")},
    "the same amount as Money": {"amount": Money("4.00", GBP)},
    "allow_partial": {"allow_partial": True},
    "merchant_reference": {"merchant_reference": "ORDER-2"},
    "description": {"description": "another"},
    "no description": {"description": None},
    "user": {"user": "other"},
    "destination": {"destination": "other"},
}


@pytest.mark.parametrize("change", sorted(TRANSFER_VARIANTS))
def test_a_transfer_key_answers_only_the_identical_request(fund, sales, change):
    wallet, other = AccountFactory(), AccountFactory()
    fund(wallet, "50.00")
    alice, bob = UserFactory(), UserFactory()
    request = {
        "amount": Decimal("4.00"),
        "merchant_reference": "ORDER-1",
        "description": "Order 1",
        "user": alice,
        "destination": sales,
    }
    first = facade.transfer(wallet, idempotency_key="k", **request)
    # 4 and 4.00 are the same amount: still the same request.
    assert facade.transfer(wallet, idempotency_key="k", **{**request, "amount": Decimal("4")}) == (
        first
    )
    changed = {**request, **TRANSFER_VARIANTS[change]}
    if changed["user"] == "other":
        changed["user"] = bob
    if changed["destination"] == "other":
        changed["destination"] = other
    before = ledger_totals()
    with pytest.raises(IdempotencyConflict, match="with different details"):
        facade.transfer(wallet, idempotency_key="k", **changed)
    assert ledger_totals() == before


def test_a_reversal_key_answers_only_the_identical_request(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "50.00")
    payment = facade.transfer(wallet, sales, Decimal("10.00"))
    refund = facade.reverse(payment, idempotency_key="r")  # all that is left: 10.00
    assert facade.reverse(payment, idempotency_key="r") == refund
    for other in ({"amount": Decimal("10.00")}, {"description": "why"}):
        with pytest.raises(IdempotencyConflict, match="already used"):
            facade.reverse(payment, idempotency_key="r", **other)
    # A transfer with the key of a reversal is another request too.
    with pytest.raises(IdempotencyConflict, match="already used"):
        facade.transfer(sales, wallet, Decimal("10.00"), parent=payment, idempotency_key="r")


def test_a_hold_key_answers_only_the_identical_request(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "50.00")
    expires = timezone.now() + datetime.timedelta(days=1)
    placed = facade.hold(wallet, sales, Decimal("5.00"), expires_at=expires, idempotency_key="h")
    assert (
        facade.hold(wallet, sales, Decimal("5.00"), expires_at=expires, idempotency_key="h")
        == placed
    )
    for other in (
        {"expires_at": expires + datetime.timedelta(seconds=1)},
        {"expires_at": None},
        {"expires_at": expires, "description": "x"},
        {"expires_at": expires, "merchant_reference": "M-1"},
    ):
        with pytest.raises(IdempotencyConflict, match="already used"):
            facade.hold(wallet, sales, Decimal("5.00"), idempotency_key="h", **other)
    assert Hold.objects.count() == 1


def test_a_capture_key_answers_only_the_identical_request(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "50.00")
    placed = facade.hold(wallet, sales, Decimal("5.00"))
    captured = facade.capture(placed, idempotency_key="c")  # all of it
    assert facade.capture(placed, idempotency_key="c") == captured
    with pytest.raises(IdempotencyConflict, match="already used"):
        facade.capture(placed, Decimal("5.00"), idempotency_key="c")


# 2. Keys, references and codes compare exactly -----------------------------------------

DISTINCT_KEYS = [("Xk9aQ", "xK9Aq"), ("pay-7", "pay-7 "), ("café-1", "cafe-1")]


@pytest.mark.parametrize(("first", "second"), DISTINCT_KEYS)
def test_keys_that_differ_in_case_accents_or_trailing_spaces_are_different_payments(
    fund, sales, first, second
):
    wallet = AccountFactory()
    fund(wallet, "50.00")
    one = facade.transfer(wallet, sales, Decimal("1.00"), idempotency_key=first)
    two = facade.transfer(wallet, sales, Decimal("1.00"), idempotency_key=second)
    assert one != two
    assert stored(wallet).balance == Money("48.00", GBP)
    assert Transfer.objects.get(idempotency_key=first) == one
    assert Transfer.objects.get(idempotency_key=second) == two
    hold_one = facade.hold(wallet, sales, Decimal("1.00"), idempotency_key=first)
    hold_two = facade.hold(wallet, sales, Decimal("1.00"), idempotency_key=second)
    assert hold_one != hold_two and stored(wallet).held == Money("2.00", GBP)


@pytest.mark.parametrize(("first", "second"), DISTINCT_KEYS)
def test_merchant_references_are_found_exactly(fund, sales, first, second):
    wallet = AccountFactory()
    fund(wallet, "5.00")
    one = facade.transfer(wallet, sales, Decimal("1.00"), merchant_reference=first)
    facade.transfer(wallet, sales, Decimal("1.00"), merchant_reference=second)
    assert list(Transfer.objects.filter(merchant_reference=first)) == [one]


def test_codes_that_differ_only_in_accents_are_two_cards(db):
    plain, accented = AccountFactory(code="CAFE-1"), AccountFactory(code="CAFÉ-1")
    assert Account.objects.get(code="CAFE1") == plain
    assert Account.objects.get(code="CAFÉ1") == accented


@pytest.mark.skipif(connection.vendor != "mysql", reason="the collation matters on MariaDB/MySQL")
def test_the_key_columns_have_a_binary_no_pad_collation_on_mariadb():
    from accounts.integrity import exact_columns, inexact_columns

    # The ledger's 9, and collections' 4 (run reference and scope, the external
    # references of debts and settlements).
    assert len(exact_columns()) == 13
    assert inexact_columns(connection) == []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT COLLATION_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
            "DATABASE() AND TABLE_NAME = 'accounts_transfer' AND COLUMN_NAME = 'idempotency_key'"
        )
        assert cursor.fetchone()[0] == (
            "utf8mb4_nopad_bin" if connection.mysql_is_mariadb else "utf8mb4_0900_bin"
        )


def test_case_insensitive_searches_still_fold_case_on_exact_columns(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "5.00")
    paid = facade.transfer(wallet, sales, Decimal("1.00"), merchant_reference="Order-77")
    assert list(Transfer.objects.filter(merchant_reference__istartswith="order-7")) == [paid]
    assert list(Transfer.objects.filter(merchant_reference__iexact="ORDER-77")) == [paid]
    assert list(Transfer.objects.filter(merchant_reference__icontains="DER-7")) == [paid]


# 4. Instances passed in are used for their primary key only ---------------------------


def test_reverse_reads_the_transfer_from_the_database_not_the_instance(fund, sales):
    wallet, stranger = AccountFactory(), AccountFactory()
    fund(wallet, "100.00")
    fund(stranger, "50.00")
    payment = facade.transfer(wallet, sales, Decimal("10.00"))
    payment.amount = Decimal("100.00")  # the old code reversed 100.00
    payment.source_id, payment.destination_id = stranger.pk, wallet.pk
    payment.merchant_reference = "FORGED"
    refund = facade.reverse(payment)
    assert (refund.source_id, refund.destination_id) == (sales.pk, wallet.pk)
    assert refund.amount == Money("10.00", GBP)
    assert refund.merchant_reference is None
    assert stored(wallet).balance == Money("100.00", GBP)
    assert stored(stranger).balance == Money("50.00", GBP)
    assert_ledger_consistent()


def _hostile(field, instance):
    """A value for ``field`` that would change an outcome if it were believed."""
    other = Account.objects.exclude(pk__in=[instance.pk]).order_by("-pk").first()
    internal = field.get_internal_type()
    if field.is_relation:
        return other.pk
    if internal == "DecimalField":  # balances, limits, amounts, what was spent
        return Decimal("99999.00")
    if field.name == "status":
        return {"open": "closed", "active": "captured"}.get(instance.status, "open")
    if field.name == "currency":
        return "EUR"
    if field.name == "role":
        return Account.Role.SOURCE
    if internal == "DateTimeField":
        return timezone.now() - datetime.timedelta(days=3650)
    if internal == "DateField":
        return datetime.date.today() - datetime.timedelta(days=3650)
    if internal == "BooleanField":
        return not getattr(instance, field.attname)
    if internal in ("IntegerField", "PositiveIntegerField", "BigIntegerField"):
        return 999
    if internal in ("CharField", "TextField"):
        return "forged"
    return None


def tampered(instance):
    """Copies of ``instance`` from the database, each with one field forged in memory."""
    model = type(instance)
    for field in model._meta.concrete_fields:
        if field.primary_key:
            continue
        copy = model.objects.get(pk=instance.pk)
        value = _hostile(field, copy)
        if value is None:
            continue
        copy.__dict__[field.attname] = value  # around any descriptor: memory only
        yield field.name, copy


def outcome(call):
    """What ``call`` does to the database (then rolled back): the state it leaves, or its error."""

    def rows(queryset):
        return sorted(queryset, key=repr)  # None sorts too

    def state():
        return (
            sorted(Account.objects.values_list("pk", "balance", "held", "status")),
            # Not the holds' keys: a rolled-back insert still uses up a sequence value.
            rows(Hold.objects.values_list("source", "destination", "status", "amount")),
            rows(Transfer.objects.values_list("source", "destination", "amount", "parent")),
            Transaction.objects.count(),
            rows(Batch.objects.values_list("atomic", "size", "reverses")),
            Repayment.objects.count(),
        )

    with transaction.atomic():
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - the error is part of the outcome
            result = type(exc).__name__
        else:
            # An independent batch answers per request: each one's outcome counts.
            results = getattr(result, "results", None)
            result = type(result).__name__
            if results is not None:
                result = (result, [type(each).__name__ for each in results])
        found = (result, state())
        transaction.set_rollback(True)
    return found


@pytest.fixture
def world(fund, sales):
    wallet = AccountFactory(name="Wallet", credit_limit=Decimal("5.00"))
    fund(wallet, "40.00")
    shop = AccountFactory(name="Shop")
    payment = facade.transfer(wallet, shop, Decimal("10.00"))
    held = facade.hold(wallet, shop, Decimal("8.00"))
    expired = AccountFactory(name="Expired card")
    fund(expired, "6.00")
    Account.objects.filter(pk=expired.pk).update(end_date=timezone.now())
    debtor = AccountFactory(name="Debtor", credit_limit=Decimal("50.00"))
    facade.transfer(debtor, shop, Decimal("20.00"))
    batch = facade.transfer_many(
        [
            TransferRequest(shop, debtor, Decimal("2.00")),
            TransferRequest(shop, wallet, Decimal("3.00")),
        ]
    )
    return {
        "wallet": wallet,
        "shop": shop,
        "payment": payment,
        "hold": held,
        "expired": expired,
        "debtor": debtor,
        "batch": batch,
        "sink": Account.objects.expired_account(GBP),
    }


def batch_of(*requests, atomic=True):
    """``transfer_many`` of ``requests``, each ``(source, destination, amount, parent)``."""
    return facade.transfer_many(
        [
            TransferRequest(s, d, None if a is None else Decimal(a), parent=p)
            for s, d, a, p in requests
        ],
        atomic=atomic,
    )


OPERATIONS = {
    "transfer (source)": (
        "wallet",
        lambda w, a: facade.transfer(a, w["shop"], Decimal("37.00")),
    ),
    "transfer (destination)": (
        "shop",
        lambda w, a: facade.transfer(w["wallet"], a, Decimal("37.00")),
    ),
    "partial transfer": (
        "wallet",
        lambda w, a: facade.transfer(a, w["shop"], Decimal("99.00"), allow_partial=True),
    ),
    "transfer with parent": (
        "payment",
        lambda w, a: facade.transfer(w["shop"], w["wallet"], Decimal("3.00"), parent=a),
    ),
    "reverse": ("payment", lambda w, a: facade.reverse(a)),
    "partial reverse": ("payment", lambda w, a: facade.reverse(a, amount=Decimal("4.00"))),
    "hold": ("wallet", lambda w, a: facade.hold(a, w["shop"], Decimal("19.00"))),
    "capture": ("hold", lambda w, a: facade.capture(a)),
    "partial capture": ("hold", lambda w, a: facade.capture(a, Decimal("3.00"))),
    "release": ("hold", lambda w, a: facade.release(a)),
    "expire hold": ("hold", lambda w, a: facade.expire_hold(a)),
    "expire account": ("expired", lambda w, a: facade.expire_account(a)),
    "freeze": ("wallet", lambda w, a: a.freeze()),
    "close": ("shop", lambda w, a: a.close()),
    "thaw": ("wallet", lambda w, a: a.thaw()),
    "change status": ("wallet", lambda w, a: facade.change_status(a, Account.Status.FROZEN)),
    "hold (destination)": ("shop", lambda w, a: facade.hold(w["wallet"], a, Decimal("19.00"))),
    "expire account (sink)": ("sink", lambda w, a: facade.expire_account(w["expired"], sink=a)),
    # The debtor owes 18.00; the wallet can spend 30.00 (33.00, less 8.00
    # held, plus its 5.00 credit).
    "repay (source)": ("wallet", lambda w, a: facade.repay(a, w["debtor"], Decimal("18.00"))),
    "repay (destination)": (
        "debtor",
        lambda w, a: facade.repay(w["wallet"], a, Decimal("25.00")),
    ),
    # Linked, the requests pass exactly; independent, the middle one is
    # refused and the others pass: a forged balance, hold, limit, status or
    # currency believed anywhere would move one of these outcomes.
    "batch, linked (source)": (
        "wallet",
        lambda w, a: batch_of((a, w["shop"], "20.00", None), (a, w["shop"], "10.00", None)),
    ),
    "batch, independent (source)": (
        "wallet",
        lambda w, a: batch_of(
            (a, w["shop"], "20.00", None),
            (a, w["shop"], "11.00", None),
            (a, w["shop"], "10.00", None),
            atomic=False,
        ),
    ),
    "batch, linked (destination)": (
        "shop",
        lambda w, a: batch_of((w["wallet"], a, "10.00", None), (a, w["wallet"], "35.00", None)),
    ),
    "batch, independent (destination)": (
        "shop",
        lambda w, a: batch_of(
            (a, w["wallet"], "36.00", None),
            (w["wallet"], a, "10.00", None),
            (a, w["wallet"], "35.00", None),
            atomic=False,
        ),
    ),
    "batch, linked (parent)": (
        "payment",
        lambda w, a: batch_of(
            (w["shop"], w["wallet"], "4.00", a), (w["shop"], w["wallet"], None, a)
        ),
    ),
    "batch, independent (parent)": (
        "payment",
        lambda w, a: batch_of(
            (w["shop"], w["wallet"], "4.00", a),
            (w["shop"], w["wallet"], "7.00", a),
            (w["shop"], w["wallet"], "6.00", a),
            atomic=False,
        ),
    ),
    "reverse batch": ("batch", lambda w, a: facade.reverse_batch(a)),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_no_field_of_an_instance_passed_in_changes_the_outcome(world, name):
    role, operation = OPERATIONS[name]
    original = world[role]
    fresh = type(original).objects.get(pk=original.pk)
    control = outcome(lambda: operation(world, fresh))
    forged = list(tampered(original))
    assert len(forged) >= 5
    for field, copy in forged:
        assert outcome(lambda copy=copy: operation(world, copy)) == control, field


# 5. A stale Account.save() writes back nothing it did not change ------------------------


def test_a_stale_instance_does_not_restore_a_credit_limit_that_was_cut(fund):
    wallet = AccountFactory(credit_limit=Decimal("500.00"))
    stale = stored(wallet)
    risk = stored(wallet)
    risk.credit_limit = Decimal("0.00")
    risk.end_date = datetime.date(2030, 1, 31)
    risk.save()
    stale.description = "New address"
    stale.save()
    now = stored(wallet)
    assert now.credit_limit == Money("0.00", GBP)
    assert now.end_date is not None
    assert now.description == "New address"


def test_saving_an_unchanged_instance_writes_nothing(django_assert_num_queries):
    wallet = stored(AccountFactory())
    with django_assert_num_queries(0):
        wallet.save()


def test_a_changed_credit_limit_is_stamped_with_the_database_clock(db):
    wallet = AccountFactory(credit_limit=Decimal("50.00"))
    assert stored(wallet).credit_limit_changed_at is None
    wallet.credit_limit = Decimal("20.00")
    wallet.save()
    changed = stored(wallet).credit_limit_changed_at
    assert changed is not None and abs(changed - timezone.now()) < datetime.timedelta(minutes=5)
    assert wallet.credit_limit_changed_at == changed  # read back, not an expression
    Account.objects.filter(pk=wallet.pk).update(credit_limit=Decimal("10.00"))
    assert stored(wallet).credit_limit_changed_at >= changed


# 6. bulk_create cannot create money -----------------------------------------------------


def test_bulk_create_refuses_an_account_with_a_balance(db):
    before = Account.objects.count()
    with pytest.raises(LedgerImmutable, match="starts with a zero balance"):
        Account.objects.bulk_create(
            [Account(name="ok"), Account(name="rich", balance=Decimal("1000.00"))]
        )
    with pytest.raises(LedgerImmutable, match="starts with a zero balance"):
        Account.objects.bulk_create([Account(name="held", held=Decimal("1.00"))])
    assert Account.objects.count() == before


def test_bulk_create_checks_and_normalizes_like_save(db):
    (card,) = Account.objects.bulk_create([Account(code="abcd-efgh-jkmn")])
    assert stored(card).code == "ABCDEFGHJKMN"
    with pytest.raises(InvalidAmount, match="Credit limit"):
        Account.objects.bulk_create([Account(credit_limit=Decimal("-1.00"))])


# 7. One clock: the database's, under the lock ------------------------------------------


def test_an_application_server_clock_decides_nothing(fund, sales, monkeypatch):
    wallet = AccountFactory(credit_limit=Decimal("0.00"))
    fund(wallet, "100.00")
    expires = timezone.now() + datetime.timedelta(minutes=10)
    auth = facade.hold(wallet, sales, Decimal("100.00"), expires_at=expires)
    real_now = timezone.now

    # Server A's clock runs eleven minutes fast: to it, the hold has lapsed.
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(minutes=11))
    with pytest.raises(InsufficientFunds, match="only £0.00 is available"):
        facade.transfer(wallet, sales, Decimal("100.00"))
    # Server B's clock is five seconds slow; the hold is good whatever it says.
    monkeypatch.setattr(timezone, "now", lambda: real_now() - datetime.timedelta(seconds=5))
    facade.capture(auth)
    monkeypatch.undo()

    assert stored(wallet).balance == Money("0.00", GBP)
    assert check_ledger().ok
    assert_ledger_consistent()


def test_once_a_debit_relied_on_a_lapsed_hold_nothing_can_capture_it(fund, sales):
    wallet = AccountFactory(credit_limit=Decimal("0.00"))
    fund(wallet, "100.00")
    placed_at = timezone.now()
    expires = placed_at + datetime.timedelta(minutes=10)
    auth = facade.hold(wallet, sales, Decimal("100.00"), expires_at=expires)
    with ledger_time(expires + datetime.timedelta(seconds=1)):
        facade.transfer(wallet, sales, Decimal("100.00"))  # the hold has lapsed
    # Even at a moment before the expiry (a clock that went back), the hold
    # stays expired: it was marked so with the debit that relied on it.
    with ledger_time(expires - datetime.timedelta(seconds=5)):
        with pytest.raises(HoldResolved, match="is already expired"):
            facade.capture(auth)
    assert stored(wallet).balance == Money("0.00", GBP)
    assert stored(wallet).held == Money("0.00", GBP)
    # Checked at the debit's time: ten minutes before midnight, the debit
    # counted in a day that has not begun yet for the real clock.
    with ledger_time(expires + datetime.timedelta(seconds=1)):
        assert check_ledger().ok


def test_an_account_window_is_judged_by_the_database_clock(fund, sales, monkeypatch):
    card = AccountFactory(end_date=timezone.now() + datetime.timedelta(hours=1))
    fund(card, "10.00")
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + datetime.timedelta(days=2))
    facade.transfer(card, sales, Decimal("1.00"))  # still valid, whatever this server says
    monkeypatch.undo()
    with ledger_time(real_now() + datetime.timedelta(days=2)):
        with pytest.raises(AccountExpired, match="expired on"):
            facade.transfer(card, sales, Decimal("1.00"))


def test_rows_are_stamped_with_the_database_clock(fund, sales, monkeypatch):
    card = AccountFactory()
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() - datetime.timedelta(days=400))
    moved = fund(card, "1.00")
    monkeypatch.undo()
    assert abs(moved.created - real_now()) < datetime.timedelta(minutes=5)


# 8. Every backend stores every accepted amount exactly ----------------------------------


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("12345678901234.56", "is too large: amounts must be below 100000000000"),
        ("100000000000.00", "is too large: amounts must be below 100000000000"),
        ("99999999999.99999", r"more decimal places than GBP allows \(2\)"),
    ],
)
def test_amounts_a_backend_could_not_store_exactly_are_refused_everywhere(fund, amount, message):
    wallet = AccountFactory()
    before = ledger_totals()
    with pytest.raises(InvalidAmount, match=message):
        fund(wallet, amount)
    assert ledger_totals() == before


def test_the_largest_amount_round_trips_exactly_and_spends_to_zero(fund, sales):
    wallet = AccountFactory()
    fund(wallet, "99999999999.99")
    assert stored(wallet).balance == Money("99999999999.99", GBP)
    leg = Transaction.objects.get(account=wallet)
    assert leg.balance_after == Money("99999999999.99", GBP)
    facade.transfer(wallet, sales, Decimal("99999999999.99"))
    assert stored(wallet).balance == Money("0.00", GBP)
    with pytest.raises(InvalidAmount, match="beyond what the ledger stores"):
        facade.transfer(Account.objects.source_account(), sales, Decimal("99999999999.99"))
    assert_ledger_consistent()


# 9. Smaller ones, same root -------------------------------------------------------------


@override_settings(ACCOUNTS_MAX_INITIAL_VALUE=Decimal("100.00"))
def test_reversing_a_withdrawal_cannot_pass_the_maximum_balance(fund):
    bank = Account.objects.source_account()
    card = AccountFactory()
    fund(card, "100.00")
    withdrawal = facade.transfer(card, bank, Decimal("100.00"))
    fund(card, "100.00")
    with pytest.raises(InvalidAmount, match="above the maximum of £100.00"):
        facade.reverse(withdrawal)
    assert stored(card).balance == Money("100.00", GBP)


def test_a_dry_run_creates_no_core_account(fund):
    with override_settings(ACCOUNTS_CURRENCIES=["GBP", "EUR", "JPY", "USD"]):
        card = AccountFactory(currency="USD", end_date=timezone.now())
        Account.objects.filter(pk=card.pk).update(
            end_date=timezone.now() - datetime.timedelta(days=1)
        )
        assert not Account.objects.filter(currency="USD", role__isnull=False).exists()
        from io import StringIO

        from django.core.management import call_command

        out = StringIO()
        call_command("close_expired_accounts", "--dry-run", stdout=out)
        assert "Would close 1" in out.getvalue()
        assert not Account.objects.filter(currency="USD", role__isnull=False).exists()


def test_the_holds_of_an_expired_account_in_debt_lapse(fund, sales):
    card = AccountFactory(credit_limit=Decimal("50.00"))
    facade.transfer(card, sales, Decimal("30.00"))  # 30.00 in debt
    auth = facade.hold(card, sales, Decimal("10.00"))
    Account.objects.filter(pk=card.pk).update(end_date=timezone.now())
    result = expiry.close_expired_accounts()
    assert [account.pk for account, _ in result.in_debt] == [card.pk]
    assert result.holds_expired == 1
    assert Hold.objects.get(pk=auth.pk).status == Hold.Status.EXPIRED
    assert stored(card).held == Money("0.00", GBP)
    assert stored(card).is_open()  # the debt stays visible
    assert check_ledger().ok


BAD_TEXT = ["nul\x00byte", "lone \ud800 surrogate"]


@pytest.mark.parametrize("text", BAD_TEXT)
@pytest.mark.parametrize("argument", ["description", "merchant_reference", "idempotency_key"])
def test_text_no_database_can_store_is_refused_everywhere(fund, sales, text, argument):
    wallet = AccountFactory()
    fund(wallet, "10.00")
    before = (ledger_totals(), Hold.objects.count())
    with pytest.raises(InvalidArgument, match="NUL character|lone surrogate"):
        facade.transfer(wallet, sales, Decimal("1.00"), **{argument: text})
    with pytest.raises(InvalidArgument, match="NUL character|lone surrogate"):
        facade.hold(wallet, sales, Decimal("1.00"), **{argument: text})
    assert (ledger_totals(), Hold.objects.count()) == before


@pytest.mark.parametrize("text", BAD_TEXT)
@pytest.mark.parametrize("field", ["name", "code", "description"])
def test_accounts_refuse_text_no_database_can_store(db, text, field):
    before = Account.objects.count()
    with pytest.raises(InvalidArgument, match="NUL character|lone surrogate"):
        Account.objects.create(**{field: text})
    assert Account.objects.count() == before


def test_codes_are_stored_normalized_and_found_as_printed(db):
    from accounts.codes import normalize_code

    card = Account.objects.create(code="abcd-efgh-jkmn")
    assert stored(card).code == "ABCDEFGHJKMN"
    card.code = " wxyz 2345 "
    card.save()
    assert stored(card).code == "WXYZ2345"
    Account.objects.filter(pk=card.pk).update(code="pqrs-tuvw")
    assert stored(card).code == "PQRSTUVW"
    assert Account.objects.get(code=normalize_code("pqrs-TUVW")) == card
