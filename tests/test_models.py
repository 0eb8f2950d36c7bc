import datetime
import zoneinfo
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db.models import ProtectedError
from django.test.utils import override_settings
from django.utils import timezone
from djmoney.money import Money

from accounts import facade
from accounts.exceptions import (
    AccountNotEmpty,
    ClosedAccount,
    CurrencyMismatch,
    InvalidAmount,
    InvalidArgument,
    LedgerImmutable,
    ProtectedAccount,
    UnsupportedCurrency,
)
from accounts.model_columns import generate_references
from accounts.models import (
    REFERENCE_ALPHABET,
    REFERENCE_LENGTH,
    Account,
    Transaction,
    Transfer,
    generate_reference,
)

from .factories import AccountFactory, AccountTypeFactory, UserFactory
from .utils import ledger_time

pytestmark = pytest.mark.django_db


# Creating accounts ------------------------------------------------------------------


def test_new_account_defaults(db):
    account = Account.objects.create()
    assert account.currency == "GBP"
    assert account.balance == Money("0.00", "GBP")
    assert account.credit_limit == Money("0.00", "GBP")
    assert account.status == Account.Status.OPEN
    assert account.available_amount == Money("0.00", "GBP")
    assert account.name is None and account.code is None
    assert str(account) == "#%s" % account.pk


def test_currency_is_given_at_creation_and_a_decimal_limit_means_that_currency(db):
    account = Account.objects.create(currency="EUR", credit_limit=Decimal("25.00"))
    account.refresh_from_db()
    assert account.currency == "EUR"
    assert account.credit_limit == Money("25.00", "EUR")
    assert account.balance == Money("0.00", "EUR")


def test_a_money_credit_limit_sets_the_currency_when_none_is_given(db):
    account = Account.objects.create(credit_limit=Money("10.00", "EUR"))
    assert account.currency == "EUR"


def test_a_credit_limit_in_another_currency_is_refused(db):
    with pytest.raises(
        CurrencyMismatch, match="credit limit is in GBP but the row's currency is EUR"
    ):
        Account.objects.create(currency="EUR", credit_limit=Money("10.00", "GBP"))


def test_default_currency_follows_settings(db):
    with override_settings(ACCOUNTS_DEFAULT_CURRENCY="EUR"):
        assert Account.objects.create().currency == "EUR"


def test_a_currency_outside_accounts_currencies_is_refused(db):
    with pytest.raises(UnsupportedCurrency, match=r"'USD' is not one of ACCOUNTS_CURRENCIES"):
        Account.objects.create(currency="USD")
    assert not Account.objects.filter(currency="USD").exists()


@pytest.mark.parametrize("limit", [Decimal("-0.01"), Decimal("-100")])
def test_a_negative_credit_limit_is_invalid(db, limit):
    with pytest.raises(InvalidAmount, match="Credit limit .* is invalid"):
        Account.objects.create(credit_limit=limit)
    account = Account(credit_limit=limit)
    with pytest.raises(ValidationError, match="is invalid"):
        account.full_clean()


def test_a_credit_limit_with_more_decimals_than_the_currency_is_invalid(db):
    with pytest.raises(InvalidAmount, match="more decimal places than JPY allows"):
        Account.objects.create(currency="JPY", credit_limit=Decimal("10.5"))


def test_names_and_codes_are_unique_but_optional(db):
    Account.objects.create(name="", code="")
    Account.objects.create(name="", code="")  # blanks are stored as NULL, not as ""
    Account.objects.create(name="Barry", code="GIFT-1")
    with pytest.raises(ValidationError, match="Account with this Name already exists"):
        Account(name="Barry").full_clean()
    assert Account.objects.filter(name__isnull=True).count() >= 2


def test_a_new_account_cannot_start_with_a_balance(db):
    with pytest.raises(LedgerImmutable, match="starts with a zero balance"):
        Account.objects.create(balance=Decimal("100.00"))


def test_saving_an_account_never_writes_its_balance(source, fund):
    account = AccountFactory()
    stale = Account.objects.get(pk=account.pk)
    fund(account, "30.00")
    stale.description = "edited in the admin meanwhile"
    stale.balance = Money("999.00", "GBP")
    stale.save()
    account.refresh_from_db()
    assert account.balance == Money("30.00", "GBP")
    assert account.description == "edited in the admin meanwhile"
    with pytest.raises(LedgerImmutable, match="balance is changed only by accounts.facade"):
        stale.save(update_fields=["balance"])


