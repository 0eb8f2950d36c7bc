"""
Which accounts a customer may pay into through the REST API.

A customer (a user without ``accounts.move_money``) may debit only an account
they may use (``Account.objects.for_user``). Where the money may go is the
application's decision, made by the callable ``ACCOUNTS_API_PAYMENT_POLICY``
names: ``policy(user, source, destination) -> bool``. The default,
:func:`payable_by_type`, allows the accounts whose type is listed in
``ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES`` (subtypes included), and nothing when
that list is empty.

A policy gets the accounts as the API found them (not locked): it decides who
may pay whom, never whether there is money to pay with. The facade checks
funds, status, dates and currency under its row locks afterwards.

This module does not import Django REST framework, so the system checks can
import the configured policy whether or not the API's extra is installed.
"""

from __future__ import annotations

from typing import Any

from django.utils.module_loading import import_string

from ..conf import conf
from ..models import Account, AccountType


def payable_by_type(user: Any, source: Account, destination: Account) -> bool:
    """Allow a destination whose type is in ``ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES``.

    Subtypes of a listed type are included. Core accounts have no type, so a
    customer cannot pay them with this policy; write your own to allow that
    (see the README's "REST API" section).
    """
    codes = list(conf.API_PAYABLE_ACCOUNT_TYPES)
    if not codes or destination.account_type_id is None:
        return False
    roots = AccountType.objects.filter(code__in=codes).values_list("pk", flat=True)
    return destination.account_type_id in AccountType.objects.descendant_ids(roots)


def may_pay(user: Any, source: Account, destination: Account) -> bool:
    """Ask ``ACCOUNTS_API_PAYMENT_POLICY`` whether ``user`` may pay into ``destination``."""
    policy = import_string(conf.API_PAYMENT_POLICY)
    return bool(policy(user, source, destination))
