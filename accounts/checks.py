"""
System checks for the accounts app's settings.

Ids are stable; never reuse a retired one.

* accounts.E001 ACCOUNTS_DEFAULT_CURRENCY is not a known ISO 4217 code.
* accounts.E002 ACCOUNTS_CURRENCIES is not a non-empty list of known codes.
* accounts.E003 ACCOUNTS_DEFAULT_CURRENCY is not in ACCOUNTS_CURRENCIES.
* accounts.E004 A setting and its older alias are both set, to different values.
* accounts.E005 ACCOUNTS_MIN_INITIAL_VALUE / ACCOUNTS_MAX_INITIAL_VALUE is not a
  non-negative Decimal.
* accounts.E006 ACCOUNTS_MIN_INITIAL_VALUE is greater than ACCOUNTS_MAX_INITIAL_VALUE.
* accounts.E007 The core account names are empty or not distinct.
* accounts.E008 ACCOUNTS_CODE_LOOKUP_MAX_FAILURES is not a positive integer.
* accounts.E009 ACCOUNTS_CODE_LOOKUP_COOLDOWN is not a positive integer (seconds).
* accounts.E010 ACCOUNTS_CODE_LOOKUP_CACHE is not an alias in CACHES.
* accounts.E011 ACCOUNTS_CODE_LOOKUP_PROXY_COUNT is not a non-negative integer.
* accounts.E012 ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES is not a list of account type codes.
* accounts.E013 ACCOUNTS_API_PAYMENT_POLICY is not the dotted path of a callable.
* accounts.E014 ACCOUNTS_BATCH_MAX_SIZE is not an integer from 1 to 2,000.
* accounts.E015 ACCOUNTS_PREPARE_STATEMENTS is not True or False.
* accounts.E016 ACCOUNTS_RETRY_ATTEMPTS is not a positive integer.
* accounts.E017 ACCOUNTS_RETRY_BACKOFF is not a non-negative number of seconds.
* accounts.E018 ACCOUNTS_COLLECTION_SOURCES is not None or a dict of currency code
  to account name.
* accounts.E019 ACCOUNTS_COLLECTION_SOURCES names a currency not in ACCOUNTS_CURRENCIES.
* accounts.E020 ACCOUNTS_TIME_ZONE is not a time zone name (IANA, e.g. "Europe/London").
* accounts.E021 ACCOUNTS_RECORD_DECLINES is not True or False.
* accounts.E022 ACCOUNTS_METADATA_MAX_BYTES is not a positive integer.
* accounts.W001 A MySQL/MariaDB database runs at REPEATABLE READ: reversal
  checks could read a stale snapshot.
* accounts.W002 ACCOUNTS_CODE_LOOKUP_CACHE is a DummyCache: the lookup
  throttle never blocks.
* accounts.W003 (database check) A MariaDB/MySQL column holding keys,
  references or codes does not compare exactly (its collation folds case,
  accents or trailing spaces).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .amounts import is_known_currency
from .conf import Settings, conf


def register() -> None:
    checks.register(check_settings, "accounts")
    checks.register(check_databases, "accounts")
    checks.register(check_code_lookup_settings, "accounts")
    checks.register(check_engine_settings, "accounts")
    checks.register(check_retry_settings, "accounts")
    checks.register(check_wallet_settings, "accounts")
    checks.register(check_exact_columns, "accounts", checks.Tags.database)
    checks.register(check_api_settings, "accounts")
    checks.register(check_collection_settings, "accounts")


def setting_error(
    name: str, value: object, must: str, error_id: str, hint: str | None = None
) -> checks.Error:
    """The error of setting ``name``, whose ``value`` is not what it ``must`` be."""
    return checks.Error("%s is %r; it must be %s." % (name, value, must), hint=hint, id=error_id)


def is_integer(value: object, minimum: int, maximum: float = math.inf) -> bool:
    """Whether ``value`` is an integer (``True`` is not) from ``minimum`` to ``maximum``."""
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= maximum


def check_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    default = conf.DEFAULT_CURRENCY
    if not is_known_currency(default):
        errors.append(
            checks.Error(
                "ACCOUNTS_DEFAULT_CURRENCY is %r, which is not an ISO 4217 currency code."
                % (default,),
                hint="Use a three-letter code such as 'GBP', 'EUR' or 'USD'.",
                id="accounts.E001",
            )
        )
    raw = getattr(settings, "ACCOUNTS_CURRENCIES", None)
    currencies = conf.CURRENCIES
    if raw is not None and (
        not isinstance(raw, (list, tuple)) or not raw or not all(isinstance(c, str) for c in raw)
    ):
        errors.append(
            setting_error(
                "ACCOUNTS_CURRENCIES",
                raw,
                "a non-empty list of currency codes",
                "accounts.E002",
                hint="For example ACCOUNTS_CURRENCIES = ['GBP', 'EUR'].",
            )
        )
    else:
        unknown = [c for c in currencies if not is_known_currency(c)]
        if unknown:
            errors.append(
                checks.Error(
                    "ACCOUNTS_CURRENCIES contains unknown currency codes: %s."
                    % ", ".join(repr(c) for c in unknown),
                    hint="Use ISO 4217 codes such as 'GBP', 'EUR' or 'USD'.",
                    id="accounts.E002",
                )
            )
        if default not in currencies:
            errors.append(
                checks.Error(
                    "ACCOUNTS_DEFAULT_CURRENCY %r is not in ACCOUNTS_CURRENCIES %r."
                    % (default, list(currencies)),
                    hint="Add it to ACCOUNTS_CURRENCIES.",
                    id="accounts.E003",
                )
            )
    for name, alias in Settings.ALIASES.items():
        if hasattr(settings, name) and hasattr(settings, alias):
            new, old = getattr(settings, name), getattr(settings, alias)
            if new != old:
                errors.append(
                    checks.Error(
                        "%s (%r) and its older name %s (%r) are both set, to different values."
                        % (name, new, alias, old),
                        hint="Remove %s." % alias,
                        id="accounts.E004",
                    )
                )
    bounds = {}
    for name in ("ACCOUNTS_MIN_INITIAL_VALUE", "ACCOUNTS_MAX_INITIAL_VALUE"):
        value = getattr(settings, name, None)
        if value is None:
            continue
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            errors.append(
                setting_error(
                    name,
                    value,
                    "a non-negative Decimal or None",
                    "accounts.E005",
                    hint="For example %s = Decimal('500.00')." % name,
                )
            )
        else:
            bounds[name] = value
    if (
        len(bounds) == 2
        and bounds["ACCOUNTS_MIN_INITIAL_VALUE"] > bounds["ACCOUNTS_MAX_INITIAL_VALUE"]
    ):
        errors.append(
            checks.Error(
                "ACCOUNTS_MIN_INITIAL_VALUE (%s) is greater than ACCOUNTS_MAX_INITIAL_VALUE (%s)."
                % (bounds["ACCOUNTS_MIN_INITIAL_VALUE"], bounds["ACCOUNTS_MAX_INITIAL_VALUE"]),
                hint="Swap them, or raise the maximum.",
                id="accounts.E006",
            )
        )
    names = [conf.SOURCE_NAME, conf.SALES_NAME, conf.EXPIRED_NAME]
    if not all(isinstance(n, str) and n.strip() for n in names) or len(set(names)) != 3:
        errors.append(
            checks.Error(
                "The core account names (source %r, sales %r, expired %r) must be "
                "non-empty and different." % tuple(names),
                hint="Check ACCOUNTS_SOURCE_NAME, ACCOUNTS_SALES_NAME and ACCOUNTS_EXPIRED_NAME.",
                id="accounts.E007",
            )
        )
    return errors


def check_databases(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    return isolation_warnings(settings.DATABASES)


def isolation_warnings(databases: dict[str, Any]) -> list[checks.CheckMessage]:
    warnings: list[checks.CheckMessage] = []
    for alias, options in databases.items():
        if "mysql" not in options.get("ENGINE", ""):
            continue
        level = str(options.get("OPTIONS", {}).get("isolation_level", "read committed")).lower()
        if level == "repeatable read":
            warnings.append(
                checks.Warning(
                    "Database %r runs at REPEATABLE READ." % alias,
                    hint=(
                        "accounts checks reversals with ordinary reads after taking row "
                        "locks; at REPEATABLE READ those reads can be stale. Use Django's "
                        "default, 'read committed'."
                    ),
                    id="accounts.W001",
                )
            )
    return warnings


def check_code_lookup_settings(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """The settings of the throttled gift card lookup (``accounts.lookup``)."""
    errors: list[checks.CheckMessage] = []
    for name, minimum, error_id, hint in (
        ("ACCOUNTS_CODE_LOOKUP_MAX_FAILURES", 1, "accounts.E008", "For example 5."),
        ("ACCOUNTS_CODE_LOOKUP_COOLDOWN", 1, "accounts.E009", "Seconds, for example 900."),
        (
            "ACCOUNTS_CODE_LOOKUP_PROXY_COUNT",
            0,
            "accounts.E011",
            "0 unless reverse proxies you run append the client address to "
            "X-Forwarded-For; then their number.",
        ),
    ):
        value = getattr(conf, name.removeprefix("ACCOUNTS_"))
        if not is_integer(value, minimum):
            must = "an integer of at least %d" % minimum
            errors.append(setting_error(name, value, must, error_id, hint=hint))
    alias = conf.CODE_LOOKUP_CACHE
    if not isinstance(alias, str) or alias not in settings.CACHES:
        errors.append(
            checks.Error(
                "ACCOUNTS_CODE_LOOKUP_CACHE is %r, which is not an alias in CACHES." % (alias,),
                hint="Name a cache every process shares, such as Redis or Memcached.",
                id="accounts.E010",
            )
        )
    elif settings.CACHES[alias].get("BACKEND", "").endswith(".DummyCache"):
        errors.append(
            checks.Warning(
                "ACCOUNTS_CODE_LOOKUP_CACHE is %r, a DummyCache: it stores nothing, so "
                "failed gift card code lookups are never counted or blocked." % alias,
                hint="Name a cache every process shares, such as Redis or Memcached.",
                id="accounts.W002",
            )
        )
    return errors


def check_exact_columns(
    app_configs: Any = None, databases: Any = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """Keys, references and codes compare exactly in the live database (MariaDB/MySQL).

    A database check: Django runs it for ``migrate``, ``check --database``
    and the test runner, which name the databases to look at.
    """
    from django.db import connections
    from django.db.utils import DatabaseError

    from .integrity import inexact_columns

    warnings: list[checks.CheckMessage] = []
    for alias in databases or ():
        connection = connections[alias]
        if connection.vendor != "mysql":
            continue
        try:
            found = inexact_columns(connection)
        except DatabaseError:
            continue  # not migrated yet: migrate creates the columns right
        for table, column, collation in found:
            warnings.append(
                checks.Warning(
                    "%s.%s in database %r compares under %s: keys, references or codes "
                    "that differ only in case, accents or trailing spaces would be taken "
                    "for the same one." % (table, column, alias, collation),
                    hint=(
                        "Run migrate (accounts 0007 sets a binary no-pad collation), or "
                        "ALTER the column to that collation."
                    ),
                    id="accounts.W003",
                )
            )
    return warnings


def check_api_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The REST API's settings (``accounts.api``); checked whether or not it is installed."""
    errors: list[checks.CheckMessage] = []
    types = conf.API_PAYABLE_ACCOUNT_TYPES
    if not isinstance(types, tuple) or not all(isinstance(c, str) and c for c in types):
        errors.append(
            setting_error(
                "ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES",
                getattr(settings, "ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES", None),
                "a list of account type codes",
                "accounts.E012",
                hint="For example ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES = ['wallets'].",
            )
        )
    path = conf.API_PAYMENT_POLICY
    problem = None
    try:
        policy = import_string(path) if isinstance(path, str) else None
    except ImportError as exc:
        problem = str(exc)
    else:
        if not callable(policy):
            problem = "it is not a callable"
    if problem is not None:
        errors.append(
            checks.Error(
                "ACCOUNTS_API_PAYMENT_POLICY is %r: %s." % (path, problem),
                hint=(
                    "Name a callable policy(user, source, destination) -> bool, for example "
                    "'accounts.api.policy.payable_by_type'."
                ),
                id="accounts.E013",
            )
        )
    return errors


