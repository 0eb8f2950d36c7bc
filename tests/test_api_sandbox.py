"""
The sandbox serves the REST API, its schema and Swagger UI (from local files),
and the README's curl examples run against it as written.

A sandbox is built from scratch in a temporary SQLite file and served by
``manage.py runserver`` on a free port; the README's ``bash`` blocks of the
"REST API" section run in bash with ``127.0.0.1:8000`` replaced by that port.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .utils import require_api

require_api()

from openapi_spec_validator import validate  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.rst"

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("ACCOUNTS_TEST_DB", "sqlite") != "sqlite",
        reason="the sandbox's own SQLite database is the same in every run: tested in the "
        "SQLite run",
    ),
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed"),
]


def rest_api_bash_blocks():
    """The ``.. code-block:: bash`` blocks of the README's "REST API" section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index("\nREST API\n========\n") + 20
    following = re.search(r"\n[^\n]+\n=+\n", text[start:])
    assert following is not None
    section = text[start : start + following.start()]
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: bash\n\n((?:    .*\n|\n)+)", section, re.M):
        blocks.append("\n".join(line[4:] for line in match.group(1).splitlines()))
    return blocks


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    """A freshly built sandbox served on a free port: yields its base URL."""
    path = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SANDBOX_SQLITE_PATH": str(path)}
    manage = [sys.executable, str(ROOT / "sandbox" / "manage.py")]
    built = subprocess.run(
        [*manage, "rebuild_sandbox"], env=env, capture_output=True, text=True, timeout=300
    )
    assert built.returncode == 0, built.stderr
    assert "Swagger UI: http://127.0.0.1:8000/api/docs/" in built.stdout
    port = free_port()
    server = subprocess.Popen(
        [*manage, "runserver", "127.0.0.1:%d" % port, "--noreload"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = "http://127.0.0.1:%d" % port
    try:
        for _ in range(150):
            try:
                urllib.request.urlopen(url + "/api/schema/", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read()
                time.sleep(0.2)
        else:
            pytest.fail("the sandbox server did not answer")
        yield url
    finally:
        server.terminate()
        server.communicate(timeout=30)


def get(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers, response.read()


def json_documents(text):
    """Every JSON document printed one after another (curl prints no newline after one)."""
    decoder = json.JSONDecoder()
    documents, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            return documents
        document, position = decoder.raw_decode(text, position)
        documents.append(document)


def test_the_readme_curl_examples_run_against_the_sandbox(sandbox):
    blocks = rest_api_bash_blocks()
    assert len(blocks) == 8
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("http://127.0.0.1:8000", sandbox)
    result = subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    (
        accounts,
        statement,
        paid,
        paid_again,
        refused,
        bad,
        captured,
        hold,
        card,
        wallet,
        declines,
        repaid,
        repaid_again,
        no_debt,
    ) = json_documents(result.stdout)
    assert [(a["id"], a["name"]) for a in accounts["results"]] == [
        (7, "Barry's store credit"),
        (8, "Household wallet"),
    ]
    assert statement["account"] == 8 and len(statement["results"]) == 5
    assert statement["next"] and statement["previous"] is None
    assert paid == paid_again
    assert (paid["source"], paid["destination"], paid["amount"]) == (
        7,
        8,
        {"amount": "5.00", "currency": "GBP"},
    )
    assert paid["metadata"] == {"note": "pocket money"} and paid["notified_at"] is None
    assert refused["code"] == "insufficient_funds"
    assert refused["facts"]["amount"] == {"amount": "500.00", "currency": "GBP"}
    assert bad["code"] == "invalid" and list(bad["fields"]) == ["amount"]
    assert captured["amount"] == {"amount": "5.00", "currency": "GBP"}
    assert (hold["status"], hold["capture"]) == ("captured", captured["reference"])
    assert (card["state"], card["balance"]) == ("ready", {"amount": "25.00", "currency": "GBP"})
    assert wallet["name"] == "Alice's card wallet"
    assert wallet["spending_available"] == {"amount": "80.00", "currency": "GBP"}
    assert [(e["period"], e["used"]["amount"]) for e in wallet["spending_limits"]] == [
        ("day", "320.00"),
        ("month", "320.00"),
    ]
    assert declines["account"] == wallet["id"]
    [declined] = declines["results"]
    assert (declined["reason"], declined["reason_text"], declined["amount"]) == (
        "spending_limit_reached",
        "daily limit reached",
        {"amount": "95.00", "currency": "GBP"},
    )
    assert declined["facts"]["available"] == {"amount": "80.00", "currency": "GBP"}
    assert repaid == repaid_again
    assert (repaid["transfer"]["source"], repaid["transfer"]["destination"]) == (18, wallet["id"])
    assert repaid["amount"] == {"amount": "20.00", "currency": "GBP"}
    assert repaid["debt"] == {"amount": "338.40", "currency": "GBP"}
    assert no_debt == {
        "transfer": None,
        "amount": {"amount": "0.00", "currency": "GBP"},
        "debt": {"amount": "0.00", "currency": "GBP"},
    }


def test_the_sandbox_serves_a_valid_schema_of_the_api(sandbox):
    status, _headers, body = get(sandbox + "/api/schema/?format=json")
    schema = json.loads(body)
    validate(schema)
    assert "/api/accounts/transfers/" in schema["paths"]
    assert "/api/accounts/holds/{reference}/capture/" in schema["paths"]


def test_swagger_ui_is_served_from_local_files(sandbox):
    status, _headers, body = get(sandbox + "/api/docs/")
    page = body.decode()
    assert status == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(source.startswith("/static/") for source in sources), sources
    assert "cdn" not in page.lower()
    for source in sources:
        status, headers, body = get(sandbox + source)
        assert status == 200 and len(body) > 0, source
