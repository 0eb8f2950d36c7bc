"""The admin for staff: accounts, status actions, moving money, statements and the ledger."""

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from djmoney.money import Money

import accounts
from accounts import facade
from accounts.admin import AccountAdmin
from accounts.forms import AccountForm
from accounts.models import Account, Transfer

from .factories import AccountFactory, AccountTypeFactory, StaffFactory, UserFactory
from .utils import assert_ledger_consistent, confirmed_data, ledger_time, ledger_totals, move_money

pytestmark = pytest.mark.django_db


def url(name, *args, query=""):
    return reverse("admin:accounts_%s" % name, args=args) + query


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


def post_action(client, action, accounts):
    return client.post(
        url("account_changelist"),
        {"action": action, "_selected_action": [a.pk for a in accounts]},
        follow=True,
    )


def refreshed(account):
    account.refresh_from_db()
    return account


@pytest.fixture
def funded(fund):
    account = AccountFactory(name="Barry's wallet")
    fund(account, "100.00")
    return account


# URLs ------------------------------------------------------------------------


def test_money_moving_views_are_named_after_what_they_do():
    assert url("account_top_up", 7) == "/admin/accounts/account/7/top_up/"
    assert url("account_withdraw", 7) == "/admin/accounts/account/7/withdraw/"
    assert url("account_transfer") == "/admin/accounts/account/transfer/"
    assert url("transfer_reverse", 7) == "/admin/accounts/transfer/7/reverse/"
    assert url("account_statement", 7) == "/admin/accounts/account/7/statement/"


def test_the_package_ships_its_admin_templates():
    templates = Path(accounts.__file__).parent / "templates" / "admin" / "accounts"
    for name in (
        "move_money.html",
        "account/change_form.html",
        "account/change_list.html",
        "account/statement.html",
        "transfer/change_form.html",
    ):
        assert (templates / name).is_file(), name


def test_anonymous_users_are_sent_to_the_login_page(funded):
    for target in (url("account_top_up", funded.pk), url("account_statement", funded.pk)):
        response = Client().get(target)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


# Account list, search and filters --------------------------------------------


def test_account_list_shows_the_accounts_money_and_owners(admin_client, fund):
    owner = UserFactory(username="barry")
    gift_cards = AccountTypeFactory(name="Gift cards")
    account = AccountFactory(
        name="Barry's card",
        code="GIFT-1",
        account_type=gift_cards,
        primary_user=owner,
        credit_limit=Decimal("5.00"),
        end_date=datetime.date(2030, 1, 31),
    )
    fund(account, "12.50")

    response = admin_client.get(url("account_changelist"))

    assert response.status_code == 200
    row = next(r for r in response.context["cl"].result_list if r.pk == account.pk)
    assert row == account
    html = response.content.decode()
    # The code as printed: stored GIFT1, shown in groups of four.
    for text in ("Barry&#x27;s card", "GIFT-1", "Gift cards", "barry", "£12.50", "£5.00", "GBP"):
        assert text in html
    assert "Jan. 31, 2030" in html


@pytest.mark.parametrize("query", ["wallet", "GIFT-9", "barry"])
def test_accounts_can_be_searched_by_name_code_and_user(admin_client, query):
    barry = UserFactory(username="barry")
    wanted = AccountFactory(name="Barry's wallet", code="GIFT-9", primary_user=barry)
    AccountFactory(name="Other", code="GIFT-1")

    response = admin_client.get(url("account_changelist", query="?q=%s" % query))

    found = {a.pk for a in response.context["cl"].result_list}
    assert wanted.pk in found
    assert not any(a.name == "Other" for a in response.context["cl"].result_list)


def test_accounts_can_be_searched_by_secondary_user(admin_client):
    shared = AccountFactory(name="Family wallet")
    shared.secondary_users.add(UserFactory(username="carol"))
    AccountFactory(name="Other")

    response = admin_client.get(url("account_changelist", query="?q=carol"))

    assert list(response.context["cl"].result_list) == [shared]


def filtered(client, query):
    response = client.get(url("account_changelist", query=query))
    assert response.status_code == 200
    return {a.pk for a in response.context["cl"].result_list}


def test_accounts_can_be_filtered_by_status_type_and_currency(admin_client):
    gift_cards = AccountTypeFactory()
    frozen = AccountFactory()
    frozen.freeze()
    typed = AccountFactory(account_type=gift_cards)
    euro = AccountFactory(currency="EUR")

    assert filtered(admin_client, "?status__exact=frozen") == {frozen.pk}
    assert filtered(admin_client, "?account_type__id__exact=%s" % gift_cards.pk) == {typed.pk}
    euro_core = set(
        Account.objects.filter(role__isnull=False, currency="EUR").values_list("pk", flat=True)
    )
    assert filtered(admin_client, "?currency=EUR") == {euro.pk} | euro_core


def test_accounts_can_be_filtered_by_activity(admin_client):
    now = timezone.now()
    expired = AccountFactory(end_date=now - datetime.timedelta(days=1))
    future = AccountFactory(start_date=now + datetime.timedelta(days=1))
    active = AccountFactory()
    frozen = AccountFactory()
    frozen.freeze()

    assert filtered(admin_client, "?activity=expired") == {expired.pk}
    assert filtered(admin_client, "?activity=not_started") == {future.pk}
    active_ids = filtered(admin_client, "?activity=active")
    assert active.pk in active_ids
    assert not active_ids & {expired.pk, future.pk, frozen.pk}


# Creating and editing accounts ---------------------------------------------------


def account_data(**overrides):
    data = {
        "name": "New wallet",
        "code": "",
        "description": "",
        "account_type": "",
        "primary_user": "",
        "secondary_users": [],
        "currency": "GBP",
        "credit_limit": "0",
        "start_date_0": "",
        "start_date_1": "",
        "end_date_0": "",
        "end_date_1": "",
    }
    data.update(overrides)
    return data


def test_staff_can_create_an_account_in_any_configured_currency(cashier_client):
    response = cashier_client.post(
        url("account_add"), account_data(currency="EUR", credit_limit="25.50")
    )

    assert response.status_code == 302
    account = Account.objects.get(name="New wallet")
    assert account.currency == "EUR"
    assert account.credit_limit == Money("25.50", "EUR")
    assert account.balance == Money("0.00", "EUR")
    assert account.is_open()


