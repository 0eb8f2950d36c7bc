"""
Finding an account by its gift card code, throttled against guessing.

Whoever holds a code can spend the card, so a page that looks codes up is a
way to guess them. :func:`lookup_code` counts the lookups from each client
address that found nothing; after ``ACCOUNTS_CODE_LOOKUP_MAX_FAILURES`` in a
row the address is blocked for ``ACCOUNTS_CODE_LOOKUP_COOLDOWN`` seconds
(:class:`CodeLookupBlocked`, which views answer with 429). A lookup that
finds a card resets the count, and failures are forgotten a cooldown after
the first of them.

The counts live in the cache named by ``ACCOUNTS_CODE_LOOKUP_CACHE``, not in
the database: they are short-lived and written on every failed lookup. That
cache must be shared by every process serving the site (Redis, Memcached, or
Django's database cache); ``LocMemCache`` keeps a count per process, so with
N processes a client gets about N times the attempts.

An attempt is counted before the lookup runs (``incr``, atomic in the cache),
so a burst of simultaneous requests cannot all slip in before the first
failure is recorded.

Client addresses are ``REMOTE_ADDR``; behind reverse proxies you run, set
``ACCOUNTS_CODE_LOOKUP_PROXY_COUNT`` so the address is read from the entry
the outermost of them appended to ``X-Forwarded-For`` (the rest of the
header is whatever the client sent). IPv6 addresses are counted per /64
network, the block one subscriber usually gets.

The limit slows guessing down; it does not make it impossible. Someone who
holds one real card can reset the count with it between guesses, and many
addresses can guess together. What makes guessing hopeless is the code:
15 random characters of 31 are about 74 bits (``accounts.codes``).

Rejected alternative: a model counting attempts. It would write a row per
failed guess into the database being protected, and need a cleanup job.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from django.core.cache import caches
from django.http import HttpRequest

from .codes import normalize_code
from .conf import conf
from .exceptions import CodeLookupBlocked
from .models import Account

#: Longest text looked up: ``Account.code``'s column size.
MAX_CODE_LENGTH = 128


def client_address(request: HttpRequest) -> str:
    """The address failed lookups are counted against (see the module's docstring)."""
    address = request.META.get("REMOTE_ADDR") or ""
    proxies = conf.CODE_LOOKUP_PROXY_COUNT
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        # Each trusted proxy appends the address it was connected from; fewer
        # entries than proxies means the request did not come through them.
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LookupThrottle:
    """Counts one client address's failed code lookups in the configured cache."""

    def __init__(self, address: str) -> None:
        digest = hashlib.sha256(address.encode()).hexdigest()[:32]
        self.failures_key = "accounts:code-lookup:failures:%s" % digest
        self.blocked_key = "accounts:code-lookup:blocked:%s" % digest
        self.cache = caches[conf.CODE_LOOKUP_CACHE]
        self.attempt = 0

    def retry_after(self) -> int | None:
        """Seconds until the address may look codes up again, or None if it is not blocked."""
        until: float | None = self.cache.get(self.blocked_key)
        if until is None:
            return None
        return max(1, math.ceil(until - time.time()))

    def start(self) -> None:
        """Count an attempt before the lookup runs.

        Raises ``CodeLookupBlocked`` if the address is blocked, or becomes
        blocked because other attempts in flight used up what was left.
        """
        retry_after = self.retry_after()
        if retry_after is not None:
            raise CodeLookupBlocked(retry_after)
        cooldown = conf.CODE_LOOKUP_COOLDOWN
        self.cache.add(self.failures_key, 0, timeout=cooldown)
        try:
            self.attempt = self.cache.incr(self.failures_key)
        except ValueError:  # expired between add() and incr()
            self.cache.set(self.failures_key, 1, timeout=cooldown)
            self.attempt = 1
        if self.attempt > conf.CODE_LOOKUP_MAX_FAILURES:
            raise CodeLookupBlocked(self.block())

    def failed(self) -> None:
        """The lookup found nothing: the attempt stays counted; block at the limit."""
        if self.attempt >= conf.CODE_LOOKUP_MAX_FAILURES:
            self.block()

    def succeeded(self) -> None:
        """The lookup found a card: the failures in a row start again from zero."""
        self.cache.delete(self.failures_key)

    def block(self) -> int:
        """Block the address for the cooldown; return its length in seconds."""
        cooldown = conf.CODE_LOOKUP_COOLDOWN
        self.cache.set(self.blocked_key, time.time() + cooldown, timeout=cooldown)
        self.cache.delete(self.failures_key)
        return cooldown


def lookup_code(request: HttpRequest, text: object) -> Account | None:
    """Return the account whose code is ``text`` (normalized first), or None.

    Every call counts for the request's client address: one that finds
    nothing is a failure, one that finds an account resets the count. Raises
    ``CodeLookupBlocked`` without looking anything up while the address is
    blocked. The account may be of any status; callers decide what a frozen,
    closed or expired card means to them.
    """
    throttle = LookupThrottle(client_address(request))
    throttle.start()
    code = normalize_code(text)
    account = None
    if code and len(code) <= MAX_CODE_LENGTH:
        account = Account.objects.filter(code=code).first()
    if account is None:
        throttle.failed()
    else:
        throttle.succeeded()
    return account
