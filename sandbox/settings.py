"""
Settings for the sandbox: a small shop that uses django-managed-accounts.

SQLite by default (sandbox/db.sqlite3, or the file SANDBOX_SQLITE_PATH names).
Set SANDBOX_DATABASE_URL to use PostgreSQL (or MariaDB/MySQL) instead, for
example postgres://postgres@127.0.0.1:5432/accounts_sandbox. ``manage.py
rebuild_sandbox`` (run by ``make sandbox``) drops and recreates that one
database, so its name must contain "sandbox".
"""

import os
from decimal import Decimal
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("SANDBOX_SECRET_KEY", "sandbox-only-not-secret")
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]


def database_from_url(url):
    parts = urlsplit(url)
    engine = {
        "postgres": "django.db.backends.postgresql",
        "postgresql": "django.db.backends.postgresql",
        "mysql": "django.db.backends.mysql",
    }.get(parts.scheme)
    if engine is None:
        raise ValueError("SANDBOX_DATABASE_URL must start with postgres:// or mysql://")
    options = {"charset": "utf8mb4"} if engine.endswith("mysql") else {}
    return {
        "ENGINE": engine,
        "OPTIONS": options,
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


if os.environ.get("SANDBOX_DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["SANDBOX_DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SANDBOX_SQLITE_PATH", BASE_DIR / "db.sqlite3"),
            # Writers queue for the database lock instead of failing on upgrade.
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "djmoney",
    "accounts",
    "sandbox.shop",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "sandbox.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # sandbox/templates overrides accounts/base.html to use the shop's layout.
        "DIRS": [BASE_DIR / "templates"],
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
WSGI_APPLICATION = "sandbox.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "Europe/London"
LANGUAGE_CODE = "en-gb"
STATIC_URL = "/static/"
LOGIN_URL = "shop:login"

# The gift card lookup throttle counts failures in the default cache. The
# development server is one process, so Django's per-process LocMemCache is
# enough here; a real site needs a cache all its processes share.
ACCOUNTS_CODE_LOOKUP_MAX_FAILURES = 5
ACCOUNTS_CODE_LOOKUP_COOLDOWN = 15 * 60

ACCOUNTS_DEFAULT_CURRENCY = "GBP"
ACCOUNTS_CURRENCIES = ["GBP", "EUR"]
ACCOUNTS_MAX_INITIAL_VALUE = Decimal("1000.00")
# Keep payments refused by the ledger's rules, to show customers and staff why.
ACCOUNTS_RECORD_DECLINES = True

# The REST API (the package's "api" extra) with its OpenAPI schema and Swagger
# UI, whose files drf-spectacular-sidecar serves from here: no CDN. The demo
# runs without it when those packages are missing.
API_INSTALLED = all(
    find_spec(name) for name in ("rest_framework", "drf_spectacular", "drf_spectacular_sidecar")
)
if API_INSTALLED:
    INSTALLED_APPS += [
        "rest_framework",
        "rest_framework.authtoken",
        "drf_spectacular",
        "drf_spectacular_sidecar",
    ]
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": [
            # Tokens for curl and apps (POST /api/token/), sessions (with CSRF)
            # for the browser and Swagger UI after logging in to the shop.
            "rest_framework.authentication.TokenAuthentication",
            "rest_framework.authentication.SessionAuthentication",
        ],
        "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    }
    SPECTACULAR_SETTINGS = {
        "TITLE": "Teapot & Grinder: accounts API",
        "DESCRIPTION": "django-managed-accounts' REST API, in the sandbox.",
        "VERSION": "1",
        "SERVE_INCLUDE_SCHEMA": False,
        "SWAGGER_UI_DIST": "SIDECAR",
        "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
        "REDOC_DIST": "SIDECAR",
    }
# Customers may pay into wallets (the household wallet, Alice's euro wallet).
ACCOUNTS_API_PAYABLE_ACCOUNT_TYPES = ["wallets"]