def test_the_account_form_offers_no_balance_or_status_field(clerk_client, funded):
    response = clerk_client.get(url("account_change", funded.pk))

    fields = response.context["adminform"].form.fields
    assert "balance" not in fields
    assert "status" not in fields
    assert "£100.00" in response.content.decode()  # shown, read-only


def test_posting_a_balance_or_status_changes_neither(clerk_client, funded):
    response = clerk_client.post(
        url("account_change", funded.pk),
        account_data(name=funded.name, balance="999.00", status="closed"),
    )

    assert response.status_code == 302
    funded = refreshed(funded)
    assert funded.balance == Money("100.00", "GBP")
    assert funded.is_open()


def test_the_credit_limit_is_edited_as_a_plain_amount(clerk_client):
    account = AccountFactory(credit_limit=Decimal("12.50"))

    response = clerk_client.get(url("account_change", account.pk))

    html = response.content.decode()
    assert 'name="credit_limit" value="12.50"' in html
    assert 'value="£12.50"' not in html


@pytest.mark.parametrize(
    ("credit_limit", "message"),
    [
        ("10.505", "has more decimal places than GBP allows (2)"),
        ("-1", "A credit limit cannot be negative"),
        ("ten", "Type the amount in digits only"),
        ("1,500", "1,500 could mean 1500 or 1.50"),
    ],
)
def test_a_bad_credit_limit_is_a_form_error(cashier_client, credit_limit, message):
    response = cashier_client.post(url("account_add"), account_data(credit_limit=credit_limit))

    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors)
    assert not Account.objects.filter(name="New wallet").exists()


def test_currency_can_change_while_an_account_has_no_transactions(clerk_client):
    account = AccountFactory()

    response = clerk_client.post(
        url("account_change", account.pk), account_data(name=account.name, currency="EUR")
    )

    assert response.status_code == 302
    assert refreshed(account).currency == "EUR"


def test_currency_is_read_only_once_the_account_has_transactions(clerk_client, funded):
    response = clerk_client.get(url("account_change", funded.pk))
    assert "currency" not in response.context["adminform"].form.fields

    response = clerk_client.post(
        url("account_change", funded.pk), account_data(name=funded.name, currency="EUR")
    )

    assert response.status_code == 302
    assert refreshed(funded).currency == "GBP"


def test_the_account_form_refuses_a_currency_change_after_a_transfer_arrived(account, fund):
    # The form was opened before the first transfer, so it still has the field.
    form_data = account_data(name=account.name, currency="EUR")
    fund(account, "1.00")

    form = AccountForm(form_data, instance=Account.objects.get(pk=account.pk))

    assert not form.is_valid()
    assert "has transactions in GBP; its currency cannot change to EUR" in str(form.errors)


def test_lowering_the_credit_limit_below_the_debt_only_blocks_further_debits(
    clerk_client, cashier_client
):
    account = AccountFactory(credit_limit=Decimal("50.00"))
    sales = Account.objects.sales_account()
    facade.transfer(account, sales, Decimal("30.00"))

    response = clerk_client.post(
        url("account_change", account.pk), account_data(name=account.name, credit_limit="10.00")
    )

    assert response.status_code == 302
    account = refreshed(account)
    assert account.credit_limit == Money("10.00", "GBP")
    assert account.balance == Money("-30.00", "GBP")
    response = move_money(cashier_client, url("account_withdraw", account.pk), {"amount": "1.00"})
    assert response.status_code == 200
    assert "cannot be debited £1.00" in str(response.context["form"].errors["amount"])
    assert refreshed(account).balance == Money("-30.00", "GBP")


def test_core_accounts_keep_their_name_currency_and_limit(admin_client, source):
    response = admin_client.get(url("account_change", source.pk))

    fields = response.context["adminform"].form.fields
    for name in ("name", "currency", "credit_limit", "start_date", "end_date"):
        assert name not in fields
    assert admin_client.get(url("account_delete", source.pk)).status_code == 403
    html = response.content.decode()
    assert "top_up/" not in html and "withdraw/" not in html  # from itself to itself
    assert "account/transfer/?source=%s" % source.pk in html


def test_an_account_without_transfers_can_be_deleted(admin_client, account):
    response = admin_client.post(url("account_delete", account.pk), {"post": "yes"})

    assert response.status_code == 302
    assert not Account.objects.filter(pk=account.pk).exists()


def test_bulk_delete_deletes_nothing_when_a_selected_account_is_protected(
    admin_client, funded, source
):
    spare = AccountFactory()
    before = Account.objects.count()

    for selection in ([spare, funded], [spare, source]):
        response = admin_client.post(
            url("account_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [a.pk for a in selection],
                "post": "yes",
            },
        )
        assert response.status_code == 200  # the "cannot delete" page, not a redirect
        assert Account.objects.count() == before


# Status actions --------------------------------------------------------------------


def test_freeze_and_thaw_report_each_account_and_log_the_change(clerk_client, clerk):
    first, second = AccountFactory(name="First"), AccountFactory(name="Second")

    response = post_action(clerk_client, "freeze", [first, second])

    assert refreshed(first).is_frozen() and refreshed(second).is_frozen()
    assert messages_of(response) == ["Account First is frozen.", "Account Second is frozen."]
    entries = LogEntry.objects.filter(user=clerk, action_flag=CHANGE)
    assert sorted(e.object_repr for e in entries) == ["First", "Second"]

    response = post_action(clerk_client, "thaw", [first, second])

    assert refreshed(first).is_open() and refreshed(second).is_open()
    assert messages_of(response) == [
        "Account First is open again.",
        "Account Second is open again.",
    ]


def test_close_refuses_an_account_with_money_and_says_so(clerk_client, fund):
    empty = AccountFactory(name="Empty")
    full = AccountFactory(name="Full")
    fund(full, "5.00")

    response = post_action(clerk_client, "close", [empty, full])

    assert refreshed(empty).is_closed()
    assert refreshed(full).is_open()
    assert messages_of(response) == [
        "Account Empty is closed.",
        "Account Full cannot be closed: its balance is £5.00, not zero. "
        "Move the money off it first.",
        "1 of 2 accounts were left unchanged; see above why.",
    ]
    levels = [m.level_tag for m in response.context["messages"]]
    assert levels == ["success", "error", "warning"]


def test_thawing_a_closed_account_is_refused(clerk_client):
    closed = AccountFactory(name="Gone")
    closed.close()

    response = post_action(clerk_client, "thaw", [closed])

    assert refreshed(closed).is_closed()
    assert "Account Gone is closed." in messages_of(response)


