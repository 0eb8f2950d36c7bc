"""
The REST API under simultaneous requests: real threads, each with its own
database connection, on PostgreSQL and MariaDB (SQLite has no row locks).
"""

import threading
from decimal import Decimal

import pytest

from .utils import require_api

require_api()

from django.contrib.auth.models import Permission  # noqa: E402
from django.db import connections  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from accounts import facade  # noqa: E402
from accounts.models import Account, AccountType, Batch, Hold, Repayment, Transfer  # noqa: E402

from .factories import AccountFactory, UserFactory  # noqa: E402
from .utils import assert_ledger_consistent, needs_row_locks  # noqa: E402

pytestmark = [needs_row_locks, pytest.mark.concurrency, pytest.mark.django_db(transaction=True)]

API = "/api/accounts/"


def simultaneously(count, request):
    """Send request(client) from ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    responses, errors, lock = [], [], threading.Lock()

    def target():
        try:
            client = APIClient()
            barrier.wait(timeout=30)
            response = request(client)
            with lock:
                responses.append(response)
        except Exception as exc:  # noqa: BLE001 - collected and asserted empty
            with lock:
                errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    assert errors == []
    return responses


def test_two_identical_payments_at_once_make_one_transfer():
    barry = UserFactory(username="barry")
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    wallet = AccountFactory(primary_user=barry, account_type=wallets)
    friend = AccountFactory(account_type=wallets)
    facade.transfer(Account.objects.source_account(), wallet, Decimal("50.00"))
    body = {"source": wallet.pk, "destination": friend.pk, "amount": "20.00", "currency": "GBP"}

    def request(client):
        client.force_authenticate(barry)
        return client.post(API + "transfers/", body, format="json", HTTP_IDEMPOTENCY_KEY="pay-1")

    responses = simultaneously(2, request)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert Transfer.objects.filter(source=wallet).count() == 1
    wallet.refresh_from_db()
    assert wallet.balance.amount == Decimal("30.00")
    assert_ledger_consistent()


def test_two_identical_holds_at_once_place_one_hold():
    service = UserFactory(username="shop-backend")
    service.user_permissions.add(
        Permission.objects.get(content_type__app_label="accounts", codename="move_money")
    )
    wallet = AccountFactory()
    facade.transfer(Account.objects.source_account(), wallet, Decimal("50.00"))
    sales = Account.objects.sales_account()
    body = {"source": wallet.pk, "destination": sales.pk, "amount": "20.00", "currency": "GBP"}

    def request(client):
        client.force_authenticate(service)
        return client.post(API + "holds/", body, format="json", HTTP_IDEMPOTENCY_KEY="auth-1")

    responses = simultaneously(2, request)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["reference"] == responses[1].json()["reference"]
    assert Hold.objects.count() == 1
    wallet.refresh_from_db()
    assert wallet.held.amount == Decimal("20.00")


def service_user():
    service = UserFactory(username="shop-backend")
    service.user_permissions.add(
        Permission.objects.get(content_type__app_label="accounts", codename="move_money")
    )
    return service


def test_two_identical_batches_at_once_post_one_batch():
    service = service_user()
    wallet = AccountFactory()
    facade.transfer(Account.objects.source_account(), wallet, Decimal("50.00"))
    sales = Account.objects.sales_account()
    line = {"source": wallet.pk, "destination": sales.pk, "amount": "15.00", "currency": "GBP"}
    body = {"transfers": [line, line]}

    def request(client):
        client.force_authenticate(service)
        return client.post(API + "batches/", body, format="json", HTTP_IDEMPOTENCY_KEY="order-9")

    responses = simultaneously(2, request)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert Batch.objects.count() == 1
    wallet.refresh_from_db()
    assert wallet.balance.amount == Decimal("20.00")
    assert_ledger_consistent()


def test_two_identical_repayments_at_once_repay_once():
    service = service_user()
    card = AccountFactory(credit_limit=Decimal("100.00"))
    facade.transfer(card, Account.objects.sales_account(), Decimal("40.00"))
    funds = AccountFactory()
    facade.transfer(Account.objects.source_account(), funds, Decimal("50.00"))
    body = {"source": funds.pk, "destination": card.pk, "amount": "30.00", "currency": "GBP"}

    def request(client):
        client.force_authenticate(service)
        return client.post(API + "repayments/", body, format="json", HTTP_IDEMPOTENCY_KEY="r-1")

    responses = simultaneously(2, request)
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json() == responses[1].json()
    assert Repayment.objects.count() == 1
    card.refresh_from_db()
    assert card.balance.amount == Decimal("-10.00")
    assert_ledger_consistent()
