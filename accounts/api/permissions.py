"""
Who may see and move what through the API.

Every object a view reads comes from one of the querysets below, built for
the requesting user, so an id or reference the user may not see is answered
exactly like one that does not exist (404, or for an id in a request body, a
400 naming the field): guessing tells nothing.

=========================  =====================================================
Permission                 What it gives in the API
=========================  =====================================================
(none, logged in)          the accounts the user may use (primary or secondary
                           user): read them, their statements, declined
                           payments and the transfers and holds on them; pay
                           from them into accounts
                           ``ACCOUNTS_API_PAYMENT_POLICY`` allows
``accounts.view_account``  read every account, statement and declined payment
``accounts.view_transfer`` read every transfer
``accounts.view_hold``     read every hold
``accounts.view_batch``    read every batch (``view_transfer`` too: a batch is
                           its transfers)
``accounts.move_money``    move money between any accounts, reverse transfers,
                           place, capture and release holds, post batches,
                           repay debts, and read every transfer, hold and
                           batch (a shop's payment backend)
=========================  =====================================================
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission

from ..managers import AccountQuerySet, BatchQuerySet, HoldQuerySet, TransferQuerySet
from ..models import Account, Batch, Hold, Transfer

MOVE_MONEY = "accounts.move_money"
VIEW_ACCOUNTS = "accounts.view_account"
VIEW_TRANSFERS = "accounts.view_transfer"
VIEW_HOLDS = "accounts.view_hold"
VIEW_BATCHES = "accounts.view_batch"


def can_move_money(user: Any) -> bool:
    """Whether ``user`` may move money between any accounts (``accounts.move_money``)."""
    return bool(user and user.is_authenticated and user.has_perm(MOVE_MONEY))


def visible_accounts(user: Any) -> AccountQuerySet:
    """Every account for ``accounts.view_account``; else the accounts the user may use."""
    if user.has_perm(VIEW_ACCOUNTS):
        return Account.objects.all()
    return Account.objects.for_user(user)


def debitable_accounts(user: Any) -> AccountQuerySet:
    """The accounts ``user`` may take money from: any with ``move_money``, else their own."""
    if can_move_money(user):
        return Account.objects.all()
    return Account.objects.for_user(user)


def visible_transfers(user: Any) -> TransferQuerySet:
    """All transfers for ``view_transfer`` or ``move_money``; else those on the user's accounts."""
    if user.has_perm(VIEW_TRANSFERS) or can_move_money(user):
        return Transfer.objects.all()
    own = Account.objects.for_user(user).values("pk")
    return Transfer.objects.filter(Q(source__in=own) | Q(destination__in=own))


def visible_holds(user: Any) -> HoldQuerySet:
    """Every hold for ``view_hold`` or ``move_money``; else those reserving the user's money."""
    if user.has_perm(VIEW_HOLDS) or can_move_money(user):
        return Hold.objects.all()
    return Hold.objects.filter(source__in=Account.objects.for_user(user).values("pk"))


def visible_batches(user: Any) -> BatchQuerySet:
    """Every batch for ``view_batch``, ``view_transfer`` or ``move_money``; else none.

    A batch can carry many customers' transfers (a payroll of top-ups), so a
    customer reads the transfers on their own accounts, never a batch: theirs
    answers 404 like one that does not exist.
    """
    if user.has_perm(VIEW_BATCHES) or user.has_perm(VIEW_TRANSFERS) or can_move_money(user):
        return Batch.objects.all()
    return Batch.objects.none()


class MovesMoney(BasePermission):
    """Allows users with ``accounts.move_money``; checked after the object was found."""

    message = _("Only staff and services with the accounts.move_money permission may do this.")

    def has_permission(self, request: Any, view: Any) -> bool:
        return can_move_money(request.user)