def test_core_accounts_cannot_be_frozen(admin_client, source):
    response = post_action(admin_client, "freeze", [source])

    assert refreshed(source).is_open()
    assert "Account Bank (GBP) is a core account and cannot be frozen." in messages_of(response)


def test_staff_who_may_only_view_accounts_cannot_change_their_status(account):
    viewer = StaffFactory(permissions=["accounts.view_account"])
    client = Client()
    client.force_login(viewer)

    response = client.get(url("account_changelist"))
    assert response.context["action_form"] is None  # no action this user may run
    post_action(client, "freeze", [account])

    assert refreshed(account).is_open()


# Moving money ------------------------------------------------------------------------


def test_top_up_moves_money_from_the_source_of_the_accounts_currency(cashier_client, cashier):
    account = AccountFactory(name="Euro wallet", currency="EUR")

    page = cashier_client.get(url("account_top_up", account.pk))
    assert page.status_code == 200
    assert "Bank (EUR)" in page.content.decode()
    response = move_money(
        cashier_client,
        url("account_top_up", account.pk),
        {"amount": "25.00", "description": "Welcome", "merchant_reference": "CRM-1"},
        follow=True,
    )

    transfer = Transfer.objects.get()
    assert transfer.source == Account.objects.source_account("EUR")
    assert transfer.destination == account
    assert transfer.amount == Money("25.00", "EUR")
    assert (transfer.user, transfer.username) == (cashier, "cashier")
    assert (transfer.description, transfer.merchant_reference) == ("Welcome", "CRM-1")
    assert refreshed(account).balance == Money("25.00", "EUR")
    assert response.redirect_chain == [(url("transfer_change", transfer.pk), 302)]
    assert messages_of(response) == [
        "Moved €25.00 from Bank (EUR) to Euro wallet (transfer %s)." % transfer.reference
    ]
    assert_ledger_consistent()


def test_withdraw_moves_money_back_to_the_source(cashier_client, funded, source):
    response = move_money(
        cashier_client,
        url("account_withdraw", funded.pk),
        {"amount": "40.00", "description": "Refund"},
    )

    assert response.status_code == 302
    transfer = Transfer.objects.latest("pk")
    assert (transfer.source, transfer.destination) == (funded, source)
    assert refreshed(funded).balance == Money("60.00", "GBP")


def test_withdrawing_more_than_is_available_is_a_form_error(cashier_client, funded):
    before = ledger_totals()

    response = move_money(cashier_client, url("account_withdraw", funded.pk), {"amount": "100.01"})

    assert response.status_code == 200
    assert response.context["form"].errors["amount"] == [
        "Account Barry's wallet cannot be debited £100.01: only £100.00 is available."
    ]
    assert ledger_totals() == before


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("", "GBP", "This field is required."),
        ("abc", "GBP", "Type the amount in digits only"),
        ("NaN", "GBP", "Type the amount in digits only"),
        ("£5", "GBP", "without a currency symbol"),
        ("1e3", "GBP", "Type the amount in digits only"),
        ("1,500", "GBP", "1,500 could mean 1500 or 1.50: type 1500 or 1.50."),
        ("1,2,3", "GBP", "thousands separator in the wrong place"),
        ("1,234.5.6", "GBP", "more than one decimal separator"),
        ("0", "GBP", "must be greater than zero"),
        ("-5.00", "GBP", "must be greater than zero"),
        ("1.005", "GBP", "has more decimal places than GBP allows (2)"),
        ("1.5", "JPY", "has more decimal places than JPY allows (0)"),
        ("1000000000000000", "GBP", "is too large"),
    ],
)
def test_bad_amounts_are_form_errors_and_write_nothing(cashier_client, amount, currency, message):
    account = AccountFactory(currency=currency)
    before = ledger_totals()

    response = move_money(cashier_client, url("account_top_up", account.pk), {"amount": amount})

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["amount"])
    assert ledger_totals() == before


@override_settings(ACCOUNTS_MAX_INITIAL_VALUE=Decimal("50.00"))
def test_facade_refusals_appear_as_form_errors_not_server_errors(cashier_client, account):
    response = move_money(cashier_client, url("account_top_up", account.pk), {"amount": "60.00"})

    assert response.status_code == 200
    assert "above the maximum of £50.00" in str(response.context["form"].errors["amount"])

    account.freeze()
    response = move_money(cashier_client, url("account_top_up", account.pk), {"amount": "10.00"})

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["Account %s is frozen." % account.name]
    assert "Please correct the error below." in response.content.decode()
    assert not Transfer.objects.exists()


def test_a_resubmitted_form_moves_the_money_once(cashier_client, account):
    page = cashier_client.get(url("account_top_up", account.pk))
    token = page.context["form"]["token"].value()
    assert len(token) == 32
    data = {"amount": "10.00", "token": token}

    first = move_money(cashier_client, url("account_top_up", account.pk), data)
    # The confirmation posted again: a double click, or the browser's retry.
    second = move_money(cashier_client, url("account_top_up", account.pk), data, follow=True)

    assert first["Location"] == second.redirect_chain[0][0]
    assert Transfer.objects.count() == 1
    assert refreshed(account).balance == Money("10.00", "GBP")
    transfer = Transfer.objects.get()
    assert messages_of(second) == [
        "This form was already confirmed: transfer %s moved £10.00 from Bank (GBP) to %s. "
        "Nothing was moved again." % (transfer.reference, account.name)
    ]

    changed = move_money(
        cashier_client, url("account_top_up", account.pk), {**data, "amount": "11.00"}
    )

    assert changed.status_code == 200
    assert "This form was already submitted" in str(changed.context["form"].non_field_errors())
    assert Transfer.objects.count() == 1


def test_each_form_gets_a_new_token(cashier_client, account):
    tokens = {
        cashier_client.get(url("account_top_up", account.pk)).context["form"]["token"].value()
        for _ in range(2)
    }
    assert len(tokens) == 2


