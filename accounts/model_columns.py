"""
The columns and the base the ledger's models share, and the references they
generate. ``accounts.models``, ``accounts.wallet_models`` and
``accounts.collection_models`` build their rows from these; this module
imports none of them.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .exceptions import LedgerImmutable
from .fields import ExactCharField
from .managers import refuse_ledger_write

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.db.models.expressions import Combinable

    from .exceptions import StrOrPromise


#: Characters of generated references: no 0/O, 1/I/L look-alikes.
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
REFERENCE_LENGTH = 16  # 31**16: about 79 bits, unguessable and practically collision-free


def generate_reference() -> str:
    """A short, unguessable transfer reference, not derived from the row id."""
    return generate_references(1)[0]


def generate_references(count: int) -> list[str]:
    """``count`` references, each character drawn uniformly from the alphabet.

    From the system's randomness (``secrets``), one byte per character:
    a byte below ``_KEPT_BYTES`` (the largest multiple of the alphabet's
    size that a byte can hold) gives the character at its remainder, and
    the others are dropped and drawn again, so every character is as
    likely as every other. ``bytes.translate`` maps and drops them all at
    once: a batch draws hundreds of references for the cost of one.
    """
    wanted = count * REFERENCE_LENGTH
    text = ""
    while len(text) < wanted:
        # About one byte in 32 is dropped: an eighth more covers it nearly always.
        needed = wanted - len(text)
        text += (
            secrets.token_bytes(needed + needed // 8 + 8)
            .translate(_BYTE_CHARACTER, _DROPPED_BYTES)
            .decode("ascii")
        )
    return [text[start : start + REFERENCE_LENGTH] for start in range(0, wanted, REFERENCE_LENGTH)]


#: Bytes below this are kept: 248, eight times the 31 characters.
_KEPT_BYTES = 256 - 256 % len(REFERENCE_ALPHABET)
#: Each kept byte's character (its remainder by the alphabet's size), and the bytes dropped.
_BYTE_CHARACTER = bytes(
    ord(REFERENCE_ALPHABET[byte % len(REFERENCE_ALPHABET)]) if byte < _KEPT_BYTES else 0
    for byte in range(256)
)
_DROPPED_BYTES = bytes(range(_KEPT_BYTES, 256))


#: ``request_fingerprint``'s help text where a caller's request wrote the row.
FINGERPRINT_HELP = _(
    "SHA-256 of the request that wrote this row, as asked: with the idempotency "
    "key, only an identical request is answered with this row."
)


def reference_field() -> ExactCharField[str | int | Combinable, str]:
    """``reference`` of ledger rows: generated, unique, never edited."""
    return ExactCharField(
        _("reference"), max_length=32, unique=True, default=generate_reference, editable=False
    )


def user_field() -> models.ForeignKey[
    AbstractBaseUser | Combinable | None, AbstractBaseUser | None
]:
    """``user`` of ledger rows: who asked; emptied when the user is deleted."""
    return models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )


def username_field(
    help_text: StrOrPromise = "",
) -> models.CharField[str | int | Combinable, str]:
    """``username`` of ledger rows: who asked, kept when the user is deleted."""
    return models.CharField(_("username"), max_length=150, blank=True, help_text=help_text)


def idempotency_key_field() -> ExactCharField[str | int | Combinable | None, str | None]:
    """``idempotency_key`` of rows a caller's request writes: optional, unique, exact."""
    return ExactCharField(_("idempotency key"), max_length=128, null=True, blank=True, unique=True)


def request_fingerprint_field(
    help_text: StrOrPromise = "",
) -> models.CharField[str | int | Combinable | None, str | None]:
    """``request_fingerprint`` of rows a caller's request writes (see :data:`FINGERPRINT_HELP`)."""
    return models.CharField(
        _("request fingerprint"),
        max_length=64,
        null=True,
        blank=True,
        editable=False,
        help_text=help_text,
    )


def created_field() -> models.DateTimeField[datetime | date | str | Combinable, datetime]:
    """``created`` of ledger rows: when the row was written, indexed."""
    return models.DateTimeField(_("created"), default=timezone.now, db_index=True)


def notified_at_field(
    help_text: StrOrPromise,
) -> models.DateTimeField[datetime | date | str | Combinable | None, datetime | None]:
    """``notified_at`` of transfers and holds: set once by ``mark_notified()``."""
    return models.DateTimeField(
        _("notified at"), null=True, blank=True, editable=False, help_text=help_text
    )


class AppendOnly(models.Model):
    """A ledger row written only by the locked path, in SQL: ``save()`` and ``delete()`` refuse.

    ``delete_refused`` is the message of a refused delete; ``change_refused``,
    where set, the message of a refused change of a saved row (else a change
    is refused as any write is, by ``refuse_ledger_write``).
    """

    delete_refused: ClassVar[StrOrPromise]
    change_refused: ClassVar[StrOrPromise | None] = None

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.change_refused is not None and not self._state.adding:
            raise LedgerImmutable(self.change_refused)
        refuse_ledger_write(type(self))

    save.alters_data = True  # type: ignore[attr-defined]

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise LedgerImmutable(self.delete_refused)

    delete.alters_data = True  # type: ignore[attr-defined]
