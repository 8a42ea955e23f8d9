"""A throwaway PostgreSQL server for tests and benchmarks: the machine's own binaries (Debian's
`postgresql` package, which `.ci/run` installs when absent), `initdb` in a temporary folder,
`pg_ctl` on a free 127.0.0.1 port, stopped and removed at the end. Never a mock.

initdb refuses to run as root, so as root every command runs as the `postgres` user (through
`runuser`) in a folder that user owns. The superuser `postgres` has a password (scram), so tests
can check what a wrong one says; `database()` makes a fresh database per test.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

#: Seconds any one server command may take before the test fails, naming it.
COMMAND_TIMEOUT = 120
PASSWORD = "aioflow-test-secret"


def find_bin_dir() -> Path:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest version folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if versions:
        return Path(versions[-1]).parent
    raise RuntimeError(
        "PostgreSQL's initdb and pg_ctl were not found (on PATH or in /usr/lib/postgresql/*/bin): "
        "install Debian's package (apt-get install postgresql), as .ci/run does."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, on 127.0.0.1 (call `stop()` at the end)."""

    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = find_bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="aioflow-pg-"))
        self.data = self.folder / "data"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0
        self._databases = 0
        if self._as_postgres:  # the postgres user must own the folder and be able to reach it
            os.chmod(self.folder, 0o755)
            shutil.chown(self.folder, "postgres", "postgres")
        pwfile = self.folder / "pw"
        pwfile.write_text(PASSWORD)
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(pwfile),
            "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip
        settings = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.folder}",
            "-c max_connections=200",
        ]
        if not fsync:  # tests need no durability; the benchmark keeps the defaults
            settings += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl", "start", "-w", "-t", str(COMMAND_TIMEOUT), "-D", str(self.data),
            "-l", str(self.folder / "server.log"), "-o", " ".join(settings),
        )  # fmt: skip

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin / program), *args]
        if self._as_postgres:
            command = [_runuser(), "-u", "postgres", "--", *command]
        try:
            subprocess.run(
                command, check=True, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
            )
        except subprocess.CalledProcessError as exc:
            log = self.folder / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{program} failed ({exc.returncode}): {exc.stderr.strip()} {tail}"
            ) from None

    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        """The URL of `database` on this server, as the superuser."""
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """The URL of a new, empty database."""
        import psycopg

        self._databases += 1
        name = f"t{os.getpid()}_{self._databases}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (fast: open sessions are ended) and remove its folder."""
        try:
            self._run("pg_ctl", "stop", "-m", "fast", "-w", "-D", str(self.data))
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def _runuser() -> str:
    """util-linux's runuser, found where Debian keeps it when /usr/sbin is not on PATH (a
    non-login shell, a CI runner's environment)."""
    found = shutil.which("runuser") or next(
        (p for p in ("/usr/sbin/runuser", "/sbin/runuser") if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError("runuser (util-linux) is needed to start PostgreSQL as root")
    return found
