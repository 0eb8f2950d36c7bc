"""
The suite's flush (tests/management/commands/flush.py), which empties the
database after each ``transaction=True`` test, leaves what Django's leaves.
"""

from decimal import Decimal

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.core.management.commands.flush import Command as DjangoFlush

from accounts import facade
from accounts.models import Account

from .factories import UserFactory

#: What Django's TransactionTestCase passes after each test.
TEARDOWN = {
    "verbosity": 0,
    "interactive": False,
    "reset_sequences": False,
    "allow_cascade": False,
    "inhibit_post_migrate": False,
}


def fill():
    """Rows in the ledger's tables and Django's."""
    staff = UserFactory(username="flushed", is_staff=True)
    source = Account.objects.source_account()
    wallet = Account.objects.create(name="Wallet", credit_limit=Decimal("10.00"))
    shop = Account.objects.create(name="Shop")
    transfer = facade.transfer(source, wallet, Decimal("30.00"), user=staff)
    facade.reverse(transfer, amount=Decimal("5.00"))
    facade.hold(wallet, shop, Decimal("4.00"))
    facade.transfer_many(
        [
            facade.TransferRequest(source=wallet, destination=shop, amount=Decimal("1.00")),
            facade.TransferRequest(source=wallet, destination=shop, amount=Decimal("2.00")),
        ]
    )


def state():
    """Every table's row count; the core accounts, content types and
    permissions by what they are (their ids and times may differ)."""
    counts = {
        model._meta.db_table: model._base_manager.count()
        for model in apps.get_models(include_auto_created=True)
    }
    core = sorted(
        Account.objects.values_list(
            "role", "currency", "name", "balance", "held", "status", "credit_limit"
        )
    )
    types = sorted(ContentType.objects.values_list("app_label", "model"))
    permissions = sorted(
        Permission.objects.values_list("content_type__app_label", "codename", "name")
    )
    return counts, core, types, permissions


@pytest.mark.django_db(transaction=True)
def test_the_suites_flush_leaves_what_djangos_flush_leaves():
    call_command("flush", **TEARDOWN)  # the first one in a run is a full flush
    fill()
    types = dict(ContentType.objects.values_list("pk", "model"))
    call_command("flush", **TEARDOWN)
    # It took the quick way: the content types it keeps are the same rows.
    assert dict(ContentType.objects.values_list("pk", "model")) == types
    quick = state()
    assert quick[0]["accounts_transfer"] == 0 and quick[0]["auth_user"] == 0

    fill()
    call_command(DjangoFlush(), **TEARDOWN)
    assert dict(ContentType.objects.values_list("pk", "model")) != types
    assert state() == quick


@pytest.mark.django_db(transaction=True)
def test_a_test_that_changed_the_content_types_gets_a_full_flush():
    call_command("flush", **TEARDOWN)
    ContentType.objects.create(app_label="elsewhere", model="gadget")
    fill()
    call_command("flush", **TEARDOWN)
    assert not ContentType.objects.filter(app_label="elsewhere").exists()
    assert Account.objects.filter(role=None).count() == 0
    assert Account.objects.filter(role__isnull=False).count() == Account.objects.count() > 0
