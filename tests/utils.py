"""Helpers shared by several test modules (never imported from conftest.py)."""

from __future__ import annotations

from typing import Any

#: The button that confirms an admin money form (accounts.admin.CONFIRM).
CONFIRM = "_confirm"


def review(client: Any, url: str, data: dict[str, Any]) -> Any:
    """Post an admin money form's first step: the confirmation page, or the form with errors."""
    return client.post(url, data)


def move_money(client: Any, url: str, data: dict[str, Any], **kwargs: Any) -> Any:
    """Post an admin money form as a browser does: the form, then its confirmation.

    Returns the form's response when it has errors (nothing to confirm),
    else the response to the confirmation, which posts exactly the values
    the confirmation page carried.
    """
    page = review(client, url, data)
    if page.status_code != 200 or not page.context.get("confirming"):
        return page
    return client.post(url, confirmed_data(page), **kwargs)


def confirmed_data(page: Any) -> dict[str, Any]:
    """What the confirm button of a confirmation page posts."""
    data: dict[str, Any] = {}
    for name, value in page.context["carried"]:
        data.setdefault(name, []).append(value)
    data[CONFIRM] = "1"
    return data
