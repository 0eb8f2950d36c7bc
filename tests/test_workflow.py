"""
The GitHub workflow is hardened, and it runs what .ci/run runs: ``make lint``,
and the suite on every backend ``make test`` covers (one job per backend,
``python runtests.py --backend <db>``), with ``CI=true``.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "tests.yml"
CI_RUN = ROOT / ".ci" / "run"

pytestmark = pytest.mark.skipif(
    not WORKFLOW.is_file(), reason="the workflow and .ci/run are in the source tree only"
)


@pytest.fixture(scope="module")
def workflow():
    yaml = pytest.importorskip("yaml", reason="PyYAML reads the workflow")
    # YAML 1.1 reads the key "on" as True; nothing here needs the triggers.
    return yaml.safe_load(WORKFLOW.read_text())


def commands(job):
    """The shell commands of a job's steps, one line each (continuations joined)."""
    lines = []
    for step in job["steps"]:
        if "run" in step:
            lines += step["run"].replace("\\\n", " ").strip().splitlines()
    return [" ".join(line.split()) for line in lines]


def ci_run_commands():
    return [line.strip() for line in CI_RUN.read_text().splitlines() if line.strip()]


def make_recipe(target):
    """The recipe lines of a makefile target, as written."""
    text = (ROOT / "makefile").read_text()
    match = re.search(r"^%s:[^\n]*\n((?:\t[^\n]*\n)+)" % re.escape(target), text, re.MULTILINE)
    assert match, "no target %r in the makefile" % target
    return [line.strip() for line in match.group(1).splitlines()]


def test_both_lint_with_make_lint(workflow):
    assert "make lint" in ci_run_commands()
    assert [c for c in commands(workflow["jobs"]["lint"]) if c.startswith("make ")] == [
        "make lint PYTHON=python"
    ]


def test_the_workflow_runs_the_suite_once_per_backend_that_make_test_covers(workflow):
    import runtests

    # .ci/run: `make test`, whose recipe runs runtests.py on every backend.
    assert "make test" in ci_run_commands()
    assert "$(BIN)/python runtests.py" in make_recipe("test")
    job = workflow["jobs"]["tests"]
    assert job["strategy"]["matrix"]["backend"] == list(runtests.BACKENDS)
    assert [c for c in commands(job) if "runtests.py" in c] == [
        "python runtests.py --backend ${{ matrix.backend }}"
    ]


def test_both_treat_an_unreachable_database_as_a_failure(workflow):
    assert "export CI=true" in ci_run_commands()
    assert workflow["jobs"]["tests"]["env"]["CI"] == "true"
    assert workflow["jobs"]["wheel"]["env"]["CI"] == "true"


def test_the_workflow_reads_only_and_cancels_superseded_runs(workflow):
    assert workflow["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in workflow["jobs"].values())
    assert workflow["concurrency"] == {
        "group": "${{ github.workflow }}-${{ github.ref }}",
        "cancel-in-progress": True,
    }


def test_every_action_is_pinned_to_a_commit_with_its_version_in_a_comment():
    uses = [line.strip() for line in WORKFLOW.read_text().splitlines() if "uses:" in line]
    assert uses
    pinned = re.compile(r"^- uses: [\w.-]+/[\w.-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+$")
    assert [line for line in uses if not pinned.match(line)] == []


def test_checkouts_keep_no_credentials(workflow):
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