def test_balance_cannot_be_updated_through_a_queryset(account):
    with pytest.raises(LedgerImmutable, match="balance can only be changed by accounts.facade"):
        Account.objects.filter(pk=account.pk).update(balance=Decimal("5"))


def test_currency_can_change_until_the_account_has_transactions(source):
    account = AccountFactory()
    account.currency = "EUR"
    account.save()
    assert Account.objects.get(pk=account.pk).currency == "EUR"

    funded = AccountFactory()
    facade.transfer(source, funded, Decimal("1.00"))
    funded = Account.objects.get(pk=funded.pk)
    funded.currency = "EUR"
    with pytest.raises(ValidationError, match="cannot change to EUR"):
        funded.full_clean()
    with pytest.raises(CurrencyMismatch, match="has transactions in GBP"):
        funded.save()
    assert Account.objects.get(pk=funded.pk).currency == "GBP"


def test_credit_limit_can_be_lowered_below_current_debt(fund):
    account = AccountFactory(credit_limit=Decimal("50.00"))
    facade.transfer(account, Account.objects.sales_account(), Decimal("40.00"))
    account.credit_limit = Decimal("10.00")
    account.save()
    account.refresh_from_db()
    assert account.balance == Money("-40.00", "GBP")
    assert account.available_amount == Money("-30.00", "GBP")
    assert not account.is_debit_permitted(Decimal("0.01"))
    fund(account, "5.00")  # credits still work


# Users ----------------------------------------------------------------------------------


def test_for_user_returns_primary_and_secondary_accounts_once(db):
    barry, sue = UserFactory(), UserFactory()
    own = AccountFactory(primary_user=barry)
    shared = AccountFactory(primary_user=sue)
    shared.secondary_users.add(barry, UserFactory())
    both = AccountFactory(primary_user=barry)
    both.secondary_users.add(barry)
    AccountFactory(primary_user=sue)
    AccountFactory()

    assert sorted(a.pk for a in Account.objects.for_user(barry)) == sorted(
        [own.pk, shared.pk, both.pk]
    )
    assert Account.objects.for_user(None).count() == 0


def test_can_be_authorised_by(db):
    barry, sue, stranger = UserFactory(), UserFactory(), UserFactory()
    nobodys = AccountFactory()
    assert nobodys.can_be_authorised_by(stranger)

    account = AccountFactory(primary_user=barry)
    account.secondary_users.add(sue)
    assert account.can_be_authorised_by(barry)
    assert account.can_be_authorised_by(sue)
    assert not account.can_be_authorised_by(stranger)
    assert not account.can_be_authorised_by(None)

    only_secondary = AccountFactory()
    only_secondary.secondary_users.add(sue)
    assert only_secondary.can_be_authorised_by(sue)
    assert not only_secondary.can_be_authorised_by(barry)


def test_deleting_a_user_keeps_the_ledger_and_the_username(source):
    barry = UserFactory(username="barry")
    account = AccountFactory(primary_user=barry)
    trans = facade.transfer(source, account, Decimal("1.00"), user=barry)
    barry.delete()
    trans = Transfer.objects.get(pk=trans.pk)
    assert trans.user is None
    assert trans.username == "barry"
    assert Account.objects.get(pk=account.pk).primary_user is None


def test_deleting_an_account_with_transfers_is_refused(source, account):
    facade.transfer(source, account, Decimal("1.00"))
    with pytest.raises(ProtectedError, match="referenced through protected foreign keys"):
        account.delete()
    assert Transaction.objects.filter(account=account).count() == 1


def test_deleting_an_account_type_keeps_its_accounts(db):
    kind = AccountTypeFactory()
    account = AccountFactory(account_type=kind)
    kind.delete()
    account.refresh_from_db()
    assert account.account_type is None


def test_core_accounts_cannot_be_deleted(source):
    with pytest.raises(ProtectedAccount, match="is a core account and cannot be deleted"):
        source.delete()
    core = Account.objects.filter(role__isnull=False).count()
    customer = AccountFactory()
    with pytest.raises(ProtectedAccount, match="is a core account and cannot be deleted"):
        Account.objects.filter(role__isnull=False).delete()
    with pytest.raises(ProtectedAccount, match="cannot be deleted"):
        Account.objects.filter(pk__in=[customer.pk, source.pk]).delete()
    assert Account.objects.filter(pk=customer.pk).exists()
    assert Account.objects.filter(role__isnull=False).count() == core
    Account.objects.filter(pk=customer.pk).delete()
    assert not Account.objects.filter(pk=customer.pk).exists()