def check_engine_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The settings of the posting engine: batch sizes, prepared statements."""
    errors: list[checks.CheckMessage] = []
    size = conf.BATCH_MAX_SIZE
    if not is_integer(size, 1, 2_000):
        errors.append(
            setting_error(
                "ACCOUNTS_BATCH_MAX_SIZE",
                size,
                "an integer from 1 to 2000",
                "accounts.E014",
                hint="The default, 1000, keeps a batch's statements well inside every "
                "database's limits on parameters.",
            )
        )
    if not isinstance(conf.PREPARE_STATEMENTS, bool):
        errors.append(
            setting_error(
                "ACCOUNTS_PREPARE_STATEMENTS",
                conf.PREPARE_STATEMENTS,
                "True or False",
                "accounts.E015",
                hint="False behind a pooler that moves sessions between transactions.",
            )
        )
    return errors


def check_retry_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The settings of ``accounts.retry`` (write conflicts on clusters, SERIALIZABLE)."""
    errors: list[checks.CheckMessage] = []
    attempts = conf.RETRY_ATTEMPTS
    if not is_integer(attempts, 1):
        errors.append(
            setting_error(
                "ACCOUNTS_RETRY_ATTEMPTS",
                attempts,
                "an integer of at least 1",
                "accounts.E016",
                hint="Attempts in all, the first included: for example 5 (1 never retries).",
            )
        )
    backoff = conf.RETRY_BACKOFF
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, (int, float, Decimal))
        or not math.isfinite(backoff)
        or backoff < 0
    ):
        errors.append(
            setting_error(
                "ACCOUNTS_RETRY_BACKOFF",
                backoff,
                "a number of seconds, zero or more",
                "accounts.E017",
                hint="For example 0.02: up to 20 ms before the second attempt, doubling after.",
            )
        )
    return errors


