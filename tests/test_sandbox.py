"""`make sandbox` builds its database from scratch: migrate plus demo data.

The SQLite sandbox (what ``make sandbox`` builds by default) is rebuilt in the
SQLite run of the suite: it uses no database server, so the other runs would
only build it again. The PostgreSQL (and MariaDB) sandbox, with
SANDBOX_DATABASE_URL, is rebuilt in the run of the suite on that backend, in a
throwaway database named after ACCOUNTS_TEST_DB_NAME (``sandbox_<name>_test``),
dropped afterwards.
"""

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("ACCOUNTS_TEST_DB", "sqlite")
NAME = os.environ.get("ACCOUNTS_TEST_DB_NAME", "accounts")

#: Run inside the sandbox (``manage.py shell -c``); prints what the demo holds, as JSON.
INSPECT = """
import json
from django.contrib.auth import get_user_model
from django.db.models import Sum
from django.utils import timezone
from accounts.models import Account, CollectionRun, Debt, Hold, Transaction, Transfer
from sandbox.shop.models import Order

now = timezone.now()
legs = dict(
    Transaction.objects.values("account").annotate(total=Sum("amount"))
    .values_list("account", "total")
)
print(json.dumps({
    "users": sorted(get_user_model().objects.values_list("username", flat=True)),
    "movers": sorted(
        u.username for u in get_user_model().objects.filter(is_staff=True)
        if u.has_perm("accounts.move_money")
    ),
    "currency_totals": {
        row["currency"]: str(row["total"])
        for row in Transaction.objects.values("currency").annotate(total=Sum("amount"))
    },
    "unbalanced_transfers": Transaction.objects.values("transfer").annotate(
        total=Sum("amount")).exclude(total=0).count(),
    "balances_off": [
        a.pk for a in Account.objects.all() if a.balance.amount != legs.get(a.pk, 0)
    ],
    "transfers": Transfer.objects.count(),
    "legs": Transaction.objects.count(),
    "months": len({
        timezone.localtime(t).strftime("%Y-%m")
        for t in Transfer.objects.values_list("created", flat=True)
    }),
    "latest": Transfer.objects.order_by("-created").first().created <= now,
    "expired_with_money": [
        a.code for a in Account.objects.expired(now).open() if a.balance.amount > 0
    ],
    "frozen_cards": Account.objects.of_type("gift-cards").filter(status="frozen").count(),
    "cards": Account.objects.of_type("gift-cards").exclude(code=None).count(),
    "in_debt_on_credit": [
        a.name for a in Account.objects.filter(role=None)
        if a.credit_limit is not None and a.credit_limit.amount > 0 and a.balance.amount < 0
    ],
    "shared": Account.objects.filter(secondary_users__isnull=False).distinct().count(),
    "currencies": sorted(set(Transaction.objects.values_list("currency", flat=True))),
    "reversals": Transfer.objects.filter(parent__isnull=False).count(),
    "orders": Order.objects.count(),
    "order_months": len({timezone.localtime(o.created).strftime("%Y-%m")
                         for o in Order.objects.all()}),
    "active_holds": Hold.objects.filter(status="active").count(),
    "debts": sorted(
        (d.account.name, d.status, str(d.recovered.amount))
        for d in Debt.objects.select_related("account")
    ),
    "runs": sorted(CollectionRun.objects.values_list("status", flat=True)),
}))
"""