# Ledger rows are append-only ---------------------------------------------------------


def test_transfers_and_transactions_cannot_be_changed_or_deleted(source, account):
    trans = facade.transfer(source, account, Decimal("1.00"))
    leg = trans.transactions.first()
    for obj in (trans, leg):
        obj.description = "changed" if obj is trans else None
        with pytest.raises(LedgerImmutable, match="append-only"):
            obj.save()
        with pytest.raises(LedgerImmutable, match="append-only"):
            obj.delete()
    with pytest.raises(LedgerImmutable, match="cannot be updated"):
        Transfer.objects.all().update(description="x")
    with pytest.raises(LedgerImmutable, match="cannot be deleted"):
        Transfer.objects.all().delete()
    with pytest.raises(LedgerImmutable, match="cannot be updated"):
        Transaction.objects.all().update(amount=Decimal("5"))
    with pytest.raises(LedgerImmutable, match="cannot be deleted"):
        Transaction.objects.filter(pk=leg.pk).delete()
    with pytest.raises(LedgerImmutable, match="transfer rows are append-only"):
        Transfer.objects.bulk_update([trans], ["description"])
    assert Transfer.objects.get(pk=trans.pk).description == ""
    assert Transaction.objects.count() == 2


# Status --------------------------------------------------------------------------------


def test_close_refuses_a_non_zero_balance(fund):
    account = AccountFactory()
    fund(account, "1.00")
    with pytest.raises(AccountNotEmpty, match="its balance is £1.00, not zero"):
        account.close()
    assert Account.objects.get(pk=account.pk).status == Account.Status.OPEN


def test_close_checks_the_stored_balance_not_the_instance(fund):
    account = AccountFactory()
    stale = Account.objects.get(pk=account.pk)
    fund(account, "1.00")
    assert stale.balance == Money("0.00", "GBP")
    with pytest.raises(AccountNotEmpty, match="its balance is £1.00, not zero"):
        stale.close()


def test_close_freeze_thaw(account):
    account.freeze()
    assert Account.objects.get(pk=account.pk).status == Account.Status.FROZEN
    account.thaw()
    assert Account.objects.get(pk=account.pk).is_open()
    account.close()
    assert Account.objects.get(pk=account.pk).is_closed()
    account.close()  # closing twice changes nothing
    with pytest.raises(ClosedAccount, match="is closed"):
        account.thaw()
    with pytest.raises(ClosedAccount, match="is closed"):
        account.freeze()


def test_a_stale_instance_never_undoes_a_status_change(account):
    stale = Account.objects.get(pk=account.pk)
    account.freeze()
    stale.description = "Edited while the account was being frozen"
    stale.save()
    stored = Account.objects.get(pk=account.pk)
    assert stored.is_frozen()
    assert stored.description == "Edited while the account was being frozen"
    partial = Account.objects.only("description").get(pk=account.pk)
    account.thaw()
    partial.description = "Edited again"
    partial.save()
    assert Account.objects.get(pk=account.pk).is_open()


def test_a_status_set_on_the_instance_is_refused_by_save_and_nothing_is_written(fund):
    account = AccountFactory()
    fund(account, "10.00")
    for status in (Account.Status.CLOSED, Account.Status.FROZEN, "suspended"):
        account = Account.objects.get(pk=account.pk)
        account.status = status
        account.description = "Not saved either"
        with pytest.raises(LedgerImmutable, match="changes only through freeze\\(\\), thaw"):
            account.save()
        with pytest.raises(LedgerImmutable, match="changes only through freeze\\(\\), thaw"):
            account.save(update_fields=["status", "description"])
        stored = Account.objects.get(pk=account.pk)
        assert stored.is_open() and stored.description == ""


def test_status_changes_go_through_the_locked_checks(fund):
    account = AccountFactory()
    fund(account, "10.00")
    with pytest.raises(AccountNotEmpty, match="its balance is £10.00, not zero"):
        facade.close(account)
    facade.freeze(account)
    assert account.is_frozen() and Account.objects.get(pk=account.pk).is_frozen()
    account.description = "Saved after a freeze"
    account.save()  # the status it was given by freeze() is the row's: no change
    facade.thaw(account)
    assert Account.objects.get(pk=account.pk).is_open()


def test_an_unknown_status_is_refused(account):
    with pytest.raises(InvalidArgument, match="Unknown account status 'suspended'"):
        facade.change_status(account, "suspended")
    assert Account.objects.get(pk=account.pk).is_open()