def check_wallet_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """The settings of spending limits, declined payments and metadata."""
    from zoneinfo import ZoneInfo

    errors: list[checks.CheckMessage] = []
    name = conf.TIME_ZONE
    try:
        valid = isinstance(name, str) and ZoneInfo(name) is not None
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        valid = False
    if not valid:
        errors.append(
            setting_error(
                "ACCOUNTS_TIME_ZONE",
                name,
                "the name of a time zone",
                "accounts.E020",
                hint='An IANA name such as "Europe/London" or "UTC": spending limits count '
                "calendar days, weeks and months in it.",
            )
        )
    if not isinstance(conf.RECORD_DECLINES, bool):
        errors.append(
            setting_error(
                "ACCOUNTS_RECORD_DECLINES", conf.RECORD_DECLINES, "True or False", "accounts.E021"
            )
        )
    size = conf.METADATA_MAX_BYTES
    if not is_integer(size, 1):
        errors.append(
            setting_error(
                "ACCOUNTS_METADATA_MAX_BYTES",
                size,
                "a positive integer",
                "accounts.E022",
                hint="The largest metadata allowed, in bytes of compact JSON; default 4096.",
            )
        )
    return errors


def check_collection_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Collecting debts (``accounts.collections``): where collected money comes from."""
    sources = conf.COLLECTION_SOURCES
    if sources is None:
        return []
    if not isinstance(sources, dict) or not all(
        isinstance(currency, str) and isinstance(name, str) and name.strip()
        for currency, name in sources.items()
    ):
        return [
            setting_error(
                "ACCOUNTS_COLLECTION_SOURCES",
                sources,
                "None or a dict of currency code to account name",
                "accounts.E018",
                hint="For example ACCOUNTS_COLLECTION_SOURCES = {'GBP': 'Direct debits (GBP)'}.",
            )
        ]
    unknown = sorted(currency for currency in sources if currency not in conf.CURRENCIES)
    if unknown:
        return [
            checks.Error(
                "ACCOUNTS_COLLECTION_SOURCES names currencies not in ACCOUNTS_CURRENCIES: %s."
                % ", ".join(repr(c) for c in unknown),
                hint="Add them to ACCOUNTS_CURRENCIES, or remove them here.",
                id="accounts.E019",
            )
        ]
    return []
