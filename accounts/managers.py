"""
QuerySets for the ledger's models; managers are built from them.

The ledger QuerySets refuse ``update()`` and ``delete()``: transfers and
transactions are append-only, and an account's balance is written only by
the facade, under a row lock. django-money patches each model's default
manager (``objects``) so that ``filter(balance__gt=Money(...))`` works.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from django.conf import settings
from django.db import models, router
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .arguments import metadata as checked_metadata
from .arguments import storable
from .clock import DatabaseNow, database_now
from .codes import normalize_code
from .exceptions import InvalidArgument, LedgerImmutable, ProtectedAccount

if TYPE_CHECKING:
    # Named as strings in the QuerySets' type parameters, which ruff does not read.
    from .models import Account, AccountType, Batch, Hold, Transaction  # noqa: F401

_M = TypeVar("_M", bound=models.Model)

#: Account columns only the facade writes.
LEDGER_FIELDS = frozenset(
    {
        "balance",
        "held",
        "currency",
        "spent_day",
        "spent_day_from",
        "spent_week",
        "spent_week_from",
        "spent_month",
        "spent_month_from",
    }
)


class AccountTypeQuerySet(models.QuerySet["AccountType"]):
    def descendant_ids(self, root_ids: Iterable[int]) -> set[int]:
        """Ids of the given types and of every type below them in the tree."""
        found = set(root_ids)
        frontier = set(found)
        while frontier:
            frontier = set(self.filter(parent__in=frontier).values_list("pk", flat=True)) - found
            found |= frontier
        return found


# Any, not "Account": with the model known, mypy reads its nullable columns as
# optional and flags declines.py and reports.py, which are not typed for that yet.
class AccountQuerySet(models.QuerySet[Any]):
    def for_user(self, user: Any) -> AccountQuerySet:
        """Accounts the user may use: where they are the primary or a secondary user."""
        if user is None or not getattr(user, "pk", None):
            return self.none()
        secondary = self.model.secondary_users.through.objects.filter(user=user.pk).values(
            "account"
        )
        return self.filter(Q(primary_user=user.pk) | Q(pk__in=secondary))

    def of_type(self, account_type: Any, *, include_children: bool = True) -> AccountQuerySet:
        """Accounts of an ``AccountType`` (or type code), by default including its subtypes."""
        from .models import AccountType

        if isinstance(account_type, str):
            account_type = AccountType.objects.get(code=account_type)
        ids = {account_type.pk}
        if include_children:
            ids = AccountType.objects.descendant_ids(ids)
        return self.filter(account_type__in=ids)

    def open(self) -> AccountQuerySet:
        return self.filter(status=self.model.Status.OPEN)

    def active(self, at: datetime | None = None) -> AccountQuerySet:
        """Open accounts whose date window contains ``at`` (default: now)."""
        at = at or timezone.now()
        return self.open().filter(
            Q(start_date__isnull=True) | Q(start_date__lte=at),
            Q(end_date__isnull=True) | Q(end_date__gte=at),
        )

    def expired(self, at: datetime | None = None) -> AccountQuerySet:
        """Accounts whose end date is before ``at`` (default: now), whatever their status."""
        return self.filter(end_date__lt=at or timezone.now())

    def core(self, role: str, currency: str | None = None) -> Account:
        """Return the core account of a role (``Account.Role``) in a currency.

        ``currency`` defaults to ``ACCOUNTS_DEFAULT_CURRENCY``. The account is
        created if it is missing (for example after a currency was added to
        ``ACCOUNTS_CURRENCIES`` and ``migrate`` has not run since).
        Raises ``UnsupportedCurrency`` for a currency not in ``ACCOUNTS_CURRENCIES``.
        """
        from .core_accounts import get_core_account

        # The database given with using()/db_manager(), else where the router
        # writes: a core account missing from a read replica must not be
        # created there (nor a stale one read from it).
        using: str | None = self._db  # type: ignore[attr-defined]
        return get_core_account(self.model, role, currency, using=using)

    def source_account(self, currency: str | None = None) -> Account:
        """The core account money comes from (no credit limit) for ``currency``."""
        return self.core(self.model.Role.SOURCE, currency)

    def sales_account(self, currency: str | None = None) -> Account:
        """The core account purchases are paid into for ``currency``."""
        return self.core(self.model.Role.SALES, currency)

    def expired_account(self, currency: str | None = None) -> Account:
        """The core account that receives what is left on expired accounts."""
        return self.core(self.model.Role.EXPIRED, currency)

    def bulk_create(self, objs: Iterable[Account], *args: Any, **kwargs: Any) -> list[Account]:
        """Insert new accounts with the checks of ``save()``: each starts with a zero balance.

        Codes are normalized, money settings and text are checked, and an
        account carrying a balance or held amount is refused
        (``LedgerImmutable``) before anything is inserted.
        """
        objs = list(objs)
        for obj in objs:
            obj._prepare_for_write()
            obj._refuse_money_on_creation()
        created = super().bulk_create(objs, *args, **kwargs)
        for obj in created:
            obj._remember()
        return created

    def bulk_update(
        self, objs: Iterable[Account], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        objs = list(objs)
        fields = list(fields)
        if "code" in fields:
            for obj in objs:
                obj.code = normalize_code(obj.code) or None if obj.code else None
        return super().bulk_update(objs, fields, batch_size=batch_size)

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def update(self, **kwargs: Any) -> int:
        """Update columns of many accounts; never a balance, held amount, currency or status.

        Codes are normalized and text and metadata checked as by ``save()``; a new credit
        limit is stamped with the database's time (``credit_limit_changed_at``).
        """
        if isinstance(kwargs.get("code"), str):
            kwargs["code"] = normalize_code(kwargs["code"]) or None
        for name in ("name", "code", "description"):
            if isinstance(kwargs.get(name), str):
                storable(kwargs[name], self.model._meta.get_field(name).verbose_name)
        if "metadata" in kwargs:
            kwargs["metadata"] = checked_metadata(kwargs["metadata"])
        if "credit_limit" in kwargs:
            kwargs["credit_limit_changed_at"] = DatabaseNow()
        refused = LEDGER_FIELDS.intersection(kwargs)
        if refused:
            raise LedgerImmutable(
                _(
                    "%(fields)s can only be changed by accounts.facade; "
                    "balances follow from transfers."
                ),
                fields=", ".join(sorted(refused)),
            )
        if "status" in kwargs:
            raise LedgerImmutable(
                _(
                    "An account's status changes only through freeze(), thaw() and "
                    "close(), which check it on the locked row (got status=%(status)r)."
                ),
                status=kwargs["status"],
            )
        return super().update(**kwargs)

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> Any:
        core = self.filter(role__isnull=False).order_by("pk").first()
        if core is not None:
            raise ProtectedAccount(account=core, action=_("deleted"))
        return super().delete()

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


def refuse_ledger_write(model: type[models.Model]) -> NoReturn:
    """Ledger rows are written only by the locked path (``accounts.posting``), in SQL."""
    raise LedgerImmutable(
        _("%(model)s rows are written only by accounts.facade."),
        model=model._meta.verbose_name,
    )


def refuse_notified_update(model: type[models.Model], kwargs: dict[str, Any]) -> None:
    """``update(notified_at=...)`` is refused: ``mark_notified()`` never overwrites a mark."""
    if "notified_at" in kwargs:
        raise LedgerImmutable(
            _(
                "%(model)s notification marks are set with mark_notified(), which never "
                "overwrites one; update(notified_at=...) is refused."
            ),
            model=model._meta.verbose_name,
        )


class NotificationMarks:
    """``unnotified()`` and ``mark_notified()``: a mixin for the QuerySets of ledger rows
    with ``notified_at`` (transfers and holds).

    ``notified_at`` is the one column of a transfer or hold that may change
    after it was written, once: from empty (NULL) to a time. The database
    refuses any other change of it (migration 0013's triggers).
    """

    def unnotified(self: Any) -> Any:
        """The rows with no notification mark, oldest (lowest id) first.

        Read through the index ``accounts_<model>_unnotified``: its size
        follows the backlog, not the ledger (see the README, "Notification
        marks", for what each database does).
        """
        return self.filter(notified_at__isnull=True).order_by("pk")

    def mark_notified(self: Any, when: datetime | None = None) -> int:
        """Set ``notified_at`` on the rows of this QuerySet that have none; return how many.

        A row already marked keeps its mark. ``when`` defaults to the
        database's clock (``accounts.clock``); an explicit ``when`` must be
        an aware datetime that is not in the future by that clock. One
        ``UPDATE ... WHERE notified_at IS NULL``: of two workers marking the
        same row at once, the row lock makes one wait, and the waiting one
        finds the row marked and leaves it; so each row is marked, and
        counted, once. A sliced QuerySet (``unnotified()[:100]``) reads its
        ids first (one more query). An explicit ``when`` costs one query
        more too (the database's clock), but on SQLite.

        Raises ``InvalidArgument`` for a ``when`` that is not an aware
        datetime, or is in the future; nothing is written then.
        """
        using: str = self._db or router.db_for_write(self.model, **self._hints)
        value: Any = DatabaseNow() if when is None else self._checked_mark(when, using)
        rows: models.QuerySet[Any] = self
        if self.query.is_sliced:
            rows = models.QuerySet(self.model, using=using).filter(
                pk__in=list(self.values_list("pk", flat=True))
            )
        # models.QuerySet.update: the ledger QuerySets' own update() refuses.
        # Ordered by id: MariaDB then locks the rows in one order for every
        # marker (the other databases ignore an UPDATE's order).
        rows = rows.using(using).filter(notified_at__isnull=True).order_by("pk")
        return models.QuerySet.update(rows, notified_at=value)

    mark_notified.alters_data = True  # type: ignore[attr-defined]

    @staticmethod
    def _checked_mark(when: object, using: str) -> datetime:
        if not isinstance(when, datetime) or timezone.is_naive(when):
            raise InvalidArgument(
                _("when %(when)r must be an aware datetime, or None for the database's clock."),
                when=when,
            )
        now = database_now(using)
        if not settings.USE_TZ:
            when = timezone.make_naive(when, timezone.get_default_timezone())
        if when > now:
            raise InvalidArgument(
                _("when %(when)s is in the future (the database's clock says %(now)s)."),
                when=when,
                now=now,
            )
        return when


class WrittenByFacade(models.QuerySet[_M]):
    """Rows only the locked path writes (in SQL): ``bulk_create()`` and
    ``bulk_update()`` are refused, the latter as ``update()`` refuses it."""

    def bulk_create(self, objs: Iterable[_M], *args: Any, **kwargs: Any) -> list[_M]:
        refuse_ledger_write(self.model)

    def bulk_update(
        self, objs: Iterable[_M], fields: Iterable[str], batch_size: int | None = None
    ) -> int:
        # Refused before bulk_update() opens its own atomic block, so the
        # caller's transaction stays usable.
        return self.update()

    bulk_update.alters_data = True  # type: ignore[attr-defined]


class LedgerQuerySet(WrittenByFacade[_M]):
    """QuerySet of append-only ledger rows: created only by the facade, never changed."""

    def update(self, **kwargs: Any) -> int:
        refuse_notified_update(self.model, kwargs)
        raise LedgerImmutable(
            _("%(model)s rows are append-only and cannot be updated."),
            model=self.model._meta.verbose_name,
        )

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> Any:
        raise LedgerImmutable(
            _("%(model)s rows are append-only and cannot be deleted."),
            model=self.model._meta.verbose_name,
        )

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]


def erase_personal_data(queryset: models.QuerySet[Any], **columns: Any) -> int:
    """Blank the columns that may hold personal data; the amounts stay as they are."""
    # models.QuerySet.update: the ledger QuerySets' own update() refuses.
    return models.QuerySet.update(queryset, **columns)


# Any, not "Transfer", for the same reason as AccountQuerySet: batches.py and the
# REST API read the nullable ``parent`` as an int.
class TransferQuerySet(NotificationMarks, LedgerQuerySet[Any]):
    def erase_personal_data(self) -> int:
        """Erase who made these transfers and why (user, username, description).

        The one change allowed to ledger rows, for data-protection requests;
        amounts, accounts and references are never touched. Returns the
        number of transfers.
        """
        return erase_personal_data(self, user=None, username="", description="")

    erase_personal_data.alters_data = True  # type: ignore[attr-defined]

    def reversals(self) -> TransferQuerySet:
        return self.filter(parent__isnull=False)

    def originals(self) -> TransferQuerySet:
        return self.exclude(parent__isnull=False)

    def for_account(self, account: Any) -> TransferQuerySet:
        return self.filter(Q(source=account) | Q(destination=account))


class BatchQuerySet(LedgerQuerySet["Batch"]):
    def erase_personal_data(self) -> int:
        """Erase who made these batches and why (user, username, description)."""
        return erase_personal_data(self, user=None, username="", description="")

    erase_personal_data.alters_data = True  # type: ignore[attr-defined]


class TransactionQuerySet(LedgerQuerySet["Transaction"]):
    def for_account(self, account: Any) -> TransactionQuerySet:
        return self.filter(account=account)


class HoldQuerySet(NotificationMarks, WrittenByFacade["Hold"]):
    """Holds change state only through the facade: no update, no delete."""

    def erase_personal_data(self) -> int:
        """Erase who placed and resolved these holds and why; see ``TransferQuerySet``."""
        return erase_personal_data(self, user=None, username="", description="", resolved_by="")

    erase_personal_data.alters_data = True  # type: ignore[attr-defined]

    def pending(self, at: datetime | None = None) -> HoldQuerySet:
        """Active holds that still reserve money at ``at`` (default: now)."""
        at = at or timezone.now()
        return self.filter(status="active").filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=at)
        )

    def past_expiry(self, at: datetime | None = None) -> HoldQuerySet:
        """Active holds whose expiry has passed: they no longer reserve anything."""
        return self.filter(status="active", expires_at__lte=at or timezone.now())

    def update(self, **kwargs: Any) -> int:
        refuse_notified_update(self.model, kwargs)
        raise LedgerImmutable(_("Holds change state only through accounts.facade."))

    update.alters_data = True  # type: ignore[attr-defined]

    def delete(self) -> Any:
        raise LedgerImmutable(_("Holds cannot be deleted; release them instead."))

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def _resolve(self, pks: list[int], **columns: Any) -> int:
        """Record the resolution of holds. Only the facade calls this, under the lock."""
        return models.QuerySet.update(self.filter(pk__in=pks), **columns)
