"""
The admin's account form: create or edit an account, and who may change how much it can spend.

Whatever changes how much can be spent is moving money: :class:`AccountForm`
lets only a user with ``accounts.move_money`` raise or clear a credit limit,
create an account that may spend without being topped up, or put a code on
an account that holds money and has no users (whoever holds the code could
spend it). Lowering a limit stays open to everyone who may edit accounts.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.utils.translation import gettext_lazy as _

from . import amounts
from .amount_fields import CreditLimitField
from .codes import normalize_code
from .conf import conf
from .models import Account

if TYPE_CHECKING:
    AccountModelForm = forms.ModelForm[Account]
else:
    # ModelForm cannot be subscripted at run time.
    AccountModelForm = forms.ModelForm

#: The permission that guards everything that changes how much can be spent.
MOVE_MONEY_PERMISSION = "accounts.move_money"


def currency_choices() -> list[tuple[str, str]]:
    # A callable, so that ACCOUNTS_CURRENCIES is read when the form is used.
    return [(code, code) for code in conf.CURRENCIES]


def may_move_money(user: Any) -> bool:
    """Whether ``user`` has ``accounts.move_money`` (``None``: nobody, so no)."""
    return user is not None and user.has_perm(MOVE_MONEY_PERMISSION)


#: The account fields an edit form carries, as they were shown (see AccountForm.shown).
EDITABLE_FIELDS = [
    "name",
    "code",
    "description",
    "account_type",
    "primary_user",
    "secondary_users",
    "currency",
    "credit_limit",
    "start_date",
    "end_date",
    "metadata",
]


def _field(name: str) -> models.Field[Any, Any]:
    # Each of EDITABLE_FIELDS is a concrete field of Account, none a relation's reverse.
    return cast("models.Field[Any, Any]", Account._meta.get_field(name))


def account_snapshot(account: Account) -> dict[str, Any]:
    """The editable fields of ``account`` as plain JSON values, to compare two readings."""
    snapshot: dict[str, Any] = {}
    for name in EDITABLE_FIELDS:
        field = _field(name)
        if field.many_to_many:
            snapshot[name] = sorted(
                account.secondary_users.values_list("pk", flat=True) if account.pk else []
            )
            continue
        value = getattr(account, field.attname)
        if isinstance(value, (dict, list)):
            # JSON (metadata): key order is not kept by every database.
            snapshot[name] = json.dumps(value, sort_keys=True)
            continue
        value = getattr(value, "amount", value)  # a Money, in its currency's places
        snapshot[name] = None if value is None else str(value)
    return snapshot


class AccountForm(AccountModelForm):
    """Create or edit an account. Balance and status are not fields: only the
    facade changes a balance, and status changes go through the locked
    ``freeze()``, ``thaw()`` and ``close()`` (the admin's actions).

    ``user`` is who is editing: raising or clearing a credit limit, creating
    an account that can spend before it is topped up, and putting a code on
    a funded account without users need their ``accounts.move_money``
    permission (without a user, nobody has it). The admin passes the
    request's user.

    An edit carries the values it showed (the hidden ``shown`` field): if
    someone else changed the account since, the form is refused instead of
    writing the old values back.
    """

    currency = forms.ChoiceField(label=_("Currency"), choices=currency_choices)
    credit_limit = CreditLimitField(
        label=_("Credit limit"),
        required=False,
        help_text=_(
            "How far the balance may go below zero; empty means no limit. Lowering it "
            "below the current debt is allowed and only blocks further debits. Raising "
            "or clearing it needs the permission to move money."
        ),
    )
    shown = forms.CharField(widget=forms.HiddenInput, required=False)

    #: Who is editing (see the class docstring); the admin sets it per request.
    user: Any = None

    class Meta:
        model = Account
        fields = EDITABLE_FIELDS
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "metadata": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if user is not None:
            self.user = user
        if self.instance.pk is not None and not self.is_bound:
            self.initial["shown"] = json.dumps(account_snapshot(self.instance), sort_keys=True)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or self.cleaned_data
        current = self._current() if self.instance.pk is not None else None
        if current is not None:
            self._check_not_stale(current)
        if not may_move_money(self.user):
            self._check_spending_unchanged(current, cleaned)
        return cleaned

    def _current(self) -> Account | None:
        """The account as stored now; locked until the save commits when inside a transaction.

        The admin's change view is one transaction, so nobody can change the
        row between this check and the save.
        """
        using = router.db_for_write(Account, instance=self.instance)
        rows = Account.objects.using(using).filter(pk=self.instance.pk)
        if transaction.get_connection(using).in_atomic_block:
            rows = rows.select_for_update()
        return rows.first()

    def _check_not_stale(self, current: Account) -> None:
        shown = self.data.get(self.add_prefix("shown")) if self.is_bound else None
        if not shown:
            return  # a form built in code, not from the page it showed
        try:
            before = json.loads(shown)
        except ValueError:
            before = {}
        now = account_snapshot(current)
        changed = [name for name in EDITABLE_FIELDS if before.get(name) != now[name]]
        if changed:
            labels = ", ".join(str(_field(name).verbose_name) for name in changed)
            raise ValidationError(
                _(
                    "This account was changed by someone else after this page was opened "
                    "(%(fields)s). Nothing was saved: reload the page to see the current "
                    "values, then make your change again."
                ),
                code="stale",
                params={"fields": labels},
            )

    def _check_spending_unchanged(self, current: Account | None, cleaned: dict[str, Any]) -> None:
        """Refuse what only staff who may move money may do (see the class docstring)."""
        limit = cleaned.get("credit_limit") if "credit_limit" in self.fields else None
        if current is None:
            if "credit_limit" in self.fields and (limit is None or limit > 0):
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _(
                            "Only staff who may move money can create an account with a "
                            "credit limit or with no limit. Leave it at 0."
                        ),
                        code="move_money",
                    ),
                )
            return
        old_limit = amounts.raw(current, "credit_limit")
        if "credit_limit" in self.fields and "credit_limit" in cleaned:
            if limit is None and old_limit is not None:
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _("Only staff who may move money can remove an account's credit limit."),
                        code="move_money",
                    ),
                )
            elif limit is not None and old_limit is not None and limit > old_limit:
                self.add_error(
                    "credit_limit",
                    ValidationError(
                        _(
                            "Only staff who may move money can raise a credit limit "
                            "(%(limit)s now); it may be lowered."
                        ),
                        code="move_money",
                        params={"limit": amounts.money(old_limit, current.currency)},
                    ),
                )
        else:
            limit = old_limit
        if "account_type" in self.fields and "account_type" in cleaned:
            self._check_type_limits(current, cleaned.get("account_type"))
        balance = amounts.raw(current, "balance") or Decimal(0)
        can_spend = balance > 0 or limit is None or limit > 0
        code = cleaned.get("code") if "code" in self.fields else current.code
        code = normalize_code(code or "") or None
        primary = cleaned.get("primary_user") if "primary_user" in self.fields else None
        if "primary_user" not in self.fields:
            primary = current.primary_user_id
        if "secondary_users" in self.fields:
            secondary = bool(cleaned.get("secondary_users"))
        else:
            secondary = current.secondary_users.exists()
        had_users = current.primary_user_id is not None or current.secondary_users.exists()
        code_changed = code != (normalize_code(current.code or "") or None)
        if code and can_spend and not primary and not secondary:
            if code_changed or had_users:
                self.add_error(
                    "code" if code_changed else None,
                    ValidationError(
                        _(
                            "Only staff who may move money can put a code on an account "
                            "that holds money and has no users: anyone holding the code "
                            "could spend it."
                        ),
                        code="move_money",
                    ),
                )

    def _check_type_limits(self, current: Account, account_type: Any) -> None:
        """Moving an account to another type must not raise or remove a spending limit."""
        from .models import SpendingLimit

        new_type = getattr(account_type, "pk", account_type)
        if new_type == current.account_type_id:
            return
        limits = SpendingLimit.objects.using(current._state.db)
        before = limits.effective_for(current)
        moved = Account(pk=current.pk, role=current.role, account_type_id=new_type)
        after = limits.effective_for(moved)
        looser = [
            period
            for period, amount in before.items()
            if period not in after or after[period] > amount
        ]
        if looser:
            self.add_error(
                "account_type",
                ValidationError(
                    _(
                        "Only staff who may move money can move an account to a type whose "
                        "spending limits are higher or missing (%(periods)s)."
                    ),
                    code="move_money",
                    params={"periods": ", ".join(looser)},
                ),
            )
