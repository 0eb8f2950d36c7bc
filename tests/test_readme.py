"""The README's examples, pasted as written into a shell, in order.

Every ``.. code-block:: python`` of README.rst is typed line by line into an
interactive console that starts empty, as ``manage.py shell`` would be after
the README's own setup block: no name is injected by the test, a block that
the interactive console cannot take (a statement right after an indented
block, say) fails, and so does a comment claiming a value the line does not
show. It runs on the suite's database here, and in ``test_sandbox.py``
inside a freshly built sandbox, through ``sandbox/manage.py shell``.
"""

import io

import pytest
from django.test import override_settings
from djmoney.money import Money

from sandbox import settings as sandbox_settings

from .utils import README, assert_ledger_consistent, paste_readme, python_blocks

SANDBOX_ACCOUNTS_SETTINGS = {
    name: getattr(sandbox_settings, name)
    for name in dir(sandbox_settings)
    if name.startswith("ACCOUNTS_") or name in ("TIME_ZONE", "LANGUAGE_CODE")
}


def test_readme_is_valid_restructuredtext():
    """PyPI shows the README as the package's page: it must render without warnings."""
    import docutils.core

    warnings = io.StringIO()
    docutils.core.publish_doctree(
        README.read_text(encoding="utf-8"),
        settings_overrides={"warning_stream": warnings, "report_level": 2, "halt_level": 5},
    )
    assert warnings.getvalue() == ""


def test_every_python_block_is_found_and_the_setup_comes_first():
    blocks = python_blocks()
    assert len(blocks) >= 17
    sources = [source for _line, source in blocks]
    setup = next(i for i, source in enumerate(sources) if "get_user_model()" in source)
    quick_start = next(i for i, source in enumerate(sources) if "barry_account =" in source)
    assert setup < quick_start
    assert all("barry" not in source for source in sources[:setup])


def test_a_block_the_interactive_shell_cannot_take_is_caught():
    from .utils import PastedConsole

    console = PastedConsole()
    console.paste(1, "for n in range(2):\n    n\nprint(n)\n")  # no blank line after the loop
    console.paste(10, "from decimal import Decimal\nDecimal('1')   # True\n")
    console.paste(20, "undefined_name\n")
    assert len(console.failures) == 3
    assert "SyntaxError" in console.failures[0]
    assert "the comment says True" in console.failures[1]
    assert "NameError" in console.failures[2]


@pytest.mark.django_db
@override_settings(**SANDBOX_ACCOUNTS_SETTINGS)
def test_the_readme_pasted_in_order_into_a_shell_runs_and_shows_what_it_says():
    console = paste_readme()

    assert console.failures == []
    names = console.locals
    barry_account = names["barry_account"]
    barry_account.refresh_from_db()
    # +10 -10 (quick start), +20 -4 (idempotency), -5 (capture; 1 + 2 released)
    assert barry_account.balance == Money("11.00", "GBP")
    assert barry_account.held == Money("0.00", "GBP")
    assert names["again"] == names["pay"]
    assert names["payment"].amount == Money("5.00", "GBP")
    assert names["paid"].amount == Money("7.25", "GBP")
    assert names["trans"].reversals.get().description == "Just an example"
    budget = names["budget"]
    budget.refresh_from_db()
    # -320 (conference tickets), +320 (repaid, of the 500.00 asked); the dinner declined
    assert budget.balance == Money("0.00", "GBP")
    assert [(d.reason, d.amount) for d in names["models"].Decline.objects.for_account(budget)] == [
        ("spending_limit_reached", Money("95.00", "GBP"))
    ]
    assert names["repaid_again"] == names["repaid"]
    assert names["source"].credit_limit is None
    assert_ledger_consistent()
