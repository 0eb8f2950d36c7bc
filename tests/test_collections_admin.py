"""The admin of collecting debts: runs with their totals and debts; settle and fail, confirmed."""

import datetime
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from djmoney.money import Money

from accounts import collections, facade
from accounts.collection_models import CollectionRun, Debt, Settlement
from accounts.models import Account, AccountType, Transfer

from .factories import AccountFactory, StaffFactory
from .utils import (
    CLERK_PERMISSIONS,
    CONFIRM,
    confirmed_data,
    ledger_time,
    moment,
    move_money,
    review,
)

pytestmark = pytest.mark.django_db

VIEW = [*CLERK_PERMISSIONS, "accounts.view_collectionrun", "accounts.view_debt"]


def client_for(permissions):
    client = Client()
    client.force_login(StaffFactory(permissions=permissions))
    return client


@pytest.fixture
def clerk_client(db):
    return client_for(VIEW)


@pytest.fixture
def cashier_client(db):
    return client_for([*VIEW, "accounts.move_money"])


@pytest.fixture
def run(db):
    wallets = AccountType.objects.create(name="Wallets", code="wallets")
    sales = Account.objects.sales_account()
    for name, amount, day in (("Alice", "40.00", 5), ("Bob", "30.00", 10)):
        account = AccountFactory(name=name, account_type=wallets, credit_limit=Decimal(100))
        with ledger_time(moment(2026, 1, day)):
            facade.transfer(account, sales, Decimal(amount))
    run = collections.create_run(
        account_type=wallets,
        period_start=datetime.date(2026, 1, 1),
        period_end=datetime.date(2026, 1, 31),
        collect_on=datetime.date(2026, 2, 5),
    )
    collections.run_collection(run)
    return run


def debt_of(name):
    return Debt.objects.get(account__name=name)


def url(name, *args):
    return reverse("admin:accounts_%s" % name, args=args)


def state():
    return (
        Transfer.objects.count(),
        sorted(Debt.objects.values_list("pk", "status", "recovered")),
        Settlement.objects.count(),
    )


# Runs and debts ----------------------------------------------------------------------


def test_the_runs_are_listed_with_their_totals(run, clerk_client):
    collections.settle(debt_of("Alice"), Decimal("15.00"), reference="DD-A")

    page = clerk_client.get(url("collectionrun_changelist"))

    assert page.status_code == 200
    html = page.content.decode()
    assert run.reference in html and "account type Wallets" in html
    for amount in ("£70.00", "£55.00", "£15.00", "£0.00"):  # owed, initiated, recovered, failed
        assert amount in html
    assert "2026-01-01 – 2026-01-31" in html


def test_a_runs_page_shows_its_totals_and_its_debts(run, clerk_client):
    page = clerk_client.get(url("collectionrun_change", run.pk))

    assert page.status_code == 200
    html = page.content.decode()
    alice = debt_of("Alice")
    assert url("debt_change", alice.pk) in html
    assert "All 2 debts of this run" in html
    assert url("debt_changelist") + "?run__id__exact=%s" % run.pk in html
    listed = clerk_client.get(url("debt_changelist") + "?run__id__exact=%s" % run.pk)
    assert listed.status_code == 200 and "Alice" in listed.content.decode()
    assert "Bob" in listed.content.decode()


def test_runs_and_debts_cannot_be_added_changed_or_deleted_in_the_admin(run, cashier_client):
    debt = debt_of("Alice")
    for name, pk in (("collectionrun", run.pk), ("debt", debt.pk)):
        assert cashier_client.get(url("%s_add" % name)).status_code == 403
        assert cashier_client.post(url("%s_delete" % name, pk), {"post": "yes"}).status_code == 403
        page = cashier_client.post(url("%s_change" % name, pk), {"status": "succeeded"})
        assert page.status_code == 403
    assert CollectionRun.objects.get().status == "running"


