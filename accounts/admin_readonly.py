"""
The admin of rows only the engine writes: shown, never added, changed or deleted.

Collection runs, debts and their settlements are written only by
``accounts.collections``; their admin pages (``accounts.collection_admin``,
``accounts.debt_admin``) build on these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.urls import reverse

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec

    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin

__all__ = ["ADMIN_CSS", "ReadOnlyMixin", "ReadOnlyAdmin", "admin_url", "fields_of"]

#: The stylesheet of the package's admin pages: money columns right-aligned, never wrapped.
ADMIN_CSS = "accounts/admin.css"


def admin_url(site: admin.AdminSite, name: str, *args: object) -> str:
    """The URL of this app's admin page ``name`` (``"debt_change"``, say) on ``site``."""
    return reverse("admin:accounts_%s" % name, args=args, current_app=site.name)


def fields_of(fieldsets: _FieldsetSpec) -> tuple[str, ...]:
    """Every field of these fieldsets (for ``readonly_fields``: all of them read only)."""
    names: list[str] = []
    for _title, options in fieldsets:
        for group in options["fields"]:
            names.extend([group] if isinstance(group, str) else group)
    return tuple(names)


class ReadOnlyMixin:
    """No add, change or delete permission, for a model admin or an inline."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, _ModelAdmin):
    """Rows written by the engine only: no add, change or actions."""

    actions: Any = None
    show_full_result_count = False

    class Media:
        css = {"all": (ADMIN_CSS,)}
