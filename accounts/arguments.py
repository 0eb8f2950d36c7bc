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

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, TypeAlias, cast

from django.apps import apps
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .exceptions import InvalidAccount, InvalidArgument

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

    from .exceptions import StrOrPromise
    from .models import Account

#: Who performs an operation: a user, or an anonymous user or ``None``
#: (recorded as nobody).
User: TypeAlias = "AbstractBaseUser | AnonymousUser | None"


def storable(value: str, what: StrOrPromise) -> str:
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


def text(
    value: object, what: StrOrPromise, max_length: int | None, *, allow_empty: bool = True
) -> str | None:
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


def account_id(account: Account | int, role: StrOrPromise) -> int:
    """The primary key of a saved account given as an ``Account`` or its id.

    Raises ``InvalidAccount`` for an unsaved account or anything else.
    """
    if type(account) is int:
        return account
    if isinstance(account, apps.get_model("accounts", "Account")):
        if account.pk is None:
            raise InvalidAccount(
                _("The %(role)s account is not saved yet; save it before moving money."),
                role=role,
            )
        return int(account.pk)
    if isinstance(account, int) and not isinstance(account, bool):
        return account
    raise InvalidAccount(
        _("The %(role)s must be an Account, got %(account)r."), role=role, account=account
    )


def saved_pk(value: object, model: type[Model], what: StrOrPromise) -> int:
    """The primary key of a saved ``model`` instance; ``InvalidArgument`` otherwise."""
    if not isinstance(value, model) or value.pk is None:
        raise InvalidArgument(_("%(value)r is not a saved %(what)s."), value=value, what=what)
    return int(value.pk)


def saved_user(user: object) -> AbstractBaseUser | None:
    """The user to record: a saved user, or ``None`` (anonymous users, ``None``)."""
    return cast("AbstractBaseUser", user) if getattr(user, "pk", None) else None


def expiry(expires_at: object) -> datetime | None:
    """``None``, or an aware datetime (whether it is in the future is judged under the lock)."""
    if expires_at is not None and (
        not isinstance(expires_at, datetime) or timezone.is_naive(expires_at)
    ):
        raise InvalidArgument(
            _("expires_at %(expires_at)r must be an aware datetime in the future, or None."),
            expires_at=expires_at,
        )
    return expires_at


#: The JSON values metadata may hold, besides lists and objects.
_SCALARS = (str, int, float, bool, type(None))

#: A JSON value, as metadata holds it.
JSON: TypeAlias = "str | int | float | bool | None | list[JSON] | dict[str, JSON]"


def metadata(value: object, what: StrOrPromise | None = None) -> dict[str, JSON]:
    """``value`` as metadata: a JSON object of JSON values, within ``ACCOUNTS_METADATA_MAX_BYTES``.

    ``None`` is ``{}``. Keys are strings; values are strings, integers,
    finite floats, booleans, ``None``, and lists and objects of those (no
    ``Decimal``, tuple, set, bytes or datetime: each would come back from
    the database as something else, or not at all). Text is checked as all
    text is (:func:`storable`). The size is that of the compact JSON
    encoding in UTF-8, the form the fingerprint and the databases see.
    Returns a copy, so that a caller changing its dict later changes
    nothing stored. Raises ``InvalidArgument`` naming what is wrong.
    """
    from .conf import conf

    what = what if what is not None else _("Metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(
            _("%(what)s must be a JSON object (a dict with string keys), got %(value)r."),
            what=what,
            value=value,
        )
    checked = _json_value(value, what, "metadata")
    encoded = json.dumps(checked, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    size = len(encoded.encode("utf-8"))
    if size > conf.METADATA_MAX_BYTES:
        raise InvalidArgument(
            _(
                "%(what)s is %(size)s bytes as JSON; the most is %(max)s "
                "(ACCOUNTS_METADATA_MAX_BYTES)."
            ),
            what=what,
            size=size,
            max=conf.METADATA_MAX_BYTES,
        )
    assert isinstance(checked, dict)
    return checked


def _json_value(value: object, what: StrOrPromise, path: str) -> JSON:
    """A checked copy of one JSON value at ``path`` (``metadata["items"][0]``)."""
    if isinstance(value, dict):
        found: dict[str, JSON] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidArgument(
                    _("%(what)s: key %(key)r in %(path)s is not a string."),
                    what=what,
                    key=key,
                    path=path,
                )
            storable(key, what)
            found[key] = _json_value(item, what, "%s[%r]" % (path, key))
        return found
    if isinstance(value, list):
        return [_json_value(item, what, "%s[%d]" % (path, n)) for n, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(
            _("%(what)s: %(path)s is %(value)r; JSON has no NaN or Infinity."),
            what=what,
            path=path,
            value=value,
        )
    if not isinstance(value, _SCALARS):
        raise InvalidArgument(
            _(
                "%(what)s: %(path)s is %(value)r (%(type)s), which is not a JSON value: "
                "use a string, number, true/false, null, a list or an object."
            ),
            what=what,
            path=path,
            value=value,
            type=type(value).__name__,
        )
    if isinstance(value, str):
        storable(value, what)
    return value


def effective_at(value: object) -> datetime | None:
    """``None``, or an aware datetime (whether it is in the past is judged under the lock)."""
    if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
        raise InvalidArgument(
            _(
                "effective_at %(effective_at)r must be an aware datetime no later than the "
                "posting time, or None."
            ),
            effective_at=value,
        )
    return value


def check_effective_at(value: datetime | None, now: datetime) -> None:
    """Refuse an ``effective_at`` later than ``now``, the database's clock under the lock."""
    if value is not None and value > now:
        raise InvalidArgument(
            _(
                "effective_at %(effective_at)s is in the future: the database's clock says "
                "%(now)s; a movement takes effect no later than it is posted."
            ),
            effective_at=value,
            now=now,
        )
