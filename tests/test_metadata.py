"""Metadata: a JSON object on accounts and ledger rows, checked, fixed, filterable."""

import datetime
import json
from decimal import Decimal

import pytest
from django.core import checks
from django.db import DatabaseError, connection, transaction
from django.test.utils import override_settings

from accounts import facade, sql
from accounts.exceptions import (
    IdempotencyConflict,
    InsufficientFunds,
    InvalidArgument,
    LedgerImmutable,
)
from accounts.models import Account, Batch, Decline, Hold, Transfer

from .factories import AccountFactory

pytestmark = pytest.mark.django_db

CARD = {"mcc": "5411", "merchant": "Teapot & Grinder", "city": "Leeds"}


@pytest.fixture
def wallet(fund):
    account = AccountFactory(credit_limit=Decimal("0"))
    fund(account, "100.00")
    return account


@pytest.fixture
def shop(db):
    return Account.objects.sales_account()


def raw(statement, *params):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def counts():
    return (
        Transfer.objects.count(),
        Hold.objects.count(),
        Batch.objects.count(),
        Decline.objects.count(),
    )


# Set when the row is created ---------------------------------------------------------


def test_each_operation_stores_its_metadata(wallet, shop, source):
    paid = facade.transfer(wallet, shop, Decimal("5.00"), metadata=CARD)
    assert paid.metadata == CARD
    assert Transfer.objects.get(pk=paid.pk).metadata == CARD
    refund = facade.reverse(paid, amount=Decimal("1.00"))
    assert Transfer.objects.get(pk=refund.pk).metadata == CARD  # the original's
    other = facade.reverse(paid, amount=Decimal("1.00"), metadata={"reason": "damaged"})
    assert Transfer.objects.get(pk=other.pk).metadata == {"reason": "damaged"}
    held = facade.hold(wallet, shop, Decimal("3.00"), metadata=CARD)
    assert Hold.objects.get(pk=held.pk).metadata == CARD
    captured = facade.capture(held)
    assert Transfer.objects.get(pk=captured.pk).metadata == CARD  # the hold's
    own = facade.capture(
        facade.hold(wallet, shop, Decimal("3.00"), metadata=CARD), metadata={"tip": 0}
    )
    assert Transfer.objects.get(pk=own.pk).metadata == {"tip": 0}
    batch = facade.transfer_many(
        [
            facade.TransferRequest(wallet, shop, Decimal("1.00"), metadata={"line": 1}),
            facade.TransferRequest(wallet, shop, Decimal("1.00")),
        ],
        metadata={"file": "payroll-7.csv"},
    )
    assert Batch.objects.get(pk=batch.pk).metadata == {"file": "payroll-7.csv"}
    assert list(Transfer.objects.filter(batch=batch.pk).values_list("metadata", flat=True)) in (
        [{"line": 1}, {}],
        [{}, {"line": 1}],
    )
    undone = facade.reverse_batch(batch, metadata={"why": "duplicate file"})
    assert Batch.objects.get(pk=undone.pk).metadata == {"why": "duplicate file"}
    assert sorted(
        json.dumps(m)
        for m in Transfer.objects.filter(batch=undone.pk).values_list("metadata", flat=True)
    ) == ['{"line": 1}', "{}"]
    debtor = AccountFactory(credit_limit=None)
    facade.transfer(debtor, shop, Decimal("8.00"))
    repaid = facade.repay(source, debtor, Decimal("8.00"), metadata={"claim": "R-1"})
    assert Transfer.objects.get(pk=repaid.pk).metadata == {"claim": "R-1"}


def test_the_default_is_an_empty_object(wallet, shop):
    paid = facade.transfer(wallet, shop, Decimal("1.00"))
    held = facade.hold(wallet, shop, Decimal("1.00"))
    assert Transfer.objects.get(pk=paid.pk).metadata == {}
    assert Hold.objects.get(pk=held.pk).metadata == {}
    assert Account.objects.get(pk=wallet.pk).metadata == {}


def test_a_callers_dict_changed_afterwards_changes_nothing_stored(wallet, shop):
    given = {"mcc": "5411", "tags": ["a"]}
    paid = facade.transfer(wallet, shop, Decimal("1.00"), metadata=given)
    given["mcc"] = "0000"
    given["tags"].append("b")
    assert Transfer.objects.get(pk=paid.pk).metadata == {"mcc": "5411", "tags": ["a"]}


def test_a_decline_keeps_the_refused_requests_metadata(settings, wallet, shop):
    settings.ACCOUNTS_RECORD_DECLINES = True
    with pytest.raises(InsufficientFunds, match="available"):
        facade.transfer(wallet, shop, Decimal("1000.00"), metadata=CARD)
    assert Decline.objects.get().metadata == CARD


