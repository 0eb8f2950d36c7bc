"""The charts in a real headless Chromium at 1280 px: they render, with the right number
of points or bars, and stay readable (labels at least 11 px tall, none overlapping, no
horizontal scrolling). Skipped (or, with CI=true, failed) like ``test_browser.py`` where
Chromium or Playwright is missing; screenshots go to ``artifacts/``.
"""

import pytest
from django.urls import reverse

from .factories import StaffFactory
from .utils import build_report_ledger, check_readable, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

FINANCE = ["accounts.view_reports", "accounts.view_account", "accounts.view_transfer"]


def log_in_to_admin(page, live_server):
    StaffFactory(username="finance", permissions=FINANCE)
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", "finance")
    page.fill("#id_password", "staff")
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")


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
