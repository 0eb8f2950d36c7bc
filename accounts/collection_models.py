"""
The models of collecting debts (``accounts.collections``): runs, debts, settlements.

A ``CollectionRun`` collects, once per period, what the accounts of a scope
owe in one currency. Freezing it writes one ``Debt`` per account that owed
money at the run's ``freeze_at``; each debt goes pending → initiated →
succeeded, or fails (what it still owed is owed again in the next run). Money
that came back is recorded as a transfer into the debtor's account, linked
to the debt by a ``Settlement`` carrying the external reference.

Only ``accounts.collections`` writes these rows, under the locks it
documents; the QuerySets refuse ``update()``, ``delete()`` and
``bulk_create()`` of debts and settlements, as the ledger's do.

Imported by ``accounts.models``, so that Django finds the models there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import amounts
from .exceptions import LedgerImmutable
from .fields import ExactCharField, LedgerMoneyField, zero
from .model_columns import reference_field

if TYPE_CHECKING:
    import datetime

    from djmoney.money import Money

    from .models import Transfer


_M = TypeVar("_M", bound=models.Model)


def _refuse(model: type[models.Model]) -> LedgerImmutable:
    return LedgerImmutable(
        _("%(model)s rows change only through accounts.collections."),
        model=model._meta.verbose_name,
    )


class _WrittenHere(models.QuerySet[_M]):
    """Rows that ``accounts.collections`` alone writes: no ``update()``."""

    def update(self, **kwargs: Any) -> int:
        raise _refuse(self.model)

    update.alters_data = True  # type: ignore[attr-defined]

    def _write(self, pk: int, **columns: Any) -> int:
        """Set columns of one row; only ``accounts.collections`` calls this, under its lock."""
        return models.QuerySet.update(self.filter(pk=pk), **columns)


class _KeptHere(_WrittenHere[_M]):
    """Rows that are never deleted or created in bulk either."""

    def delete(self) -> Any:
        raise _refuse(self.model)

    delete.alters_data = True  # type: ignore[attr-defined]
    delete.queryset_only = True  # type: ignore[attr-defined]

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(self.model)


class _Kept(models.Model):
    """A row only ``accounts.collections`` writes, its own way: save() and delete() refuse."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        raise _refuse(type(self))

    save.alters_data = True  # type: ignore[attr-defined]

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise _refuse(type(self))

    delete.alters_data = True  # type: ignore[attr-defined]


class CollectionRunQuerySet(_WrittenHere["CollectionRun"]):
    def due(self, at: datetime.datetime | None = None) -> CollectionRunQuerySet:
        """Runs with work to do at ``at`` (default: now): not finished, freeze moment passed.

        Judged on the application's clock, for choosing what to look at:
        freezing judges it again under the locks, on the database's.
        """
        return self.filter(
            status__in=(CollectionRun.Status.PENDING, CollectionRun.Status.RUNNING),
            freeze_at__lt=at or timezone.now(),
        )