def test_transfer_moves_money_between_any_two_accounts(cashier_client, funded, cashier):
    other = AccountFactory(name="Other wallet")

    page = cashier_client.get(url("account_transfer", query="?source=%s" % funded.pk))
    assert page.context["form"]["source"].value() == funded.pk
    assert '<option value="%s" selected>Barry&#x27;s wallet</option>' % funded.pk in (
        page.content.decode()
    )
    assert "admin/js/autocomplete.js" in page.content.decode()
    response = move_money(
        cashier_client,
        url("account_transfer"),
        {"source": funded.pk, "destination": other.pk, "amount": "30.00", "description": "Gift"},
    )

    assert response.status_code == 302
    transfer = Transfer.objects.latest("pk")
    assert (transfer.source, transfer.destination, transfer.user) == (funded, other, cashier)
    assert refreshed(other).balance == Money("30.00", "GBP")
    assert refreshed(funded).balance == Money("70.00", "GBP")


@pytest.mark.parametrize(
    ("destination_currency", "message"),
    [("same", "Choose two different accounts."), ("EUR", "is in GBP but Euro is in EUR")],
)
def test_transfer_form_refuses_impossible_pairs(
    cashier_client, funded, destination_currency, message
):
    destination = (
        funded if destination_currency == "same" else AccountFactory(name="Euro", currency="EUR")
    )
    before = ledger_totals()

    response = cashier_client.post(
        url("account_transfer"),
        {"source": funded.pk, "destination": destination.pk, "amount": "1.00"},
    )

    assert response.status_code == 200
    assert message in str(response.context["form"].non_field_errors())
    assert ledger_totals() == before


def test_transfer_to_a_closed_account_is_a_form_error(cashier_client, funded):
    closed = AccountFactory(name="Closed one")
    closed.close()

    response = move_money(
        cashier_client,
        url("account_transfer"),
        {"source": funded.pk, "destination": closed.pk, "amount": "1.00"},
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == ["Account Closed one is closed."]


def test_the_autocomplete_for_the_transfer_form_finds_accounts(cashier_client, funded):
    response = cashier_client.get(
        reverse("admin:autocomplete"),
        {
            "app_label": "accounts",
            "model_name": "transfer",
            "field_name": "destination",
            "term": "Barry",
        },
    )

    assert response.status_code == 200
    assert [r["text"] for r in response.json()["results"]] == ["Barry's wallet"]


# Permissions and CSRF ------------------------------------------------------------------


def money_urls(account, transfer):
    return [
        url("account_top_up", account.pk),
        url("account_withdraw", account.pk),
        url("account_transfer"),
        url("transfer_reverse", transfer.pk),
    ]


def test_staff_without_move_money_get_403_on_every_money_view(clerk_client, funded):
    transfer = Transfer.objects.get()
    before = ledger_totals()

    for target in money_urls(funded, transfer):
        assert clerk_client.get(target).status_code == 403, target
        data = {
            "amount": "1.00",
            "source": funded.pk,
            "destination": funded.pk,
            "description": "x",
        }
        assert clerk_client.post(target, data).status_code == 403, target

    assert ledger_totals() == before


def test_staff_without_move_money_see_no_money_buttons(clerk_client, cashier_client, funded):
    transfer = Transfer.objects.get()
    buttons = ("top_up/", "withdraw/", "account/transfer/", "reverse/")

    for client, shown in ((clerk_client, False), (cashier_client, True)):
        pages = [
            client.get(url("account_change", funded.pk)).content.decode(),
            client.get(url("transfer_change", transfer.pk)).content.decode(),
            client.get(url("account_changelist")).content.decode(),
        ]
        html = "".join(pages)
        for button in buttons:
            assert (button in html) is shown, button
        assert "statement/" in pages[0]  # the statement is not about moving money


def test_move_money_alone_does_not_open_the_accounts(funded):
    mover = StaffFactory(permissions=["accounts.move_money"])
    client = Client()
    client.force_login(mover)

    assert client.get(url("account_top_up", funded.pk)).status_code == 403
    assert client.get(url("account_transfer")).status_code == 403


def test_money_views_of_a_missing_object_are_404(cashier_client):
    assert cashier_client.get(url("account_top_up", 999999)).status_code == 404
    assert cashier_client.get(url("transfer_reverse", 999999)).status_code == 404
    assert cashier_client.get(url("account_statement", 999999)).status_code == 404


def test_every_money_form_is_csrf_protected(cashier, funded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(cashier)
    transfer = Transfer.objects.get()

    for target in money_urls(funded, transfer):
        response = client.post(target, {"amount": "1.00", "description": "x"})
        assert response.status_code == 403, target
        assert b"CSRF" in response.content
    page = client.get(url("account_top_up", funded.pk))
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()

    csrf = client.cookies["csrftoken"].value
    review = client.post(
        url("account_top_up", funded.pk), {"amount": "1.00", "csrfmiddlewaretoken": csrf}
    )
    assert 'name="csrfmiddlewaretoken"' in review.content.decode()
    confirm = {**confirmed_data(review), "csrfmiddlewaretoken": csrf}
    assert client.post(url("account_top_up", funded.pk), {**confirm, "csrfmiddlewaretoken": ""}
                       ).status_code == 403  # fmt: skip
    response = client.post(url("account_top_up", funded.pk), confirm)

    assert response.status_code == 302
    assert refreshed(funded).balance == Money("101.00", "GBP")


# Statement ---------------------------------------------------------------------------------


def make_history(account, count):
    """``count`` top-ups of 1.00, 2.00, ..., oldest first."""
    bank = Account.objects.source_account(account.currency)
    for n in range(1, count + 1):
        facade.transfer(bank, account, Decimal(n))


def test_statement_shows_the_newest_first_with_the_balance_after_each(admin_client, account):
    make_history(account, 3)
    sales = Account.objects.sales_account()
    facade.transfer(account, sales, Decimal("2.50"), merchant_reference="ORDER-1")

    response = admin_client.get(url("account_statement", account.pk))

    assert response.status_code == 200
    rows = response.context["page"].object_list
    assert [row.amount for row in rows] == [
        Money("-2.50", "GBP"),
        Money("3.00", "GBP"),
        Money("2.00", "GBP"),
        Money("1.00", "GBP"),
    ]
    assert [row.balance_after for row in rows] == [
        Money(v, "GBP") for v in ("3.50", "6.00", "3.00", "1.00")
    ]
    assert [row.counterparty for row in rows] == [sales] + [Account.objects.source_account()] * 3
    html = response.content.decode()
    assert "ORDER-1" in html and "-£2.50" in html and "£3.50" in html
    assert html.index("-£2.50") < html.index("£6.00") < html.index("£1.00")


def test_statement_pages_go_back_in_time_without_counting(admin_client, account, monkeypatch):
    make_history(account, 7)
    monkeypatch.setattr(AccountAdmin, "statement_per_page", 3)

    first = admin_client.get(url("account_statement", account.pk))
    third = admin_client.get(url("account_statement", account.pk, query="?p=3"))
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url("account_statement", account.pk, query="?p=2"))

    assert [r.amount.amount for r in first.context["page"].object_list] == [7, 6, 5]
    assert first.context["page"].has_next and not first.context["page"].has_previous
    assert 'href="?p=2"' in first.content.decode()
    assert [r.amount.amount for r in third.context["page"].object_list] == [1]
    assert not third.context["page"].has_next and third.context["page"].has_previous
    assert not any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)


