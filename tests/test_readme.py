"""The README's examples, run as written."""

import re
from decimal import Decimal
from pathlib import Path

import pytest
from djmoney.money import Money

from accounts import facade, models

from .conftest import assert_ledger_consistent
from .factories import UserFactory

README = Path(__file__).resolve().parent.parent / "README.rst"


def python_blocks():
    """Every ``.. code-block:: python`` of the README, in order."""
    text = README.read_text(encoding="utf-8")
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: python\n\n((?:    .*\n|\n)+)", text, re.M):
        lines = [line[4:] for line in match.group(1).splitlines()]
        blocks.append("\n".join(lines).strip() + "\n")
    return blocks


def test_readme_is_valid_restructuredtext():
    """PyPI shows the README as the package's page: it must render without warnings."""
    import io

    import docutils.core

    warnings = io.StringIO()
    docutils.core.publish_doctree(
        README.read_text(encoding="utf-8"),
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_readme_has_python_examples():
    assert len(python_blocks()) >= 8


@pytest.mark.django_db
def test_readme_examples_run_as_written():
    namespace = {
        "barry": UserFactory(username="barry"),
        "staff_member": UserFactory(username="staff", is_staff=True),
    }
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    barry_account = namespace["barry_account"]
    barry_account.refresh_from_db()
    # +10 -10 (quick start), +20 -4 (idempotency), -5 (capture; 1 + 2 released)
    assert barry_account.balance == Money("11.00", "GBP")
    assert barry_account.held == Money("0.00", "GBP")
    assert namespace["again"] == namespace["pay"]
    assert namespace["payment"].amount == Money("5.00", "GBP")
    assert namespace["paid"].amount == Money("7.25", "GBP")
    assert_ledger_consistent()


@pytest.mark.django_db
def test_the_original_api_example_works_exactly_as_written():
    barry = UserFactory(username="barry")
    staff_member = UserFactory(username="staff", is_staff=True)

    source = models.Account.objects.create(credit_limit=None)  # no credit limit: a source of money
    barry_account = models.Account.objects.create(primary_user=barry)  # credit limit defaults to 0
    trans = facade.transfer(
        source=source, destination=barry_account, amount=Decimal("10.00"), user=staff_member
    )
    assert barry_account.balance == Money("10.00", "GBP")
    facade.reverse(trans, user=staff_member, description="Just an example")

    barry_account.refresh_from_db()
    assert barry_account.balance == Money("0.00", "GBP")
    assert barry_account.credit_limit == Money("0.00", "GBP")
    assert source.credit_limit is None
    assert trans.reversals.get().description == "Just an example"
    assert_ledger_consistent()
