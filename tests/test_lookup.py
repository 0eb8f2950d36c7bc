"""
Finding an account by its gift card code (``accounts.lookup``), throttled
against guessing: the client address failures are counted against, and the
count kept in the cache.

How the balance check page answers a blocked client is in ``test_views.py``.
"""

import time
from unittest import mock

import pytest
from django.core.cache import caches
from django.test import RequestFactory
from django.test.utils import override_settings

from accounts.codes import format_code
from accounts.exceptions import CodeLookupBlocked
from accounts.lookup import LookupThrottle, client_address, lookup_code

# Failed lookups are counted in the cache, which outlives a test.
pytestmark = pytest.mark.usefixtures("empty_caches")


def test_simultaneous_attempts_cannot_exceed_the_limit(db):
    # Attempts are counted before their lookups run: a burst of requests all
    # arriving before any failure is recorded is still cut off at the limit.
    throttles = [LookupThrottle("192.0.2.1") for _ in range(6)]
    for throttle in throttles[:5]:
        throttle.start()
    with pytest.raises(CodeLookupBlocked, match="try again in 15 minute"):
        throttles[5].start()
    with pytest.raises(CodeLookupBlocked, match="try again in 15 minute"):
        LookupThrottle("192.0.2.1").start()


def test_lookup_code_is_usable_outside_the_view(rf, card):
    request = rf.post("/")
    assert lookup_code(request, format_code(card.code).lower()) == card
    assert lookup_code(request, "") is None
    assert lookup_code(request, "X" * 500) is None


@pytest.mark.parametrize(
    ("meta", "proxies", "expected"),
    [
        ({"REMOTE_ADDR": "198.51.100.7"}, 0, "198.51.100.7"),
        ({"REMOTE_ADDR": "2001:db8:1:2:aaaa::1"}, 0, "2001:db8:1:2::/64"),
        ({"REMOTE_ADDR": "2001:db8:1:2:bbbb::9"}, 0, "2001:db8:1:2::/64"),
        ({"REMOTE_ADDR": "::ffff:198.51.100.7"}, 0, "198.51.100.7"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, 0, "10.0.0.1"),
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "9.9.9.9, 1.2.3.4"}, 1, "1.2.3.4"),
        (
            {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "9.9.9.9, 1.2.3.4, 10.0.0.2"},
            2,
            "1.2.3.4",
        ),
        # Fewer entries than proxies: the request did not come through them.
        ({"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4"}, 2, "10.0.0.1"),
        ({"REMOTE_ADDR": "10.0.0.1"}, 1, "10.0.0.1"),
    ],
)
def test_client_address(meta, proxies, expected):
    request = RequestFactory().get("/", **meta)
    with override_settings(ACCOUNTS_CODE_LOOKUP_PROXY_COUNT=proxies):
        assert client_address(request) == expected


def test_a_lookup_that_finds_a_card_starts_the_count_again(rf, card):
    request = rf.post("/", REMOTE_ADDR="192.0.2.9")
    for _ in range(4):
        assert lookup_code(request, "NOT-A-CODE") is None
    assert lookup_code(request, card.code) == card
    for _ in range(4):
        assert lookup_code(request, "NOT-A-CODE") is None
    # The fifth failure in a row is answered, and blocks the address: the
    # next lookup is refused, with the right code too.
    assert lookup_code(request, "NOT-A-CODE") is None
    with pytest.raises(CodeLookupBlocked, match="try again in 15 minute"):
        lookup_code(request, card.code)


def test_a_block_says_how_long_it_has_left_and_lifts_after_the_cooldown(db):
    throttle = LookupThrottle("192.0.2.1")
    assert throttle.retry_after() is None
    assert throttle.block() == 900
    start = time.time()
    with mock.patch("time.time", return_value=start + 600):
        assert 299 <= throttle.retry_after() <= 300
    # The cache forgets the block after the cooldown (its timeout).
    caches["default"].delete(throttle.blocked_key)
    assert throttle.retry_after() is None
    throttle.start()


@override_settings(ACCOUNTS_CODE_LOOKUP_MAX_FAILURES=2)
def test_the_limit_comes_from_settings(db):
    for _ in range(2):
        LookupThrottle("192.0.2.1").start()
    with pytest.raises(CodeLookupBlocked, match="try again in 15 minute"):
        LookupThrottle("192.0.2.1").start()
    LookupThrottle("192.0.2.2").start()
