"""
The ledger's models.

``Account`` holds a balance in one currency. ``Transfer`` is one movement of
money from a source account to a destination account, and ``Transaction`` is
one of its two legs (negative on the source, positive on the destination).
Invariants the code protects:

* the legs of a transfer sum to zero, so every currency sums to zero;
* an account's ``balance`` equals the sum of its legs, and each leg records
  the balance after it (``balance_after``), written under the same row lock;
* transfers and transactions are append-only.

Only ``accounts.facade`` writes transfers, transactions and balances.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import models
from django.db.models import Q, Subquery
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts, arguments
from .clock import DatabaseNow
from .codes import format_code, normalize_code
from .conf import conf
from .exceptions import (
    CurrencyMismatch,
    InvalidAmount,
    InvalidArgument,
    LedgerImmutable,
    ProtectedAccount,
)
from .fields import ExactCharField, LedgerMoneyField, WindowDateTimeField, window_bound, zero
from .indexes import PartialIndex
from .managers import (
    LEDGER_FIELDS,
    AccountQuerySet,
    AccountTypeQuerySet,
    BatchQuerySet,
    HoldQuerySet,
    TransactionQuerySet,
    TransferQuerySet,
)
from .model_columns import (
    FINGERPRINT_HELP,
    AppendOnly,
    created_field,
    idempotency_key_field,
    notified_at_field,
    reference_field,
    request_fingerprint_field,
    user_field,
    username_field,
)

# Re-exported: the migrations name accounts.models.generate_reference.
from .model_columns import REFERENCE_ALPHABET as REFERENCE_ALPHABET
from .model_columns import REFERENCE_LENGTH as REFERENCE_LENGTH
from .model_columns import generate_reference as generate_reference

if TYPE_CHECKING:
    from collections.abc import Iterator

    from django.db.models.expressions import Combinable
    from djmoney.money import Money

    from . import limits


def unnotified_index(name: str) -> PartialIndex:
    """The index ``unnotified()`` reads: the rows with no ``notified_at``, in ``id`` order.

    PostgreSQL and SQLite: a partial index on ``(id)`` of the rows where
    ``notified_at IS NULL``, as small as the backlog. MariaDB/MySQL have no
    partial indexes: an index on ``(notified_at, id)``, whose NULL entries
    come first, in ``id`` order.
    """
    return PartialIndex(
        fields=["id"], where=Q(notified_at__isnull=True), fallback=["notified_at", "id"], name=name
    )


def default_currency() -> str:
    return conf.DEFAULT_CURRENCY


#: The dates statements and exports can be filtered and sorted by.
DATE_FIELDS = ("created", "effective_at")


def check_date_field(date_field: Any) -> str:
    """``date_field`` if it is one of :data:`DATE_FIELDS`, else ``InvalidArgument``."""
    if date_field not in DATE_FIELDS:
        raise InvalidArgument(
            _("date_field %(date_field)r is not one of %(choices)s."),
            date_field=date_field,
            choices=", ".join(DATE_FIELDS),
        )
    return str(date_field)


def _verbose_name(instance: models.Model, name: str) -> Any:
    return getattr(instance._meta.get_field(name), "verbose_name", name)


#: Types whose values are stored as they are (see :func:`_stored`).
_PLAIN = frozenset({Decimal, int, str, bool, type(None), datetime, date})


@functools.cache
def _attnames(model: type[models.Model]) -> tuple[str, ...]:
    """The attribute names of a model's concrete fields."""
    return tuple(f.attname for f in model._meta.concrete_fields)


def _stored(value: Any) -> Any:
    """A field's value as the database stores it, for comparison (money as its amount).

    JSON (metadata) is copied: a dict changed in place must still differ
    from what was loaded.
    """
    if isinstance(value, (dict, list)):
        return copy.deepcopy(value)
    return value.amount if isinstance(value, amounts.MONEY_TYPES) else value


def metadata_field() -> models.JSONField:
    """The ``metadata`` column of accounts and ledger rows: a JSON object, ``{}`` by default.

    Checked by ``accounts.arguments.metadata`` before it is written (a JSON
    object of JSON values, at most ``ACCOUNTS_METADATA_MAX_BYTES``).
    """
    return models.JSONField(
        _("metadata"),
        default=dict,
        blank=True,
        help_text=_(
            "Your own facts about the row, as a JSON object: for example "
            '{"mcc": "5411", "merchant": "Teapot & Grinder", "city": "Leeds"}.'
        ),
    )


