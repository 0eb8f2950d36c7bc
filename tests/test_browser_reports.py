"""The charts in a real headless Chromium at 1280 px: they render, with the right number
of points or bars, and stay readable (labels at least 11 px tall, none overlapping, no
horizontal scrolling). Skipped (or, with CI=true, failed) like ``test_browser.py`` where
Chromium or Playwright is missing; screenshots go to ``artifacts/``.
"""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse

from accounts.models import Account

from .factories import StaffFactory
from .utils import ARTIFACTS, build_report_ledger

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FINANCE = ["accounts.view_reports", "accounts.view_account", "accounts.view_transfer"]


def log_in_to_admin(page, live_server):
    StaffFactory(username="finance", permissions=FINANCE)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "finance")
    page.fill("#id_password", "staff")
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")


def check_readable(page, chart, labels):
    """The chart is drawn, fits the window, and its ``labels`` are legible and apart."""
    box = chart.bounding_box()
    assert box is not None and box["width"] >= 600 and box["height"] >= 150, box
    assert box["x"] >= 0 and box["x"] + box["width"] <= 1280, box
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    boxes = [label.bounding_box() for label in chart.locator(labels).all()]
    assert boxes, labels
    for found in boxes:
        assert found["height"] >= 11, found
    for i, one in enumerate(boxes):
        for other in boxes[i + 1 :]:
            apart = (
                one["x"] + one["width"] <= other["x"]
                or other["x"] + other["width"] <= one["x"]
                or one["y"] + one["height"] <= other["y"]
                or other["y"] + other["height"] <= one["y"]
            )
            assert apart, (one, other)


def screenshot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / ("%s-%s.png" % (name, connection.vendor))
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0


def test_account_page_and_statement_chart_the_balance(live_server, page):
    accounts, _transfers = build_report_ledger()
    wallet = accounts["wallet"]
    log_in_to_admin(page, live_server)

    page.goto(
        live_server.url
        + reverse("admin:accounts_account_change", args=[wallet.pk])
        + "?balance=365"
    )
    chart = page.locator("#balance-chart svg.balance-chart")
    assert chart.locator("circle.point").count() == 120
    assert chart.locator("line.credit-limit").count() == 1
    screenshot(page, "admin-account-chart")
    check_readable(page, chart, "text.date")
    check_readable(page, chart, "text.tick")

    page.goto(
        live_server.url
        + reverse("admin:accounts_account_statement", args=[wallet.pk])
        + "?start=2026-01-01&end=2026-02-28"
    )
    chart = page.locator("#balance-chart svg.balance-chart")
    assert chart.locator("circle.point").count() == 59
    last = chart.locator("circle.point").last
    assert last.locator("title").text_content() == "Feb. 28, 2026: -£30.00"
    screenshot(page, "admin-statement-chart")
    check_readable(page, chart, "text.date")


def test_reports_draw_their_totals_by_month_as_bars(live_server, page):
    build_report_ledger()
    log_in_to_admin(page, live_server)

    page.goto(
        live_server.url
        + reverse("admin:accounts_report_movements")
        + "?start=2025-12-01&end=2026-03-31"
    )
    screenshot(page, "admin-report-movements")
    charts = page.locator("svg.bar-chart")
    assert charts.count() == 2  # EUR and GBP
    gbp = page.locator("figure.report-chart", has_text="(GBP)").locator("svg")
    assert gbp.locator("g.bar").count() == 4
    assert gbp.locator("g.bar").nth(0).locator("rect.segment").count() == 0  # December
    # January: top-ups, spending, refunds (the transfer between accounts nets to zero).
    assert gbp.locator("g.bar").nth(1).locator("rect.segment").count() == 3
    check_readable(page, gbp, "text.bar-label")
    check_readable(page, gbp, "g.legend-item text")
    assert page.locator("#report-table tr.total").count() == 2

    page.goto(live_server.url + reverse("admin:accounts_report_trial_balance") + "?at=2026-03-31")
    screenshot(page, "admin-report-trial-balance")
    gbp = page.locator("figure.report-chart", has_text="(GBP)").locator("svg")
    assert gbp.locator("g.bar").count() == 12
    check_readable(page, gbp, "text.bar-label")


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