def test_statement_filters_by_date_range_and_keeps_it_when_paging(
    admin_client, account, monkeypatch
):
    bank = Account.objects.source_account()
    for day, amount in ((1, "1.00"), (2, "2.00"), (3, "4.00")):
        with ledger_time(local_moment(2026, 3, day, 12)):
            facade.transfer(bank, account, Decimal(amount))

    response = admin_client.get(
        url("account_statement", account.pk, query="?start=2026-03-02&end=2026-03-02")
    )

    rows = response.context["page"].object_list
    assert [row.amount for row in rows] == [Money("2.00", "GBP")]
    statement = response.context["statement"]
    assert statement.opening_balance == Money("1.00", "GBP")
    assert statement.closing_balance == Money("3.00", "GBP")
    html = response.content.decode()
    assert 'value="2026-03-02"' in html


def test_statement_reports_a_backwards_date_range(admin_client, account):
    response = admin_client.get(
        url("account_statement", account.pk, query="?start=2026-03-05&end=2026-03-01")
    )

    assert response.status_code == 200
    assert "The start date is after the end date." in response.content.decode()


@pytest.mark.parametrize("page", ["0", "-3", "abc", "99"])
def test_statement_survives_odd_page_numbers(admin_client, account, page):
    make_history(account, 2)

    response = admin_client.get(url("account_statement", account.pk, query="?p=%s" % page))

    assert response.status_code == 200
    expected = 0 if page == "99" else 2
    assert len(response.context["page"].object_list) == expected


#: Session, user, two for the user's permissions, the account, the opening
#: and closing balances, the rows (with their transfers and counterparties),
#: and the balance chart (one query, whatever the period).
STATEMENT_QUERIES = 9


def test_statement_costs_the_same_queries_for_5_and_60_rows(
    cashier_client, django_assert_max_num_queries
):
    counts = []
    for size in (5, 60):
        account = AccountFactory()
        make_history(account, size)
        with CaptureQueriesContext(connection) as queries:
            with django_assert_max_num_queries(STATEMENT_QUERIES):
                response = cashier_client.get(
                    url("account_statement", account.pk, query="?start=2000-01-01")
                )
        assert response.status_code == 200
        assert len(response.context["page"].object_list) == min(size, 50)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_statement_needs_view_permission(account):
    stranger = StaffFactory(permissions=["accounts.view_transfer"])
    client = Client()
    client.force_login(stranger)

    assert client.get(url("account_statement", account.pk)).status_code == 403


# Transfers and transactions -----------------------------------------------------------------


@pytest.fixture
def purchase(funded):
    return facade.transfer(
        funded, Account.objects.sales_account(), Decimal("12.00"), merchant_reference="ORDER-77"
    )


def test_transfers_are_searchable_by_reference_and_merchant_reference(admin_client, purchase):
    for query in (purchase.reference, purchase.reference[:6], "ORDER-77", "order-7"):
        response = admin_client.get(url("transfer_changelist", query="?q=%s" % query))
        assert list(response.context["cl"].result_list) == [purchase], query


def test_transactions_are_searchable_by_transfer_reference(admin_client, purchase):
    for query in (purchase.reference, "ORDER-77"):
        response = admin_client.get(url("transaction_changelist", query="?q=%s" % query))
        assert set(response.context["cl"].result_list) == set(purchase.transactions.all())


def test_the_ledger_can_be_filtered_by_date(admin_client, account, monkeypatch):
    bank = Account.objects.source_account()
    with ledger_time(local_moment(2026, 3, 1, 12)):
        old = facade.transfer(bank, account, Decimal("1.00"))
    new = facade.transfer(bank, account, Decimal("2.00"))
    # What the admin's own date filter links send: an aware midnight.
    cutoff = local_moment(2026, 3, 2).isoformat()

    for name, rows in (
        ("transfer_changelist", lambda t: {t}),
        ("transaction_changelist", lambda t: set(t.transactions.all())),
    ):
        before = admin_client.get(url(name), {"created__lt": cutoff}).context["cl"].result_list
        after = admin_client.get(url(name), {"created__gte": cutoff}).context["cl"].result_list
        assert set(before) == rows(old)
        assert set(after) == rows(new)


def local_moment(*args):
    return timezone.make_aware(datetime.datetime(*args))


def test_transfers_can_be_filtered_to_reversals(admin_client, purchase):
    reversal = facade.reverse(purchase, amount=Decimal("1.00"))

    response = admin_client.get(url("transfer_changelist", query="?kind=reversal"))

    assert list(response.context["cl"].result_list) == [reversal]
    response = admin_client.get(url("transfer_changelist", query="?kind=original"))
    assert reversal not in response.context["cl"].result_list


