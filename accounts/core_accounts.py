"""
Core accounts: the source of money, the sales account and the expired account.

There is one of each per currency in ``ACCOUNTS_CURRENCIES``, told apart by
``Account.role`` and ``Account.currency``; names come from settings and are
suffixed with the currency ("Bank (GBP)"), so every core account has its own
unique name. They are created after ``migrate`` and after ``flush`` (both send
``post_migrate``), and creating them again changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import DEFAULT_DB_ALIAS, IntegrityError, router, transaction

from .amounts import check_currency
from .conf import conf

if TYPE_CHECKING:
    from django.apps.registry import Apps

    from .models import Account


def role_names() -> dict[str, str]:
    return {
        "source": conf.SOURCE_NAME,
        "sales": conf.SALES_NAME,
        "expired": conf.EXPIRED_NAME,
    }


def core_name(role: str, currency: str) -> str:
    return "%s (%s)" % (role_names()[role], currency)


def ensure_core_account(model: type[Account], role: str, currency: str, *, using: str) -> Account:
    """Get or create the core account of ``role`` in ``currency``, with the configured name."""
    name = core_name(role, currency)
    manager = model._base_manager.db_manager(using)
    account = manager.filter(role=role, currency=currency).first()
    if account is None:
        try:
            with transaction.atomic(using=using):
                account = manager.create(
                    role=role,
                    currency=currency,
                    name=name,
                    # The source is where money comes from: it may go negative
                    # without limit. Sales and expired only ever receive.
                    credit_limit=None if role == "source" else 0,
                )
        except IntegrityError:
            # Created concurrently by another process: use that one.
            account = manager.get(role=role, currency=currency)
    elif account.name != name:
        manager.filter(pk=account.pk).update(name=name)
        account.name = name
    return account


def get_core_account(
    model: type[Account], role: str, currency: str | None, *, using: str | None
) -> Account:
    currency = check_currency(currency or conf.DEFAULT_CURRENCY)
    if role not in role_names():
        raise ValueError("Unknown core account role %r." % (role,))
    using = using or router.db_for_write(model)
    account = model._default_manager.db_manager(using).filter(role=role, currency=currency).first()
    return account or ensure_core_account(model, role, currency, using=using)


def create_core_accounts(
    sender: object = None,
    *,
    using: str = DEFAULT_DB_ALIAS,
    apps: Apps | None = None,
    **kwargs: Any,
) -> None:
    """``post_migrate`` receiver: make sure every configured currency has its core accounts."""
    if apps is None:
        from django.apps import apps as global_apps

        apps = global_apps
    try:
        model = apps.get_model("accounts", "Account")
    except LookupError:
        # Migrated backwards past the initial migration: nothing to create.
        return
    if not router.allow_migrate_model(using, model):
        return
    for currency in conf.CURRENCIES:
        check_currency(currency)
        for role in role_names():
            ensure_core_account(model, role, currency, using=using)