def effective_at_field() -> models.DateTimeField[datetime | date | str | Combinable, datetime]:
    """``effective_at`` of transfers and holds: when the movement happened in the world."""
    return models.DateTimeField(
        _("effective at"),
        default=timezone.now,
        help_text=_(
            "When the movement happened in the world (a card payment's transaction date), "
            "given by the caller; by default when it was posted, never later. Balances "
            "follow the posting order (created)."
        ),
    )


class AccountType(models.Model):
    """A category of accounts ("gift cards", "store credit"), optionally below a parent type."""

    name = models.CharField(_("name"), max_length=128)
    code = models.SlugField(_("code"), max_length=64, unique=True)
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent type"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
    )
    description = models.TextField(_("description"), blank=True)

    objects = AccountTypeQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        verbose_name = _("account type")
        verbose_name_plural = _("account types")

    def __str__(self) -> str:
        return self.name

    def ancestors(self) -> list[AccountType]:
        """The types above this one, nearest first."""
        found: list[AccountType] = []
        node = self.parent
        while node is not None and node not in found and node != self:
            found.append(node)
            node = node.parent
        return found

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        parent = self.parent
        if self.pk and parent is not None and (parent.pk == self.pk or self in parent.ancestors()):
            raise ValidationError({"parent": _("An account type cannot be placed below itself.")})