def test_a_debts_page_offers_settle_and_fail_to_those_who_may_move_money(
    run, clerk_client, cashier_client
):
    debt = debt_of("Alice")

    cashier = cashier_client.get(url("debt_change", debt.pk)).content.decode()
    clerk = clerk_client.get(url("debt_change", debt.pk)).content.decode()

    for link in (url("debt_settle", debt.pk), url("debt_fail", debt.pk)):
        assert link in cashier and link not in clerk
    for page in (cashier, clerk):
        assert url("debt_statement", debt.pk) in page
        assert url("debt_statement_csv", debt.pk) in page


@pytest.mark.parametrize("view", ["debt_settle", "debt_fail"])
def test_staff_who_may_not_move_money_get_403_and_nothing_is_written(run, clerk_client, view):
    debt = debt_of("Alice")
    before = state()

    for response in (
        clerk_client.get(url(view, debt.pk)),
        clerk_client.post(
            url(view, debt.pk),
            {"amount": "40.00", "reference": "DD-A", "reason": "x", CONFIRM: "1"},
        ),
    ):
        assert response.status_code == 403
        assert "accounts.move_money" in response.content.decode()
    assert state() == before


# Settling ------------------------------------------------------------------------------


def test_settling_shows_what_will_happen_first_and_writes_nothing(run, cashier_client):
    debt = debt_of("Alice")
    before = state()

    page = review(cashier_client, url("debt_settle", debt.pk), {"amount": "15.00",
                                                               "reference": "DD-A-1"})  # fmt: skip

    assert page.status_code == 200 and page.context["confirming"]
    assert str(page.context["confirmation"]) == (
        "Record £15.00 received for debt #%s (run %s, reference DD-A-1): move £15.00 from "
        "Bank (GBP) to Alice; £25.00 will still be owed." % (debt.pk, run.reference)
    )
    assert state() == before


def test_a_confirmed_settlement_records_the_money_once(run, cashier_client):
    debt = debt_of("Alice")
    settle_url = url("debt_settle", debt.pk)
    page = review(cashier_client, settle_url, {"amount": "40,00", "reference": "DD-A-1"})

    done = cashier_client.post(settle_url, confirmed_data(page), follow=True)

    assert done.redirect_chain[-1][0] == url("debt_change", debt.pk)
    debt.refresh_from_db()
    assert (debt.status, debt.recovered) == ("succeeded", Money("40.00", "GBP"))
    payment = Transfer.objects.get(merchant_reference="DD-A-1")
    assert payment.username.startswith("user")
    assert "Moved £40.00 from Bank (GBP) to Alice" in done.content.decode()
    before = state()

    again = cashier_client.post(settle_url, confirmed_data(page), follow=True)  # a double click

    assert "This form was already confirmed" in again.content.decode()
    assert state() == before


def test_settling_more_than_is_owed_is_a_form_error_and_writes_nothing(run, cashier_client):
    debt = debt_of("Bob")
    before = state()

    page = move_money(cashier_client, url("debt_settle", debt.pk),
                      {"amount": "30.01", "reference": "DD-B"})  # fmt: skip

    assert page.status_code == 200 and not page.context["confirming"]
    assert page.context["form"].errors == {"amount": ["Only £30.00 is still owed."]}
    assert state() == before


def test_a_settlement_is_checked_again_when_confirmed(run, cashier_client):
    bob = debt_of("Bob")
    page = review(cashier_client, url("debt_settle", bob.pk), {"amount": "30.00",
                                                              "reference": "DD-B"})  # fmt: skip
    collections.settle(bob, Decimal("10.00"), reference="DD-B-0")  # meanwhile, by webhook
    before = state()

    refused = cashier_client.post(url("debt_settle", bob.pk), confirmed_data(page))

    assert refused.status_code == 200
    assert refused.context["form"].errors["amount"] == ["Only £20.00 is still owed."]
    assert state() == before


def test_what_the_ledger_refuses_when_confirmed_is_a_form_error(run, cashier_client):
    alice = debt_of("Alice")
    page = review(cashier_client, url("debt_settle", alice.pk), {"amount": "40.00",
                                                                "reference": "DD-A"})  # fmt: skip
    Account.objects.get(name="Alice").freeze()  # meanwhile
    before = state()

    refused = cashier_client.post(url("debt_settle", alice.pk), confirmed_data(page))

    assert refused.status_code == 200
    assert refused.context["form"].non_field_errors() == ["Account Alice is frozen."]
    assert state() == before


