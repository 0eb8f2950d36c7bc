"""
The root of the accounts app's exception tree, :class:`AccountException`, and
the helpers its messages for customers use. The tree, and every exception's
documentation, is in :mod:`accounts.exceptions`: import them from there.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from django.utils import formats, timezone
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise


#: A message: text, or lazily translated text (``gettext_lazy``).
StrOrPromise: TypeAlias = "str | _StrPromise"


def customer_account(account: object) -> str:
    """How a customer knows an account: its name, a gift card by its code, or "your account"."""
    from .codes import format_code

    name = getattr(account, "name", None)
    if name:
        return str(name)
    code = getattr(account, "code", None)
    if code:
        return str(_("gift card %(code)s") % {"code": format_code(code)})
    return str(_("your account"))


def customer_date(value: object, format_name: str = "DATE_FORMAT") -> str:
    """A date or datetime in the current time zone and the active locale's format."""
    if isinstance(value, datetime.datetime) and timezone.is_aware(value):
        value = timezone.localtime(value)
    if isinstance(value, datetime.date):
        return formats.date_format(value, format_name)
    return "" if value is None else str(value)


class AccountException(Exception):
    """Base class of every error the accounts app raises on purpose.

    ``str(exc)`` is the precise message for developers and staff;
    :attr:`user_message` the short one for customers.
    """

    #: The stable machine code of this refusal (the REST API's, a decline's reason).
    code = "refused"

    message: StrOrPromise = _("The accounts ledger refused the operation.")
    #: What a customer is told (see :attr:`user_message`); subclasses refine it.
    user_template: StrOrPromise = _("Sorry, this could not be done.")
    #: Everything the exception was raised with, also set as attributes.
    context: dict[str, Any]

    def __init__(self, message: StrOrPromise | None = None, **context: Any) -> None:
        for key, value in context.items():
            setattr(self, key, value)
        self.context = context
        text = self.message if message is None else message
        if context:
            text = text % context
        super().__init__(str(text))

    @property
    def user_message(self) -> str:
        """A short message fit for a customer, in the active language.

        Dates are in the current time zone and the locale's format, gift
        cards are named by their code as printed, and there are no internal
        references (primary keys, transfer references, raw timestamps).
        """
        return capfirst(str(self.get_user_template()) % self.user_facts())

    def get_user_template(self) -> StrOrPromise:
        """The translatable template of :attr:`user_message`."""
        return self.user_template

    def user_facts(self) -> dict[str, str]:
        """The values :meth:`get_user_template` refers to, formatted for a customer."""
        return {}
