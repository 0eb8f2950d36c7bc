"""
Settings for the accounts app, read lazily through one object.

Every default lives here. Nothing reads ``django.conf.settings`` at import
time, so ``override_settings`` in tests and late-configured projects both see
the current values. Bad values are reported by the system checks in
``accounts.checks``; the properties below return what is configured without
judging it.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import TypeVar, cast

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

_MISSING = object()

_T = TypeVar("_T")


#: The names the project's settings do not set. Django's settings object
#: keeps the values it has read, but looks a missing name up again each
#: time, raising and catching an AttributeError: on the write path, for
#: every setting left at its default, on every transfer. Forgotten whenever
#: a setting changes (``override_settings``, pytest-django's ``settings``).
_unset: set[str] = set()


@receiver(setting_changed)
def _forget_unset(**kwargs: object) -> None:
    _unset.clear()


class Settings:
    """The app's settings, each read from ``django.conf.settings`` on access."""

    #: Older setting names still honoured, mapped to the current name.
    ALIASES = {
        "ACCOUNTS_SALES_NAME": "ACCOUNTS_REDEMPTIONS_NAME",
        "ACCOUNTS_EXPIRED_NAME": "ACCOUNTS_LAPSED_NAME",
    }

    @staticmethod
    def _get(name: str, default: _T) -> _T:
        # A configured value is taken to be of the type its property declares,
        # unchecked here: the system checks (accounts.checks) judge it.
        for candidate in (name, Settings.ALIASES.get(name)):
            if candidate is None or candidate in _unset:
                continue
            value = getattr(settings, candidate, _MISSING)
            if value is not _MISSING:
                return cast(_T, value)
            _unset.add(candidate)
        return default

    @property
    def DEFAULT_CURRENCY(self) -> str:
        """Currency of accounts created without one (ISO 4217 code)."""
        return self._get("ACCOUNTS_DEFAULT_CURRENCY", "GBP")

    @property
    def CURRENCIES(self) -> tuple[str, ...]:
        """Currencies accounts may use; core accounts exist for each one."""
        value: str | Iterable[str] | None = self._get("ACCOUNTS_CURRENCIES", None)
        if value is None:
            return (self.DEFAULT_CURRENCY,)
        if isinstance(value, str):
            return (value,)
        return tuple(value)

    @property
    def SOURCE_NAME(self) -> str:
        """Name of the core account money comes from (it has no credit limit)."""
        return self._get("ACCOUNTS_SOURCE_NAME", "Bank")

    @property
    def SALES_NAME(self) -> str:
        """Name of the core account money is spent into.

        ``ACCOUNTS_REDEMPTIONS_NAME`` is the older spelling and is still read.
        """
        return self._get("ACCOUNTS_SALES_NAME", "Sales")

    @property
    def EXPIRED_NAME(self) -> str:
        """Name of the core account that receives money left on expired accounts.

        ``ACCOUNTS_LAPSED_NAME`` is the older spelling and is still read.
        """
        return self._get("ACCOUNTS_EXPIRED_NAME", "Expired accounts")

    @property
    def MIN_INITIAL_VALUE(self) -> Decimal | None:
        """Smallest amount a top-up from a core source account may move."""
        return self._get("ACCOUNTS_MIN_INITIAL_VALUE", None)

    @property
    def MAX_INITIAL_VALUE(self) -> Decimal | None:
        """Largest balance a top-up from a core source account may bring an account to."""
        return self._get("ACCOUNTS_MAX_INITIAL_VALUE", None)

    @property
    def BATCH_MAX_SIZE(self) -> int:
        """The most transfers one ``facade.transfer_many`` call may request."""
        return self._get("ACCOUNTS_BATCH_MAX_SIZE", 1000)

    @property
    def PREPARE_STATEMENTS(self) -> bool:
        """Whether PostgreSQL's one-statement transfer is prepared once per connection.

        Turn it off behind a pooler that moves sessions between transactions
        (PgBouncer in transaction mode before 1.21).
        """
        return self._get("ACCOUNTS_PREPARE_STATEMENTS", True)

    # Gift card code lookups (accounts.lookup, accounts.views) ------------------

    @property
    def CODE_LOOKUP_MAX_FAILURES(self) -> int:
        """Failed code lookups in a row after which a client address is blocked."""
        return self._get("ACCOUNTS_CODE_LOOKUP_MAX_FAILURES", 5)

    @property
    def CODE_LOOKUP_COOLDOWN(self) -> int:
        """Seconds a blocked client address waits; failures are also forgotten after it."""
        return self._get("ACCOUNTS_CODE_LOOKUP_COOLDOWN", 900)

    @property
    def CODE_LOOKUP_CACHE(self) -> str:
        """Alias (in ``CACHES``) of the cache that counts failed lookups.

        It must be shared by every process serving the site: a per-process
        cache (``LocMemCache``) gives each process its own count.
        """
        return self._get("ACCOUNTS_CODE_LOOKUP_CACHE", "default")

    @property
    def CODE_LOOKUP_PROXY_COUNT(self) -> int:
        """How many reverse proxies you run that append to ``X-Forwarded-For``.

        0 (the default) uses ``REMOTE_ADDR`` and ignores the header, which
        any client can forge.
        """
        return self._get("ACCOUNTS_CODE_LOOKUP_PROXY_COUNT", 0)

    # The REST API (accounts.api, an optional extra) ------------------------------

    @property
    def API_PAYABLE_ACCOUNT_TYPES(self) -> tuple[str, ...]:
        """Codes of the account types (their subtypes included) a customer may pay into.

        Read by the REST API's default payment policy
        (``accounts.api.policy.payable_by_type``). Empty by default: customers
        may move money through the API only where the application says so.
        """
        value: tuple[str, ...] | list[str] = self._get("ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES", ())
        return tuple(value) if isinstance(value, (list, tuple)) else value

    @property
    def API_PAYMENT_POLICY(self) -> str:
        """Dotted path of the callable deciding which accounts a customer may pay.

        ``policy(user, source, destination) -> bool``; staff with
        ``accounts.move_money`` are not asked.
        """
        return self._get("ACCOUNTS_API_PAYMENT_POLICY", "accounts.api.policy.payable_by_type")

    # Write conflicts (accounts.retry) --------------------------------------------

    @property
    def RETRY_ATTEMPTS(self) -> int:
        """Attempts at one operation the database aborted for a conflict (1: never retry)."""
        return self._get("ACCOUNTS_RETRY_ATTEMPTS", 10)

    @property
    def RETRY_BACKOFF(self) -> float:
        """Seconds: the longest random wait before the second attempt; it doubles after each."""
        return self._get("ACCOUNTS_RETRY_BACKOFF", 0.01)

    # Spending limits (accounts.limits) -------------------------------------------

    @property
    def TIME_ZONE(self) -> str:
        """The time zone whose calendar days, weeks and months spending limits count in."""
        zone: str | None = self._get("ACCOUNTS_TIME_ZONE", None)
        return zone or settings.TIME_ZONE or "UTC"

    # Declined payments -----------------------------------------------------------

    @property
    def RECORD_DECLINES(self) -> bool:
        """Whether business refusals of transfers, holds and captures are kept as Declines."""
        return self._get("ACCOUNTS_RECORD_DECLINES", False)

    # Collecting debts (accounts.collections) -------------------------------------

    @property
    def METADATA_MAX_BYTES(self) -> int:
        """The largest ``metadata`` allowed, as compact JSON in UTF-8 (bytes)."""
        return self._get("ACCOUNTS_METADATA_MAX_BYTES", 4096)

    @property
    def COLLECTION_SOURCES(self) -> dict[str, str] | None:
        """Names of the accounts collected money comes from, by currency.

        ``{"GBP": "Direct debits (GBP)"}``. A currency not listed (and
        ``None``, the default) uses the core source account of that currency,
        where top-ups come from. A collection run keeps the account it was
        created with.
        """
        return self._get("ACCOUNTS_COLLECTION_SOURCES", None)


conf = Settings()
