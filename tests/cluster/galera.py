"""
A three-node MariaDB Galera cluster on 127.0.0.1, for the tests and the benchmarks.

    python -m tests.cluster.galera start    # start it (or find it running); print its ports
    python -m tests.cluster.galera status   # each node's state
    python -m tests.cluster.galera stop     # stop every node, remove every file

Debian's ``galera-4`` provider with the installed ``mariadbd``, ``rsync`` for
the state transfers; whatever is missing is installed with ``apt-get`` (as
root; ``make system-packages`` does the same). Each node has its own data
directory under one state directory (``/tmp/accounts-galera-<test database
name>``, or under ``ACCOUNTS_CLUSTER_DIR``), its own ports for SQL, Galera
replication, IST and SST (free ones, chosen at start), a 32 MiB buffer pool
and its own error log. The machine's own MariaDB (3306, /etc/mysql) is never
read or touched: every node runs with ``--defaults-file`` pointing at its own
file. The first node bootstraps the cluster; the others join it one at a
time by rsync SST; ``start`` returns once all three report ``Synced`` and a
cluster size of 3.

``stop`` shuts the nodes down (SIGTERM, then SIGKILL after 30 s), kills any
helper still running from the state directory (an SST's rsync daemon) and
removes the directory. ``start`` first stops whatever a crashed earlier run
left there, by the pids it recorded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
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

PROVIDERS = ("/usr/lib/galera/libgalera_smm.so", "/usr/lib/libgalera_smm.so")
SIZE = 3
#: How long one node may take to start (a joiner includes its state transfer).
NODE_TIMEOUT = 120.0


def provider() -> str | None:
    return next((path for path in PROVIDERS if os.path.exists(path)), None)


def mariadbd() -> str | None:
    return shutil.which("mariadbd") or next(
        (p for p in ("/usr/sbin/mariadbd", "/usr/sbin/mysqld") if os.path.exists(p)), None
    )


def client() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


#: Debian packages and how to tell each is there.
PACKAGES = {
    "galera-4": lambda: provider() is not None,
    "mariadb-server": lambda: bool(mariadbd() and shutil.which("wsrep_sst_rsync")),
    "mariadb-client": lambda: client() is not None,
    "rsync": lambda: shutil.which("rsync") is not None,
    "iproute2": lambda: shutil.which("ss") is not None,
    "procps": lambda: shutil.which("pgrep") is not None,
}


@dataclass
class Node:
    name: str
    port: int  # SQL
    galera: int  # group communication
    ist: int  # incremental state transfer
    sst: int  # rsync state snapshot transfer
    home: str

    @property
    def datadir(self) -> Path:
        return Path(self.home) / "data"

    @property
    def config(self) -> Path:
        return Path(self.home) / "my.cnf"

    @property
    def error_log(self) -> Path:
        return Path(self.home) / "error.log"

    @property
    def pid_file(self) -> Path:
        return Path(self.home) / "mariadbd.pid"

    def pid(self) -> int | None:
        return read_pid(self.pid_file)


class GaleraCluster:
    """Three local Galera nodes; ``nodes`` lists them, the bootstrap node first."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or state_root("galera")
        self.state_file = self.root / "cluster.json"
        self.nodes: list[Node] = []
        #: The node processes this object started, to reap when they stop.
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        state = read_state(self.state_file)
        if state:
            self.nodes = [Node(**node) for node in state["nodes"]]

    # Status -----------------------------------------------------------------------------

    def query(self, node: Node, sql: str, *, timeout: float = 10.0) -> list[list[str]] | None:
        """Rows of ``sql`` on ``node`` through the command-line client, or None on failure."""
        command = [
            client() or "mariadb",
            "--no-defaults",
            "--protocol=tcp",
            "-h127.0.0.1",
            "-P%d" % node.port,
            "-uroot",
            "--connect-timeout=3",
            "-N",
            "-B",
            "-e",
            sql,
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return None
        if done.returncode:
            return None
        return [line.split("\t") for line in done.stdout.splitlines()]

    def node_status(self, node: Node) -> dict[str, str]:
        rows = self.query(
            node,
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('wsrep_local_state_comment', 'wsrep_cluster_size', 'wsrep_ready', "
            "'wsrep_cluster_status')",
        )
        return {name: value for name, value in rows or []}

    def synced(self, node: Node, size: int) -> bool:
        status = self.node_status(node)
        return (
            status.get("wsrep_local_state_comment") == "Synced"
            and status.get("wsrep_cluster_size") == str(size)
            and status.get("wsrep_ready") == "ON"
            and status.get("wsrep_cluster_status") == "Primary"
        )

    def running(self) -> bool:
        """Whether every recorded node is alive, synced and sees all three."""
        return len(self.nodes) == SIZE and all(
            alive(node.pid()) and self.synced(node, SIZE) for node in self.nodes
        )

    def describe(self) -> dict[str, Any]:
        return {
            "state directory": str(self.root),
            "nodes": [
                {**asdict(node), "pid": node.pid(), **self.node_status(node)}
                for node in self.nodes
            ],
        }

    # Start --------------------------------------------------------------------------------

    def start(self) -> GaleraCluster:
        """Start the three nodes (at once if they already run). Raises ``Unavailable``."""
        try:
            return self._start()
        except (OSError, subprocess.SubprocessError) as exc:
            self.stop(keep_logs=True)
            raise Unavailable("%s: %s" % (type(exc).__name__, exc)) from exc

    def _start(self) -> GaleraCluster:
        if self.running():
            return self
        self.stop()
        ensure_debian_packages(PACKAGES)
        started = time.monotonic()
        self.root.mkdir(parents=True)
        self.root.chmod(0o755)  # the nodes run as the mysql user
        ports = free_ports(4 * SIZE)
        self.nodes = [
            Node(
                name="node%d" % (n + 1),
                port=ports[4 * n],
                galera=ports[4 * n + 1],
                ist=ports[4 * n + 2],
                sst=ports[4 * n + 3],
                home=str(self.root / ("node%d" % (n + 1))),
            )
            for n in range(SIZE)
        ]
        write_state(self.state_file, {"nodes": [asdict(node) for node in self.nodes]})
        try:
            for n, node in enumerate(self.nodes):
                self._prepare(node, bootstrap=n == 0)
                self._launch(node, bootstrap=n == 0)
                # Joiners one at a time: a donor serves one state transfer at once.
                wait_until(
                    lambda node=node, n=n: self._check_alive(node) and self.synced(node, n + 1),
                    timeout=NODE_TIMEOUT,
                    what="%s to join the cluster and sync" % node.name,
                    step=0.5,
                )
            for node in self.nodes:
                wait_until(
                    lambda node=node: self.synced(node, SIZE),
                    timeout=30,
                    what="%s to see all %d nodes" % (node.name, SIZE),
                )
        except BaseException:
            self.stop(keep_logs=True)
            raise
        log(
            "Galera cluster of %d nodes synced in %.0f s (SQL ports %s)"
            % (SIZE, time.monotonic() - started, ", ".join(str(n.port) for n in self.nodes))
        )
        return self

    def _check_alive(self, node: Node) -> bool:
        pid = node.pid()
        if pid is not None and not alive(pid):
            raise Unavailable(
                "%s (mariadbd) exited while starting; its error log ends:\n%s"
                % (node.name, tail(node.error_log))
            )
        return True

    def _prepare(self, node: Node, *, bootstrap: bool) -> None:
        home = Path(node.home)
        (home / "tmp").mkdir(parents=True)
        node.datadir.mkdir()
        node.config.write_text(self._config(node))
        as_root = os.geteuid() == 0
        if bootstrap:
            command = [
                shutil.which("mariadb-install-db") or "mysql_install_db",
                "--defaults-file=%s" % node.config,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ]
            if as_root:
                shutil.chown(home, "mysql", "mysql")
                shutil.chown(node.datadir, "mysql", "mysql")
                shutil.chown(home / "tmp", "mysql", "mysql")
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode:
                raise Unavailable(
                    "mariadb-install-db failed: %s" % (done.stderr or done.stdout)[-800:]
                )
        # A joiner starts with an empty data directory: the state transfer fills it.
        if as_root:
            for path in (home, node.datadir, home / "tmp", node.config):
                shutil.chown(path, "mysql", "mysql")

    def _config(self, node: Node) -> str:
        cluster = ",".join("127.0.0.1:%d" % other.galera for other in self.nodes)
        options = "; ".join(
            [
                "gmcast.listen_addr=tcp://127.0.0.1:%d" % node.galera,
                "ist.recv_addr=127.0.0.1:%d" % node.ist,
                "gcache.size=32M",
                "gcache.page_size=16M",
                "pc.recovery=false",
            ]
        )
        lines = [
            "[mysqld]",
            "datadir = %s" % node.datadir,
            "tmpdir = %s/tmp" % node.home,
            "socket = %s/mariadbd.sock" % node.home,
            "pid-file = %s" % node.pid_file,
            "log-error = %s" % node.error_log,
            "port = %d" % node.port,
            "bind-address = 127.0.0.1",
            "skip-name-resolve",
            "character-set-server = utf8mb4",
            "collation-server = utf8mb4_general_ci",
            "default-storage-engine = InnoDB",
            "performance_schema = OFF",
            "max_connections = 80",
            # Small: three of them share two cores and the test suite's memory.
            "innodb_buffer_pool_size = 32M",
            "innodb_log_file_size = 16M",
            "innodb_log_buffer_size = 4M",
            # What Galera requires.
            "binlog_format = ROW",
            "innodb_autoinc_lock_mode = 2",
            "wsrep_on = ON",
            "wsrep_provider = %s" % provider(),
            "wsrep_cluster_name = accounts_test",
            "wsrep_cluster_address = gcomm://%s" % cluster,
            "wsrep_node_name = %s" % node.name,
            "wsrep_node_address = 127.0.0.1:%d" % node.galera,
            "wsrep_node_incoming_address = 127.0.0.1:%d" % node.port,
            'wsrep_provider_options = "%s"' % options,
            "wsrep_sst_method = rsync",
            "wsrep_sst_receive_address = 127.0.0.1:%d" % node.sst,
            "wsrep_slave_threads = 2",
        ]
        if os.geteuid() == 0:
            lines.append("user = mysql")
        return "\n".join(lines) + "\n"

    def _launch(self, node: Node, *, bootstrap: bool) -> None:
        command = [mariadbd() or "mariadbd", "--defaults-file=%s" % node.config]
        if bootstrap:
            command.append("--wsrep-new-cluster")
        with open(Path(node.home) / "stdout.log", "ab") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in the test run does not reach it,
                # and stop() decides how it ends.
                start_new_session=True,
            )
        self.processes[node.name] = process
        node.pid_file.write_text("%d\n" % process.pid)
        if os.geteuid() == 0:
            shutil.chown(node.pid_file, "mysql", "mysql")

    # Stop ---------------------------------------------------------------------------------

    def stop(self, *, keep_logs: bool = False) -> None:
        """Stop every node of this state directory and remove it (``keep_logs``: keep the logs)."""
        for node in reversed(self.nodes):
            stop_pid(node.pid(), timeout=30)
        for process in self.processes.values():
            stop_pid(process.pid, timeout=5)
            process.wait()
        self.processes = {}
        if self.root.exists():
            kill_strays(self.root)
            if keep_logs:
                for node in self.nodes:
                    shutil.rmtree(node.datadir, ignore_errors=True)
                log("Galera logs kept in %s" % self.root)
            else:
                shutil.rmtree(self.root, ignore_errors=True)
        if not keep_logs:
            self.nodes = []


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "status"
    cluster = GaleraCluster()
    if command == "start":
        try:
            cluster.start()
        except Unavailable as exc:
            log("Cannot start the Galera cluster: %s" % exc)
            return 1
        print(json.dumps(cluster.describe(), indent=2))
    elif command == "stop":
        cluster.stop()
    elif command == "status":
        print(json.dumps(cluster.describe(), indent=2))
        return 0 if cluster.running() else 1
    else:
        log("usage: python -m tests.cluster.galera start|status|stop")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
