#!/usr/bin/env python
"""
Run the test suite on every database backend this machine can reach.

    python runtests.py                         # SQLite, PostgreSQL and MariaDB
    python runtests.py --backend postgresql    # one backend (repeatable)
    python runtests.py -- -k idempotency -x    # arguments after -- go to pytest
    python runtests.py --installed             # test the installed package, not ./accounts

Each backend runs two sets: the library's tests, without the demo shop
installed, then the demo shop's (sandbox.shop) with tests/demo_settings.py.

A backend whose server cannot be reached is skipped, with the reason, unless
the environment variable CI is "true": then it is a failure. Connection
details are read from the same variables as tests/settings.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BACKENDS = ("sqlite", "postgresql", "mariadb")
#: The suite's two sets, each run on every backend: the library's tests without
#: the demo shop (tests/settings.py), then the demo shop's own
#: (tests/demo_settings.py; tests/utils.py's DEMO_TESTS lists them).
TEST_SETS = (("library", []), ("demo shop", ["--ds", "tests.demo_settings"]))


def probe(backend: str) -> str | None:
    """Return None if the backend's server answers, else why not."""
    env = os.environ
    if backend == "sqlite":
        return None
    if backend == "postgresql":
        try:
            import psycopg
        except ImportError:
            return "the psycopg driver is not installed"
        try:
            psycopg.connect(
                host=env.get("ACCOUNTS_TEST_PG_HOST", "127.0.0.1"),
                port=int(env.get("ACCOUNTS_TEST_PG_PORT", "5432")),
                user=env.get("ACCOUNTS_TEST_PG_USER", "postgres"),
                password=env.get("ACCOUNTS_TEST_PG_PASSWORD", ""),
                dbname="postgres",
                connect_timeout=3,
            ).close()
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            return "PostgreSQL is not reachable: %s" % str(exc).strip().splitlines()[0]
        return None
    try:
        import MySQLdb
    except ImportError:
        return "the mysqlclient driver is not installed (needs default-libmysqlclient-dev)"
    try:
        MySQLdb.connect(
            host=env.get("ACCOUNTS_TEST_MYSQL_HOST", "127.0.0.1"),
            port=int(env.get("ACCOUNTS_TEST_MYSQL_PORT", "3306")),
            user=env.get("ACCOUNTS_TEST_MYSQL_USER", "root"),
            password=env.get("ACCOUNTS_TEST_MYSQL_PASSWORD", ""),
            connect_timeout=3,
        ).close()
    except Exception as exc:  # noqa: BLE001
        return "MariaDB is not reachable: %s" % str(exc).strip().splitlines()[0]
    return None


def main(argv: list[str]) -> int:
    if "--" in argv:
        split = argv.index("--")
        argv, pytest_args = argv[:split], argv[split + 1 :]
    else:
        pytest_args = []
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    parser.add_argument("--backend", action="append", choices=BACKENDS)
    parser.add_argument(
        "--set",
        action="append",
        choices=[label for label, _settings in TEST_SETS],
        dest="sets",
        help="run only this set (default: each, in turn)",
    )
    parser.add_argument(
        "--installed",
        action="store_true",
        help="import accounts from site-packages (run from a copy of tests/ outside the checkout)",
    )
    options = parser.parse_args(argv)
    backends = options.backend or list(BACKENDS)
    strict = os.environ.get("CI", "").lower() in ("true", "1", "yes")

    workdir = HERE
    if options.installed:
        workdir = tempfile.mkdtemp(prefix="accounts-installed-")
        ignore = shutil.ignore_patterns("__pycache__", "db.sqlite3")
        for name in ("tests", "sandbox"):
            shutil.copytree(os.path.join(HERE, name), os.path.join(workdir, name), ignore=ignore)
        # pyproject.toml holds pytest's settings (and the build system's, unused here).
        for name in ("README.rst", "pyproject.toml"):
            shutil.copy(os.path.join(HERE, name), workdir)

    results = []
    for backend in backends:
        reason = probe(backend)
        if reason is not None:
            results.append((backend, "FAILED" if strict else "skipped", reason))
            continue
        env = dict(os.environ, ACCOUNTS_TEST_DB=backend)
        if options.installed:
            env["ACCOUNTS_TEST_EXPECT_INSTALLED"] = "1"
        # Paths among the pytest arguments replace the default "tests".
        paths = [a for a in pytest_args if not a.startswith("-") and os.path.exists(a)]
        for label, settings_args in TEST_SETS:
            if options.sets and label not in options.sets:
                continue
            command = [
                sys.executable,
                "-m",
                "pytest",
                *settings_args,
                *([] if paths else ["tests"]),
                *pytest_args,
            ]
            name = "%s, %s" % (backend, label)
            print("\n=== %s: %s" % (name, " ".join(command)), flush=True)
            started = time.monotonic()
            code = subprocess.call(command, cwd=workdir, env=env)
            elapsed = "%.0fs" % (time.monotonic() - started)
            # pytest exits 5 when nothing was selected (a -k or -m filter, or
            # only the other set's modules named): not a failure.
            results.append((name, "passed" if code in (0, 5) else "FAILED", elapsed))

    print("\nSummary (Python %s):" % sys.version.split()[0])
    for name, outcome, detail in results:
        print("  %-23s %-8s %s" % (name, outcome, detail))
    if strict:
        print("  (CI=true: an unreachable database is a failure)")
    return 1 if any(outcome == "FAILED" for _, outcome, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
