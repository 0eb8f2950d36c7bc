"""
The test suite's own conventions, checked by parsing every test module.

- Every ``pytest.raises`` names one exact exception (never the catch-alls
  ``Exception``, ``BaseException`` or ``AccountException``) and has ``match=``,
  so a test cannot pass on the wrong refusal.
- No module under tests/ imports from ``conftest`` (it holds fixtures and
  hooks only, which pytest injects) or from a ``test_*`` module: what tests
  share lives in ``tests/utils.py`` or ``tests/factories.py``.
- The library's tests run without the demo shop (``sandbox.shop``): only the
  modules in ``DEMO_TESTS`` use it, and they run as their own set with
  ``tests/demo_settings.py``.
"""

import ast
from pathlib import Path

import pytest

from .utils import DEMO_TESTS

TESTS = Path(__file__).resolve().parent
#: Too broad to tell one refusal from another: name the exact subclass.
CATCH_ALLS = {"Exception", "BaseException", "AccountException"}


def suite_modules():
    """Every module under tests/ that pytest collects (test_*.py), nested ones too."""
    return sorted(TESTS.rglob("test_*.py"))


def location(path, node, root):
    return "%s:%d" % (path.relative_to(root), node.lineno)


def is_pytest_raises(call):
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "raises"
        and isinstance(func.value, ast.Name)
        and func.value.id == "pytest"
    )


def exception_names(node):
    """The names an expected-exception argument refers to (a name, a.b, or a tuple)."""
    if isinstance(node, ast.Tuple):
        return [name for element in node.elts for name in exception_names(element)]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.Name):
        return [node.id]
    return ["<%s>" % ast.unparse(node)]


def raises_problems(path, root=TESTS.parent):
    """What breaks the pytest.raises convention in one module, in line order."""
    problems = []
    calls = sorted(
        (node for node in ast.walk(ast.parse(path.read_text(), str(path)))),
        key=lambda node: (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)),
    )
    for node in calls:
        if not (isinstance(node, ast.Call) and is_pytest_raises(node)):
            continue
        keywords = {keyword.arg for keyword in node.keywords}
        if "match" not in keywords:
            problems.append(
                "%s: pytest.raises(%s) has no match=: add a regex fragment of the message"
                % (location(path, node, root), ", ".join(ast.unparse(a) for a in node.args))
            )
        expected = node.args[0] if node.args else None
        broad = sorted(CATCH_ALLS.intersection(exception_names(expected))) if expected else []
        if broad:
            problems.append(
                "%s: pytest.raises(%s) catches %s: name the exact exception class"
                % (location(path, node, root), ast.unparse(expected), " and ".join(broad))
            )
    return problems


def imported_modules(tree, path, root):
    """(node, dotted name) for every import, relative imports resolved against ``path``."""
    package = list(path.relative_to(root).parent.parts)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield node, module
            # "from . import test_facade" imports the module test_facade.
            for alias in node.names:
                yield node, "%s.%s" % (module, alias.name) if module else alias.name


def forbidden_import(name):
    """Why importing the dotted module ``name`` breaks the convention, or None."""
    first, *_, last = ["tests", *name.split(".")] if "." not in name else name.split(".")
    if first != "tests":
        return None  # another package's modules (accounts.test_mode would be no test)
    if last == "conftest":
        return "imports from conftest: move the helper to tests/utils.py (fixtures stay)"
    if last.startswith("test_"):
        return "imports the test module %s: move what it shares to tests/utils.py" % name
    return None


def import_problems(path, root=TESTS.parent):
    """What breaks the import convention in one module, in line order."""
    problems = set()
    for node, name in imported_modules(ast.parse(path.read_text(), str(path)), path, root):
        reason = forbidden_import(name)
        if reason is not None:
            problems.add((node.lineno, "%s: %s" % (location(path, node, root), reason)))
    return [problem for _, problem in sorted(problems)]


