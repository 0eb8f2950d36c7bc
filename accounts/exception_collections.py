"""
Collecting debts (``accounts.collections``): bad run arguments, which are
``InvalidArgument`` and ``CurrencyMismatch`` subclasses, and the refusals under
``CollectionError``.

Part of the one tree in :mod:`accounts.exceptions`; import them from there.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_lazy as _

from .exception_base import AccountException, StrOrPromise, customer_date
from .exception_input import CurrencyMismatch, InvalidArgument

if TYPE_CHECKING:
    from djmoney.money import Money

    from .collection_models import CollectionRun, Debt


class InvalidCollectionPeriod(InvalidArgument):
    """A collection run's period, or its freeze moment, is out of order."""

    code = "invalid_collection_period"

    message = _("Invalid collection period: %(reason)s")
    user_template = _("The dates of this collection are not valid.")

    #: What is wrong, in words.
    reason: StrOrPromise


class CollectionBeforeFreeze(InvalidArgument):
    """A collection run's collection date does not come after its freeze moment."""

    code = "collection_before_freeze"

    message = _(
        "The collection date %(collect_on)s is not after the freeze at %(freeze_at)s: "
        "money can be collected only once the amounts owed are final."
    )
    user_template = _("The collection date must come after the amounts owed are final.")

    collect_on: datetime.date
    freeze_at: datetime.datetime


class InvalidCollectionSource(InvalidArgument):
    """The account that collected money comes from is missing, or unfit (see the message)."""

    code = "invalid_collection_source"

    message = _("The account collected money comes from is not usable: %(reason)s")
    user_template = _("Collected money cannot be recorded: its account is not set up.")

    #: What is wrong with the account, in words.
    reason: StrOrPromise


class MixedCurrencyScope(CurrencyMismatch):
    """A run's accounts are in several currencies and no currency was chosen."""

    code = "mixed_currency_scope"

    message = _(
        "The accounts of %(scope)s are in several currencies (%(codes)s): create one run "
        "per currency (currency=...)."
    )
    user_template = _("These accounts are in several currencies: collect each one on its own.")

    #: The scope, in words.
    scope: str
    #: The currencies found, sorted.
    currencies: list[str]

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        if "currencies" in context and "codes" not in context:
            context["codes"] = ", ".join(context["currencies"])
        super().__init__(message, **context)


class CollectionError(AccountException):
    """A collection run or a debt cannot be handled as asked."""

    code = "collection_error"

    user_template = _("This collection cannot be handled this way.")


class CollectionRunConflict(CollectionError):
    """A run for the same scope, currency and period exists, created with other details."""

    code = "collection_run_conflict"

    message = _(
        "Collection run %(existing)s already collects %(scope)s in %(currency)s for this "
        "period, with another %(differences)s: a scope is collected once per period."
    )
    user_template = _("A collection for this period already exists, with other details.")

    #: The run that exists.
    existing: CollectionRun
    #: What differs, in words.
    differences: str


class CollectionRunNotDue(CollectionError):
    """A run cannot be frozen before its freeze moment has passed, by the database's clock."""

    code = "collection_run_not_due"

    message = _(
        "Collection run %(run)s cannot be frozen before %(freeze_at)s (the database's "
        "clock says %(now)s)."
    )
    user_template = _("The amounts of this collection are not final before %(date)s.")

    run: CollectionRun
    freeze_at: datetime.datetime
    now: datetime.datetime

    def user_facts(self) -> dict[str, str]:
        return {"date": customer_date(getattr(self, "freeze_at", None), "DATETIME_FORMAT")}


class DebtResolved(CollectionError):
    """The debt was settled in full or failed already: a debt resolves once."""

    code = "debt_resolved"

    message = _("Debt %(debt)s is already %(status)s; it can no longer be settled or failed.")
    user_template = _("This debt was already dealt with.")
    paid_template = _("This debt was already paid in full.")
    failed_template = _("This debt was already marked as not paid.")

    debt: Debt
    #: The debt's status, in words ("succeeded", "failed").
    status: str

    def get_user_template(self) -> StrOrPromise:
        status = getattr(self, "status", None)
        if status == "succeeded":
            return self.paid_template
        if status == "failed":
            return self.failed_template
        return self.user_template


class SettlementExceedsDebt(CollectionError):
    """The amount to settle is more than the debt still owes."""

    code = "settlement_exceeds_debt"

    message = _("Cannot settle %(amount)s on debt %(debt)s: only %(remaining)s is still owed.")
    user_template = _("Only %(remaining)s is still owed.")

    debt: Debt
    #: The amount asked for.
    amount: Money
    #: What the debt still owes (its amount less what was recovered).
    remaining: Money

    def user_facts(self) -> dict[str, str]:
        return {"remaining": str(getattr(self, "remaining", ""))}
