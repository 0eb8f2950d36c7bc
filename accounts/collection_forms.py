"""
The forms of the debt admin: record money that came back for a debt, or mark it failed.

Both go through ``accounts.collections`` (``settle``, ``fail``), after the
confirmation step of every money form (``accounts.admin_pages.move_money``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import collections
from .amount_fields import AmountField
from .collection_models import Debt
from .exceptions import (
    AccountException,
    DebtResolved,
    IdempotencyConflict,
    SettlementExceedsDebt,
)
from .forms import AMOUNT_ERRORS, MoveMoneyForm
from .models import Transfer

__all__ = ["SettleForm", "FailForm"]


class SettleForm(MoveMoneyForm):
    """Record money that came back for a debt: a transfer from the run's source into the
    debtor's account. The external reference is the idempotency key."""

    amount = AmountField(
        label=_("Amount received"),
        help_text=_("Less than what is still owed records a partial settlement."),
    )
    reference = forms.CharField(
        label=_("External reference"),
        max_length=collections.REFERENCE_LENGTH,
        help_text=_(
            "The payment provider's reference of this money: recording it twice records it once."
        ),
    )
    merchant_reference = None  # type: ignore[assignment]  # the reference is the merchant's

    field_order = ["amount", "reference", "description"]

    def __init__(self, *args: Any, debt: Debt, **kwargs: Any) -> None:
        self.debt = debt
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial.setdefault("amount", debt.remaining.amount)

    def currency(self) -> str:
        return self.debt.currency

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.errors or self.existing() is not None:
            # Recorded already (a double click): saving answers with what was recorded.
            return self.cleaned_data
        if not self.debt.is_open:
            raise ValidationError(
                _("%(debt)s is %(status)s: nothing is owed any more."),
                code="resolved",
                params={"debt": self.debt, "status": self.debt.get_status_display().lower()},
            )
        amount = self.cleaned_data.get("amount")
        left = self.debt.remaining
        if amount is not None and amount > left.amount and "amount" not in self.errors:
            self.add_error(
                "amount",
                ValidationError(
                    _("Only %(left)s is still owed."), code="too_much", params={"left": left}
                ),
            )
        return self.cleaned_data

    def idempotency_key(self) -> str | None:
        reference = self.cleaned_data.get("reference")
        return collections.KEY_PREFIX + reference if reference else None

    def accounts(self) -> tuple[Any, Any]:
        return self.debt.run.source, self.debt.account

    def confirmation(self) -> Any:
        amount = self.amount_to_move()
        return _(
            "Record %(amount)s received for %(debt)s (run %(run)s, reference %(reference)s): "
            "move %(amount)s from %(source)s to %(account)s; %(left)s will still be owed."
        ) % {
            "amount": amount,
            "debt": self.debt,
            "run": self.debt.run,
            "reference": self.cleaned_data["reference"],
            "source": self.debt.run.source,
            "account": self.debt.account,
            "left": self.debt.remaining - amount,
        }

    def save(self, user: Any) -> Transfer | None:
        try:
            return self.post(user)
        except IdempotencyConflict:
            self.add_error(
                "reference",
                _(
                    "This external reference was already recorded, for another amount or "
                    "another debt: each payment has its own reference."
                ),
            )
        except AccountException as exc:
            field = "amount" if isinstance(exc, (*AMOUNT_ERRORS, SettlementExceedsDebt)) else None
            self.add_error(field, str(exc))
        return None

    def post(self, user: Any) -> Transfer:
        data = self.cleaned_data
        return collections.settle(
            self.debt,
            data["amount"],
            reference=data["reference"],
            user=user,
            description=data["description"] or None,
        )


class FailForm(forms.Form):
    """Mark a debt failed, with the reason (a payment provider's return code, say)."""

    reason = forms.CharField(
        label=_("Reason"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Why the money did not come back; kept on the debt."),
    )

    #: Set by :meth:`save` when the debt turned out to be failed already (the
    #: confirmation posted twice): nothing to do, and nothing wrong.
    already_failed = False

    def __init__(self, *args: Any, debt: Debt, **kwargs: Any) -> None:
        self.debt = debt
        self.left = debt.amount - debt.recovered
        super().__init__(*args, **kwargs)

    def clean(self) -> dict[str, Any]:
        super().clean()
        if self.debt.status == Debt.Status.SUCCEEDED:
            raise ValidationError(
                _("%(debt)s was recovered in full: it cannot fail."),
                code="resolved",
                params={"debt": self.debt},
            )
        return self.cleaned_data

    def confirmation(self) -> Any:
        return _(
            "Mark %(debt)s of %(account)s failed (run %(run)s): %(left)s not recovered will be "
            "owed again in the next run. No money moves."
        ) % {
            "debt": self.debt,
            "account": self.debt.account,
            "run": self.debt.run,
            "left": self.left,
        }

    def save(self, user: Any) -> Debt | None:
        """Fail the debt as ``user``; on a refusal add the reason to the form, return None."""
        try:
            return collections.fail(self.debt, self.cleaned_data["reason"], user=user)
        except DebtResolved as exc:
            if exc.debt.status == Debt.Status.FAILED:
                self.already_failed = True
                return self.debt
            self.add_error(None, str(exc))
        except AccountException as exc:
            self.add_error(None, str(exc))
        return None