def manage(*args, env):
    return subprocess.run(
        [sys.executable, str(ROOT / "sandbox" / "manage.py"), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def rebuild_and_inspect(env):
    """Rebuild the sandbox twice (the second must start from a clean demo) and inspect it."""
    seen = []
    for _ in range(2):
        result = manage("rebuild_sandbox", env=env)
        assert result.returncode == 0, result.stderr
        for username, password, _who in [
            ("admin", "admin", ""),
            ("cashier", "cashier", ""),
            ("clerk", "clerk", ""),
            ("barry", "barry", ""),
        ]:
            assert "%-8s password %-8s" % (username, password) in result.stdout
        assert "Sandbox ready on http://127.0.0.1:8000/" in result.stdout
        assert "expired with £5.50 left" in result.stdout
        inspected = manage("shell", "-c", INSPECT, env=env)
        assert inspected.returncode == 0, inspected.stderr
        seen.append(json.loads(inspected.stdout.strip().splitlines()[-1]))
    assert seen[0]["transfers"] == seen[1]["transfers"]
    assert seen[0]["users"] == seen[1]["users"]
    return seen[1]


def assert_demo(demo):
    # The ledger sums to zero and agrees with itself.
    assert demo["currency_totals"] and all(
        float(total) == 0 for total in demo["currency_totals"].values()
    ), demo["currency_totals"]
    assert demo["unbalanced_transfers"] == 0
    assert demo["balances_off"] == []
    assert demo["legs"] == 2 * demo["transfers"]
    # A realistic small shop.
    assert demo["users"] == ["acme", "admin", "alice", "barry", "cashier", "clerk"]
    assert demo["movers"] == ["admin", "cashier"]  # and clerk is staff without it
    assert demo["cards"] >= 5
    assert len(demo["expired_with_money"]) == 1
    assert demo["frozen_cards"] == 1
    assert demo["in_debt_on_credit"] == ["Acme Trading Ltd", "Alice's card wallet"]
    assert demo["shared"] >= 1
    assert demo["currencies"] == ["EUR", "GBP"]
    assert demo["reversals"] >= 3
    assert demo["orders"] >= 20
    assert demo["months"] >= 6 and demo["order_months"] >= 6
    assert demo["latest"] is True
    assert demo["active_holds"] == 1
    # Acme's credit line and Alice's card wallet, collected monthly: the month
    # before last settled (the card wallet) and failed (Acme); last month's
    # debts pending, unless the build ran in the first moments of a month.
    collected = [debt for debt in demo["debts"] if debt[1] != "pending"]
    assert collected == [
        ["Acme Trading Ltd", "failed", "0.00"],
        ["Alice's card wallet", "succeeded", "88.75"],
    ]
    pending = [debt for debt in demo["debts"] if debt[1] == "pending"]
    if demo["runs"] == ["failed", "running"]:
        assert pending == [
            ["Acme Trading Ltd", "pending", "0.00"],
            ["Alice's card wallet", "pending", "0.00"],
        ]
    else:
        assert demo["runs"] == ["failed", "pending"] and pending == []


def assert_the_readme_runs_in_its_shell(env):
    """Every Python block of README.rst, pasted in order into ``sandbox/manage.py shell``."""
    script = "from tests.utils import paste_readme_and_report; paste_readme_and_report()"
    result = manage("shell", "-c", script, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"failures": []}
    checked = manage("check_ledger", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def assert_expiry_has_work(env):
    result = manage("close_expired_accounts", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert "Would close 1 expired account(s)" in result.stdout
    assert "would sweep 5.50 GBP" in result.stdout


@pytest.mark.skipif(
    BACKEND != "sqlite",
    reason="the SQLite sandbox uses no database server: it is built in the SQLite run",
)
def test_sandbox_sqlite_database_is_built_from_scratch_and_sums_to_zero(tmp_path):
    path = tmp_path / "sandbox.sqlite3"
    env = {"SANDBOX_SQLITE_PATH": str(path)}
    assert_demo(rebuild_and_inspect(env))
    assert_expiry_has_work(env)
    assert_the_readme_runs_in_its_shell(env)
    # Checked once more with plain SQL, without the app's code.
    with closing(sqlite3.connect(path)) as db:
        totals = db.execute(
            "SELECT currency, SUM(CAST(amount AS TEXT)) FROM accounts_transaction "
            "GROUP BY currency"
        ).fetchall()
        mismatched = db.execute(
            "SELECT a.id FROM accounts_account a LEFT JOIN accounts_transaction t "
            "ON t.account_id = a.id GROUP BY a.id "
            "HAVING ABS(COALESCE(SUM(t.amount), 0) - a.balance) > 0.00001"
        ).fetchall()
    assert totals and all(abs(total) < 1e-9 for _, total in totals)
    assert mismatched == []


def server_url(backend):
    """A URL for a throwaway sandbox database on the test database server."""
    env = os.environ
    if backend == "postgresql":
        scheme, prefix, defaults = "postgres", "ACCOUNTS_TEST_PG_", ("5432", "postgres")
    else:
        scheme, prefix, defaults = "mysql", "ACCOUNTS_TEST_MYSQL_", ("3306", "root")
    user = env.get(prefix + "USER", defaults[1])
    password = env.get(prefix + "PASSWORD", "")
    credentials = quote(user, safe="") + (":" + quote(password, safe="") if password else "")
    return "%s://%s@%s:%s/sandbox_%s_test" % (
        scheme,
        credentials,
        env.get(prefix + "HOST", "127.0.0.1"),
        env.get(prefix + "PORT", defaults[0]),
        NAME,
    )


@pytest.mark.skipif(
    BACKEND == "sqlite",
    reason="a database server sandbox is built in the PostgreSQL and MariaDB runs",
)
def test_sandbox_on_the_database_server_is_built_from_scratch_and_sums_to_zero():
    env = {"SANDBOX_DATABASE_URL": server_url(BACKEND)}
    try:
        assert_demo(rebuild_and_inspect(env))
        assert_expiry_has_work(env)
        assert_the_readme_runs_in_its_shell(env)
    finally:
        drop_sandbox_database(env)


def drop_sandbox_database(env):
    script = (
        "from django.db import connection\n"
        "connection.close()\n"
        "with connection._nodb_cursor() as cursor:\n"
        "    cursor.execute('DROP DATABASE IF EXISTS %s' % connection.ops.quote_name("
        "connection.settings_dict['NAME']))\n"
    )
    # Run from outside the sandbox database, which the DROP needs to be idle.
    result = manage("shell", "-c", script, env=env)
    assert result.returncode == 0, result.stderr


def test_the_rebuild_refuses_a_database_not_named_for_the_sandbox():
    env = {"SANDBOX_DATABASE_URL": "postgres://postgres@127.0.0.1:5432/shop_production"}
    result = manage("rebuild_sandbox", env=env)
    assert result.returncode == 1
    assert "Refusing to drop database 'shop_production'" in result.stderr
