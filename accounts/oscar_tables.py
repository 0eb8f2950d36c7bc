"""
django-oscar-accounts' tables, as this app reads them for the import.

Unmanaged models of oscar's tables in a registry of their own, the names of
oscar's core accounts, and oscar's users matched to this app's by username.
See :mod:`accounts.oscar_import`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from django.apps.registry import Apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections, models

from .models import Account

__all__ = ["OscarNames", "oscar_models", "matched_users", "chunks", "TABLES", "STEP", "CHUNK"]

T = TypeVar("T")

#: The length of each step of treebeard's materialised paths (its default).
STEP = 4
#: Transfers read (and their legs looked up) at a time.
CHUNK = 1000

TABLES = (
    "oscar_accounts_accounttype",
    "oscar_accounts_account",
    "oscar_accounts_account_secondary_users",
    "oscar_accounts_transfer",
    "oscar_accounts_transaction",
)


@dataclass(frozen=True)
class OscarNames:
    """The names of oscar's core accounts."""

    bank: str
    redemptions: str
    lapsed: str

    @classmethod
    def from_settings(cls) -> OscarNames:
        """The names oscar-accounts used: its settings, or its defaults."""
        return cls(
            bank=getattr(settings, "ACCOUNTS_BANK_NAME", "Bank"),
            redemptions=getattr(settings, "ACCOUNTS_REDEMPTIONS_NAME", "Redemptions"),
            lapsed=getattr(settings, "ACCOUNTS_LAPSED_NAME", "Lapsed accounts"),
        )

    def roles(self) -> dict[str, str]:
        return {
            self.bank: Account.Role.SOURCE,
            self.redemptions: Account.Role.SALES,
            self.lapsed: Account.Role.EXPIRED,
        }


# Oscar's tables, read through models of their own ------------------------------------------


@functools.cache
def oscar_models() -> Any:
    """Unmanaged models of oscar-accounts' tables, in a registry of their own.

    A private registry: Django's app registry, migrations and checks never
    see them. Foreign keys are plain integer columns: only their values are
    read. The field types are those of oscar's migrations (0001 to 0004).
    """
    registry = Apps()

    def model(class_name: str, table: str, /, **fields: Any) -> Any:
        options = {"apps": registry, "app_label": "oscar_accounts", "db_table": table}
        meta = type("Meta", (), {**options, "managed": False})
        return type(class_name, (models.Model,), {"__module__": __name__, "Meta": meta, **fields})

    def money(**options: Any) -> models.DecimalField[Any, Any]:
        return models.DecimalField(max_digits=12, decimal_places=2, **options)

    def key(**options: Any) -> models.IntegerField[Any, Any]:
        return models.IntegerField(**options)

    return {
        "type": model(
            "AccountType",
            "oscar_accounts_accounttype",
            path=models.CharField(max_length=255),
            depth=models.PositiveIntegerField(),
            code=models.CharField(max_length=128, null=True),
            name=models.CharField(max_length=128),
        ),
        "account": model(
            "Account",
            "oscar_accounts_account",
            name=models.CharField(max_length=128, null=True),
            description=models.TextField(null=True),
            code=models.CharField(max_length=128, null=True),
            account_type_id=key(null=True),
            primary_user_id=key(null=True),
            status=models.CharField(max_length=32),
            credit_limit=money(null=True),
            balance=money(null=True),
            start_date=models.DateTimeField(null=True),
            end_date=models.DateTimeField(null=True),
            product_range_id=key(null=True),
            can_be_used_for_non_products=models.BooleanField(),
            date_created=models.DateTimeField(),
        ),
        "secondary": model(
            "SecondaryUser",
            "oscar_accounts_account_secondary_users",
            account_id=key(),
            user_id=key(),
        ),
        "transfer": model(
            "Transfer",
            "oscar_accounts_transfer",
            reference=models.CharField(max_length=64, null=True),
            source_id=key(),
            destination_id=key(),
            amount=money(),
            parent_id=key(null=True),
            merchant_reference=models.CharField(max_length=128, null=True),
            description=models.CharField(max_length=256, null=True),
            user_id=key(null=True),
            username=models.CharField(max_length=150),
            date_created=models.DateTimeField(),
        ),
        "leg": model(
            "Transaction",
            "oscar_accounts_transaction",
            transfer_id=key(),
            account_id=key(),
            amount=money(),
            date_created=models.DateTimeField(),
        ),
        "ip": model(
            "IPAddressRecord",
            "oscar_accounts_ipaddressrecord",
            ip_address=models.CharField(max_length=39),
        ),
    }


def matched_users(source: str, target: str, ids: set[int]) -> dict[int, int]:
    """Oscar's user ids -> this app's, matched by username."""
    if not ids:
        return {}
    user_model = get_user_model()
    username = user_model.USERNAME_FIELD
    field = user_model._meta.get_field(username)
    assert isinstance(field, models.Field)
    column: str = field.column
    table = connections[source].ops.quote_name(user_model._meta.db_table)
    found: dict[str, int] = {}
    with connections[source].cursor() as cursor:
        for chunk in chunks(sorted(ids), CHUNK):
            cursor.execute(
                "SELECT id, %s FROM %s WHERE id IN (%s)"
                % (
                    connections[source].ops.quote_name(column),
                    table,
                    ", ".join(["%s"] * len(chunk)),
                ),
                chunk,
            )
            found.update({name: pk for pk, name in cursor.fetchall()})
    ours = dict(
        user_model._default_manager.db_manager(target)
        .filter(**{"%s__in" % username: list(found)})
        .values_list(username, "pk")
    )
    return {pk: ours[name] for name, pk in found.items() if name in ours}


def chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """The items, ``size`` at a time."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
