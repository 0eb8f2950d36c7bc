"""
Settings for the demo shop's tests: tests/settings.py with the sandbox's shop
(``sandbox.shop``) installed and mounted at /shop/.

The library's tests run without the shop (tests/settings.py); the shop's
tests (``DEMO_TESTS`` in tests/utils.py) run as their own set with these
settings: ``runtests.py`` runs both sets, and ``pytest --ds
tests.demo_settings`` runs this one.
"""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "sandbox.shop"]
ROOT_URLCONF = "tests.demo_urls"
LOGIN_URL = "shop:login"
