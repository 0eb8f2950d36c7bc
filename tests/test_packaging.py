"""What ships in the package (run against the installed wheel by `make test`)."""

import os
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