@pytest.mark.parametrize("model", ["transfer", "transaction"])
def test_the_ledger_is_read_only_in_the_admin(admin_client, purchase, model):
    row = purchase if model == "transfer" else purchase.transactions.first()
    before = ledger_totals()

    assert admin_client.get(url("%s_add" % model)).status_code == 403
    assert admin_client.post(url("%s_add" % model), {}).status_code == 403
    assert (
        admin_client.post(url("%s_change" % model, row.pk), {"description": "x"}).status_code
        == 403
    )
    assert admin_client.get(url("%s_delete" % model, row.pk)).status_code == 403
    assert admin_client.post(url("%s_delete" % model, row.pk), {"post": "yes"}).status_code == 403
    changelist = admin_client.get(url("%s_changelist" % model))
    # The one action on transfers sets their notification mark (notified_at),
    # which moves no money and changes no other column.
    form = changelist.context["action_form"]
    actions = [name for name, _label in form.fields["action"].choices if name] if form else []
    assert actions == (["mark_as_notified"] if model == "transfer" else [])
    if model == "transaction":
        assert 'name="_selected_action"' not in changelist.content.decode()
    admin_client.post(
        url("%s_changelist" % model),
        {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"},
    )

    assert ledger_totals() == before
    page = admin_client.get(url("%s_change" % model, row.pk))
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()


def test_a_transfer_page_shows_its_legs_reversals_and_what_is_left(cashier_client, purchase):
    reversal = facade.reverse(purchase, amount=Decimal("2.00"), description="Damaged item")

    response = cashier_client.get(url("transfer_change", purchase.pk))

    html = response.content.decode()
    assert response.context["can_reverse"] is True
    legs, reversals = response.context["inline_admin_formsets"]
    assert {f.original for f in legs} == set(purchase.transactions.all())
    assert [f.original for f in reversals] == [reversal]
    assert "Damaged item" in html and reversal.reference in html
    assert "-£12.00" in html  # the source leg
    assert "£10.00" in html  # left to reverse
    assert 'class="reverse-link"' in html


def test_reverse_part_of_a_transfer_with_a_description(cashier_client, cashier, purchase, funded):
    response = move_money(
        cashier_client,
        url("transfer_reverse", purchase.pk),
        {"amount": "5.00", "description": "Partial refund"},
        follow=True,
    )

    reversal = purchase.reversals.get()
    assert reversal.amount == Money("5.00", "GBP")
    assert (reversal.description, reversal.user) == ("Partial refund", cashier)
    assert reversal.merchant_reference == "ORDER-77"
    assert response.redirect_chain == [(url("transfer_change", purchase.pk), 302)]
    assert purchase.reversible_amount() == Money("7.00", "GBP")
    assert refreshed(funded).balance == Money("93.00", "GBP")
    assert "£7.00" in response.content.decode()


def test_reverse_everything_left_when_no_amount_is_given(cashier_client, purchase):
    facade.reverse(purchase, amount=Decimal("5.00"))

    page = cashier_client.post(
        url("transfer_reverse", purchase.pk), {"amount": "", "description": "The rest"}
    )
    # The confirmation names the amount left, and confirms exactly that amount.
    assert str(page.context["confirmation"]) == (
        "Move £7.00 from Sales (GBP) back to Barry's wallet, reversing transfer %s of "
        "£12.00; £0.00 will be left to reverse." % purchase.reference
    )
    assert ("amount", "7.00") in page.context["carried"]
    response = cashier_client.post(url("transfer_reverse", purchase.pk), confirmed_data(page))

    assert response.status_code == 302
    assert purchase.reversible_amount() == Money("0.00", "GBP")
    page = cashier_client.get(url("transfer_change", purchase.pk))
    assert page.context["can_reverse"] is False
    assert 'class="reverse-link"' not in page.content.decode()


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"amount": "12.01", "description": "x"}, "amount", "Only £12.00 is left to reverse"),
        ({"amount": "1.001", "description": "x"}, "amount", "more decimal places than GBP"),
        ({"amount": "-1", "description": "x"}, "amount", "must be greater than zero"),
        ({"amount": "1.00", "description": ""}, "description", "This field is required."),
    ],
)
def test_bad_reversals_are_form_errors(cashier_client, purchase, data, field, message):
    before = ledger_totals()

    response = cashier_client.post(url("transfer_reverse", purchase.pk), data)

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert ledger_totals() == before


def test_a_reversal_cannot_be_reversed(cashier_client, purchase):
    reversal = facade.reverse(purchase, amount=Decimal("1.00"))

    page = cashier_client.get(url("transfer_change", reversal.pk))
    assert page.context["can_reverse"] is False
    response = cashier_client.post(
        url("transfer_reverse", reversal.pk), {"amount": "1.00", "description": "x"}
    )

    assert response.status_code == 200
    assert "is itself a reversal and cannot be reversed" in str(response.context["form"].errors)


def test_top_up_in_a_currency_no_longer_configured_is_a_form_error(cashier_client):
    account = AccountFactory(currency="JPY")

    with override_settings(ACCOUNTS_CURRENCIES=["GBP", "EUR"]):
        page = cashier_client.get(url("account_top_up", account.pk))
        response = cashier_client.post(url("account_top_up", account.pk), {"amount": "100"})

    assert page.status_code == 200
    assert "is not one of ACCOUNTS_CURRENCIES" in page.content.decode()
    assert response.status_code == 200
    assert "is not one of ACCOUNTS_CURRENCIES" in str(response.context["form"].errors)
    assert not Transfer.objects.exists()


@pytest.mark.parametrize("source", ["abc", "999999", ""])
def test_the_transfer_form_ignores_a_malformed_or_unknown_source(cashier_client, source):
    response = cashier_client.get(url("account_transfer"), {"source": source})

    assert response.status_code == 200
    assert "selected>" not in response.content.decode()


# Money typed as text ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "moved"),
    [
        ("1,50", "1.50"),  # a browser's number input would have sent 150
        ("10,50", "10.50"),
        (" 12.5 ", "12.50"),
        ("1,234.50", "1234.50"),
        ("1.234,50", "1234.50"),
        ("1 234,50", "1234.50"),
        ("0,125", None),  # three decimals in GBP: refused, never rounded
    ],
)
def test_amounts_are_typed_as_text_and_read_on_the_server(cashier_client, account, typed, moved):
    page = cashier_client.get(url("account_top_up", account.pk))
    assert 'name="amount"' in page.content.decode()
    assert 'type="number"' not in page.content.decode()

    response = move_money(cashier_client, url("account_top_up", account.pk), {"amount": typed})

    if moved is None:
        assert "has more decimal places than GBP allows" in str(response.context["form"].errors)
        assert not Transfer.objects.exists()
    else:
        assert Transfer.objects.get().amount == Money(moved, "GBP")


# The confirmation step ---------------------------------------------------------------


