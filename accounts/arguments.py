"""
Checking the arguments of the ledger's operations before anything is locked.

Text must be storable, identically, by every supported database: a NUL
character is refused by PostgreSQL (``DataError``) but stored by the others,
and a lone surrogate (half of a UTF-16 pair, e.g. ``"\\ud800"``) cannot be
encoded at all. Both are refused here with ``InvalidArgument`` before any
query runs, so the same text behaves the same on SQLite, PostgreSQL and
MariaDB.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidArgument


def storable(value: str, what: Any) -> str:
    """Return ``value`` if every database can store it exactly, else raise ``InvalidArgument``."""
    if "\x00" in value:
        raise InvalidArgument(
            _("%(what)s contains a NUL character, which databases cannot store."), what=what
        )
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(
            _("%(what)s contains a lone surrogate character, which is not valid text."),
            what=what,
        ) from None
    return value


def text(value: Any, what: Any, max_length: int | None, *, allow_empty: bool = True) -> Any:
    """Check an optional text argument: ``None``, or a storable string of at most ``max_length``.

    Raises ``InvalidArgument`` for another type, an empty string when
    ``allow_empty`` is false, a string that is too long, or text no database
    can store.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgument(
            _("%(what)s must be a string, got %(value)r."), what=what, value=value
        )
    if not allow_empty and not value:
        raise InvalidArgument(_("%(what)s must not be empty."), what=what)
    if max_length is not None and len(value) > max_length:
        raise InvalidArgument(
            _("%(what)s is %(length)s characters long; the most is %(max)s."),
            what=what,
            length=len(value),
            max=max_length,
        )
    return storable(value, what)