# Checked: a JSON object of JSON values, within the size -------------------------------

BAD = [
    ("a list", ["mcc"], "must be a JSON object"),
    ("a string", '{"mcc": "5411"}', "must be a JSON object"),
    ("a key that is not a string", {1: "x"}, "key 1 in metadata is not a string"),
    ("a Decimal", {"fee": Decimal("1.50")}, r"metadata\['fee'\] is Decimal"),
    ("NaN", {"rate": float("nan")}, "JSON has no NaN or Infinity"),
    ("Infinity", {"rate": float("inf")}, "JSON has no NaN or Infinity"),
    ("a tuple", {"pair": (1, 2)}, r"\(tuple\), which is not a JSON value"),
    ("a set", {"tags": {"a"}}, r"\(set\), which is not a JSON value"),
    ("bytes", {"raw": b"x"}, r"\(bytes\), which is not a JSON value"),
    (
        "a datetime",
        {"at": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)},
        r"\(datetime\), which is not a JSON value",
    ),
    ("deep inside", {"a": [{"b": [object()]}]}, r"metadata\['a'\]\[0\]\['b'\]\[0\]"),
    ("a NUL character", {"note": "a\x00b"}, "NUL character"),
    ("a lone surrogate", {"note": "\ud800"}, "lone surrogate"),
]


@pytest.mark.parametrize(("shape", "value", "message"), BAD, ids=[b[0] for b in BAD])
def test_anything_but_a_json_object_of_json_values_is_refused_and_writes_nothing(
    wallet, shop, shape, value, message
):
    before = counts()
    for call in (
        lambda: facade.transfer(wallet, shop, Decimal("1.00"), metadata=value),
        lambda: facade.hold(wallet, shop, Decimal("1.00"), metadata=value),
        lambda: facade.transfer_many(
            [facade.TransferRequest(wallet, shop, Decimal("1.00"), metadata=value)]
        ),
        lambda: facade.transfer_many(
            [facade.TransferRequest(wallet, shop, Decimal("1.00"))], metadata=value
        ),
    ):
        with pytest.raises(InvalidArgument, match=message):
            call()
    assert counts() == before
    account = Account.objects.get(pk=wallet.pk)
    account.metadata = value
    with pytest.raises(InvalidArgument, match=message):
        account.save()
    with pytest.raises(InvalidArgument, match=message):
        Account.objects.filter(pk=wallet.pk).update(metadata=value)
    assert Account.objects.get(pk=wallet.pk).metadata == {}


def test_capture_reverse_and_repay_check_it_too(wallet, shop, source):
    held = facade.hold(wallet, shop, Decimal("1.00"))
    paid = facade.transfer(wallet, shop, Decimal("1.00"))
    before = counts()
    for call in (
        lambda: facade.capture(held, metadata=[1]),
        lambda: facade.reverse(paid, metadata={"x": {1, 2}}),
        lambda: facade.repay(source, wallet, Decimal("1.00"), metadata="x"),
        lambda: facade.reverse_batch(Batch(pk=1), metadata=7),
    ):
        with pytest.raises(InvalidArgument, match="JSON"):
            call()
    assert counts() == before


def compact_size(value):
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@override_settings(ACCOUNTS_METADATA_MAX_BYTES=64)
def test_the_size_limit_counts_compact_utf8_json_exactly_at_and_over(wallet, shop):
    # {"note":"…"}: 11 bytes around the text; "é" is two bytes in UTF-8.
    at_limit = {"note": "é" * 26 + "a"}
    assert compact_size(at_limit) == 64
    paid = facade.transfer(wallet, shop, Decimal("1.00"), metadata=at_limit)
    assert Transfer.objects.get(pk=paid.pk).metadata == at_limit
    over = {"note": "é" * 27}
    assert compact_size(over) == 65
    before = counts()
    with pytest.raises(InvalidArgument, match="is 65 bytes as JSON; the most is 64"):
        facade.transfer(wallet, shop, Decimal("1.00"), metadata=over)
    with pytest.raises(InvalidArgument, match="is 65 bytes as JSON"):
        facade.hold(wallet, shop, Decimal("1.00"), metadata=over)
    assert counts() == before
    account = Account.objects.get(pk=wallet.pk)
    account.metadata = over
    with pytest.raises(InvalidArgument, match="is 65 bytes"):
        account.save()


@pytest.mark.parametrize("value", [0, -1, "4096", 1.5, True, None])
def test_the_size_setting_is_checked(settings, value):
    settings.ACCOUNTS_METADATA_MAX_BYTES = value
    found = [m.id for m in checks.run_checks(databases=[]) if m.id.startswith("accounts.")]
    assert found == ["accounts.E022"]


