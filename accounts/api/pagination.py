"""
Cursor pagination on unique keys: every page costs one indexed query.

A page is the rows after (or before) the cursor in the order of the keys,
``(created, id)`` for a statement (``(transfer__effective_at, id)`` for one
by effective date), ``id`` for accounts. The cursor is an
opaque token holding the keys of the row the page starts after, so pages
stay right while new rows arrive, and a page deep in a long history costs
the same as the first: no ``OFFSET``, no ``COUNT(*)``.

Rejected alternative: DRF's ``CursorPagination``. It positions on the first
ordering field alone and skips ties with an offset, which on a statement
(many legs can share a second) means reading and discarding rows, and a
cursor that depends on how many rows tie.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
from typing import Any, Generic, TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.utils.urls import replace_query_param

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

_M = TypeVar("_M", bound=Model)


def _moment(text: str) -> datetime.datetime | None:
    try:
        return parse_datetime(text)
    except ValueError:
        return None


class KeysetPage(Generic[_M]):
    """One page of ``queryset`` in order of ``keys`` (unique together), descending if asked."""

    def __init__(
        self,
        queryset: QuerySet[_M],
        request: Request,
        keys: tuple[str, ...],
        *,
        descending: bool = False,
    ) -> None:
        self.keys = keys
        self.request = request
        self.page_size = self._page_size(request)
        cursor = request.query_params.get("cursor")
        position, backwards = self._decode(cursor) if cursor else (None, False)
        # Reading backwards through a descending order is reading ascending.
        down = descending != backwards
        rows = queryset.order_by(*[("-" if down else "") + key for key in keys])
        if position is not None:
            rows = rows.filter(self._beyond(position, down))
        fetched = list(rows[: self.page_size + 1])
        more = len(fetched) > self.page_size
        fetched = fetched[: self.page_size]
        if backwards:
            fetched.reverse()
        self.rows = fetched
        # Going forwards, a page reached by a cursor has one before it; going
        # backwards, the page we came from is after it.
        self.has_next = bool(fetched) and (backwards or more)
        self.has_previous = bool(fetched) and (position is not None if not backwards else more)

    @staticmethod
    def _page_size(request: Request) -> int:
        text = request.query_params.get("page_size")
        if text is None:
            return DEFAULT_PAGE_SIZE
        if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
            raise ValidationError(
                {
                    "page_size": [
                        _("Give a whole number from 1 to %(max)s.") % {"max": MAX_PAGE_SIZE}
                    ]
                }
            )
        return int(text)

    def _beyond(self, position: list[Any], down: bool) -> Q:
        """Rows strictly after ``position`` in the order read (keys descending if ``down``)."""
        op = "lt" if down else "gt"
        condition = Q()
        equal: dict[str, Any] = {}
        for key, value in zip(self.keys, position, strict=True):
            condition |= Q(**equal, **{"%s__%s" % (key, op): value})
            equal[key] = value
        return condition

    def _decode(self, cursor: str) -> tuple[list[Any], bool]:
        invalid = ValidationError({"cursor": [_("This cursor is not valid here.")]})
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor.encode("ascii") + b"==="))
            direction, values = data["d"], data["k"]
        except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
            raise invalid from None
        if direction not in ("n", "p") or not isinstance(values, list):
            raise invalid
        if len(values) != len(self.keys):
            raise invalid
        position: list[Any] = []
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                position.append(value)
            elif isinstance(value, str) and (moment := _moment(value)) is not None:
                position.append(moment)
            else:
                raise invalid
        return position, direction == "p"

    def _encode(self, row: _M, direction: str) -> str:
        values = []
        for key in self.keys:
            value: Any = row
            for name in key.split("__"):  # transfer__effective_at: through the relation
                value = value.pk if name == "pk" else getattr(value, name)
            values.append(value.isoformat() if isinstance(value, datetime.datetime) else value)
        raw = json.dumps({"d": direction, "k": values}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    def _link(self, cursor: str) -> str:
        return replace_query_param(self.request.build_absolute_uri(), "cursor", cursor)

    @property
    def next_link(self) -> str | None:
        return self._link(self._encode(self.rows[-1], "n")) if self.has_next else None

    @property
    def previous_link(self) -> str | None:
        return self._link(self._encode(self.rows[0], "p")) if self.has_previous else None

    def body(self, **fields: Any) -> dict[str, Any]:
        """An answer's data: ``fields``, then the page's links and its rows as ``results``."""
        return {
            **fields,
            "next": self.next_link,
            "previous": self.previous_link,
            "results": self.rows,
        }
