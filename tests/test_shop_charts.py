"""The demo shop's statement charts (sandbox.shop): a customer sees their balance chart,
for the dates asked, bounded over all history, and readable in a real Chromium."""

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from accounts import facade, reports
from accounts.models import Account

from .factories import AccountFactory, UserFactory
from .utils import at, build_report_ledger, check_readable, ledger_time, screenshot

D = Decimal
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg):
    return ET.fromstring(str(svg))


@pytest.mark.django_db
def test_sandbox_statement_shows_the_balance_chart_for_its_dates(client):
    build_report_ledger()
    barry = UserFactory(username="barry")
    wallet = Account.objects.get(name="Wallet")
    Account.objects.filter(pk=wallet.pk).update(primary_user=barry)
    client.force_login(barry)

    response = client.get(
        reverse("shop:statement", args=[wallet.pk]), {"start": "2026-01-01", "end": "2026-01-31"}
    )

    root = parse(response.context["chart"])
    points = root.findall(SVG + "circle")
    assert len(points) == 31
    assert points[-1].find(SVG + "title").text == "Jan. 31, 2026: -£25.00"
    assert 'id="balance-chart"' in response.text


@pytest.mark.django_db
def test_sandbox_statement_chart_of_all_history_is_bounded(client, source):
    barry = UserFactory(username="barry")
    account = AccountFactory(primary_user=barry)
    for year in (2020, 2023, 2026):
        with ledger_time(at("01-02").replace(year=year)):
            facade.transfer(source, account, D("1.00"))
    client.force_login(barry)

    response = client.get(reverse("shop:statement", args=[account.pk]))

    assert len(parse(response.context["chart"]).findall(SVG + "circle")) == reports.MAX_POINTS


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_customer_statement_shows_the_balance_chart(live_server, page):
    accounts, _transfers = build_report_ledger()
    barry = get_user_model().objects.create_user("barry", password="barry")
    Account.objects.filter(pk=accounts["gift1"].pk).update(primary_user=barry)

    page.goto(live_server.url + reverse("shop:login"))
    page.fill("#id_username", "barry")
    page.fill("#id_password", "barry")
    page.click("main form button[type=submit]")
    page.wait_for_url("**" + reverse("shop:my_accounts"))
    page.goto(
        live_server.url
        + reverse("shop:statement", args=[accounts["gift1"].pk])
        + "?start=2026-01-01&end=2026-01-31"
    )

    chart = page.locator("#balance-chart svg.balance-chart")
    assert chart.locator("circle.point").count() == 31
    assert chart.locator("line.credit-limit").count() == 1  # a zero limit: the floor at zero
    screenshot(page, "shop-statement-chart")
    check_readable(page, chart, "text.date")
