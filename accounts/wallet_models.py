"""
The models of card wallets on credit: spending limits, repayments, declined payments.

``SpendingLimit`` caps what an account may spend per day, week or month
(``accounts.limits`` enforces it under the account's lock). ``Repayment``
records each ``facade.repay``: what was asked, the debt found under the
lock, what moved. ``Decline`` records a business refusal of a payment when
``ACCOUNTS_RECORD_DECLINES`` is on (``accounts.declines``).

Imported by ``accounts.models``, so that Django finds the models there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts
from .clock import DatabaseNow
from .exceptions import InvalidAmount, ProtectedAccount
from .fields import ExactCharField, LedgerMoneyField
from .model_columns import (
    AppendOnly,
    created_field,
    idempotency_key_field,
    request_fingerprint_field,
    user_field,
    username_field,
)
from .wallet_managers import DeclineQuerySet, RepaymentQuerySet, SpendingLimitQuerySet

if TYPE_CHECKING:
    from djmoney.money import Money


class SpendingLimit(models.Model):
    """How much an account may spend per day, week or month.

    Belongs to an account, or to an account type (then it applies to each
    account of that type, unless the account has its own limit for the same
    period). The amount is in the account's currency. Core accounts are
    never limited. Debits and holds are checked against it under the
    account's row lock (``accounts.limits``); creating, raising or removing
    one is moving money (``accounts.move_money`` in the admin).
    """

    class Period(models.TextChoices):
        DAY = "day", _("Day")
        WEEK = "week", _("Week")
        MONTH = "month", _("Month")

    account = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("account"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="spending_limits",
    )
    account_type = models.ForeignKey(
        "accounts.AccountType",
        verbose_name=_("account type"),
        null=True,
        blank=True,
        # A type's limits are removed on purpose (that is moving money), not
        # as a side effect of deleting the type.
        on_delete=models.PROTECT,
        related_name="spending_limits",
    )
    period = ExactCharField(_("period"), max_length=8, choices=Period.choices)
    amount = models.DecimalField(
        _("amount"),
        max_digits=amounts.MAX_DIGITS,
        decimal_places=amounts.DECIMAL_PLACES,
        help_text=_("In the currency of the account it applies to."),
    )
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    changed_at = models.DateTimeField(
        _("changed at"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When the amount was last changed (the database's clock)."),
    )

    objects = SpendingLimitQuerySet.as_manager()

    class Meta:
        ordering = ["account_type", "account", "period"]
        verbose_name = _("spending limit")
        verbose_name_plural = _("spending limits")
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(account__isnull=False, account_type__isnull=True)
                    | Q(account__isnull=True, account_type__isnull=False)
                ),
                name="accounts_spendinglimit_one_owner",
            ),
            models.CheckConstraint(
                condition=Q(amount__gte=0), name="accounts_spendinglimit_amount_not_negative"
            ),
            # NULLs are distinct in a unique index on every backend: these
            # allow one limit per period and account, and per period and type.
            models.UniqueConstraint(
                fields=["account", "period"], name="accounts_spendinglimit_account_period"
            ),
            models.UniqueConstraint(
                fields=["account_type", "period"], name="accounts_spendinglimit_type_period"
            ),
        ]

    def __str__(self) -> str:
        owner = self.account if self.account_id else self.account_type
        return "%s: %s %s" % (owner, self.amount_display, self.get_period_display().lower())

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Check and save; a changed amount is stamped with the database's time.

        Raises ``InvalidArgument`` (no owner or two, a core account, an
        unknown period), ``InvalidAmount`` (negative, too large, more
        decimal places than the account's currency has) or
        ``CurrencyMismatch`` (a Money in another currency); nothing is
        written when it raises.
        """
        self._check()
        adding = self._state.adding
        if not adding:
            self.changed_at = DatabaseNow()
        super().save(*args, **kwargs)
        if not adding:
            self.__dict__.pop("changed_at", None)  # read back: the database's time

    save.alters_data = True  # type: ignore[attr-defined]

    @property
    def amount_display(self) -> str:
        """The amount, as money where the limit belongs to an account."""
        account = self.account if self.account_id is not None else None
        if account is not None and self.amount is not None:
            return str(amounts.money(self.amount, account.currency))
        return "" if self.amount is None else str(self.amount)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from .exceptions import AccountException

        try:
            self._check()
        except AccountException as exc:
            raise ValidationError(str(exc)) from exc

    def _check(self) -> None:
        from .exceptions import InvalidArgument

        if (self.account_id is None) == (self.account_type_id is None):
            raise InvalidArgument(
                _("A spending limit belongs to an account or to an account type (exactly one).")
            )
        if self.period not in self.Period.values:
            raise InvalidArgument(
                _("Unknown spending limit period %(period)r: use day, week or month."),
                period=self.period,
            )
        value = self.amount
        account = self.account if self.account_id is not None else None
        if isinstance(value, amounts.MONEY_TYPES):
            if account is not None:
                amounts.check_same_currency(
                    value.currency.code, account.currency, what=_("The spending limit")
                )
            value = value.amount
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise InvalidAmount(
                _("Spending limit %(amount)r is invalid: give zero or a positive Decimal."),
                amount=value,
            )
        if value >= amounts.LIMIT:
            raise InvalidAmount(_("Spending limit %(amount)s is too large."), amount=value)
        if value != value.quantize(Decimal(1).scaleb(-amounts.DECIMAL_PLACES)):
            raise InvalidAmount(
                _("Spending limit %(amount)s has more than %(places)s decimal places."),
                amount=value,
                places=amounts.DECIMAL_PLACES,
            )
        if account is not None:
            if account.role:
                raise ProtectedAccount(account=account, action=_("given a spending limit"))
            amounts.check_places(value, account.currency, what=_("Spending limit"))
        self.amount = value