class Account(models.Model):
    """An allocation of money in one currency, changed only through the facade."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        FROZEN = "frozen", _("Frozen")
        CLOSED = "closed", _("Closed")

    class Role(models.TextChoices):
        SOURCE = "source", _("Source")
        SALES = "sales", _("Sales")
        EXPIRED = "expired", _("Expired")

    name = models.CharField(_("name"), max_length=128, unique=True, null=True, blank=True)
    description = models.TextField(_("description"), blank=True)
    code = ExactCharField(
        _("code"),
        max_length=128,
        unique=True,
        null=True,
        blank=True,
        help_text=_(
            "Optional unique code, for example a gift card number; stored upper case, "
            "without spaces or dashes."
        ),
    )
    account_type = models.ForeignKey(
        AccountType,
        verbose_name=_("account type"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="accounts",
    )
    primary_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("primary user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="accounts",
    )
    secondary_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("secondary users"),
        blank=True,
        related_name="secondary_accounts",
    )
    role = models.CharField(
        _("core role"),
        max_length=16,
        choices=Role.choices,
        null=True,
        blank=True,
        editable=False,
        help_text=_("Set on the core accounts only."),
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.OPEN
    )
    currency = models.CharField(_("currency"), max_length=3, default=default_currency)
    balance = LedgerMoneyField(_("balance"), default=zero, editable=False)
    held = LedgerMoneyField(
        _("held"),
        default=zero,
        editable=False,
        help_text=_("Reserved by active holds: not spendable, still part of the balance."),
    )
    credit_limit = LedgerMoneyField(
        _("credit limit"),
        default=zero,
        null=True,
        blank=True,
        help_text=_("How far the balance may go below zero; empty means no limit."),
    )
    credit_limit_changed_at = models.DateTimeField(
        _("credit limit changed at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_(
            "When the credit limit was last changed (the database's clock): an account "
            "whose limit was lowered below its debt is not reported by check_ledger "
            "unless it was debited since."
        ),
    )
    start_date = WindowDateTimeField(_("start date"), null=True, blank=True)
    end_date = WindowDateTimeField(_("end date"), null=True, blank=True, end=True)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    metadata = metadata_field()
    # What the account spent in its latest day, week and month (calendar
    # periods in ACCOUNTS_TIME_ZONE, each named by its first day), written
    # with the balance under the row lock: see accounts.limits.
    spent_day = LedgerMoneyField(_("spent in the day"), default=zero, editable=False)
    spent_day_from = models.DateField(_("day spent in"), null=True, blank=True, editable=False)
    spent_week = LedgerMoneyField(_("spent in the week"), default=zero, editable=False)
    spent_week_from = models.DateField(_("week spent in"), null=True, blank=True, editable=False)
    spent_month = LedgerMoneyField(_("spent in the month"), default=zero, editable=False)
    spent_month_from = models.DateField(_("month spent in"), null=True, blank=True, editable=False)

    objects = AccountQuerySet.as_manager()

    #: Each loaded column's value as read from the database (money as a plain
    #: Decimal), to tell which fields this instance changed: save() writes
    #: only those, so a stale instance never writes back an old value.
    _loaded: dict[str, Any] | None = None

    class Meta:
        ordering = ["pk"]
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        permissions = [
            (
                "move_money",
                _("Can move money: top up, withdraw, transfer, reverse and release holds"),
            ),
            (
                "view_reports",
                _("Can view the financial reports and export them and the ledger"),
            ),
        ]
        constraints = [
            # Not conditional (MariaDB has no partial indexes, and Django
            # would leave the constraint out there): accounts without a role
            # never collide, NULLs being distinct in a unique index everywhere.
            models.UniqueConstraint(
                fields=["role", "currency"],
                name="accounts_one_core_account_per_role_and_currency",
            ),
            models.CheckConstraint(
                condition=Q(credit_limit__isnull=True) | Q(credit_limit__gte=0),
                name="accounts_account_credit_limit_not_negative",
            ),
        ]
        indexes = [
            # The expiry sweep's candidates. Not (status, end_date): with no
            # index on status, closing an account (and every balance update)
            # can be a heap-only update on PostgreSQL, which is much cheaper.
            models.Index(fields=["end_date"], name="accounts_account_end_date"),
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Account(credit_limit=Money(50, "EUR")) makes a EUR account; with an
        # explicit currency, a Money in another currency is refused.
        if not args and "currency" not in kwargs:
            for name in ("credit_limit", "balance"):
                value = kwargs.get(name)
                if isinstance(value, amounts.MONEY_TYPES):
                    kwargs["currency"] = value.currency.code
                    break
        super().__init__(*args, **kwargs)

    def __str__(self) -> str:
        if self.name:
            return self.name
        if self.code:
            # As printed on the card: staff read it out and compare it.
            return format_code(self.code)
        return "#%s" % self.pk if self.pk else str(_("unsaved account"))

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save the fields this instance changed; its balance is never written from here.

        A new account is inserted with every field (and a zero balance). An
        existing one writes only the fields whose value differs from what was
        loaded (or refreshed) from the database, so an instance loaded before
        someone else lowered the credit limit, set an end date or froze the
        account cannot put the old values back by saving an unrelated edit.
        ``update_fields`` still writes exactly the fields named. A changed
        credit limit is stamped with the database's time
        (``credit_limit_changed_at``). The status is never written here: it
        changes only through ``freeze()``, ``thaw()`` and ``close()``, which
        check it on the locked row, and a changed status is refused.

        Raises ``UnsupportedCurrency``, ``InvalidAmount`` (negative or
        over-precise credit limit), ``InvalidArgument`` (text no database can
        store), ``CurrencyMismatch`` (currency changed on an account with
        transactions) and ``LedgerImmutable`` (a balance, held amount or
        changed status); nothing is written when it raises.
        """
        self._prepare_for_write()
        if self._state.adding and not kwargs.get("update_fields"):
            self._refuse_money_on_creation()
            super().save(*args, **kwargs)
            self._remember()
            return
        update_fields = kwargs.get("update_fields")
        if update_fields is None:
            update_fields = self._changed_fields()
        elif LEDGER_FIELDS.intersection(update_fields) - {"currency"}:
            raise LedgerImmutable(_("An account's balance is changed only by accounts.facade."))
        update_fields = list(update_fields)
        loaded = self._loaded or {}
        if "status" in loaded and self.status != loaded["status"]:
            raise LedgerImmutable(
                _(
                    "An account's status changes only through freeze(), thaw() and "
                    "close(), which check it on the locked row (got status %(status)s)."
                ),
                status=str(self.status),
            )
        currency_changed = "currency" in loaded and self.currency != loaded["currency"]
        # Never written as loaded: a stale instance would undo a freeze or close.
        update_fields = [name for name in update_fields if name not in ("status", "currency")]
        if currency_changed:
            self._check_currency_change()
            update_fields.append("currency")
        if "credit_limit" in update_fields:
            self.credit_limit_changed_at = DatabaseNow()
            update_fields.append("credit_limit_changed_at")
        if not update_fields:
            return  # nothing changed: nothing to write
        kwargs["update_fields"] = update_fields
        super().save(*args, **kwargs)
        if "credit_limit_changed_at" in update_fields:
            # Read back on first access: the database's time, not the expression.
            self.__dict__.pop("credit_limit_changed_at", None)
        self._remember(update_fields)

    save.alters_data = True  # type: ignore[attr-defined]

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        if self.role:
            raise ProtectedAccount(account=self, action=_("deleted"))
        return super().delete(*args, **kwargs)

    delete.alters_data = True  # type: ignore[attr-defined]

    @classmethod
    def from_db(cls, db: str | None, field_names: Any, values: Any, **kwargs: Any) -> Account:
        # **kwargs: Django 6.1 added fetch_mode.
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._remember()
        return instance

    def refresh_from_db(
        self, using: str | None = None, fields: Any = None, from_queryset: Any = None
    ) -> None:
        super().refresh_from_db(using, fields, from_queryset)
        # What save() compares with: the row as now read, not as first loaded
        # (only the columns read: Django also loads deferred fields this way).
        self._remember(fields)

    # Saving: what changed, and what may be stored ------------------------------

    def _remember(self, names: Any = None, *, loaded: dict[str, Any] | None = None) -> None:
        """Record the values of ``names`` (default: every loaded column) as the database's.

        ``loaded``: the row just read, by attribute name (every locked row
        comes here): kept as it is when its values are all plain.
        """
        values = self.__dict__
        if loaded is not None and set(map(type, loaded.values())) <= _PLAIN:
            self._loaded = loaded
            return
        if names is None:
            # Every row loaded from the database comes here: the plain values
            # (no Money, no JSON to copy) as they are.
            self._loaded = {
                name: value if type(value) in _PLAIN else _stored(value)
                for name in _attnames(type(self))
                if name in values
                for value in (values[name],)
            }
            return
        loaded = dict(self._loaded or {})
        for field in self._meta.concrete_fields:
            if names is not None and field.name not in names and field.attname not in names:
                continue
            if field.attname in self.__dict__:
                loaded[field.attname] = _stored(self.__dict__[field.attname])
            else:
                loaded.pop(field.attname, None)
        self._loaded = loaded

    def _changed_fields(self) -> list[str]:
        """The fields whose value differs from the database's as last read."""
        loaded = self._loaded or {}
        changed = []
        for field in self._meta.concrete_fields:
            if field.primary_key or field.name in LEDGER_FIELDS - {"currency"}:
                continue
            if field.attname not in self.__dict__:
                continue  # deferred and never set: nothing to write
            value = _stored(self.__dict__[field.attname])
            if field.attname not in loaded or loaded[field.attname] != value:
                changed.append(field.name)
        return changed

    def _prepare_for_write(self) -> None:
        """Normalize and check the fields before they are written (save and bulk_create)."""
        self.name = self.name or None
        self.code = normalize_code(self.code) or None if self.code else None
        for name in ("name", "code", "description"):
            value = self.__dict__.get(name)
            if isinstance(value, str):
                arguments.storable(value, _verbose_name(self, name))
        if "metadata" in self.__dict__:
            self.metadata = arguments.metadata(self.metadata)
        self._check_money()

    def _refuse_money_on_creation(self) -> None:
        spent = any(
            _stored(self.__dict__.get(name)) for name in LEDGER_FIELDS if name != "currency"
        )
        if spent:
            raise LedgerImmutable(
                _(
                    "A new account starts with a zero balance; move money onto "
                    "it with accounts.facade.transfer (got %(balance)s)."
                ),
                balance=self.balance,
            )

    def _check_money(self) -> None:
        amounts.check_currency(self.currency)
        limit = self.__dict__.get("credit_limit")
        if limit is not None:
            limit = getattr(limit, "amount", limit)
            if not isinstance(limit, Decimal) or not limit.is_finite() or limit < 0:
                raise InvalidAmount(
                    _(
                        "Credit limit %(amount)r is invalid: give zero, a positive "
                        "amount, or None for no limit."
                    ),
                    amount=limit,
                )
            if limit >= amounts.LIMIT:
                raise InvalidAmount(_("Credit limit %(amount)s is too large."), amount=limit)
            amounts.check_places(limit, self.currency, what=_("Credit limit"))

    def _check_currency_change(self) -> None:
        if self.pk and Transaction.objects.filter(account=self.pk).exists():
            raise CurrencyMismatch(
                _(
                    "Account %(account)s has transactions in %(old)s; its currency "
                    "cannot change to %(new)s."
                ),
                account=self,
                old=(self._loaded or {}).get("currency"),
                new=self.currency,
            )

    def clean(self) -> None:
        """Report bad money settings as form errors (used by ModelForms and the admin)."""
        from django.core.exceptions import ValidationError

        from .exceptions import AccountException

        try:
            self._prepare_for_write()
            loaded = self._loaded or {}
            if self.pk and self.currency != loaded.get("currency", self.currency):
                self._check_currency_change()
        except AccountException as exc:
            raise ValidationError(str(exc)) from exc
        if self.start_date and self.end_date and self.start_date > self.end_date:
            raise ValidationError({"end_date": _("The end date is before the start date.")})

    # Status and dates -------------------------------------------------------

    @property
    def is_core(self) -> bool:
        """Whether this is a core account (source, sales or expired)."""
        return bool(self.role)

    def is_open(self) -> bool:
        return self.status == self.Status.OPEN

    def is_frozen(self) -> bool:
        return self.status == self.Status.FROZEN

    def is_closed(self) -> bool:
        return self.status == self.Status.CLOSED

    def is_active(self, at: datetime | None = None) -> bool:
        """Whether the account is open and ``at`` (default: now) is inside its date window."""
        return self.is_open() and self.in_window(at)

    def in_window(self, at: datetime | None = None) -> bool:
        at = at or timezone.now()
        if self.start_date and at < self.start_date:
            return False
        if self.end_date and at > self.end_date:
            return False
        return True

    def is_expired(self, at: datetime | None = None) -> bool:
        """Whether the account's end date has passed."""
        return bool(self.end_date and (at or timezone.now()) > self.end_date)

    # Money --------------------------------------------------------------------

    @property
    def available_amount(self) -> Money | None:
        """What the account can spend now: balance − held + credit limit; ``None`` when unlimited.

        Computed from this instance's values. The facade re-checks under a row
        lock, where holds past their expiry no longer count as held.
        """
        if self.credit_limit is None:
            return None
        # djmoney's fields are untyped: their values read as Any.
        return cast("Money", self.balance - self.held + self.credit_limit)

    def is_debit_permitted(self, amount: Any) -> bool:
        """Whether debiting ``amount`` (Money or Decimal) stays within the credit limit.

        Raises ``InvalidAmount`` / ``CurrencyMismatch`` for a bad amount.
        """
        value, currency = amounts.parse_amount(amount)
        amounts.check_same_currency(currency, self.currency, what=_("The amount"))
        available = self.available_amount
        return available is None or value <= available.amount

    def can_be_authorised_by(self, user: Any) -> bool:
        """Whether ``user`` may use this account (decided by views and the admin, not the facade).

        True for the primary user and secondary users; for anyone when the
        account has no users at all.
        """
        if self.primary_user_id is None and not self.secondary_users.exists():
            return True
        if user is None or not getattr(user, "pk", None):
            return False
        if self.primary_user_id == user.pk:
            return True
        return self.secondary_users.filter(pk=user.pk).exists()

    # History ------------------------------------------------------------------

    def balance_at(self, when: datetime | date, *, using: str | None = None) -> Money:
        """The balance at moment ``when``; a ``date`` means the end of that day.

        One indexed query whatever the length of the history. It reads where
        the database router sends reads of ``Transaction`` (a replica may
        lag), or from the database ``using`` names.
        """
        return self._balance_after(using, created__lte=window_bound(when, end=True))

    def _balance_after(self, using: str | None = None, **moment: Any) -> Money:
        """The balance after the account's last leg matching ``moment`` (a ``created`` lookup).

        Written as "the leg at the latest such moment" rather than "the first
        leg ordered by moment": MariaDB plans the latter as a scan of all the
        account's newer legs, which grows with the history; this form is an
        index seek on (account, created) on every backend.
        """
        latest = (
            Transaction.objects.using(using)
            .filter(account=self.pk, **moment)
            .order_by("-created")
            .values("created")[:1]
        )
        after = (
            Transaction.objects.using(using)
            .filter(account=self.pk, created=Subquery(latest))
            .order_by("-pk")
            .values_list("balance_after", flat=True)
            .first()
        )
        return amounts.money(after if after is not None else Decimal(0), self.currency)

    def statement(
        self,
        start: datetime | date | None = None,
        end: datetime | date | None = None,
        *,
        using: str | None = None,
        date_field: str = "created",
    ) -> Statement:
        """The account's transactions from ``start`` to ``end`` (inclusive) with balances.

        Dates mean whole days (``start`` from its first moment, ``end`` to its
        last). Each transaction carries ``balance_after``. Costs three indexed
        queries (opening balance, closing balance, the rows when iterated),
        whatever the length of the history. Like ``balance_at``, it reads
        where the router sends reads, or from ``using``.

        ``date_field`` picks the date the range applies to and the rows are
        sorted by: ``"created"`` (when posted, the default) or
        ``"effective_at"`` (when the transfer happened in the world, e.g. a
        card payment's transaction date; ties by id, the posting order). Balances
        always follow the posting order: ``balance_after`` is the balance
        after the posting, and the opening and closing balances are those
        at the range's bounds by posting time, so a statement by effective
        date does not necessarily run from one to the other. Raises
        ``InvalidArgument`` for another ``date_field``.
        """
        check_date_field(date_field)
        first: datetime | None = window_bound(start, end=False)
        last: datetime = window_bound(end, end=True) or timezone.now()
        legs = Transaction.objects.using(using).filter(account=self.pk)
        if date_field == "created":
            rows = legs.filter(created__lte=last)
            if first is not None:
                rows = rows.filter(created__gte=first)
            order = ("created", "pk")
        else:
            # The account's transfers out and in by effective date (an index
            # on each: accounts_transfer_src_eff and _dst_eff), then their legs
            # on this account (the one-leg-per-account unique index).
            moved = Transfer.objects.using(using).filter(effective_at__lte=last)
            if first is not None:
                moved = moved.filter(effective_at__gte=first)
            rows = legs.filter(
                Q(transfer__in=moved.filter(source=self.pk).values("pk"))
                | Q(transfer__in=moved.filter(destination=self.pk).values("pk"))
            )
            order = ("transfer__effective_at", "pk")
        if first is not None:
            opening = self._balance_after(using, created__lt=first)
        else:
            opening = amounts.money(Decimal(0), self.currency)
        return Statement(
            account=self,
            start=first,
            end=last,
            opening_balance=opening,
            closing_balance=self.balance_at(last, using=using),
            transactions=rows.select_related("transfer").order_by(*order),
            date_field=date_field,
            pending_holds=Hold.objects.using(using)
            .filter(source=self.pk)
            .pending()
            .order_by("created", "pk"),
        )

    # Spending limits ----------------------------------------------------------

    def spending(self, *, using: str | None = None) -> list[limits.Spending]:
        """Each period's spending limit, what was spent in it and what is left, now.

        One entry per period that has a limit (the account's own, or its
        type's): ``period``, ``limit``, ``used``, ``available`` (Money) and
        ``resets_at`` (when the period ends). Read from this instance's
        stored usage and the limits in the database (one query), at the
        database's time (one more): a display, judged again under the lock
        by every debit.
        """
        from . import limits

        alias = using or self._state.db or "default"
        found = SpendingLimit.objects.using(alias).effective_for(self)
        if not found:
            return []
        return limits.spending(self, found, limits.database_now(alias))

    def spending_available(self, *, using: str | None = None) -> Money | None:
        """The least that any spending limit still allows now (Money); ``None``: no limit."""
        entries = self.spending(using=using)
        if not entries:
            return None
        available = min((entry.available for entry in entries), key=lambda money: money.amount)
        # Each entry's ``available`` is a Money; limits.Spending leaves it Any.
        return cast("Money", available)

    # State changes ------------------------------------------------------------

    # The one back-edge from the models to the engine, imported when called:
    # the engine imports the models.

    def close(self) -> None:
        """Close the account: ``accounts.facade.close`` (``AccountNotEmpty`` unless empty)."""
        from . import facade

        facade.close(self)

    close.alters_data = True  # type: ignore[attr-defined]

    def freeze(self) -> None:
        """Freeze the account: ``accounts.facade.freeze``."""
        from . import facade

        facade.freeze(self)

    freeze.alters_data = True  # type: ignore[attr-defined]

    def thaw(self) -> None:
        """Open a frozen account again: ``accounts.facade.thaw``."""
        from . import facade

        facade.thaw(self)

    thaw.alters_data = True  # type: ignore[attr-defined]