def test_a_status_cannot_be_changed_by_queryset_update(fund):
    account = AccountFactory()
    fund(account, "10.00")
    with pytest.raises(LedgerImmutable, match="changes only through freeze\\(\\), thaw"):
        Account.objects.filter(pk=account.pk).update(status=Account.Status.CLOSED)
    assert Account.objects.get(pk=account.pk).is_open()


def test_core_accounts_cannot_be_closed_or_frozen(source):
    with pytest.raises(ProtectedAccount, match="cannot be closed"):
        source.close()
    with pytest.raises(ProtectedAccount, match="cannot be frozen"):
        Account.objects.sales_account().freeze()


def test_is_active_and_is_expired():
    now = timezone.now()
    account = Account(end_date=now - datetime.timedelta(minutes=1))
    assert not account.is_active() and account.is_expired()
    assert account.is_active(at=now - datetime.timedelta(hours=1))
    future = Account(start_date=now + datetime.timedelta(minutes=1))
    assert not future.is_active() and not future.is_expired()
    assert not Account(status=Account.Status.FROZEN).is_active()


def test_dates_are_whole_days_in_the_current_time_zone():
    day = datetime.date(2026, 3, 29)  # the day British Summer Time starts
    with timezone.override(zoneinfo.ZoneInfo("Europe/London")):
        account = Account(start_date=day, end_date=day)
    assert account.start_date == datetime.datetime(2026, 3, 29, tzinfo=datetime.UTC)
    assert account.end_date == datetime.datetime(
        2026, 3, 29, 22, 59, 59, 999999, tzinfo=datetime.UTC
    )
    with timezone.override(zoneinfo.ZoneInfo("Asia/Tokyo")):
        tokyo = Account(end_date=day)
    assert tokyo.end_date == datetime.datetime(
        2026, 3, 29, 14, 59, 59, 999999, tzinfo=datetime.UTC
    )


def test_dates_round_trip_through_the_database(db):
    account = AccountFactory(end_date=datetime.date(2030, 1, 31))
    account.refresh_from_db()
    assert timezone.localtime(account.end_date).date() == datetime.date(2030, 1, 31)
    assert Account.objects.active(at=account.end_date).filter(pk=account.pk).exists()
    assert (
        Account.objects.expired(at=account.end_date + datetime.timedelta(microseconds=1))
        .filter(pk=account.pk)
        .exists()
    )


def test_end_before_start_is_a_validation_error():
    account = Account(start_date=datetime.date(2030, 1, 2), end_date=datetime.date(2030, 1, 1))
    with pytest.raises(ValidationError, match="end date is before the start date"):
        account.clean()


def test_is_debit_permitted(fund):
    account = AccountFactory(credit_limit=Decimal("5.00"))
    fund(account, "10.00")
    assert account.is_debit_permitted(Decimal("15.00"))
    assert not account.is_debit_permitted(Money("15.01", "GBP"))
    with pytest.raises(InvalidAmount, match="has type float"):
        account.is_debit_permitted(15.0)
    with pytest.raises(CurrencyMismatch, match="in EUR but the account uses GBP"):
        account.is_debit_permitted(Money("1.00", "EUR"))
    assert Account(credit_limit=None).is_debit_permitted(Decimal("1000000"))


# Types ------------------------------------------------------------------------------


def test_account_types_form_a_tree(db):
    gifts = AccountTypeFactory(name="Gift cards", code="gift")
    physical = AccountTypeFactory(name="Physical", code="physical", parent=gifts)
    plastic = AccountTypeFactory(name="Plastic", code="plastic", parent=physical)
    other = AccountTypeFactory()
    a, b, c = (AccountFactory(account_type=t) for t in (gifts, plastic, other))
    assert plastic.ancestors() == [physical, gifts]
    assert set(Account.objects.of_type(gifts)) == {a, b}
    assert set(Account.objects.of_type("gift", include_children=False)) == {a}
    gifts.parent = plastic
    with pytest.raises(ValidationError, match="below itself"):
        gifts.clean()


# History ------------------------------------------------------------------------------


def _at(moment):
    """Move the ledger's clock, so history lands at known moments."""
    return ledger_time(moment)


