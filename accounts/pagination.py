"""Paging long histories without counting them."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet


class UncountedPage:
    """One page of a QuerySet, fetched without ``COUNT(*)``.

    Counting a long history costs as much as reading it, so the page reads
    one row more than it shows to learn whether an older page follows.
    """

    # Rows stay Any: the admins annotate each one (``row.counterparty``) after paging.
    def __init__(self, queryset: QuerySet[Any], number: str | int | None, per_page: int) -> None:
        try:
            # No page (None, "") is the first page, as is a malformed one.
            self.number = max(int(number or 1), 1)
        except (TypeError, ValueError):
            self.number = 1
        offset = (self.number - 1) * per_page
        rows = list(queryset[offset : offset + per_page + 1])
        self.object_list = rows[:per_page]
        self.has_next = len(rows) > per_page
        self.has_previous = self.number > 1
        self.next_page_number = self.number + 1
        self.previous_page_number = self.number - 1
