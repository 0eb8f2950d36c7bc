"""The SVG charts (accounts.charts): well-formed, bounded, escaped, drawn to scale."""

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from accounts import charts, reports
from accounts.models import Account

from .utils import at

D = Decimal
SVG = "{http://www.w3.org/2000/svg}"


def parse(svg):
    return ET.fromstring(str(svg))


def history(points, limit=None, name="Barry's <wallet>"):
    account = Account(name=name, currency="GBP")
    moments = [at("03-%02d" % (day + 1), 23, 59) for day in range(len(points))]
    return reports.BalanceHistory(
        account=account,
        start=at("03-01", 0),
        end=moments[-1],
        points=list(zip(moments, [D(p) for p in points], strict=True)),
        credit_limit=None if limit is None else D(limit),
        step="day",
    )


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        ("0", "100", ["0", "20", "40", "60", "80", "100"]),
        ("-30", "94.95", ["-50", "-25", "0", "25", "50", "75", "100"]),
        ("0", "0", ["0", "0.2", "0.4", "0.6", "0.8", "1.0"]),
        ("0.10", "0.30", ["0", "0.1", "0.2", "0.3"]),
        ("-1234567", "0", ["-1250000", "-1000000", "-750000", "-500000", "-250000", "0"]),
    ],
)
def test_ticks_are_round_and_include_zero(low, high, expected):
    found = charts.ticks(D(low), D(high))

    assert found == [D(value) for value in expected]
    assert all(isinstance(tick, Decimal) for tick in found)


def test_ticks_are_never_finer_than_the_currency_unit():
    assert charts.ticks(D(0), D(3), quantum=D(1)) == [D(0), D(1), D(2), D(3)]


def test_a_balance_chart_has_one_point_per_value_and_escapes_text():
    svg = charts.balance_chart(history(["0", "10.00", "-5.50"], limit="20.00"))
    root = parse(svg)

    points = root.findall(SVG + "circle")
    assert len(points) == 3
    assert [p.get("class") for p in points] == ["point"] * 3
    assert points[2].find(SVG + "title").text == "March 3, 2026: -£5.50"
    assert "Barry's <wallet>" in root.find(SVG + "title").text
    assert "<wallet>" not in str(svg)
    limit = root.find(SVG + "line[@class='credit-limit']")
    assert limit.find(SVG + "title").text == "Credit limit -£20.00"
    ys = [float(p.get("cy")) for p in points]
    # Higher balances are higher up; the limit is below the lowest balance.
    assert ys[1] < ys[0] < ys[2] < float(limit.get("y1"))


def test_a_balance_chart_without_a_credit_limit_has_no_limit_line():
    root = parse(charts.balance_chart(history(["1.00", "2.00"])))

    assert root.find(SVG + "line[@class='credit-limit']") is None
    assert len(root.findall(SVG + "circle")) == 2


def test_a_bar_chart_stacks_positive_segments_up_and_negative_ones_down():
    chart = reports.BarChart(
        title="Movements <by month>",
        currency="GBP",
        series=[("in", "Money in"), ("out", "Money out")],
        bars=[
            reports.Bar("Jan 2026", {"in": D("100.00"), "out": D("-40.00")}),
            reports.Bar("Feb 2026", {}),
            reports.Bar("Mar 2026", {"out": D("-25.00")}),
        ],
    )
    root = parse(charts.bar_chart(chart))

    bars = root.findall(SVG + "g[@class='bar']")
    assert [bar.get("data-label") for bar in bars] == ["Jan 2026", "Feb 2026", "Mar 2026"]
    assert [len(bar.findall(SVG + "rect")) for bar in bars] == [2, 0, 1]
    money_in, money_out = bars[0].findall(SVG + "rect")
    zero = float(root.find(SVG + "line[@class='zero']").get("y1"))
    # To the tenth of a pixel the coordinates are written with.
    assert float(money_in.get("y")) + float(money_in.get("height")) == pytest.approx(zero, abs=0.2)
    assert float(money_out.get("y")) == pytest.approx(zero, abs=0.1)
    assert float(money_in.get("height")) == pytest.approx(
        2.5 * float(money_out.get("height")), abs=0.3
    )
    assert money_out.find(SVG + "title").text == "Jan 2026 · Money out: -£40.00"
    assert [t.text for t in root.findall(SVG + "g/" + SVG + "text")] == ["Money in", "Money out"]
    assert root.find(SVG + "title").text == "Movements <by month>"
