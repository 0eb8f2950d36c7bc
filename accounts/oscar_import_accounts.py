"""
Importing oscar's account types and accounts (see :mod:`accounts.oscar_import`).

Oscar's type tree (treebeard's materialised paths) becomes parent links;
its accounts are planned (checked, unsaved) before anything is written, and
its bank, redemptions and lapsed accounts map to this app's core accounts.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.utils.text import slugify

from .codes import normalize_code
from .models import Account, AccountType
from .oscar_import_job import ImportJob
from .oscar_tables import STEP, matched_users

__all__ = ["AccountsStep", "STATUSES"]

#: Oscar's statuses, and this app's.
STATUSES = {
    "Open": Account.Status.OPEN,
    "Frozen": Account.Status.FROZEN,
    "Closed": Account.Status.CLOSED,
}


class AccountsStep(ImportJob):
    """The account types and accounts of an import."""

    # Account types ------------------------------------------------------------------------

    def account_types(self) -> dict[int, AccountType]:
        rows = list(self.oscar["type"].objects.using(self.source).order_by("depth", "path"))
        by_path = {row.path: row for row in rows}
        taken = set(AccountType.objects.using(self.target).values_list("code", flat=True))
        made: dict[int, AccountType] = {}
        for row in rows:
            parent = by_path.get(row.path[:-STEP]) if row.depth > 1 else None
            if row.depth > 1 and parent is None:
                self.problem("account type %r (path %s) has no parent row" % (row.name, row.path))
                continue
            self.text(row.name, "The name of account type %r" % row.name)
            code = (
                row.code if row.code and re.fullmatch(r"[-a-zA-Z0-9_]{1,64}", row.code) else None
            )
            if code is None or code in taken:
                base = (slugify(row.code or row.name) or "type")[:56]
                code, n = base, 1
                while code in taken:
                    n += 1
                    code = "%s-%d" % (base, n)
                self.note(
                    "account type %r: code %s (oscar's: %s)"
                    % (row.name, code, "none" if row.code is None else repr(row.code))
                )
            taken.add(code)
            made[row.pk] = AccountType(
                name=row.name,
                code=code,
                parent=made.get(parent.pk) if parent is not None else None,
                description="",
            )
        return made

    # Accounts -------------------------------------------------------------------------------

    def plan_accounts(
        self, types: dict[int, AccountType]
    ) -> tuple[list[tuple[Any, Account]], dict[int, int]]:
        """(oscar row, unsaved account) of each ordinary account; oscar id -> core account id."""
        core_roles = self.names.roles()
        rows = list(self.oscar["account"].objects.using(self.source).order_by("pk"))
        secondary = self.oscar["secondary"].objects.using(self.source)
        users = self.users = matched_users(
            self.source,
            self.target,
            {row.primary_user_id for row in rows if row.primary_user_id is not None}
            | set(secondary.values_list("user_id", flat=True)),
        )
        codes: dict[str, str] = {}
        taken_names = set(
            Account.objects.using(self.target).exclude(name=None).values_list("name", flat=True)
        )
        planned, core = [], {}
        found_roles = set()
        for row in rows:
            label = "account %s (#%s)" % (row.code or row.name or "", row.pk)
            if row.name in core_roles:
                role = core_roles[row.name]
                account = Account.objects.db_manager(self.target).core(role, self.currency)
                core[row.pk] = account.pk
                found_roles.add(role)
                self.report.core.append((row.name, str(account)))
                self.expected[account.pk] = (label, row.balance or Decimal(0))
                self.amount(row.balance, "The balance of %s" % label)
                continue
            status = STATUSES.get(row.status)
            if status is None:
                self.problem(
                    "%s has status %r, which is none of %s"
                    % (label, row.status, ", ".join(STATUSES))
                )
            if row.credit_limit is not None and row.credit_limit < 0:
                self.problem("%s has a negative credit limit %s" % (label, row.credit_limit))
            self.amount(row.credit_limit, "The credit limit of %s" % label)
            self.amount(row.balance, "The balance of %s" % label)
            name = self.text(row.name or None, "The name of %s" % label)
            description = self.text(row.description or "", "The description of %s" % label)
            code = None
            if row.code:
                self.text(row.code, "The code of %s" % label)
                code = normalize_code(row.code) or None
                if code is None:
                    self.problem(
                        "%s has code %r, which is empty once normalized" % (label, row.code)
                    )
                elif code in codes:
                    self.problem(
                        "%s: codes %r and %r are the same code here (%s): codes are compared "
                        "without case, spaces or dashes" % (label, codes[code], row.code, code)
                    )
                else:
                    codes[code] = row.code
                    if code != row.code:
                        self.note("%s: code %r stored as %s" % (label, row.code, code))
            if name is not None and name in taken_names:
                self.problem(
                    "%s: the name %r is already used here (by a core account)" % (label, name)
                )
            if row.primary_user_id is not None and row.primary_user_id not in users:
                self.note(
                    "%s: primary user #%s has no user of the same username here: left empty"
                    % (label, row.primary_user_id)
                )
            if row.product_range_id is not None or not row.can_be_used_for_non_products:
                self.note(
                    "%s: restricted to a product range or to products only in oscar; this app "
                    "has no such restriction (apply it in your checkout)" % label
                )
            account = Account(
                name=name,
                code=code,
                description=description or "",
                account_type=types.get(row.account_type_id) if row.account_type_id else None,
                primary_user_id=users.get(row.primary_user_id) if row.primary_user_id else None,
                status=status or Account.Status.OPEN,
                currency=self.currency,
                credit_limit=row.credit_limit,
                start_date=row.start_date,
                end_date=row.end_date,
                created=row.date_created,
            )
            planned.append((row, account))
        for oscar_name, role in core_roles.items():
            if role not in found_roles:
                self.note(
                    "no oscar account is named %r: nothing was mapped to the %s core account"
                    % (oscar_name, role)
                )
        return planned, core

    def write_accounts(
        self, types: dict[int, AccountType], planned: list[tuple[Any, Account]]
    ) -> None:
        for account_type in types.values():
            if account_type.parent is not None:
                account_type.parent_id = account_type.parent.pk
            account_type.save(using=self.target)
        self.report.account_types = len(types)
        for row, account in planned:
            if account.account_type is not None:
                account.account_type_id = account.account_type.pk
            account.save(using=self.target)
            self.accounts[row.pk] = account.pk
            self.expected[account.pk] = (
                "account %s (#%s)" % (row.code or row.name or "", row.pk),
                row.balance or Decimal(0),
            )
        self.report.accounts = len(planned)
        through = Account.secondary_users.through
        links = [
            through(account_id=self.accounts[account_id], user_id=self.users[user_id])
            for account_id, user_id in self.oscar["secondary"]
            .objects.using(self.source)
            .order_by("pk")
            .values_list("account_id", "user_id")
            if account_id in self.accounts and user_id in self.users
        ]
        through.objects.using(self.target).bulk_create(links)

    def set_core_types(self, types: dict[int, AccountType], core: dict[int, int]) -> None:
        """Oscar filed its core accounts under types (Assets / Sales, ...): keep that."""
        for oscar_pk, type_pk in (
            self.oscar["account"]
            .objects.using(self.source)
            .filter(pk__in=list(core), account_type_id__isnull=False)
            .values_list("pk", "account_type_id")
        ):
            if type_pk in types:
                Account.objects.using(self.target).filter(pk=core[oscar_pk]).update(
                    account_type=types[type_pk].pk
                )