def test_balance_at_and_statement(source, django_assert_num_queries):
    tz = timezone.get_current_timezone()
    account = AccountFactory()
    sales = Account.objects.sales_account()
    days = [datetime.datetime(2026, 1, d, 12, tzinfo=tz) for d in (1, 2, 3, 4)]
    with _at(days[0]):
        facade.transfer(source, account, Decimal("10.00"))
    with _at(days[1]):
        facade.transfer(account, sales, Decimal("3.00"))
    with _at(days[2]):
        facade.transfer(source, account, Decimal("5.00"))
    with _at(days[3]):
        facade.transfer(account, sales, Decimal("1.50"))

    assert account.balance_at(days[0] - datetime.timedelta(seconds=1)) == Money("0.00", "GBP")
    assert account.balance_at(days[0]) == Money("10.00", "GBP")
    assert account.balance_at(datetime.date(2026, 1, 2)) == Money("7.00", "GBP")
    assert account.balance_at(datetime.date(2026, 1, 31)) == Money("10.50", "GBP")

    with django_assert_num_queries(3):
        statement = account.statement(datetime.date(2026, 1, 2), datetime.date(2026, 1, 3))
        rows = list(statement)
    assert statement.opening_balance == Money("10.00", "GBP")
    assert statement.closing_balance == Money("12.00", "GBP")
    assert [(t.amount, t.balance_after) for t in rows] == [
        (Money("-3.00", "GBP"), Money("7.00", "GBP")),
        (Money("5.00", "GBP"), Money("12.00", "GBP")),
    ]
    assert rows[0].transfer.destination_id == sales.pk  # no extra query: select_related

    whole = account.statement()
    assert whole.opening_balance == Money("0.00", "GBP")
    assert whole.closing_balance == account.balance
    assert len(list(whole)) == 4


def test_history_queries_do_not_grow_with_history(source, django_assert_num_queries):
    account = AccountFactory()
    for _ in range(50):
        facade.transfer(source, account, Decimal("1.00"))
    with django_assert_num_queries(1):
        assert account.balance_at(timezone.now()) == Money("50.00", "GBP")
    with django_assert_num_queries(2):
        statement = account.statement(timezone.now() - datetime.timedelta(days=1))
    with django_assert_num_queries(1):
        page = list(statement.transactions.reverse()[:10])
    assert page[0].balance_after == Money("50.00", "GBP")


def test_ledger_rows_cannot_be_created_around_the_facade(source, account):
    with pytest.raises(LedgerImmutable, match="written only by accounts.facade"):
        Transfer.objects.create(
            source=source, destination=account, currency="GBP", amount=Decimal("1.00")
        )
    trans = facade.transfer(source, account, Decimal("1.00"))
    with pytest.raises(LedgerImmutable, match="written only by accounts.facade"):
        Transaction.objects.bulk_create(
            [
                Transaction(
                    transfer=trans,
                    account=account,
                    currency="GBP",
                    amount=Decimal("1"),
                    balance_after=Decimal("2"),
                )
            ]
        )
    assert Transfer.objects.count() == 1 and Transaction.objects.count() == 2


# Transfer references ------------------------------------------------------------------


@pytest.mark.parametrize("drawn", ["one by one", "together"])
def test_generated_references_use_every_character_of_the_alphabet_in_every_position(drawn):
    if drawn == "together":  # as a batch draws them
        references = generate_references(1000) + generate_references(1) + generate_references(1999)
    else:
        references = [generate_reference() for _ in range(3000)]
    assert len(references) == 3000
    assert {len(reference) for reference in references} == {REFERENCE_LENGTH}
    assert len(set(references)) == len(references)
    for position in range(REFERENCE_LENGTH):
        # 3,000 draws leave a character out of a position with a probability
        # of about 10**-42: a missing one means the digits are not uniform.
        assert {reference[position] for reference in references} == set(REFERENCE_ALPHABET)


def test_bytes_past_the_last_whole_round_of_the_alphabet_are_dropped_and_drawn_again(
    monkeypatch,
):
    # The system's randomness, scripted: first only bytes that would make
    # the first characters likelier than the rest (248 to 255), then each
    # byte value from 0 to 255 once, then zeros.
    from accounts import model_columns

    drawn = []

    def token_bytes(size):
        drawn.append(size)
        if len(drawn) == 1:
            return bytes(range(248, 256)) * (size // 8 + 1)
        if len(drawn) == 2:
            return bytes(range(256))[:size]
        return bytes(size)

    monkeypatch.setattr(model_columns.secrets, "token_bytes", token_bytes)
    references = generate_references(20)  # 320 characters
    # Each draw asks for an eighth more than still needed, and 8 bytes.
    assert drawn == [368, 368, 89]
    kept = "".join(REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)] for byte in range(248))
    assert "".join(references) == kept + REFERENCE_ALPHABET[0] * (320 - 248)
    assert {len(reference) for reference in references} == {REFERENCE_LENGTH}