def test_the_convention_test_sees_the_whole_suite():
    names = {path.name for path in suite_modules()}
    assert {"test_facade.py", "test_conventions.py", "test_checks.py"} <= names


@pytest.mark.parametrize("path", suite_modules(), ids=lambda path: path.name)
def test_every_pytest_raises_names_the_exact_exception_and_has_match(path):
    problems = raises_problems(path)
    assert not problems, "\n".join(
        ["every pytest.raises names one exact exception and checks its message:", *problems]
    )


@pytest.mark.parametrize(
    "path",
    [path for path in sorted(TESTS.rglob("*.py")) if path.name != "conftest.py"],
    ids=lambda path: str(path.relative_to(TESTS)),
)
def test_no_module_imports_conftest_or_a_test_module(path):
    problems = import_problems(path)
    assert not problems, "\n".join(
        ["tests share helpers through tests/utils.py, never conftest or a test module:", *problems]
    )


def test_the_import_check_catches_every_spelling(tmp_path):
    (tmp_path / "tests").mkdir()
    module = tmp_path / "tests" / "test_example.py"
    module.write_text(
        "from .conftest import ledger_totals\n"
        "from tests.conftest import fund\n"
        "from . import conftest\n"
        "import tests.test_facade\n"
        "from .test_concurrency import run_concurrently\n"
        "from . import test_resilience, utils\n"
        "from .utils import ledger_totals\n"
        "from .factories import AccountFactory\n"
        "from accounts import test_mode\n"
        "from conftest import source\n"
    )
    problems = [problem.split(": ", 1) for problem in import_problems(module, root=tmp_path)]
    assert [(where.rsplit(":", 1)[1], why.split(":")[0]) for where, why in problems] == [
        ("1", "imports from conftest"),
        ("2", "imports from conftest"),
        ("3", "imports from conftest"),
        ("4", "imports the test module tests.test_facade"),
        ("5", "imports the test module tests.test_concurrency"),
        ("6", "imports the test module tests.test_resilience"),
        ("10", "imports from conftest"),
    ]


def test_the_raises_check_catches_a_missing_match_and_a_catch_all(tmp_path):
    module = tmp_path / "test_example.py"
    module.write_text(
        "def test_one():\n"
        "    with pytest.raises(InsufficientFunds):\n"
        "        pass\n"
        "    with pytest.raises(exceptions.AccountException, match='no'):\n"
        "        pass\n"
        "    with pytest.raises((ValueError, Exception), match='no'):\n"
        "        pass\n"
        "    with pytest.raises(InsufficientFunds, match='cannot cover'):\n"
        "        pass\n"
    )
    problems = [problem.split(": ", 1)[1] for problem in raises_problems(module, root=tmp_path)]
    assert problems == [
        "pytest.raises(InsufficientFunds) has no match=: add a regex fragment of the message",
        "pytest.raises(exceptions.AccountException) catches AccountException: "
        "name the exact exception class",
        "pytest.raises((ValueError, Exception)) catches Exception: name the exact exception class",
    ]


def test_the_library_tests_run_without_the_demo_shop(settings):
    # This module is a library test: it runs with tests/settings.py.
    assert "sandbox.shop" not in settings.INSTALLED_APPS
    assert not settings.ROOT_URLCONF.startswith("sandbox")


@pytest.mark.parametrize(
    "path",
    # (This module names what it looks for.)
    [p for p in suite_modules() if p.name not in DEMO_TESTS and p.name != "test_conventions.py"],
    ids=lambda path: path.name,
)
def test_only_the_demo_shops_tests_use_it(path):
    text = path.read_text()
    uses = [needle for needle in ("sandbox.shop", '"shop:', "/shop/") if needle in text]
    assert uses == [], (
        "%s uses the demo shop (%s): move the test to a module listed in DEMO_TESTS "
        "(tests/utils.py), which run with tests/demo_settings.py" % (path.name, ", ".join(uses))
    )