def test_every_money_form_states_what_it_will_do_and_writes_nothing_before_confirmation(
    cashier_client, funded, source
):
    other = AccountFactory(name="Other wallet")
    purchase = facade.transfer(funded, other, Decimal("12.00"))
    before = ledger_totals()
    cases = [
        (url("account_top_up", funded.pk), {"amount": "1,50"}, "Move £1.50 from Bank (GBP) to "
         "Barry's wallet."),
        (url("account_withdraw", funded.pk), {"amount": "5"}, "Move £5.00 from Barry's wallet "
         "to Bank (GBP)."),
        (url("account_transfer"), {"source": funded.pk, "destination": other.pk,
         "amount": "2.5"}, "Move £2.50 from Barry's wallet to Other wallet."),
        (url("transfer_reverse", purchase.pk), {"amount": "2", "description": "x"},
         "Move £2.00 from Other wallet back to Barry's wallet, reversing transfer %s of "
         "£12.00; £10.00 will be left to reverse." % purchase.reference),
    ]  # fmt: skip

    for target, data, sentence in cases:
        page = cashier_client.post(target, data)
        assert page.status_code == 200, target
        assert page.context["confirming"] is True, page.context["form"].errors
        assert str(page.context["confirmation"]) == sentence
        html = page.content.decode()
        assert 'name="_confirm"' in html and 'name="_edit"' in html
        assert ledger_totals() == before
        # "Change" goes back to the form, with what was typed; still nothing written.
        back = cashier_client.post(
            target, {**confirmed_data(page), "_edit": "1"} | {"_confirm": []}
        )
        assert back.context["confirming"] is False
        assert back.context["form"]["amount"].value() == dict(page.context["carried"])["amount"]
        assert ledger_totals() == before


def test_the_confirmed_amount_is_what_moves_even_if_the_reversal_left_changes(
    cashier_client, funded
):
    purchase = facade.transfer(funded, Account.objects.sales_account(), Decimal("12.00"))
    page = cashier_client.post(
        url("transfer_reverse", purchase.pk), {"amount": "", "description": "All of it"}
    )
    assert ("amount", "12.00") in page.context["carried"]
    facade.reverse(purchase, amount=Decimal("2.00"))  # someone else, meanwhile

    response = cashier_client.post(url("transfer_reverse", purchase.pk), confirmed_data(page))

    assert response.status_code == 200
    assert "Only £10.00 is left to reverse." in str(response.context["form"].errors["amount"])
    assert purchase.reversals.count() == 1


def test_a_stale_confirmation_with_another_amount_is_not_a_second_payment(cashier_client, account):
    page = cashier_client.post(url("account_top_up", account.pk), {"amount": "10.00"})
    cashier_client.post(url("account_top_up", account.pk), confirmed_data(page))
    tampered = {**confirmed_data(page), "amount": "20.00"}

    response = cashier_client.post(url("account_top_up", account.pk), tampered)

    assert "This form was already submitted" in str(response.context["form"].non_field_errors())
    assert refreshed(account).balance == Money("10.00", "GBP")


# Granting credit is moving money -------------------------------------------------------


def change_data(account, **overrides):
    """What the account's change page posts when nothing is edited, plus ``overrides``."""
    data = account_data(
        name=account.name or "",
        code=account.code or "",
        primary_user=account.primary_user_id or "",
        secondary_users=",".join(str(pk) for pk in account.secondary_users.values_list("pk",
                                                                                        flat=True)),
        credit_limit="" if account.credit_limit is None else str(account.credit_limit.amount),
    )  # fmt: skip
    data.update(overrides)
    return data


@pytest.fixture(params=["clerk", "cashier"])
def editor(request):
    """(client, whether this editor may move money): each case runs as a clerk and a cashier."""
    return request.getfixturevalue("%s_client" % request.param), request.param == "cashier"


@pytest.mark.parametrize(
    ("start", "typed", "field"),
    [("50.00", "100.00", "credit_limit"), ("50.00", "", "credit_limit")],
    ids=["raise", "clear"],
)
def test_raising_or_clearing_a_credit_limit_needs_move_money(editor, start, typed, field):
    client, may = editor
    account = AccountFactory(credit_limit=Decimal(start))

    response = client.post(
        url("account_change", account.pk), change_data(account, credit_limit=typed)
    )

    expected = None if typed == "" else Money(typed, "GBP")
    if may:
        assert response.status_code == 302
        assert refreshed(account).credit_limit == expected
    else:
        assert response.status_code == 200
        assert "Only staff who may move money" in str(response.context["adminform"].form.errors)
        assert refreshed(account).credit_limit == Money(start, "GBP")


def test_anyone_who_edits_accounts_may_lower_a_credit_limit(clerk_client):
    account = AccountFactory(credit_limit=None)

    for typed in ("500.00", "20.00", "0"):
        response = clerk_client.post(
            url("account_change", account.pk), change_data(refreshed(account), credit_limit=typed)
        )
        assert response.status_code == 302, typed
        assert refreshed(account).credit_limit == Money(typed, "GBP")


@pytest.mark.parametrize("typed", ["25.00", ""], ids=["limit", "no-limit"])
def test_creating_an_account_that_can_spend_needs_move_money(editor, typed):
    client, may = editor

    response = client.post(url("account_add"), account_data(credit_limit=typed))

    assert Account.objects.filter(name="New wallet").exists() is may
    if not may:
        assert "can create an account with a credit limit or with no limit" in str(
            response.context["adminform"].form.errors["credit_limit"]
        )


def test_anyone_who_edits_accounts_may_create_one_without_credit(clerk_client):
    response = clerk_client.post(url("account_add"), account_data(credit_limit="0"))

    assert response.status_code == 302
    assert Account.objects.get(name="New wallet").credit_limit == Money("0.00", "GBP")


@pytest.mark.parametrize("case", ["set", "change", "remove the user"])
def test_a_bearer_code_on_a_funded_account_needs_move_money(editor, fund, case):
    client, may = editor
    barry = UserFactory()
    account = AccountFactory(
        code=None if case == "set" else "OLDCODE", primary_user=barry if case != "change" else None
    )
    fund(account, "30.00")
    overrides = {
        "set": {"code": "abcd-efgh", "primary_user": ""},
        "change": {"code": "NEWCODE"},
        "remove the user": {"primary_user": ""},
    }[case]
    before = (account.code, account.primary_user_id)

    response = client.post(url("account_change", account.pk), change_data(account, **overrides))

    account = refreshed(account)
    if may:
        assert response.status_code == 302
        assert (account.code, account.primary_user_id) != before
    else:
        assert response.status_code == 200
        assert "anyone holding the code could spend it" in str(
            response.context["adminform"].form.errors
        )
        assert (account.code, account.primary_user_id) == before


def test_a_code_on_an_empty_or_owned_account_needs_no_money_permission(clerk_client, fund):
    empty = AccountFactory()
    owned = AccountFactory(primary_user=UserFactory())
    fund(owned, "30.00")

    for account in (empty, owned):
        response = clerk_client.post(
            url("account_change", account.pk), change_data(account, code="GIFTCODE%s" % account.pk)
        )
        assert response.status_code == 302


