"""
A streaming hot standby of the test PostgreSQL server, for the read-replica tests.

    python -m tests.cluster.standby start    # take a base backup and start the standby
    python -m tests.cluster.standby status
    python -m tests.cluster.standby stop     # stop it and remove its files

The primary is the server the suite uses (``ACCOUNTS_TEST_PG_HOST``/``_PORT``/
``_USER``/``_PASSWORD``, default 127.0.0.1:5432, user postgres). ``start``
takes ``pg_basebackup -R -X stream`` into a directory of its own
(``/tmp/accounts-standby-<test database name>``, or under
``ACCOUNTS_CLUSTER_DIR``), writes a small configuration there (a free port on
127.0.0.1, ``hot_standby = on``, 32 MB of shared buffers) and starts it with
``pg_ctl``, as the ``postgres`` OS user when run as root. It returns once the
standby accepts connections in recovery and has replayed everything the
primary had written.

The primary must accept replication connections from 127.0.0.1: when it
does not, and the script runs as root, it adds one line to the primary's
``pg_hba.conf``::

    host replication all 127.0.0.1/32 trust   # accounts tests: streaming standby

and reloads the configuration (``pg_reload_conf()``); nothing else on the
primary changes. It needs ``wal_level`` ``replica`` or ``logical`` (the
default) and ``max_wal_senders`` above zero (default 10), which take a
restart to change: the script says so instead of restarting anyone's server.

``stop`` runs ``pg_ctl stop -m fast`` (SIGKILL by pid if that fails) and
removes the directory; ``start`` first stops whatever a crashed earlier run
left there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .system import (
    Unavailable,
    alive,
    ensure_debian_packages,
    free_ports,
    kill_strays,
    log,
    read_pid,
    read_state,
    state_root,
    stop_pid,
    tail,
    wait_until,
    write_state,
)

HBA_LINE = "host replication all 127.0.0.1/32 trust   # accounts tests: streaming standby"
#: Settings a hot standby must have at least as high as its primary.
AT_LEAST_PRIMARY = (
    "max_connections",
    "max_worker_processes",
    "max_wal_senders",
    "max_prepared_transactions",
    "max_locks_per_transaction",
)


def primary_settings() -> dict[str, Any]:
    env = os.environ
    return {
        "host": env.get("ACCOUNTS_TEST_PG_HOST", "127.0.0.1"),
        "port": int(env.get("ACCOUNTS_TEST_PG_PORT", "5432")),
        "user": env.get("ACCOUNTS_TEST_PG_USER", "postgres"),
        "password": env.get("ACCOUNTS_TEST_PG_PASSWORD", ""),
    }


class PostgresStandby:
    """A hot standby of the test server; ``port`` is where it answers (on 127.0.0.1)."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_root("standby")
        self.state_file = self.root / "standby.json"
        self.primary = primary_settings()
        state = read_state(self.state_file) or {}
        self.port: int | None = state.get("port")
        self.bindir: str | None = state.get("bindir")

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    # Talking to the servers ----------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        return {**os.environ, "PGPASSWORD": self.primary["password"], "PGCONNECT_TIMEOUT": "3"}

    def psql(self, sql: str, *, port: int | None = None, database: str = "postgres") -> str | None:
        """The output of ``sql`` (unaligned, tuples only) on the primary, or on ``port``."""
        host = self.primary["host"] if port is None else "127.0.0.1"
        command = [
            shutil.which("psql") or "psql",
            "-X",
            "-A",
            "-t",
            "-h",
            host,
            "-p",
            str(port or self.primary["port"]),
            "-U",
            self.primary["user"],
            "-d",
            database,
            "-c",
            sql,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, env=self._env(), timeout=15, check=False
            )
        except subprocess.TimeoutExpired:
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    def _as_postgres(self, command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program; as the postgres OS user when this process is root."""
        if os.geteuid() == 0:
            kwargs.update(user="postgres", group="postgres")
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=self._env(),
            cwd=self.root if self.root.exists() else "/",
            check=False,
            **kwargs,
        )

    def _program(self, name: str) -> str:
        path = os.path.join(self.bindir or "", name)
        if self.bindir and os.path.exists(path):
            return path
        return shutil.which(name) or name

    # Status ----------------------------------------------------------------------------------

    def running(self) -> bool:
        return bool(
            self.port
            and alive(read_pid(self.datadir / "postmaster.pid"))
            and self.psql("SELECT pg_is_in_recovery()", port=self.port) == "t"
        )

    def wait_for_replay(self, timeout: float = 30.0) -> None:
        """Return once the standby has replayed everything the primary has written so far."""
        target = self.psql("SELECT pg_current_wal_lsn()")
        if target is None:
            raise Unavailable("cannot read the primary's WAL position")
        wait_until(
            lambda: (
                self.psql(
                    "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % target, port=self.port
                )
                == "t"
            ),
            timeout=timeout,
            what="the standby to replay up to %s" % target,
            step=0.05,
        )

    def pause_replay(self) -> None:
        """Stop applying the primary's changes (the standby falls behind until resumed)."""
        self.psql("SELECT pg_wal_replay_pause()", port=self.port)
        wait_until(
            lambda: (
                self.psql("SELECT pg_get_wal_replay_pause_state()", port=self.port) == "paused"
            ),
            timeout=10,
            what="the standby's replay to pause",
            step=0.05,
        )

    def resume_replay(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()", port=self.port)

    def describe(self) -> dict[str, Any]:
        return {
            "state directory": str(self.root),
            "port": self.port,
            "pid": read_pid(self.datadir / "postmaster.pid"),
            "in recovery": self.port and self.psql("SELECT pg_is_in_recovery()", port=self.port),
            "replay lsn": self.port
            and self.psql("SELECT pg_last_wal_replay_lsn()", port=self.port),
        }

    # Start -----------------------------------------------------------------------------------

    def start(self) -> PostgresStandby:
        """Create and start the standby (or return at once if it runs). Raises ``Unavailable``."""
        try:
            return self._start()
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop(keep_logs=True)
            raise Unavailable("%s: %s" % (type(exc).__name__, exc)) from exc

    def _start(self) -> PostgresStandby:
        if self.running():
            return self
        self.stop()
        ensure_debian_packages(
            {
                "postgresql-client": lambda: shutil.which("psql") is not None,
            }
        )
        started = time.monotonic()
        version = self.psql("SHOW server_version_num")
        if version is None:
            raise Unavailable(
                "the primary PostgreSQL at %(host)s:%(port)s is not reachable" % self.primary
            )
        major = int(version) // 10000
        self.bindir = "/usr/lib/postgresql/%d/bin" % major
        if not os.path.exists(os.path.join(self.bindir, "pg_ctl")):
            ensure_debian_packages(
                {"postgresql-%d" % major: lambda: os.path.exists(self._program("pg_ctl"))}
            )
        self._check_primary()
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.port = free_ports(1)[0]
        write_state(self.state_file, {"port": self.port, "bindir": self.bindir})
        try:
            self._base_backup()
            self._configure()
            done = self._as_postgres(
                [
                    self._program("pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ]
            )
            if done.returncode:
                raise Unavailable(
                    "pg_ctl start failed: %s\n%s"
                    % ((done.stderr or done.stdout).strip(), tail(self.log_file))
                )
            wait_until(self.running, timeout=60, what="the standby to accept connections")
            self.wait_for_replay()
        except BaseException:
            self.stop(keep_logs=True)
            raise
        log(
            "PostgreSQL standby on 127.0.0.1:%d replaying in %.0f s"
            % (self.port, time.monotonic() - started)
        )
        return self

    def _check_primary(self) -> None:
        wal_level = self.psql("SHOW wal_level")
        senders = self.psql("SHOW max_wal_senders")
        if wal_level not in ("replica", "logical") or not senders or int(senders) < 1:
            raise Unavailable(
                "the primary has wal_level=%s and max_wal_senders=%s; a standby needs "
                "wal_level=replica and max_wal_senders > 0 (a restart)" % (wal_level, senders)
            )
        if self._replication_allowed():
            return
        hba_file = self.psql("SHOW hba_file")
        if not hba_file or not os.access(hba_file, os.W_OK):
            raise Unavailable(
                "the primary refuses replication connections from 127.0.0.1; add %r to its "
                "pg_hba.conf and reload it" % HBA_LINE
            )
        log("Allowing replication connections from 127.0.0.1 in %s" % hba_file)
        with open(hba_file, "a") as hba:
            hba.write("\n%s\n" % HBA_LINE)
        self.psql("SELECT pg_reload_conf()")
        wait_until(self._replication_allowed, timeout=10, what="pg_hba.conf to be reloaded")

    def _replication_allowed(self) -> bool:
        command = [
            shutil.which("psql") or "psql",
            "-X",
            "-At",
            "-d",
            "host=%(host)s port=%(port)s user=%(user)s replication=true dbname=postgres"
            % self.primary,
            "-c",
            "IDENTIFY_SYSTEM",
        ]
        done = subprocess.run(
            command, capture_output=True, text=True, env=self._env(), check=False
        )
        return done.returncode == 0

    def _base_backup(self) -> None:
        done = self._as_postgres(
            [
                self._program("pg_basebackup"),
                "-h",
                self.primary["host"],
                "-p",
                str(self.primary["port"]),
                "-U",
                self.primary["user"],
                "-D",
                str(self.datadir),
                "-R",  # standby.signal and primary_conninfo
                "-X",
                "stream",
                "-c",
                "fast",
                "--no-sync",  # a throwaway copy: no need to flush it to disk
            ]
        )
        if done.returncode:
            raise Unavailable("pg_basebackup failed: %s" % (done.stderr or done.stdout).strip())

    def _configure(self) -> None:
        """Debian keeps the configuration outside the data directory: write the standby's own."""
        lines = [
            "port = %d" % self.port,
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '%s'" % self.root,
            "hot_standby = on",
            "hot_standby_feedback = on",
            "wal_receiver_status_interval = 1s",
            "shared_buffers = 32MB",
            "fsync = off",
            "logging_collector = off",
        ]
        for name in AT_LEAST_PRIMARY:
            lines.append("%s = %s" % (name, self.psql("SHOW %s" % name)))
        files = {
            "postgresql.conf": "\n".join(lines) + "\n",
            "pg_hba.conf": "local all all trust\nhost all all 127.0.0.1/32 trust\n",
            "pg_ident.conf": "",
        }
        for name, text in files.items():
            path = self.datadir / name
            path.write_text(text)
            if os.geteuid() == 0:
                shutil.chown(path, "postgres", "postgres")

    # Stop --------------------------------------------------------------------------------------

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop the standby and remove its directory (``keep_logs``: keep its log)."""
        pid = read_pid(self.datadir / "postmaster.pid")
        if alive(pid):
            self._as_postgres(
                [self._program("pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            )
            stop_pid(pid, timeout=10)
        if self.root.exists():
            kill_strays(self.root)
            if keep_logs:
                shutil.rmtree(self.datadir, ignore_errors=True)
                log("Standby log kept in %s" % self.log_file)
            else:
                shutil.rmtree(self.root, ignore_errors=True)
        self.port = None


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    standby = PostgresStandby()
    if command == "start":
        try:
            standby.start()
        except Unavailable as exc:
            log("Cannot start the PostgreSQL standby: %s" % exc)
            return 1
        print(json.dumps(standby.describe(), indent=2))
    elif command == "stop":
        standby.stop()
    elif command == "status":
        print(json.dumps(standby.describe(), indent=2))
        return 0 if standby.running() else 1
    else:
        log("usage: python -m tests.cluster.standby start|status|stop")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
