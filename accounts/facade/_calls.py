"""
What the facade's functions share: their arguments checked, as one call.

A call is checked before anything is locked, in the order its function
lists its checks, so the first bad argument is the one reported. What the
engine needs of it (the ``Request`` its idempotency key names, the context
of a decline, the keyword arguments of a posting) is built here once.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, TypeAlias

from django.utils.translation import gettext_lazy as _

from .. import amounts, arguments, declines, rules, transfers
from ..exceptions import InvalidArgument, SameAccount
from ..idempotency import Request
from ..models import Transfer
from ..posting import Order

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from djmoney.money import Money

    from ..arguments import JSON
    from ..models import Account

#: An amount as the facade takes it: ``Money``, or a ``Decimal`` in the
#: accounts' currency.
Amount: TypeAlias = "Money | Decimal"


#: What the checks call the arguments they refuse (made once, translated when shown).
_KEY, _MERCHANT_REFERENCE, _DESCRIPTION = (
    _("Idempotency key"),
    _("Merchant reference"),
    _("Description"),
)
_SOURCE, _DESTINATION = _("source"), _("destination")


def texts(merchant_reference: object, description: object) -> tuple[str | None, str | None]:
    """A call's merchant reference and description, checked (``Caller``, a batch's requests)."""
    return (
        arguments.text(merchant_reference, _MERCHANT_REFERENCE, 128),
        arguments.text(description, _DESCRIPTION, None),
    )


class Caller:
    """Who makes a call and the texts given with it, checked: storable, within their lengths."""

    def __init__(
        self, merchant_reference: object, description: object, key: object, user: object
    ) -> None:
        self.key: str | None = arguments.text(key, _KEY, 128, allow_empty=False)
        self.merchant_reference: str | None
        self.description: str | None
        self.merchant_reference, self.description = texts(merchant_reference, description)
        self.user: AbstractBaseUser | None = arguments.saved_user(user)

    def request(
        self,
        operation: str,
        metadata: dict[str, JSON] | None,
        effective_at: datetime | None,
        *,
        inherits: bool = False,
        **fields: object,
    ) -> Request:
        """The call as its idempotency key names it: ``fields``, the user and the description.

        ``metadata`` and ``effective_at`` are added as :func:`extra` says.
        """
        return Request(
            operation,
            self.key,
            **fields,
            user=self.user.pk if self.user is not None else None,
            description=self.description,
            **extra(metadata, effective_at, inherits=inherits),
        )

    def declined(
        self, using: str, operation: str, metadata: dict[str, JSON], **request: object
    ) -> AbstractContextManager[None]:
        """``declines.recorded`` for this call: its texts, user and metadata, and ``request``."""
        return declines.recorded(
            using,
            operation,
            merchant_reference=self.merchant_reference,
            description=self.description,
            user=self.user,
            idempotency_key=self.key,
            metadata=metadata,
            **request,
        )


@dataclass(frozen=True)
class Movement:
    """The checked arguments of a call that moves (or reserves) money between two accounts."""

    source: Account | int
    destination: Account | int
    source_id: int
    destination_id: int
    value: Decimal
    currency: str | None
    #: A hold's expiry; ``None`` for the other movements.
    expires_at: datetime | None
    metadata: dict[str, JSON]
    effective_at: datetime | None

    @classmethod
    def parse(
        cls,
        source: Account | int,
        destination: Account | int,
        amount: Amount,
        metadata: object,
        effective_at: object,
        expires_at: object = None,
    ) -> Movement:
        """Check the accounts, the amount, ``expires_at``, ``metadata`` and ``effective_at``.

        In that order: the first bad one is the one reported.
        """
        source_id, destination_id = pair(source, destination)
        value, currency = amounts.parse_amount(amount)
        return cls(
            source,
            destination,
            source_id,
            destination_id,
            value,
            currency,
            expires_at=arguments.expiry(expires_at),
            metadata=arguments.metadata(metadata),
            effective_at=arguments.effective_at(effective_at),
        )

    def request(self, operation: str, caller: Caller, **fields: object) -> Request:
        """The movement as its idempotency key names it, with ``fields`` of the operation."""
        return caller.request(
            operation,
            self.metadata,
            self.effective_at,
            inherits=False,
            source=self.source_id,
            destination=self.destination_id,
            amount=self.value,
            currency=self.currency,
            merchant_reference=caller.merchant_reference,
            **fields,
        )

    def declined(self, using: str, operation: str, caller: Caller) -> AbstractContextManager[None]:
        """:meth:`Caller.declined` for this movement."""
        return caller.declined(
            using,
            operation,
            self.metadata,
            source=self.source_id,
            destination=self.destination_id,
            amount=self.value,
            currency=self.currency,
        )

    def order(self, caller: Caller) -> Order:
        """The engine's order for this movement, made by ``caller``."""
        return Order(
            source_id=self.source_id,
            destination_id=self.destination_id,
            value=self.value,
            currency=self.currency,
            user=caller.user,
            merchant_reference=caller.merchant_reference,
            description=caller.description or "",
            instances=(self.source, self.destination),
            metadata=self.metadata,
            effective_at=self.effective_at,
        )


def extra(
    metadata: dict[str, JSON] | None, effective_at: datetime | None, *, inherits: bool = False
) -> dict[str, object]:
    """``metadata`` and ``effective_at`` as part of a request's fingerprint.

    Left out when not given (``None``, or ``{}`` where that is the
    default), so that requests made before they existed keep their
    fingerprints: a retry of one still replays. Where ``None`` means "the
    original's" (``inherits``: a reversal, a capture), an explicit ``{}`` is
    another request and is kept.
    """
    found: dict[str, object] = {}
    if metadata or (metadata is not None and inherits):
        found["metadata"] = metadata
    if effective_at is not None:
        found["effective_at"] = effective_at
    return found


def pair(source: Account | int, destination: Account | int) -> tuple[int, int]:
    """The primary keys of two different saved accounts (``SameAccount`` for one)."""
    source_id = arguments.account_id(source, _SOURCE)
    destination_id = arguments.account_id(destination, _DESTINATION)
    if source_id == destination_id:
        raise SameAccount(account=source)
    return source_id, destination_id


def amount_or_rest(amount: Amount | None) -> tuple[Decimal | None, str | None]:
    """``amount`` checked, or ``(None, None)`` for ``None``: what is left of the original."""
    return (None, None) if amount is None else amounts.parse_amount(amount)


def metadata_or_original(metadata: object) -> dict[str, JSON] | None:
    """``metadata`` checked, or ``None`` for ``None``: the original's."""
    return None if metadata is None else arguments.metadata(metadata)


def check_partial(allow_partial: bool, parent: object) -> None:
    """Refuse ``allow_partial`` for a reversal (one of ``parent``)."""
    if allow_partial and parent is not None:
        raise InvalidArgument(_("A reversal cannot be partial-by-funds (allow_partial)."))


def reversal_of(
    using: str,
    parent: object,
    source_id: int | None = None,
    destination_id: int | None = None,
) -> Transfer:
    """The saved transfer ``parent``, read from the database, checked as the parent of a reversal.

    The reversal moves from ``source_id`` to ``destination_id`` (default:
    from the original's destination back to its source).
    """
    original = transfers.original(using, arguments.saved_pk(parent, Transfer, _("transfer")))
    rules.check_reversal_shape(
        original,
        original.destination_id if source_id is None else source_id,
        original.source_id if destination_id is None else destination_id,
    )
    return original