# Part of an idempotent request ---------------------------------------------------------


def test_same_key_and_metadata_is_a_replay_other_metadata_a_conflict(wallet, shop):
    first = facade.transfer(wallet, shop, Decimal("5.00"), metadata=CARD, idempotency_key="k1")
    # Same object, keys in another order: the same request.
    again = facade.transfer(
        wallet, shop, Decimal("5.00"), metadata=dict(reversed(CARD.items())), idempotency_key="k1"
    )
    assert again.pk == first.pk
    for other in ({**CARD, "city": "York"}, {}, None, {**CARD, "extra": None}):
        with pytest.raises(IdempotencyConflict, match="k1"):
            facade.transfer(wallet, shop, Decimal("5.00"), metadata=other, idempotency_key="k1")
    held = facade.hold(wallet, shop, Decimal("2.00"), metadata=CARD, idempotency_key="h1")
    assert facade.hold(wallet, shop, Decimal("2.00"), metadata=CARD, idempotency_key="h1") == held
    with pytest.raises(IdempotencyConflict, match="h1"):
        facade.hold(wallet, shop, Decimal("2.00"), metadata={"mcc": "1"}, idempotency_key="h1")
    assert Transfer.objects.filter(idempotency_key="k1").count() == 1


def test_a_capture_given_no_metadata_and_one_given_an_empty_object_differ(wallet, shop):
    held = facade.hold(wallet, shop, Decimal("2.00"), metadata=CARD)
    facade.capture(held, idempotency_key="c1")
    assert facade.capture(held, idempotency_key="c1").metadata == CARD
    with pytest.raises(IdempotencyConflict, match="c1"):
        facade.capture(held, metadata={}, idempotency_key="c1")


def test_a_batch_request_with_other_metadata_is_a_conflict(wallet, shop):
    def post(request_metadata, batch_metadata):
        return facade.transfer_many(
            [facade.TransferRequest(wallet, shop, Decimal("1.00"), metadata=request_metadata)],
            metadata=batch_metadata,
            idempotency_key="b1",
        )

    first = post(CARD, {"file": "a"})
    assert post(CARD, {"file": "a"}).pk == first.pk
    with pytest.raises(IdempotencyConflict, match="b1"):
        post({"mcc": "0"}, {"file": "a"})
    with pytest.raises(IdempotencyConflict, match="b1"):
        post(CARD, {"file": "b"})


# Fixed on ledger rows, editable on accounts -----------------------------------------------


def test_the_orm_refuses_to_change_a_ledger_rows_metadata(wallet, shop):
    paid = facade.transfer(wallet, shop, Decimal("1.00"), metadata=CARD)
    held = facade.hold(wallet, shop, Decimal("1.00"), metadata=CARD)
    batch = facade.transfer_many([facade.TransferRequest(wallet, shop, Decimal("1.00"))])
    for model, pk, saving, updating in (
        (Transfer, paid.pk, "Transfers are append-only", "transfer rows are append-only"),
        (Hold, held.pk, "hold rows are written only by", "Holds change state only through"),
        (Batch, batch.pk, "batch rows are written only by", "batch rows are append-only"),
    ):
        row = model.objects.get(pk=pk)
        row.metadata = {"forged": True}
        with pytest.raises(LedgerImmutable, match=saving):
            row.save()
        with pytest.raises(LedgerImmutable, match=updating):
            model.objects.filter(pk=pk).update(metadata={"forged": True})
    assert Transfer.objects.get(pk=paid.pk).metadata == CARD


@pytest.mark.parametrize("table", ["accounts_transfer", "accounts_hold", "accounts_batch"])
@pytest.mark.parametrize("value", ['{"forged":true}', "{}"])
def test_the_database_refuses_to_change_a_ledger_rows_metadata(wallet, shop, table, value):
    paid = facade.transfer(wallet, shop, Decimal("1.00"), metadata={"mcc": "5411"})
    held = facade.hold(wallet, shop, Decimal("1.00"), metadata=CARD)
    batch = facade.transfer_many(
        [facade.TransferRequest(wallet, shop, Decimal("1.00"))], metadata=CARD
    )
    pk = {"accounts_transfer": paid.pk, "accounts_hold": held.pk, "accounts_batch": batch.pk}
    with pytest.raises(DatabaseError, match="UPDATE of %s .*append-only" % table):
        raw("UPDATE %s SET metadata = %%s WHERE id = %%s" % table, value, pk[table])