def test_a_reference_already_recorded_for_another_debt_is_a_form_error(run, cashier_client):
    collections.settle(debt_of("Alice"), Decimal("5.00"), reference="DD-1")
    bob = debt_of("Bob")
    before = state()

    page = move_money(cashier_client, url("debt_settle", bob.pk),
                      {"amount": "5.00", "reference": "DD-1"})  # fmt: skip

    assert page.context["form"].errors["reference"] == [
        "This external reference was already recorded, for another amount or another debt: "
        "each payment has its own reference."
    ]
    assert state() == before


def test_a_resolved_debt_cannot_be_settled_in_the_admin(run, cashier_client):
    bob = debt_of("Bob")
    collections.fail(bob, "Returned")

    page = move_money(cashier_client, url("debt_settle", bob.pk),
                      {"amount": "1.00", "reference": "DD-B"})  # fmt: skip

    assert "is failed: nothing is owed any more" in str(page.context["form"].errors)
    assert (
        "Record money received"
        not in cashier_client.get(url("debt_change", bob.pk)).content.decode()
    )


# Failing -------------------------------------------------------------------------------


def test_failing_shows_what_will_happen_first_then_marks_it_failed_once(run, cashier_client):
    debt = debt_of("Bob")
    fail_url = url("debt_fail", debt.pk)
    before = state()

    page = cashier_client.post(fail_url, {"reason": "ARUDD: refer to payer"})

    assert page.context["confirming"]
    assert str(page.context["confirmation"]) == (
        "Mark debt #%s of Bob failed (run %s): £30.00 not recovered will be owed again in "
        "the next run. No money moves." % (debt.pk, run.reference)
    )
    assert state() == before
    done = cashier_client.post(fail_url, confirmed_data(page), follow=True)
    debt.refresh_from_db()
    assert (debt.status, debt.failure_reason) == ("failed", "ARUDD: refer to payer")
    assert "will be owed again in the next run" in done.content.decode()
    again = cashier_client.post(fail_url, confirmed_data(page), follow=True)
    assert "was already marked failed; nothing changed" in again.content.decode()
    assert CollectionRun.objects.get().total_failed == Money("30.00", "GBP")


def test_a_succeeded_debt_cannot_be_failed_in_the_admin(run, cashier_client):
    alice = debt_of("Alice")
    collections.settle(alice, Decimal("40.00"), reference="DD-A")
    before = state()

    page = cashier_client.post(url("debt_fail", alice.pk), {"reason": "oops", CONFIRM: "1"})

    assert "was recovered in full: it cannot fail" in str(page.context["form"].errors)
    assert state() == before


# Statements ----------------------------------------------------------------------------


def test_the_statement_of_a_debt_shows_the_period_and_how_the_debt_follows(run, clerk_client):
    debt = debt_of("Alice")

    page = clerk_client.get(url("debt_statement", debt.pk))

    assert page.status_code == 200
    html = page.content.decode()
    assert page.context["statement"].closing_balance == Money("-40.00", "GBP")
    assert [row.amount for row in page.context["page"].object_list] == [Money("-40.00", "GBP")]
    assert "Sales (GBP)" in html
    for css in ("opening-balance", "closing-balance", "debt-at-freeze", "owed", "remaining"):
        assert 'class="money %s"' % css in html


def test_the_statement_as_csv_is_streamed(run, clerk_client):
    debt = debt_of("Alice")

    response = clerk_client.get(url("debt_statement_csv", debt.pk))

    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="debt-%s-%s.csv"' % (
        debt.pk,
        run.reference,
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("line,date,transfer,counterparty")
    assert lines[-3] == "owed in this run,,,,,,40.00,,GBP"


def test_statements_need_permission_to_view_debts(run):
    client = client_for(CLERK_PERMISSIONS)  # accounts, transfers; not debts
    debt = debt_of("Alice")

    assert client.get(url("debt_statement", debt.pk)).status_code == 403
    assert client.get(url("debt_statement_csv", debt.pk)).status_code == 403
    assert client.get(url("debt_changelist")).status_code == 403