@dataclass
class Statement:
    """An account's history over a period, as returned by ``Account.statement()``."""

    account: Account
    start: datetime | None
    end: datetime
    opening_balance: Money
    closing_balance: Money
    #: Posted legs in the period, oldest first, each with ``balance_after``.
    transactions: TransactionQuerySet
    #: Holds on the account that still reserve money now (not in the period:
    #: pending is a state, not an event), oldest first.
    pending_holds: HoldQuerySet
    #: The date the period applies to and the rows follow: "created" or "effective_at".
    date_field: str = "created"

    def __iter__(self) -> Iterator[Transaction]:
        return iter(self.transactions)


class Batch(AppendOnly):
    """Transfers posted together, under one set of locks and one commit. Append-only.

    Made by ``accounts.facade.transfer_many``; its transfers, in request
    order, are :attr:`transfers`. ``reverses`` links a batch made by
    ``facade.reverse_batch`` to the batch it reverses.
    """

    reference = reference_field()
    atomic = models.BooleanField(
        _("all or nothing"),
        default=True,
        help_text=_("Linked (all or nothing), or independent requests written together."),
    )
    size = models.PositiveIntegerField(
        _("requests"),
        default=0,
        help_text=_("How many transfers were requested (an independent batch may write fewer)."),
    )
    reverses = models.ForeignKey(
        "self",
        verbose_name=_("reverses"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversals",
    )
    description = models.TextField(_("description"), blank=True)
    user = user_field()
    username = username_field()
    idempotency_key = idempotency_key_field()
    request_fingerprint = request_fingerprint_field()
    created = created_field()
    metadata = metadata_field()

    objects = BatchQuerySet.as_manager()

    delete_refused = _("Batches are append-only and cannot be deleted.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("batch")
        verbose_name_plural = _("batches")

    def __str__(self) -> str:
        return self.reference

    @property
    def transfers(self) -> TransferQuerySet:
        """The batch's transfers, in the order they were requested."""
        return Transfer.objects.filter(batch=self.pk).order_by("batch_position")


class Report(Account):
    """The admin's entry to the financial reports (``accounts.admin_reports``).

    A proxy with no permissions of its own: it exists so that "Reports" is
    listed in the admin next to the ledger's models. Who may see the reports
    is ``accounts.view_reports``, a permission of ``Account``.
    """

    class Meta:
        proxy = True
        default_permissions = ()
        verbose_name = _("report")
        verbose_name_plural = _("reports")


class Transfer(AppendOnly):
    """One movement of money from ``source`` to ``destination``. Append-only."""

    reference = reference_field()
    # Not indexed alone: the indexes on (source, effective_at) and
    # (destination, effective_at) serve every lookup by account, and each
    # index is one more write per transfer.
    source = models.ForeignKey(
        Account,
        verbose_name=_("source"),
        on_delete=models.PROTECT,
        related_name="source_transfers",
        db_index=False,
    )
    destination = models.ForeignKey(
        Account,
        verbose_name=_("destination"),
        on_delete=models.PROTECT,
        related_name="destination_transfers",
        db_index=False,
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = LedgerMoneyField(_("amount"))
    parent = models.ForeignKey(
        "self",
        verbose_name=_("reverses"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="reversals",
        # Indexed by migration 0006 where the parent is set only: nearly every
        # transfer has none, and a plain index full of NULLs looks useless to
        # SQLite's planner after ANALYZE. (InnoDB keeps its own foreign key
        # index.)
        db_index=False,
    )
    batch = models.ForeignKey(
        Batch,
        verbose_name=_("batch"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    batch_position = models.PositiveIntegerField(
        _("position in its batch"), null=True, blank=True, editable=False
    )
    merchant_reference = ExactCharField(
        _("merchant reference"), max_length=128, null=True, blank=True, db_index=True
    )
    description = models.TextField(_("description"), blank=True)
    user = user_field()
    username = username_field(_("Who made the transfer, kept when the user is deleted."))
    idempotency_key = idempotency_key_field()
    request_fingerprint = request_fingerprint_field(FINGERPRINT_HELP)
    created = created_field()
    effective_at = effective_at_field()
    metadata = metadata_field()
    notified_at = notified_at_field(
        _(
            "When the notification of this transfer was sent; empty: not yet. Set once, "
            "by mark_notified(), and never changed or cleared."
        )
    )

    objects = TransferQuerySet.as_manager()

    delete_refused = _("Transfers are append-only and cannot be deleted.")
    change_refused = _("Transfers are append-only and cannot be changed.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("transfer")
        verbose_name_plural = _("transfers")
        permissions = [
            ("mark_notified", _("Can mark transfers and holds as notified")),
        ]
        indexes = [
            # Statements by effective date: an account's transfers, out or in,
            # in a range of effective_at (Account.statement(date_field=...)).
            models.Index(fields=["source", "effective_at"], name="accounts_transfer_src_eff"),
            models.Index(fields=["destination", "effective_at"], name="accounts_transfer_dst_eff"),
            unnotified_index("accounts_transfer_unnotified"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="accounts_transfer_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(source=models.F("destination")),
                name="accounts_transfer_source_is_not_destination",
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_reversal(self) -> bool:
        return self.parent_id is not None

    def reversed_amount(self) -> Money:
        """How much of this transfer has been reversed so far (one query).

        Summed in Python: SQLite would add the amounts as floating-point numbers.
        """
        total = sum(
            Transfer.objects.filter(parent=self.pk).values_list("amount", flat=True), Decimal(0)
        )
        return amounts.money(total, self.currency)

    def reversible_amount(self) -> Money:
        """What can still be reversed (zero for a reversal, which cannot be reversed)."""
        if self.is_reversal:
            return amounts.money(Decimal(0), self.currency)
        # djmoney's fields are untyped: their values read as Any.
        return cast("Money", self.amount - self.reversed_amount())


class Transaction(AppendOnly):
    """One leg of a transfer: a signed amount on one account. Append-only."""

    # Both foreign keys are the leading columns of the indexes in Meta, so
    # separate single-column indexes would only slow down every insert.
    transfer = models.ForeignKey(
        Transfer,
        verbose_name=_("transfer"),
        on_delete=models.PROTECT,
        related_name="transactions",
        db_index=False,
    )
    account = models.ForeignKey(
        Account,
        verbose_name=_("account"),
        on_delete=models.PROTECT,
        related_name="transactions",
        db_index=False,
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = LedgerMoneyField(_("amount"))
    balance_after = LedgerMoneyField(_("balance after"))
    created = models.DateTimeField(_("created"), default=timezone.now)

    objects = TransactionQuerySet.as_manager()

    delete_refused = _("Transactions are append-only and cannot be deleted.")
    change_refused = _("Transactions are append-only and cannot be changed.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("transaction")
        verbose_name_plural = _("transactions")
        constraints = [
            models.CheckConstraint(
                condition=~Q(amount=0), name="accounts_transaction_amount_not_zero"
            ),
            models.UniqueConstraint(
                fields=["transfer", "account"], name="accounts_one_leg_per_account"
            ),
        ]
        indexes = [
            # balance_at() and statement(): the latest row of an account before a moment.
            models.Index(fields=["account", "created", "id"], name="accounts_tx_history"),
        ]

    def __str__(self) -> str:
        return "%s %s" % (self.transfer_id, self.amount)


class Hold(AppendOnly):
    """Money reserved on ``source`` for ``destination``: captured or released later.

    While active, ``amount`` counts in the source's ``held`` and is not
    available to any other debit; the balance itself does not change until
    the hold is captured. A hold resolves exactly once: captured (in full or
    in part, the rest released), released, or expired. Only the facade
    creates and resolves holds.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CAPTURED = "captured", _("Captured")
        RELEASED = "released", _("Released")
        EXPIRED = "expired", _("Expired")

    reference = reference_field()
    source = models.ForeignKey(
        Account,
        verbose_name=_("source"),
        on_delete=models.PROTECT,
        related_name="holds",
        db_index=False,
    )
    destination = models.ForeignKey(
        Account,
        verbose_name=_("destination"),
        on_delete=models.PROTECT,
        related_name="incoming_holds",
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = LedgerMoneyField(_("amount"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.ACTIVE
    )
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    merchant_reference = ExactCharField(
        _("merchant reference"), max_length=128, null=True, blank=True, db_index=True
    )
    description = models.TextField(_("description"), blank=True)
    user = user_field()
    username = username_field()
    idempotency_key = idempotency_key_field()
    request_fingerprint = request_fingerprint_field(FINGERPRINT_HELP)
    created = created_field()
    effective_at = effective_at_field()
    metadata = metadata_field()
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.CharField(
        _("resolved by"),
        max_length=150,
        blank=True,
        help_text=_("Username of who captured or released the hold."),
    )
    capture = models.OneToOneField(
        Transfer,
        verbose_name=_("capture"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="hold",
    )
    notified_at = notified_at_field(
        _(
            "When the notification of this hold was sent; empty: not yet. Set once, "
            "by mark_notified(), and never changed or cleared."
        )
    )

    objects = HoldQuerySet.as_manager()

    delete_refused = _("Holds cannot be deleted; release them instead.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("hold")
        verbose_name_plural = _("holds")
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="accounts_hold_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(source=models.F("destination")),
                name="accounts_hold_source_is_not_destination",
            ),
        ]
        indexes = [
            # The source's active holds past their expiry (funds check, sweep).
            models.Index(fields=["source", "status", "expires_at"], name="accounts_hold_active"),
            models.Index(fields=["status", "expires_at"], name="accounts_hold_expiry"),
            unnotified_index("accounts_hold_unnotified"),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    def is_expired(self, at: datetime | None = None) -> bool:
        """Whether ``expires_at`` has passed (the hold no longer reserves money)."""
        return bool(self.expires_at and (at or timezone.now()) >= self.expires_at)

    @property
    def captured_amount(self) -> Money:
        """What the capture moved (zero unless captured)."""
        capture = self.capture
        if capture is None:
            return amounts.money(Decimal(0), self.currency)
        # djmoney's fields are untyped: their values read as Any.
        return cast("Money", capture.amount)


# Collecting debts: the models live in their own module, imported here so that
# Django finds them (and so that ``from accounts.models import Debt`` works).
from .collection_models import CollectionRun as CollectionRun  # noqa: E402
from .collection_models import Debt as Debt  # noqa: E402
from .collection_models import Settlement as Settlement  # noqa: E402

# Spending limits, repayments and declined payments (accounts.limits, facade.repay,
# accounts.declines).
from .wallet_models import Decline as Decline  # noqa: E402
from .wallet_models import Repayment as Repayment  # noqa: E402
from .wallet_models import SpendingLimit as SpendingLimit  # noqa: E402