def test_the_database_refuses_a_change_of_case_in_metadata(wallet, shop):
    paid = facade.transfer(wallet, shop, Decimal("1.00"), metadata={"merchant": "Teapot"})
    with pytest.raises(DatabaseError, match="UPDATE of accounts_transfer .*append-only"):
        raw(
            "UPDATE accounts_transfer SET metadata = %s WHERE id = %s",
            '{"merchant": "teapot"}',
            paid.pk,
        )
    assert Transfer.objects.get(pk=paid.pk).metadata == {"merchant": "Teapot"}


def test_the_database_refuses_to_change_a_declines_metadata(settings, wallet, shop):
    settings.ACCOUNTS_RECORD_DECLINES = True
    with pytest.raises(InsufficientFunds, match="available"):
        facade.transfer(wallet, shop, Decimal("1000.00"), metadata=CARD)
    decline = Decline.objects.get()
    with pytest.raises(DatabaseError, match="UPDATE of accounts_decline .*append-only"):
        raw("UPDATE accounts_decline SET metadata = '{}' WHERE id = %s", decline.pk)


def test_an_accounts_metadata_is_editable(wallet):
    account = Account.objects.get(pk=wallet.pk)
    account.metadata = {"tier": "gold"}
    account.save()
    assert Account.objects.get(pk=wallet.pk).metadata == {"tier": "gold"}
    account.metadata["tier"] = "silver"  # changed in place: still saved
    account.save()
    assert Account.objects.get(pk=wallet.pk).metadata == {"tier": "silver"}
    Account.objects.filter(pk=wallet.pk).update(metadata={"tier": "bronze"})
    assert Account.objects.get(pk=wallet.pk).metadata == {"tier": "bronze"}
    raw("UPDATE accounts_account SET metadata = %s WHERE id = %s", '{"tier": "raw"}', wallet.pk)
    assert Account.objects.get(pk=wallet.pk).metadata == {"tier": "raw"}


def test_a_stale_account_instance_does_not_write_back_old_metadata(wallet):
    stale = Account.objects.get(pk=wallet.pk)
    Account.objects.filter(pk=wallet.pk).update(metadata={"tier": "gold"})
    stale.description = "Renamed"
    stale.save()
    assert Account.objects.get(pk=wallet.pk).metadata == {"tier": "gold"}


# Filterable with the ORM on every backend ------------------------------------------------


def test_the_orm_filters_by_metadata_keys(wallet, shop):
    grocer = facade.transfer(wallet, shop, Decimal("1.00"), metadata=CARD)
    cafe = facade.transfer(
        wallet,
        shop,
        Decimal("2.00"),
        metadata={"mcc": "5814", "merchant": "Café Ünïcode", "n": 3, "tags": ["x"], "ok": True},
    )
    facade.transfer(wallet, shop, Decimal("3.00"))
    assert list(Transfer.objects.filter(metadata__mcc="5411")) == [grocer]
    assert list(Transfer.objects.filter(metadata__merchant="Café Ünïcode")) == [cafe]
    assert list(Transfer.objects.filter(metadata__n=3)) == [cafe]
    assert list(Transfer.objects.filter(metadata__n__gt=2)) == [cafe]
    assert list(Transfer.objects.filter(metadata__ok=True)) == [cafe]
    assert list(Transfer.objects.filter(metadata__has_key="city")) == [grocer]
    if connection.features.supports_json_field_contains:
        assert list(Transfer.objects.filter(metadata__contains={"city": "Leeds"})) == [grocer]
    assert Transfer.objects.filter(metadata__mcc="9999").count() == 0
    held = facade.hold(wallet, shop, Decimal("1.00"), metadata=CARD)
    assert list(Hold.objects.filter(metadata__city="Leeds")) == [held]
    Account.objects.filter(pk=wallet.pk).update(metadata={"tier": "gold"})
    assert list(Account.objects.filter(metadata__tier="gold")) == [wallet]


def test_the_locking_read_leaves_out_the_columns_no_rule_reads(wallet):
    # The metadata (up to ACCOUNTS_METADATA_MAX_BYTES per account), the
    # description and two timestamps, parsed in Python for each account a
    # batch locks: under the lock, for nothing.
    unread = {"metadata", "description", "created", "credit_limit_changed_at"}
    columns = sql.account_columns(connection)
    assert [name for name in unread if connection.ops.quote_name(name) in columns] == []
    with transaction.atomic():
        rows, _now, _limits = sql.lock_accounts("default", [wallet.pk])
    locked = rows[wallet.pk]
    assert locked.get_deferred_fields() == unread
    # Still there when asked for: loaded on first access, as Django defers.
    assert locked.created == Account.objects.get(pk=wallet.pk).created