class CollectionRun(models.Model):
    """One period's collection of what the accounts of a scope owe, in one currency."""

    class Status(models.TextChoices):
        #: Created; its debts are not (all) frozen yet.
        PENDING = "pending", _("Pending")
        #: Frozen: debts are being initiated, collected, settled or failed.
        RUNNING = "running", _("Running")
        #: Every debt was recovered in full (or there was none).
        SUCCEEDED = "succeeded", _("Succeeded")
        #: Every debt is resolved and at least one failed.
        FAILED = "failed", _("Failed")

    reference = reference_field()
    scope = ExactCharField(
        _("scope"),
        max_length=160,
        help_text=_(
            "What the run covers: type:<id> (an account type and its subtypes), all (every "
            "account but the core ones) or accounts:<name> (the accounts given)."
        ),
    )
    account_type = models.ForeignKey(
        "accounts.AccountType",
        verbose_name=_("account type"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    members = models.ManyToManyField(
        "accounts.Account",
        verbose_name=_("accounts given"),
        blank=True,
        related_name="+",
        help_text=_("For a run over the accounts a caller gave: those accounts."),
    )
    currency = models.CharField(_("currency"), max_length=3)
    source = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("collected from"),
        on_delete=models.PROTECT,
        related_name="+",
        help_text=_("The account recovered money is moved from, into each debtor's account."),
        # No constraint in the database (Django still protects the account):
        # PostgreSQL checks a foreign key of a row updated twice in one
        # transaction at COMMIT, with a share lock on the account, and every
        # settlement holds this account's row lock while it waits for the
        # run's. Initiating debts updates the run's totals once per debt, so
        # that check would close a cycle with a settlement. The source's
        # existence is in check_ledger ("run-source").
        db_constraint=False,
    )
    period_start = models.DateTimeField(_("period start"))
    period_end = models.DateTimeField(_("period end"))
    freeze_at = models.DateTimeField(
        _("freeze at"), help_text=_("What each account owes is its debt at this moment.")
    )
    collect_on = models.DateField(
        _("collect on"), help_text=_("The day the money is to be taken (direct debit, charge).")
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    request_fingerprint = models.CharField(_("request fingerprint"), max_length=64, editable=False)
    frozen_through = models.BigIntegerField(
        _("frozen through account"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("While freezing: the accounts up to this id have been looked at."),
    )
    frozen_at = models.DateTimeField(_("frozen at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    debt_count = models.PositiveIntegerField(_("debts"), default=0)
    total_owed = LedgerMoneyField(_("to recover"), default=zero)
    total_initiated = LedgerMoneyField(
        _("initiated"),
        default=zero,
        help_text=_("Still owed by the debts being collected (initiated)."),
    )
    total_recovered = LedgerMoneyField(_("recovered"), default=zero)
    total_failed = LedgerMoneyField(
        _("failed"), default=zero, help_text=_("Not recovered by the debts that failed.")
    )
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = CollectionRunQuerySet.as_manager()

    class Meta:
        ordering = ["-period_end", "-pk"]
        verbose_name = _("collection run")
        verbose_name_plural = _("collection runs")
        constraints = [
            models.UniqueConstraint(
                fields=["scope", "currency", "period_start", "period_end"],
                name="accounts_one_run_per_scope_and_period",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "freeze_at"], name="accounts_run_due"),
        ]

    def __str__(self) -> str:
        return str(self.reference)

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise _refuse(type(self))
        super().save(*args, **kwargs)

    save.alters_data = True  # type: ignore[attr-defined]

    @property
    def scope_label(self) -> str:
        """The scope in words: an account type, every account, or the name given."""
        if self.account_type_id is not None:
            return str(_("account type %(type)s") % {"type": self.account_type})
        if self.scope == "all":
            return str(_("every account"))
        return str(self.scope).removeprefix("accounts:")

    @property
    def total_pending(self) -> Money:
        """Owed by the debts not initiated yet."""
        pending: Money = (
            self.total_owed - self.total_initiated - self.total_recovered - self.total_failed
        )
        return pending

    @property
    def is_frozen(self) -> bool:
        return self.status != self.Status.PENDING


class DebtQuerySet(_KeptHere["Debt"]):
    """Debts change only through ``accounts.collections``: no update, delete or bulk create."""

    def open(self) -> DebtQuerySet:
        """Debts still to be recovered: pending or initiated."""
        return self.filter(status__in=(Debt.Status.PENDING, Debt.Status.INITIATED))

    def bulk_update(self, objs: Any, fields: Any, batch_size: Any = None) -> int:
        return self.update()

    bulk_update.alters_data = True  # type: ignore[attr-defined]

    def _add_frozen(self, debts: list[Debt]) -> None:
        """Insert frozen debts; only ``accounts.collections`` calls this, under the run's lock."""
        models.QuerySet.bulk_create(self, debts)


class Debt(_Kept):
    """What one account owed when a run froze, and how much of it came back."""

    class Status(models.TextChoices):
        #: Frozen, not yet initiated.
        PENDING = "pending", _("Pending")
        #: The debtor was told; collecting (direct debit, charge) is under way.
        INITIATED = "initiated", _("Initiated")
        #: Recovered in full.
        SUCCEEDED = "succeeded", _("Succeeded")
        #: Collecting failed; what was not recovered is owed again in the next run.
        FAILED = "failed", _("Failed")

    run = models.ForeignKey(
        CollectionRun,
        verbose_name=_("collection run"),
        on_delete=models.PROTECT,
        related_name="debts",
        # The leading column of the unique constraint and of the index below.
        db_index=False,
    )
    account = models.ForeignKey(
        "accounts.Account",
        verbose_name=_("account"),
        on_delete=models.PROTECT,
        related_name="debts",
        db_index=False,
    )
    currency = models.CharField(_("currency"), max_length=3)
    amount = LedgerMoneyField(
        _("amount owed"),
        help_text=_(
            "The account's debt at the run's freeze moment, less what other runs were "
            "collecting or recovered since."
        ),
    )
    balance_at_freeze = LedgerMoneyField(_("balance at the freeze"))
    claimed_elsewhere = LedgerMoneyField(
        _("collected by other runs"),
        default=zero,
        help_text=_(
            "Part of the debt at the freeze that other runs' debts were collecting, or "
            "recovered after it: not owed again here."
        ),
    )
    recovered = LedgerMoneyField(_("recovered"), default=zero)
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    external_reference = ExactCharField(
        _("external reference"),
        max_length=100,
        blank=True,
        help_text=_("The reference of the last money that came back for it."),
    )
    failure_reason = models.TextField(_("failure reason"), blank=True)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)
    initiated_at = models.DateTimeField(_("initiated at"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved at"), null=True, blank=True)
    resolved_by = models.CharField(
        _("resolved by"),
        max_length=150,
        blank=True,
        help_text=_("Username of who recorded the last settlement or the failure."),
    )
    transfers: models.ManyToManyField[Transfer, Settlement] = models.ManyToManyField(
        "accounts.Transfer",
        verbose_name=_("recovery transfers"),
        through="Settlement",
        related_name="settled_debts",
        blank=True,
    )

    objects = DebtQuerySet.as_manager()

    class Meta:
        # By column, not by the run's own ordering: that would join the run
        # into every query, and lock it with the debt in SELECT ... FOR UPDATE.
        ordering = ["run_id", "id"]
        verbose_name = _("debt")
        verbose_name_plural = _("debts")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "account"], name="accounts_one_debt_per_run_and_account"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="accounts_debt_amount_positive"
            ),
            models.CheckConstraint(
                condition=Q(recovered__gte=0) & Q(recovered__lte=models.F("amount")),
                name="accounts_debt_recovered_within_amount",
            ),
        ]
        indexes = [
            # A run's pending debts, in batches by id (initiating them).
            models.Index(fields=["run", "status", "id"], name="accounts_debt_run_status"),
            # An account's open debts in other runs (freezing).
            models.Index(fields=["account", "status"], name="accounts_debt_account_status"),
        ]

    def __str__(self) -> str:
        return str(_("debt #%(id)s") % {"id": self.pk})

    @property
    def is_open(self) -> bool:
        """Whether money may still come back for it (pending or initiated)."""
        return self.status in (self.Status.PENDING, self.Status.INITIATED)

    @property
    def remaining(self) -> Money:
        """What it still owes: the amount less what was recovered (zero once failed)."""
        if self.status == self.Status.FAILED:
            return amounts.money(Decimal(0), self.currency)
        left: Money = self.amount - self.recovered
        return left

    @property
    def debt_at_freeze(self) -> Money:
        """What the account owed at the freeze, whoever collects it: minus its balance, or 0."""
        balance = amounts.raw(self, "balance_at_freeze") or Decimal(0)
        return amounts.money(max(-balance, Decimal(0)), self.currency)


class SettlementQuerySet(_KeptHere["Settlement"]):
    """Settlements are recorded once (``Settlement._record``) and never change."""


class Settlement(_Kept):
    """Money that came back for a debt: the transfer that recorded it, by external reference."""

    debt = models.ForeignKey(
        Debt, verbose_name=_("debt"), on_delete=models.PROTECT, related_name="settlements"
    )
    transfer = models.OneToOneField(
        "accounts.Transfer",
        verbose_name=_("transfer"),
        on_delete=models.PROTECT,
        related_name="settlement",
    )
    reference = ExactCharField(
        _("external reference"),
        max_length=100,
        unique=True,
        help_text=_(
            "The payment provider's reference of the money that came back: recording it "
            "again with the same reference records nothing more."
        ),
    )
    request_fingerprint = models.CharField(_("request fingerprint"), max_length=64, editable=False)
    created = models.DateTimeField(_("created"), default=timezone.now, editable=False)

    objects = SettlementQuerySet.as_manager()

    class Meta:
        ordering = ["debt_id", "id"]
        verbose_name = _("settlement")
        verbose_name_plural = _("settlements")

    def __str__(self) -> str:
        return str(self.reference)

    def _record(self, using: str) -> None:
        """Insert this new settlement; only ``accounts.collections`` calls this."""
        models.Model.save(self, force_insert=True, using=using)
