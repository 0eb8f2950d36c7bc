"""What ships in the package (run against the installed wheel by `make test`)."""

import os
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

import accounts

PACKAGE = Path(accounts.__file__).parent


@pytest.mark.skipif(
    not os.environ.get("ACCOUNTS_TEST_EXPECT_INSTALLED"),
    reason="only when testing the installed wheel (runtests.py --installed)",
)
def test_the_installed_wheel_is_under_test():
    assert "site-packages" in PACKAGE.parts


def test_package_ships_migrations_and_type_information():
    assert (PACKAGE / "migrations" / "0001_initial.py").is_file()
    assert (PACKAGE / "py.typed").is_file()


def test_package_ships_the_report_templates():
    templates = PACKAGE / "templates" / "admin" / "accounts"
    for name in ("report/index.html", "report/report.html", "account/balance_chart.html"):
        assert (templates / name).is_file(), name


#: Run in a fresh interpreter: a project without the API imports every other
#: module of the package and runs the system checks.
WITHOUT_API = """
import sys
import django
from django.conf import settings

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
        "django.contrib.sessions", "django.contrib.messages", "djmoney", "accounts",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    USE_TZ=True,
)
django.setup()
import accounts.admin, accounts.facade, accounts.urls, accounts.views, accounts.expiry
from django.core import checks
problems = [m for m in checks.run_checks() if m.id.startswith("accounts.")]
assert problems == [], problems
# (django-money imports DRF by itself when it is installed; drf-spectacular, never.)
print(sorted(m for m in sys.modules if m.startswith(("accounts.api", "drf_spectacular"))))
"""


def test_package_ships_the_rest_api_and_imports_it_only_when_mounted():
    import subprocess
    import sys

    assert (PACKAGE / "api" / "urls.py").is_file()
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_API],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=PACKAGE.parent,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # The system checks load the API's payment policy, which needs no DRF.
    assert result.stdout.strip() == "['accounts.api', 'accounts.api.policy']"


ROOT = Path(__file__).resolve().parent.parent
needs_make = pytest.mark.skipif(
    not (ROOT / "makefile").is_file() or not shutil.which("make"),
    reason="make and the makefile are in the source tree only",
)


def make_dry_run(*args, **env):
    """What ``make -n`` would run, in a fresh-clone state (no virtual environment)."""
    result = subprocess.run(
        ["make", "-n", "VENV=/nonexistent/venv", *args],
        cwd=ROOT,
        env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


@needs_make
def test_make_sandbox_does_not_build_the_mariadb_driver():
    assert "mysqlclient" not in make_dry_run("sandbox")
    assert "mysqlclient" in make_dry_run(
        "sandbox", SANDBOX_DATABASE_URL="mysql://root@127.0.0.1/demo_sandbox"
    )


@needs_make
def test_make_installs_debian_packages_and_retries_the_driver_every_run():
    commands = make_dry_run("test")
    # Debian packages first (as root), then the venv, then the driver.
    assert commands.index("apt-get install") < commands.index("-m venv")
    for package in ("default-libmysqlclient-dev", "python3-dev", "build-essential", "chromium"):
        assert package in commands
    # The driver is checked by importing it, never by a stamp that could go stale.
    assert 'import MySQLdb" 2>/dev/null || ' in commands
    assert ".mysqlclient" not in commands and "touch /nonexistent/venv/bin/.mysql" not in commands
    # The install stamp is touched only after what it stands for installed.
    assert commands.index("pip install -q -r requirements.txt") < commands.index("touch ")


#: Files some tool would read before pyproject.toml, silently overriding it.
OVERRIDING_CONFIG = (
    "pytest.ini",
    ".pytest.ini",
    "tox.ini",
    "setup.cfg",
    "ruff.toml",
    ".ruff.toml",
    "mypy.ini",
    ".mypy.ini",
)


def test_every_tool_is_configured_in_pyproject_toml_alone():
    # runtests.py --installed copies pyproject.toml beside tests/, so this runs there too.
    root = Path(__file__).resolve().parent.parent
    config = tomllib.loads((root / "pyproject.toml").read_text())
    assert config["build-system"]["build-backend"] == "setuptools.build_meta"
    assert set(config["tool"]) == {"pytest", "ruff", "mypy", "django-stubs"}
    assert config["tool"]["pytest"]["ini_options"]["DJANGO_SETTINGS_MODULE"] == "tests.settings"
    assert config["tool"]["pytest"]["ini_options"]["filterwarnings"] == ["error"]
    assert "project" not in config  # the metadata is setup.py's
    assert [name for name in OVERRIDING_CONFIG if (root / name).exists()] == []
