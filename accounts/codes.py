"""
Gift card codes: generated with ``secrets``, typed by people, checked before lookup.

A code is a string over :data:`ALPHABET`, 31 characters with no look-alikes
(no 0/O, 1/I/L), whose last character is a check character. Codes are stored
on ``Account.code`` in their normalized form (upper case, no spaces or
dashes) and shown in groups: ``7KQ2-M9XD-HT4R-WB3N``.

The check character makes the weighted sum of the whole code zero modulo 31,
position ``i`` (from 1) weighing ``i``. Because 31 is prime and the weights
1..30 are distinct and non-zero modulo 31:

* changing one character from ``a`` to ``b`` at position ``i`` changes the
  sum by ``i·(b − a)``, never a multiple of 31;
* swapping ``a`` and ``b`` at positions ``i`` and ``j`` changes it by
  ``(i − j)·(b − a)``, never a multiple of 31, so every swap of two
  neighbours (and of any two characters) is caught.

Hence codes are at most :data:`MAX_LENGTH` (30) characters long. The check
character is public arithmetic, not a secret: it catches typing mistakes
before a lookup, while the 15 random characters of a default code (about 74
bits) are what make codes impossible to guess.

Rejected alternatives: the Luhn algorithm (mod 10) misses some neighbour
swaps and only covers digits; a mod-36 sum over 0-9A-Z cannot catch every
substitution because 36 is not prime, and keeps the look-alikes.
"""

from __future__ import annotations

import secrets

from django.apps import apps
from django.db import router
from django.utils.translation import gettext_lazy as _

from .exceptions import CodeGenerationError, InvalidArgument

#: 31 characters (a prime number) without look-alikes: no 0, O, 1, I or L.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
#: Length of a generated code, check character included: 15 random characters.
CODE_LENGTH = 16
#: The longest code the check character protects (weights 1..30 modulo 31).
MAX_LENGTH = len(ALPHABET) - 1
#: Characters per group when a code is shown.
GROUP_SIZE = 4
#: Generating a code gives up after this many collisions in a row.
MAX_ATTEMPTS = 10

_VALUES = {character: value for value, character in enumerate(ALPHABET)}
#: Ignored when a code is typed: spaces and the dashes people copy from documents.
_SEPARATORS = str.maketrans("", "", "-\u2010\u2011\u2012\u2013\u2014\u2212")


def normalize_code(text: object) -> str:
    """Return ``text`` as codes are stored: upper case, without spaces or dashes.

    ``" 7kq2-m9xd ht4r–wb3n "`` becomes ``"7KQ2M9XDHT4RWB3N"``. Anything that
    is not a string normalizes to ``""``. The result is not validated; see
    :func:`is_valid_code`.
    """
    if not isinstance(text, str):
        return ""
    return "".join(text.translate(_SEPARATORS).split()).upper()


def format_code(code: str, group: int = GROUP_SIZE) -> str:
    """Show a code in groups separated by dashes: ``"7KQ2-M9XD-HT4R-WB3N"``."""
    code = normalize_code(code)
    return "-".join(code[start : start + group] for start in range(0, len(code), group))


def _weighted_sum(code: str) -> int:
    """The sum of each character's value times its position (from 1), modulo 31."""
    return sum(position * _VALUES[character] for position, character in enumerate(code, 1)) % 31


def check_character(payload: str) -> str:
    """The character to append to ``payload`` so that the whole code is valid.

    Raises ``InvalidArgument`` if ``payload`` has characters outside
    :data:`ALPHABET` or is longer than ``MAX_LENGTH - 1``.
    """
    if not isinstance(payload, str) or any(c not in _VALUES for c in payload):
        raise InvalidArgument(
            _("%(payload)r has characters outside the code alphabet."), payload=payload
        )
    if len(payload) >= MAX_LENGTH:
        raise InvalidArgument(
            _("A code can be at most %(max)s characters long, check character included."),
            max=MAX_LENGTH,
        )
    position = len(payload) + 1
    # position · c ≡ −sum (mod 31); position has an inverse because 31 is prime.
    value = (-_weighted_sum(payload) * pow(position, -1, 31)) % 31
    return ALPHABET[value]


def is_valid_code(text: object) -> bool:
    """Whether ``text``, once normalized, is a well-formed code with a correct check character.

    Catches any single mistyped character and any swap of two characters.
    Says nothing about whether a card has this code.
    """
    code = normalize_code(text)
    if not 2 <= len(code) <= MAX_LENGTH or any(c not in _VALUES for c in code):
        return False
    return _weighted_sum(code) == 0


def _random_payload(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _position in range(length))


def generate_code(length: int = CODE_LENGTH) -> str:
    """Return a new random code, normalized, that no account has yet.

    ``length`` counts the check character (2 to ``MAX_LENGTH``; the default
    16 gives 15 random characters, about 74 bits). A code already on an
    account is thrown away and another drawn. The unique index on
    ``Account.code`` still decides: a code taken by a concurrent process
    between this check and your ``save()`` raises ``IntegrityError``, about
    as likely as guessing the code.

    Raises ``InvalidArgument`` for a bad length and ``CodeGenerationError``
    after ``MAX_ATTEMPTS`` collisions in a row.
    """
    # By name: this module is imported by the models.
    Account = apps.get_model("accounts", "Account")
    if isinstance(length, bool) or not isinstance(length, int) or not 2 <= length <= MAX_LENGTH:
        raise InvalidArgument(
            _("A code length must be an integer from 2 to %(max)s, not %(length)r."),
            max=MAX_LENGTH,
            length=length,
        )
    for _attempt in range(MAX_ATTEMPTS):
        payload = _random_payload(length - 1)
        code = payload + check_character(payload)
        # Where the router writes: a read replica may not have the newest codes yet.
        if not Account.objects.using(router.db_for_write(Account)).filter(code=code).exists():
            return code
    raise CodeGenerationError(attempts=MAX_ATTEMPTS)