def test_the_account_form_without_a_user_may_not_grant_credit(account):
    data = change_data(account, credit_limit="10.00")

    assert not AccountForm(data, instance=account).is_valid()
    cashier = StaffFactory(permissions=["accounts.move_money"])
    assert AccountForm(data, instance=account, user=cashier).is_valid()


def test_a_stale_edit_form_cannot_write_back_what_someone_else_changed(clerk_client, cashier):
    account = AccountFactory(credit_limit=Decimal("500.00"), description="Old")
    page = clerk_client.get(url("account_change", account.pk))
    shown = page.context["adminform"].form["shown"].value()
    assert '"credit_limit": "500.00"' in shown
    # Risk staff cut the limit while the clerk's page is open.
    current = Account.objects.get(pk=account.pk)
    current.credit_limit = Decimal("0.00")
    current.save()

    response = clerk_client.post(
        url("account_change", account.pk),
        change_data(account, description="New", shown=shown, credit_limit="500.00"),
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    assert errors == [
        "This account was changed by someone else after this page was opened (credit limit). "
        "Nothing was saved: reload the page to see the current values, then make your change "
        "again."
    ]
    account = refreshed(account)
    assert (account.credit_limit, account.description) == (Money("0.00", "GBP"), "Old")

    fresh = clerk_client.get(url("account_change", account.pk))
    response = clerk_client.post(
        url("account_change", account.pk),
        change_data(
            account, description="New", shown=fresh.context["adminform"].form["shown"].value()
        ),
    )
    assert response.status_code == 302
    assert refreshed(account).description == "New"


def test_an_accounts_metadata_is_edited_as_json_and_checked(clerk_client):
    account = AccountFactory()
    response = clerk_client.post(
        url("account_change", account.pk),
        change_data(account, metadata='{"tier": "gold", "since": 2019}'),
    )
    assert response.status_code == 302
    assert refreshed(account).metadata == {"tier": "gold", "since": 2019}
    page = clerk_client.get(url("account_change", account.pk)).content.decode()
    assert "&quot;tier&quot;: &quot;gold&quot;" in page
    response = clerk_client.post(
        url("account_change", account.pk), change_data(account, metadata='["gold"]')
    )
    assert response.status_code == 200
    assert "Metadata must be a JSON object" in response.content.decode()
    assert refreshed(account).metadata == {"tier": "gold", "since": 2019}


def test_ledger_pages_show_the_effective_date_and_metadata_read_only(admin_client, fund):
    wallet = AccountFactory()
    fund(wallet, "10.00")
    sales = Account.objects.sales_account()
    card = {"merchant": "Teapot & Grinder", "city": "Leeds"}
    paid = facade.transfer(wallet, sales, Decimal("1.00"), metadata=card)
    held = facade.hold(wallet, sales, Decimal("1.00"), metadata=card)
    batch = facade.transfer_many(
        [facade.TransferRequest(wallet, sales, Decimal("1.00"))], metadata=card
    )
    for name, pk in (("transfer", paid.pk), ("hold", held.pk), ("batch", batch.pk)):
        page = admin_client.get(url("%s_change" % name, pk)).content.decode()
        assert '<pre class="accounts-metadata">{\n  &quot;city&quot;: &quot;Leeds&quot;' in page
        assert 'name="metadata"' not in page
    assert "Effective at" in admin_client.get(url("transfer_change", paid.pk)).content.decode()


# Finding cards and reading the lists ---------------------------------------------------


@pytest.mark.parametrize("typed", ["7KQ2-M9XD-HT4R-WB3N", "7kq2-m9xd-ht4r-wb3n", "7kq2 m9xd ht4r",
                                   " 7KQ2M9XD ", "ht4r-wb3n"])  # fmt: skip
def test_the_search_finds_a_card_by_its_code_as_printed(admin_client, cashier_client, typed):
    card = AccountFactory(name=None, code="7KQ2M9XDHT4RWB3N")
    AccountFactory(name=None, code="ABCDEFGH")

    response = admin_client.get(url("account_changelist"), {"q": typed})
    assert list(response.context["cl"].result_list) == [card]
    response = cashier_client.get(
        reverse("admin:autocomplete"),
        {"app_label": "accounts", "model_name": "transfer", "field_name": "source", "term": typed},
    )
    assert [r["id"] for r in response.json()["results"]] == [str(card.pk)]


def test_the_account_list_puts_the_money_first_and_never_wraps_it(admin_client, source):
    debtor = AccountFactory(name="Debtor", credit_limit=Decimal("50.00"))
    facade.transfer(debtor, Account.objects.sales_account(), Decimal("20.00"))

    response = admin_client.get(url("account_changelist"))

    columns = [header["class_attrib"] for header in response.context["result_headers"]]
    assert [c.split("column-")[1].split(" ")[0].rstrip('"') for c in columns[1:5]] == [
        "account_column",
        "balance_money",
        "held_money",
        "credit_limit_money",
    ]
    html = response.content.decode()
    assert '<span class="accounts-money">-£20.00</span>' in html
    assert '<span class="accounts-money">no limit</span>' in html  # the source
    assert "accounts/admin.css" in html


def test_a_core_account_shows_no_limit_rather_than_none(admin_client, source):
    page = admin_client.get(url("account_change", source.pk)).content.decode()

    assert "no limit" in page
    assert ">None<" not in page


def test_secondary_users_are_shown_by_name(clerk_client):
    alice = UserFactory(username="alice")
    account = AccountFactory()
    account.secondary_users.add(alice)

    page = clerk_client.get(url("account_change", account.pk)).content.decode()

    assert "<strong>alice</strong>" in page


def test_users_are_searched_as_you_type_where_the_staff_user_may_view_them(fund):
    viewer = StaffFactory(permissions=["accounts.view_account", "accounts.change_account",
                                       "auth.view_user"])  # fmt: skip
    client = Client()
    client.force_login(viewer)
    account = AccountFactory()

    page = client.get(url("account_change", account.pk)).content.decode()

    assert 'class="admin-autocomplete"' in page and 'data-field-name="secondary_users"' in page


def test_the_403_page_says_which_permission_is_missing(clerk_client, funded):
    response = clerk_client.get(url("account_top_up", funded.pk))

    assert response.status_code == 403
    html = response.content.decode()
    assert "Can move money" in html
    assert 'id="site-name"' in html  # the admin's own layout, not a bare page
