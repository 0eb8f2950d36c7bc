"""``manage.py export_ledger``: the journal, its filters, progress and exit codes."""

import csv
import io
import os
import subprocess
import sys
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from accounts import exports
from accounts.models import Transfer

from .utils import build_report_ledger

pytestmark = pytest.mark.django_db

D = Decimal
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ledger(db):
    return build_report_ledger()


class Terminal(io.StringIO):
    def isatty(self):
        return True


def export(tmp_path, *args, name="journal.csv", **options):
    output = tmp_path / name
    out, err = io.StringIO(), options.pop("stderr", io.StringIO())
    call_command(
        "export_ledger", *args, "--output", str(output), stdout=out, stderr=err, **options
    )
    with output.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream)), out.getvalue(), err.getvalue()


def test_the_journal_has_two_balanced_rows_per_transfer(ledger, tmp_path):
    rows, out, err = export(tmp_path, "--start", "2026-01-01", "--end", "2026-03-31")

    assert list(rows[0]) == exports.JOURNAL_COLUMNS
    assert len(rows) == 2 * Transfer.objects.count() == 28
    assert out == "Wrote 28 rows (14 transfers) to %s.\n" % (tmp_path / "journal.csv")
    assert err == ""  # not a terminal: no progress
    by_transfer = defaultdict(list)
    for row in rows:
        by_transfer[row["transfer"]].append(row)
    for legs in by_transfer.values():
        debit, credit = legs
        assert debit["debit"] and not debit["credit"]
        assert credit["credit"] and not credit["debit"]
        assert D(debit["debit"]) == D(credit["credit"])
        assert debit["currency"] == credit["currency"]
        assert debit["created"] == credit["created"]
    for currency in ("GBP", "EUR"):
        mine = [row for row in rows if row["currency"] == currency]
        assert sum(D(r["debit"] or 0) for r in mine) == sum(D(r["credit"] or 0) for r in mine)
    # Oldest first, with ISO dates.
    assert [row["date"] for row in rows] == sorted(row["date"] for row in rows)
    first = rows[:2]
    assert [(r["date"], r["created"], r["account"], r["debit"], r["credit"]) for r in first] == [
        ("2026-01-05", "2026-01-05T12:00:00+00:00", "Bank (GBP)", "100.00", ""),
        ("2026-01-05", "2026-01-05T12:00:00+00:00", "Gift card 1", "", "100.00"),
    ]
    assert (first[0]["account_role"], first[1]["account_type"]) == ("source", "gift-cards")


def test_a_refund_row_names_the_transfer_it_reverses(ledger, tmp_path):
    rows, _out, _err = export(tmp_path, "--start", "2026-01-12", "--end", "2026-01-12")

    assert len(rows) == 2
    assert {row["reverses"] for row in rows} == {ledger[1]["spend_gift1"].reference}
    assert {row["transfer"] for row in rows} == {ledger[1]["refund_gift1"].reference}


def test_an_account_type_keeps_transfers_touching_it_and_its_subtypes(ledger, tmp_path):
    wallets, _out, _err = export(
        tmp_path, "--start", "2026-01-01", "--end", "2026-12-31", "--account-type", "wallets"
    )
    parent, _out, _err = export(
        tmp_path,
        "--start=2026-01-01",
        "--end=2026-12-31",
        "--account-type=customer-money",
        name="parent.csv",
    )

    assert {r["transfer"] for r in wallets} == {
        ledger[1][name].reference
        for name in ("top_up_wallet", "spend_wallet", "euro_1", "euro_2", "reverse_wallet_top_up")
    }
    # Both legs of each transfer, so the journal still balances.
    assert len(wallets) == 10
    # The parent type takes in gift cards and wallets: all but the store credit's top-ups.
    assert len(parent) == 2 * (14 - 2)