class Repayment(AppendOnly):
    """One call of ``facade.repay``: the debt it found under the lock, and what it moved.

    Written for every repayment, also when there was no debt (no transfer),
    so that a retry with the same idempotency key gets the same answer.
    Append-only.
    """

    source = models.ForeignKey(
        "accounts.Account", verbose_name=_("source"), on_delete=models.PROTECT, related_name="+"
    )
    destination = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("destination"),
        on_delete=models.PROTECT,
        related_name="repayments",
    )
    currency = models.CharField(_("currency"), max_length=3)
    requested = LedgerMoneyField(_("requested"), help_text=_("The amount asked for."))
    debt = LedgerMoneyField(
        _("debt"), help_text=_("What the destination owed, read under its lock.")
    )
    transfer = models.OneToOneField(
        "accounts.Transfer",
        verbose_name=_("transfer"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="repayment",
        help_text=_("Empty: there was no debt, nothing was moved."),
    )
    user = user_field()
    username = username_field()
    idempotency_key = idempotency_key_field()
    request_fingerprint = request_fingerprint_field()
    created = created_field()

    objects = RepaymentQuerySet.as_manager()

    delete_refused = _("Repayments are append-only and cannot be deleted.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("repayment")
        verbose_name_plural = _("repayments")

    def __str__(self) -> str:
        return _("Repayment %(id)s") % {"id": self.pk}

    @property
    def repaid(self) -> Money:
        """What was moved (zero when there was no debt)."""
        transfer = self.transfer if self.transfer_id is not None else None
        if transfer is None:
            return amounts.money(Decimal(0), self.currency)
        # djmoney's fields are untyped: their values read as Any.
        return cast("Money", transfer.amount)


class Decline(AppendOnly):
    """A payment the ledger refused by its rules (not for bad input), kept to show why.

    Written by ``accounts.declines`` when ``ACCOUNTS_RECORD_DECLINES`` is on,
    for a transfer, a hold, a capture, a request of a batch or a repayment
    refused for lack of funds, a spending limit, an account that cannot be
    used now, or a hold that is expired, resolved or exceeded. Append-only.
    """

    class Operation(models.TextChoices):
        TRANSFER = "transfer", _("Transfer")
        HOLD = "hold", _("Hold")
        CAPTURE = "capture", _("Capture")
        BATCH = "batch", _("Transfer of a batch")
        REPAY = "repay", _("Repayment")

    operation = models.CharField(_("operation"), max_length=16, choices=Operation.choices)
    source = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("source"),
        on_delete=models.PROTECT,
        related_name="declines",
    )
    destination = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("destination"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    hold = models.ForeignKey(
        "accounts.Hold",
        verbose_name=_("hold"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="declines",
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = LedgerMoneyField(
        _("amount"),
        null=True,
        blank=True,
        help_text=_("The amount asked for (empty: a capture of all the hold)."),
    )
    reason = ExactCharField(
        _("reason"),
        max_length=64,
        db_index=True,
        help_text=_("The refusal's stable code, e.g. insufficient_funds, spending_limit_reached."),
    )
    message = models.TextField(_("message"), help_text=_("What the ledger said, for staff."))
    facts = models.JSONField(
        _("facts"),
        default=dict,
        blank=True,
        help_text=_("The refusal's figures: what was available, the limit and its period."),
    )
    merchant_reference = models.CharField(
        _("merchant reference"), max_length=128, null=True, blank=True
    )
    description = models.TextField(_("description"), blank=True)
    user = user_field()
    username = username_field()
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True)
    created = created_field()
    metadata = models.JSONField(
        _("metadata"),
        default=dict,
        blank=True,
        help_text=_("The metadata of the refused request, as the caller gave it."),
    )

    objects = DeclineQuerySet.as_manager()

    delete_refused = _("Declined payments are kept; they cannot be deleted.")

    class Meta:
        ordering = ["-created", "-pk"]
        verbose_name = _("declined payment")
        verbose_name_plural = _("declined payments")
        indexes = [
            # An account's declines, newest first (its admin page, statements).
            models.Index(fields=["source", "created"], name="accounts_decline_source"),
        ]

    def __str__(self) -> str:
        return "%s: %s" % (self.get_operation_display(), self.reason)

    @property
    def reason_text(self) -> str:
        """The reason in a few words, for a customer's statement ("daily limit reached")."""
        from .declines import reason_text

        return reason_text(self.reason, self.facts)
