"""
Settings for the test suite.

The database comes from ``ACCOUNTS_TEST_DB`` (sqlite, postgresql or mariadb);
``ACCOUNTS_TEST_DB_NAME`` names it (the test database is ``test_<name>``), so
that two runs on one server can keep out of each other's way. Connection
details come from the ``ACCOUNTS_TEST_PG_*`` and ``ACCOUNTS_TEST_MYSQL_*``
variables and default to the local servers the README describes.
``ACCOUNTS_TEST_SQLITE_PATH`` puts the SQLite database in a file (the
benchmarks use it) instead of memory.
"""

import os
from importlib.util import find_spec
from typing import Any

DATABASES: dict[str, dict[str, Any]]
BACKEND = os.environ.get("ACCOUNTS_TEST_DB", "sqlite")
NAME = os.environ.get("ACCOUNTS_TEST_DB_NAME", "accounts")

if BACKEND == "sqlite":
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    if os.environ.get("ACCOUNTS_TEST_SQLITE_PATH"):
        # A file, for the benchmarks' several processes; writers queue for the lock.
        DATABASES["default"].update(
            NAME=os.environ["ACCOUNTS_TEST_SQLITE_PATH"],
            OPTIONS={"transaction_mode": "IMMEDIATE", "timeout": 60},
            TEST={"NAME": os.environ["ACCOUNTS_TEST_SQLITE_PATH"]},
        )
elif BACKEND == "postgresql":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": NAME,
            "HOST": os.environ.get("ACCOUNTS_TEST_PG_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ACCOUNTS_TEST_PG_PORT", "5432"),
            "USER": os.environ.get("ACCOUNTS_TEST_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("ACCOUNTS_TEST_PG_PASSWORD", ""),
            # ACCOUNTS_TEST_PG_PREPARED: server-side binding with psycopg's
            # prepared statements (the benchmarks measure both ways).
            "OPTIONS": (
                {"server_side_binding": True, "prepare_threshold": 5}
                if os.environ.get("ACCOUNTS_TEST_PG_PREPARED")
                else {}
            ),
            "TEST": {"NAME": "test_" + NAME},
        }
    }
    # A read replica for tests/test_replica.py: the default database itself
    # (a test mirror) until that module points it at a streaming standby.
    DATABASES["replica"] = {
        **DATABASES["default"],
        "OPTIONS": dict(DATABASES["default"]["OPTIONS"]),
        "TEST": {"MIRROR": "default"},
    }
elif BACKEND == "mariadb":
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.mysql",
            "NAME": NAME,
            "HOST": os.environ.get("ACCOUNTS_TEST_MYSQL_HOST", "127.0.0.1"),
            "PORT": os.environ.get("ACCOUNTS_TEST_MYSQL_PORT", "3306"),
            "USER": os.environ.get("ACCOUNTS_TEST_MYSQL_USER", "root"),
            "PASSWORD": os.environ.get("ACCOUNTS_TEST_MYSQL_PASSWORD", ""),
            "OPTIONS": {"charset": "utf8mb4"},
            "TEST": {
                "NAME": "test_" + NAME,
                "CHARSET": "utf8mb4",
                "COLLATION": "utf8mb4_unicode_ci",
            },
        }
    }
else:
    raise RuntimeError("ACCOUNTS_TEST_DB must be sqlite, postgresql or mariadb, not %r" % BACKEND)

# A second database, in memory whatever the backend above: where
# tests/test_oscar_import.py puts django-oscar-accounts' tables to import
# them from another alias. Only tests that ask for it can reach it.
DATABASES["oscar"] = {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
USE_TZ = True
# Not UTC, so that "a date means the whole day in the current time zone" is tested.
TIME_ZONE = "Europe/London"
USE_I18N = True
LANGUAGE_CODE = "en"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djmoney",
    "accounts",
    # No models: its flush command (tests/management/commands/flush.py)
    # empties the database after each transaction=True test, faster.
    "tests",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "tests.urls"
STATIC_URL = "/static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The library ships no login page: the admin's stands in. (The demo shop's tests
# run with tests/demo_settings.py, which installs the shop and its login.)
LOGIN_URL = "admin:login"

ACCOUNTS_DEFAULT_CURRENCY = "GBP"
ACCOUNTS_CURRENCIES = ["GBP", "EUR", "JPY"]

# The REST API (the "api" extra): installed and tested when its packages are.
API_INSTALLED = all(find_spec(name) for name in ("rest_framework", "drf_spectacular"))
if API_INSTALLED:
    INSTALLED_APPS += ["rest_framework", "rest_framework.authtoken", "drf_spectacular"]
    REST_FRAMEWORK = {
        # Token first: a request without credentials gets 401 with WWW-Authenticate.
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework.authentication.TokenAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }
    SPECTACULAR_SETTINGS = {"TITLE": "django-managed-accounts", "VERSION": "1"}
ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES = ["wallets"]
