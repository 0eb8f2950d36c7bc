import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_migrations_are_complete():
    # Exits with status 1 (SystemExit) if a model change lacks a migration.
    call_command("makemigrations", "accounts", check=True, dry_run=True, verbosity=0)


@pytest.mark.django_db(transaction=True)
def test_migrations_unapply_and_apply_again_with_the_guards_in_place():
    from decimal import Decimal

    from django.db import DatabaseError, connection, transaction

    from accounts import facade
    from accounts.models import Account

    call_command("migrate", "accounts", "zero", verbosity=0)
    call_command("migrate", verbosity=0)
    account = Account.objects.create()
    trans = facade.transfer(Account.objects.source_account(), account, Decimal("1.00"))
    with pytest.raises(DatabaseError, match="append-only"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_transfer SET amount = 2 WHERE id = %s", [trans.pk])
