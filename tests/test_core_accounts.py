import pytest
from django.core.management import call_command
from django.test.utils import override_settings

from accounts.core_accounts import create_core_accounts
from accounts.exceptions import UnsupportedCurrency
from accounts.models import Account


@pytest.mark.django_db
def test_migrate_creates_source_sales_and_expired_for_every_currency():
    core = set(Account.objects.filter(role__isnull=False).values_list("role", "currency", "name"))
    expected = set()
    for currency in ("GBP", "EUR", "JPY"):
        expected |= {
            ("source", currency, "Bank (%s)" % currency),
            ("sales", currency, "Sales (%s)" % currency),
            ("expired", currency, "Expired accounts (%s)" % currency),
        }
    assert core == expected


@pytest.mark.django_db
def test_core_account_limits():
    source = Account.objects.source_account("EUR")
    assert source.credit_limit is None and source.available_amount is None
    assert Account.objects.sales_account("EUR").credit_limit.amount == 0
    assert Account.objects.expired_account("EUR").credit_limit.amount == 0


@pytest.mark.django_db
def test_core_accounts_are_fetched_by_role_and_currency():
    assert Account.objects.source_account() == Account.objects.core(Account.Role.SOURCE, "GBP")
    assert Account.objects.sales_account("EUR").name == "Sales (EUR)"
    assert Account.objects.expired_account("JPY").currency == "JPY"
    with pytest.raises(UnsupportedCurrency, match="'USD' is not one of ACCOUNTS_CURRENCIES"):
        Account.objects.source_account("USD")


@pytest.mark.django_db
def test_creating_core_accounts_again_changes_nothing():
    before = list(Account.objects.order_by("pk").values_list("pk", "role", "currency", "name"))
    create_core_accounts()
    call_command("migrate", verbosity=0)
    after = list(Account.objects.order_by("pk").values_list("pk", "role", "currency", "name"))
    assert after == before


@pytest.mark.django_db
def test_a_currency_added_later_gets_core_accounts_on_first_use():
    with override_settings(ACCOUNTS_CURRENCIES=["GBP", "EUR", "JPY", "USD"]):
        bank = Account.objects.source_account("USD")
        assert (bank.role, bank.currency, bank.name) == ("source", "USD", "Bank (USD)")
        create_core_accounts()
        assert Account.objects.filter(currency="USD", role__isnull=False).count() == 3


@pytest.mark.django_db
def test_renamed_core_accounts_follow_settings_including_old_names():
    with override_settings(ACCOUNTS_REDEMPTIONS_NAME="Redemptions", ACCOUNTS_LAPSED_NAME="Lapsed"):
        create_core_accounts()
        assert Account.objects.sales_account().name == "Redemptions (GBP)"
        assert Account.objects.expired_account().name == "Lapsed (GBP)"
    with override_settings(ACCOUNTS_SALES_NAME="Shop sales"):
        create_core_accounts()
        assert Account.objects.sales_account().name == "Shop sales (GBP)"


@pytest.mark.django_db(transaction=True)
def test_core_accounts_are_there_again_after_flush():
    call_command("flush", interactive=False, verbosity=0)
    assert Account.objects.filter(role__isnull=False).count() == 9


@pytest.mark.django_db
def test_the_database_refuses_a_second_core_account_of_a_role_and_currency():
    from django.db import IntegrityError, connection, transaction

    Account.objects.create(name="Customer one")
    Account.objects.create(name="Customer two")  # accounts without a role never collide
    with pytest.raises(IntegrityError, match="(?i)unique|duplicate"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO accounts_account (name, description, role, status, currency, "
                "balance, held, credit_limit, created, spent_day, spent_week, spent_month, "
                "metadata) "
                "VALUES ('Second bank', '', 'source', 'open', 'GBP', 0, 0, NULL, %s, 0, 0, 0, "
                "'{}')",
                [Account.objects.source_account().created],
            )