def test_datetimes_bound_the_journal_exactly(ledger, tmp_path):
    rows, _out, _err = export(
        tmp_path, "--start", "2026-01-05T12:00:00+00:00", "--end", "2026-01-06T11:59:59"
    )

    assert {row["transfer"] for row in rows} == {ledger[1]["top_up_gift1"].reference}


def test_progress_is_shown_on_a_terminal_only(ledger, tmp_path, monkeypatch):
    monkeypatch.setattr(exports, "PAGE", 5)
    terminal = Terminal()

    export(tmp_path, "--start", "2026-01-01", "--end", "2026-03-31", stderr=terminal)

    assert terminal.getvalue() == ("\r  10 rows written\r  20 rows written\r  28 rows written\n")


def test_output_dash_writes_to_stdout(ledger):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "export_ledger", "--start", "2026-02-10", "--end", "2026-02-10", "--output", "-",
        stdout=out, stderr=err,
    )  # fmt: skip

    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["account"] for row in rows] == ["Gift card 2", "Bank (GBP)"]
    assert err.getvalue() == "Wrote 2 rows.\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-02-01", "--end", "2026-01-01"], "--end 2026-01-01 is before --start"),
        (["--start", "31/01/2026", "--end", "2026-02-01"], "--start '31/01/2026' is not an ISO"),
        (
            ["--start", "2026-01-01", "--end", "2026-02-01", "--account-type", "nope"],
            r"Unknown account type nope \(known: .*gift-cards",
        ),
    ],
)
def test_usage_errors_exit_with_status_2(ledger, tmp_path, args, message):
    output = tmp_path / "journal.csv"

    with pytest.raises(CommandError, match=message) as raised:
        call_command("export_ledger", *args, "--output", str(output))

    assert raised.value.returncode == 2
    assert not output.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end", "2026-02-01"], "the following arguments are required: --start"),
        (["--start", "2026-01-01", "--end", "2026-02-01", "--format", "xml"], "invalid choice"),
    ],
)
def test_missing_or_malformed_options_are_refused_by_the_parser(tmp_path, args, message):
    # From the command line argparse exits with status 2 for these.
    with pytest.raises(CommandError, match=message):
        call_command("export_ledger", *args, "--output", str(tmp_path / "journal.csv"))


def test_a_missing_directory_is_a_usage_error(tmp_path):
    with pytest.raises(CommandError, match="the directory .*nowhere does not exist") as raised:
        call_command(
            "export_ledger", "--start=2026-01-01", "--end=2026-01-02",
            "--output", str(tmp_path / "nowhere" / "journal.csv"),
        )  # fmt: skip

    assert raised.value.returncode == 2


def test_a_failure_while_writing_leaves_the_previous_file_alone(ledger, tmp_path):
    output = tmp_path / "journal.csv"
    output.write_text("last month's journal\n")

    def broken(*args, **kwargs):
        yield ["2026-01-05"] + [""] * (len(exports.JOURNAL_COLUMNS) - 1)
        raise OSError(28, "No space left on device")

    with mock.patch("accounts.management.commands.export_ledger.journal_rows", broken):
        with pytest.raises(CommandError, match="nothing was written .*No space left") as raised:
            call_command(
                "export_ledger", "--start=2026-01-01", "--end=2026-03-31", "--output", str(output)
            )

    assert raised.value.returncode == 1
    assert output.read_text() == "last month's journal\n"
    assert os.listdir(tmp_path) == ["journal.csv"]


def test_the_command_line_exits_with_status_2_on_a_usage_error(tmp_path):
    result = subprocess.run(
        [
            # No system checks: on Django 6.1 they open every database, and
            # this process's settings name one that need not exist.
            sys.executable, "-m", "django", "export_ledger", "--skip-checks",
            "--start", "2026-02-01", "--end", "2026-01-01",
            "--output", str(tmp_path / "journal.csv"),
        ],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert "CommandError: --end 2026-01-01 is before --start 2026-02-01." in result.stderr
