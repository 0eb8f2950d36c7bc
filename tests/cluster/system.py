"""
What the cluster scripts share: Debian packages, free ports, processes and state files.

Nothing here imports Django: the scripts run from a shell too
(``python -m tests.cluster.galera start``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any


class Unavailable(RuntimeError):
    """The topology cannot be started on this machine; the message says why."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def strict() -> bool:
    """Whether a topology that cannot start is a failure (``CI=true``) rather than a skip."""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def state_root(kind: str) -> Path:
    """Where a topology keeps its files: one directory per kind and per test database name.

    ``ACCOUNTS_CLUSTER_DIR`` moves it (default: the temporary directory). Runs
    with different ``ACCOUNTS_TEST_DB_NAME`` values get different directories,
    ports and processes, so they never meet.
    """
    base = os.environ.get("ACCOUNTS_CLUSTER_DIR") or "/tmp"
    name = os.environ.get("ACCOUNTS_TEST_DB_NAME", "accounts")
    return Path(base) / ("accounts-%s-%s" % (kind, name))


def ensure_debian_packages(needed: dict[str, Callable[[], bool]]) -> None:
    """Install the Debian packages whose check fails (``{package: is_installed}``).

    Runs ``apt-get`` when root; otherwise raises ``Unavailable`` naming the
    packages (``sudo make system-packages`` installs them).
    """
    missing = [package for package, present in needed.items() if not present()]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise Unavailable(
            "missing Debian packages %s (run 'sudo make system-packages')" % " ".join(missing)
        )
    log("Installing Debian packages: %s" % " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            raise Unavailable("%s failed: %s" % (" ".join(command), done.stderr.strip()[-500:]))
    still = [package for package, present in needed.items() if not present()]
    if still:
        raise Unavailable("apt-get did not provide %s" % " ".join(still))


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports nobody listens on at 127.0.0.1 right now."""
    sockets, ports = [], []
    try:
        while len(ports) < count:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        # Reap it if it is an exited child of this process.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        with open("/proc/%d/stat" % pid) as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def stop_pid(pid: int | None, *, timeout: float = 30.0) -> None:
    """SIGTERM ``pid``, wait up to ``timeout`` seconds, then SIGKILL it."""
    if not alive(pid):
        return
    assert pid is not None
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    log("pid %d did not stop in %.0f s: killing it" % (pid, timeout))
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return


def processes_under(directory: Path) -> list[int]:
    """Pids of the processes whose command line names a path inside ``directory``.

    The stray helpers a node can leave behind (an SST's rsync daemon) are
    found this way: by the state directory only this run uses, never by a
    program's name.
    """
    needle = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry.name))
    return found


def kill_strays(directory: Path) -> None:
    for pid in processes_under(directory):
        stop_pid(pid, timeout=5)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_until(check: Callable[[], Any], *, timeout: float, what: str, step: float = 0.25) -> Any:
    """Call ``check`` until it returns something true; raise ``Unavailable`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Unavailable("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(step)


def write_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(path)


def read_state(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no %s)" % path


def chown_tree(paths: Iterable[Path], user: str) -> None:
    for path in paths:
        shutil.chown(path, user, user)
