"""
QuerySets of the wallet models (``accounts.wallet_models``): spending limits,
repayments and declines.

Repayments and declines are ledger rows (``LedgerQuerySet``): created only by
the facade, never changed but for erasing personal data. Every write of a
spending limit checks its amount as ``SpendingLimit.save()`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .clock import DatabaseNow
from .exceptions import LedgerImmutable
from .managers import LedgerQuerySet, erase_personal_data

if TYPE_CHECKING:
    # Named as strings in the QuerySets' type parameters, which ruff does not read.
    from .wallet_models import Decline, Repayment, SpendingLimit  # noqa: F401


class SpendingLimitQuerySet(models.QuerySet["SpendingLimit"]):
    """Spending limits; every write checks the amount as ``SpendingLimit.save()`` does."""

    def effective_for(self, account: Any) -> dict[str, Any]:
        """The limits that apply to ``account``, by period: its own, else its type's.

        One query; ``{}`` for a core account (never limited) or an unlimited one.
        """
        if account.role:
            return {}
        owners = Q(account=account.pk)
        if account.account_type_id is not None:
            owners |= Q(account_type=account.account_type_id)
        found: dict[str, Any] = {}
        own: set[str] = set()
        for period, amount, account_id in self.filter(owners).values_list(
            "period", "amount", "account"
        ):
            if account_id is not None:
                found[period] = amount
                own.add(period)
            elif period not in own:
                found[period] = amount
        return found

    def effective_for_many(self, accounts: Any) -> dict[int, dict[str, Any]]:
        """:meth:`effective_for` of many accounts at once, by account id, in one query.

        Accounts without a limit (core accounts among them) are left out.
        For a page of accounts, whatever its length (the REST API's list).
        """
        tracked = [account for account in accounts if not account.role]
        if not tracked:
            return {}
        owners = Q(account__in=[account.pk for account in tracked])
        types = {a.account_type_id for a in tracked if a.account_type_id is not None}
        if types:
            owners |= Q(account_type__in=types)
        own: dict[int, dict[str, Any]] = {}
        by_type: dict[int, dict[str, Any]] = {}
        for period, amount, account_id, type_id in self.filter(owners).values_list(
            "period", "amount", "account", "account_type"
        ):
            if account_id is not None:
                own.setdefault(account_id, {})[period] = amount
            else:
                by_type.setdefault(type_id, {})[period] = amount
        found: dict[int, dict[str, Any]] = {}
        for account in tracked:
            limits = {**by_type.get(account.account_type_id, {}), **own.get(account.pk, {})}
            if limits:
                found[account.pk] = limits
        return found

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        for obj in objs:
            obj._check()
        return super().bulk_create(objs, *args, **kwargs)

    bulk_create.alters_data = True  # type: ignore[attr-defined]

    def bulk_update(self, objs: Any, fields: Any, batch_size: Any = None) -> int:
        objs = list(objs)
        for obj in objs:
            obj._check()
        return super().bulk_update(objs, fields, batch_size=batch_size)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def update(self, **kwargs: Any) -> int:
        """Update limits; an owner or period change is refused, an amount is checked."""
        refused = {"account", "account_id", "account_type", "account_type_id", "period"}
        if refused.intersection(kwargs):
            raise LedgerImmutable(
                _(
                    "A spending limit's owner and period do not change: delete it and "
                    "create another."
                )
            )
        if "amount" in kwargs:
            # Checked as a limit of a type: the places of each account's
            # currency are checked by save(), one limit at a time.
            probe = self.model(account_type_id=0, period="day", amount=kwargs["amount"])
            probe._check()
            kwargs["amount"] = probe.amount
            kwargs["changed_at"] = DatabaseNow()
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]


class RepaymentQuerySet(LedgerQuerySet["Repayment"]):
    def erase_personal_data(self) -> int:
        """Erase who asked for these repayments (user, username)."""
        return erase_personal_data(self, user=None, username="")

    erase_personal_data.alters_data = True  # type: ignore[attr-defined]


class DeclineQuerySet(LedgerQuerySet["Decline"]):
    def for_account(self, account: Any) -> DeclineQuerySet:
        """The declines of payments from ``account``."""
        return self.filter(source=account)

    def erase_personal_data(self) -> int:
        """Erase who made the refused requests and why (user, username, description)."""
        return erase_personal_data(self, user=None, username="", description="")

    erase_personal_data.alters_data = True  # type: ignore[attr-defined]
