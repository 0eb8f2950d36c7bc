"""
Charts drawn on the server as SVG: an account's balance over time, and the
reports' totals by month as bars.

No script, no front-end build step and nothing fetched at run time: a chart
is a piece of markup the page embeds, which every browser draws and prints.
Each point (a ``circle.point``) and each bar (a ``g.bar``, made of one
``rect.segment`` per non-zero series) carries a ``<title>``, which browsers
show on hover and screen readers read. Coordinates are computed with
``Decimal`` like the amounts they stand for.

The number of points is bounded by ``accounts.reports.balance_history``
(one per day, or at most ``MAX_POINTS`` evenly spaced), and bars by
``accounts.reports.buckets`` (months, or years for long periods).
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from . import amounts
from .reports import BalanceHistory, BarChart

if TYPE_CHECKING:
    from .exceptions import StrOrPromise

WIDTH = 960
#: Left margin: room for the amounts of the vertical axis.
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 28, 34
#: Colours that colour-blind readers tell apart (Okabe and Ito).
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LINE_COLOUR, LIMIT_COLOUR, GRID_COLOUR, AXIS_COLOUR = "#0072B2", "#D55E00", "#e3e6ea", "#5b6675"
_ids = itertools.count(1)

STYLE = (
    "font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; font-size: 13px; "
    "max-width: %dpx; width: 100%%; height: auto; display: block;" % WIDTH
)


def _n(value: Decimal | int) -> str:
    """A coordinate, to a tenth of a pixel."""
    return str(Decimal(value).quantize(Decimal("0.1")))


def ticks(
    low: Decimal, high: Decimal, count: int = 5, *, quantum: Decimal = Decimal("0.01")
) -> list[Decimal]:
    """Round values from at or below ``low`` to at or above ``high`` (zero included).

    Steps are 1, 2, 2.5 or 5 times a power of ten: the smallest at least a
    ``count``-th of the range, so there are about ``count`` intervals, and
    never finer than ``quantum`` (the currency's minor unit: no half yen).
    """
    low, high = min(low, Decimal(0)), max(high, Decimal(0))
    if low == high:
        high = low + 1
    raw = max((high - low) / count, quantum)
    magnitude = Decimal(1).scaleb(raw.adjusted())
    for factor in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        step = magnitude * factor
        if step >= raw:
            break
    first = (low / step).to_integral_value(ROUND_FLOOR)
    last = (high / step).to_integral_value(ROUND_CEILING)
    return [(first + i) * step for i in range(int(last - first) + 1)]


def _amount_label(value: Decimal) -> str:
    """A tick's amount, with thousands separators and no needless decimals."""
    text = format(value.normalize() if value == value.to_integral_value() else value, ",f")
    return "−" + text[1:] if text.startswith("-") else text


def _money(value: Decimal, currency: str) -> str:
    return str(amounts.money(value, currency))


class _Frame:
    """The plot area and the vertical scale."""

    def __init__(
        self, height: int, low: Decimal, high: Decimal, currency: str, top: int = TOP
    ) -> None:
        self.height = height
        self.top = top
        self.bottom = height - BOTTOM
        self.left = LEFT
        self.right = WIDTH - RIGHT
        quantum = Decimal(1).scaleb(-amounts.currency_places(currency))
        self.ticks = ticks(low, high, quantum=quantum)
        self.low, self.high = self.ticks[0], self.ticks[-1]

    def y(self, value: Decimal) -> Decimal:
        share = (self.high - value) / (self.high - self.low)
        return self.top + share * (self.bottom - self.top)

    def grid(self, currency: str) -> list[str]:
        parts = []
        for tick in self.ticks:
            y = _n(self.y(tick))
            colour = AXIS_COLOUR if tick == 0 else GRID_COLOUR
            parts.append(
                '<line class="%s" x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s"/>'
                % ("zero" if tick == 0 else "grid", self.left, self.right, y, y, colour)
            )
            parts.append(
                '<text class="tick" x="%s" y="%s" text-anchor="end" dominant-baseline="middle" '
                'fill="%s">%s</text>'
                % (self.left - 8, y, AXIS_COLOUR, escape(_amount_label(tick)))
            )
        parts.append(
            '<text class="currency" x="%s" y="%s" text-anchor="end" fill="%s">%s</text>'
            % (self.left - 8, self.top - 14, AXIS_COLOUR, escape(currency))
        )
        return parts


def _svg(height: int, title: str, parts: list[str], kind: str) -> SafeString:
    ident = "accounts-chart-%d" % next(_ids)
    # Every piece of text in parts was escaped where it was made.
    return mark_safe(
        '<svg xmlns="http://www.w3.org/2000/svg" class="accounts-chart %s" '
        'viewBox="0 0 %d %d" role="img" aria-labelledby="%s" style="%s">'
        '<title id="%s">%s</title>%s</svg>'
        % (kind, WIDTH, height, ident, STYLE, ident, escape(title), "".join(parts))
    )


def _local(moment: datetime.datetime) -> datetime.date:
    if timezone.is_aware(moment):
        return timezone.localtime(moment).date()
    return moment.date()


def balance_chart(
    history: BalanceHistory, *, title: StrOrPromise | None = None, height: int = 300
) -> SafeString:
    """An account's balance over time as a line, with its credit limit as a dashed line.

    One ``circle.point`` per point of ``history``; the limit (a floor at
    minus the credit limit) is drawn when the account has one.
    """
    account, currency = history.account, history.account.currency
    values = [value for _moment, value in history.points]
    floor = None if history.credit_limit is None else -history.credit_limit
    low = min([*values, floor if floor is not None else Decimal(0)], default=Decimal(0))
    high = max(values, default=Decimal(0))
    frame = _Frame(height, low, high, currency)
    title = title or _("Balance of %(account)s from %(start)s to %(end)s") % {
        "account": account,
        "start": date_format(_local(history.start), "DATE_FORMAT"),
        "end": date_format(_local(history.end), "DATE_FORMAT"),
    }
    span = max(history.end - history.start, datetime.timedelta(microseconds=1))
    micro = datetime.timedelta(microseconds=1)

    def x(moment: datetime.datetime) -> Decimal:
        share = Decimal((moment - history.start) // micro) / Decimal(span // micro)
        return frame.left + share * (frame.right - frame.left)

    parts = frame.grid(currency)
    count = len(history.points)
    every = max(1, -(-count // 7))
    kept: list[tuple[Decimal, Decimal, str]] = []
    wanted = [i for i in range(count) if i % every == 0]
    if count and wanted[-1] != count - 1:
        wanted.append(count - 1)
    for index in wanted:
        label = _date_label(history.points[index][0])
        at_x = x(history.points[index][0])
        extent = _extent(at_x, label, frame)
        if kept and extent[0] < kept[-1][1] + 12:
            if index != count - 1:
                continue  # too close to the label before: left out
            # The last day is always labelled: the labels before it give way.
            while kept and extent[0] < kept[-1][1] + 12:
                kept.pop()
        kept.append((*extent, label))
    for left, _right, label in kept:
        parts.append(
            '<text class="date" x="%s" y="%s" fill="%s">%s</text>'
            % (_n(left), frame.bottom + 20, AXIS_COLOUR, escape(label))
        )
    if floor is not None:
        y = _n(frame.y(floor))
        label = _("Credit limit %(limit)s") % {"limit": _money(floor, currency)}
        parts.append(
            '<line class="credit-limit" x1="%s" x2="%s" y1="%s" y2="%s" stroke="%s" '
            'stroke-width="1.5" stroke-dasharray="6 4"><title>%s</title></line>'
            % (frame.left, frame.right, y, y, LIMIT_COLOUR, escape(label))
        )
        parts.append(
            '<text class="credit-limit-label" x="%s" y="%s" text-anchor="end" fill="%s">%s</text>'
            % (frame.right, _n(frame.y(floor) - 5), LIMIT_COLOUR, escape(label))
        )
    coordinates = [(x(moment), frame.y(value)) for moment, value in history.points]
    parts.append(
        '<polyline class="balance-line" fill="none" stroke="%s" stroke-width="2" '
        'stroke-linejoin="round" points="%s"/>'
        % (LINE_COLOUR, " ".join("%s,%s" % (_n(px), _n(py)) for px, py in coordinates))
    )
    radius = "3" if count <= 62 else "2"
    for (moment, value), (px, py) in zip(history.points, coordinates, strict=True):
        parts.append(
            '<circle class="point" cx="%s" cy="%s" r="%s" fill="%s"><title>%s: %s</title></circle>'
            % (
                _n(px),
                _n(py),
                radius,
                LINE_COLOUR,
                escape(date_format(_local(moment), "DATE_FORMAT")),
                escape(_money(value, currency)),
            )
        )
    return _svg(height, str(title), parts, "balance-chart")


#: The width of a character of the labels, in the chart's units (13px text).
CHARACTER = Decimal("7.4")


def _extent(at_x: Decimal, label: str, frame: _Frame) -> tuple[Decimal, Decimal]:
    """Where a label centred at ``at_x`` goes, moved inwards at the plot's edges."""
    width = CHARACTER * len(label)
    left = min(max(at_x - width / 2, Decimal(frame.left - 20)), Decimal(frame.right) - width)
    return left, left + width


def _date_label(moment: datetime.datetime) -> str:
    return date_format(_local(moment), "j M Y")


def bar_chart(chart: BarChart, *, height: int = 300) -> SafeString:
    """Totals per bar as stacked segments: positive ones up from zero, negative ones down.

    One ``g.bar`` per bar of ``chart``, with a legend of the series above
    the plot when there are several.
    """
    colours = dict(zip((key for key, _label in chart.series), itertools.cycle(PALETTE)))
    labels = {key: str(label) for key, label in chart.series}
    ups = [sum((v for v in bar.values.values() if v > 0), Decimal(0)) for bar in chart.bars]
    downs = [sum((v for v in bar.values.values() if v < 0), Decimal(0)) for bar in chart.bars]
    legend = len(chart.series) > 1
    frame = _Frame(height, min(downs, default=Decimal(0)), max(ups, default=Decimal(0)),
                   chart.currency, top=TOP + (24 if legend else 0))  # fmt: skip
    parts = frame.grid(chart.currency)
    if legend:
        x = frame.left
        for key, label in chart.series:
            parts.append(
                '<g class="legend-item"><rect x="%s" y="4" width="12" height="12" fill="%s"/>'
                '<text x="%s" y="15" fill="%s">%s</text></g>'
                % (x, colours[key], x + 17, AXIS_COLOUR, escape(str(label)))
            )
            x += 32 + 7 * len(str(label))
    count = max(len(chart.bars), 1)
    slot = Decimal(frame.right - frame.left) / count
    width = slot * Decimal("0.7")
    every = max(1, -(-count // 12))
    for index, bar in enumerate(chart.bars):
        left = frame.left + slot * index + (slot - width) / 2
        segments = []
        up = down = Decimal(0)
        for key, _label in chart.series:
            value = bar.values.get(key, Decimal(0))
            if not value:
                continue
            if value > 0:
                top, bottom = up + value, up
                up = top
            else:
                top, bottom = down, down + value
                down = bottom
            y_top, y_bottom = frame.y(top), frame.y(bottom)
            segments.append(
                '<rect class="segment" data-series="%s" x="%s" y="%s" width="%s" height="%s" '
                'fill="%s"><title>%s · %s: %s</title></rect>'
                % (
                    escape(key),
                    _n(left),
                    _n(y_top),
                    _n(width),
                    _n(y_bottom - y_top),
                    colours.get(key, PALETTE[0]),
                    escape(bar.period or bar.label),
                    escape(labels.get(key, key)),
                    escape(_money(value, chart.currency)),
                )
            )
        parts.append(
            '<g class="bar" data-label="%s">%s</g>' % (escape(bar.label), "".join(segments))
        )
        if index % every == 0:
            parts.append(
                '<text class="bar-label" x="%s" y="%s" text-anchor="middle" fill="%s">%s</text>'
                % (_n(left + width / 2), frame.bottom + 20, AXIS_COLOUR, escape(bar.label))
            )
    return _svg(height, str(chart.title), parts, "bar-chart")


def bar_charts(charts: Sequence[BarChart]) -> list[tuple[str, SafeString]]:
    """(title, SVG) of each chart that has something to show (a non-zero bar)."""
    return [
        (str(chart.title), bar_chart(chart))
        for chart in charts
        if any(value for bar in chart.bars for value in bar.values.values())
    ]
