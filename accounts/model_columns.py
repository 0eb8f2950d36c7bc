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
    # One draw from secrets, written in base 31: as random as a draw per
    # character, at a tenth of the cost on the write path.
    return _reference_text(secrets.randbelow(_REFERENCES))


def generate_references(count: int) -> list[str]:
    """``count`` references, drawn as :func:`generate_reference` draws one.

    From one read of the system's randomness for them all (a batch draws
    hundreds): each number is ``_REFERENCE_BITS`` random bits, kept when
    below the number of references and drawn again otherwise, as
    ``secrets.randbelow`` does.
    """
    found: list[str] = []
    size = (_REFERENCE_BITS + 7) // 8
    while len(found) < count:
        # Twice the draws still needed: about six in ten are kept.
        data = secrets.token_bytes(size * (2 * (count - len(found)) + 1))
        for start in range(0, len(data), size):
            number = int.from_bytes(data[start : start + size], "big")
            number >>= size * 8 - _REFERENCE_BITS
            if number < _REFERENCES:
                found.append(_reference_text(number))
                if len(found) == count:
                    break
    return found


def _reference_text(number: int) -> str:
    """``number`` (below ``_REFERENCES``) as a reference, in base 31."""
    # Two characters at a time (REFERENCE_LENGTH is even).
    characters = []
    for _position in range(REFERENCE_LENGTH // 2):
        number, pair = divmod(number, len(_REFERENCE_PAIRS))
        characters.append(_REFERENCE_PAIRS[pair])
    return "".join(characters)


#: How many references there are, and the bits a random draw of one takes.
_REFERENCES = len(REFERENCE_ALPHABET) ** REFERENCE_LENGTH
_REFERENCE_BITS = _REFERENCES.bit_length()
#: Every two-character string of the alphabet, the pair for n at n (base 31).
_REFERENCE_PAIRS = [high + low for high in REFERENCE_ALPHABET for low in REFERENCE_ALPHABET]


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
