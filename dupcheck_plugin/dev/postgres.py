"""A throwaway PostgreSQL cluster from Debian's ``postgresql`` package:
``initdb`` in a temp folder, the server on a free loopback port, stopped
and deleted on exit. As root the server binaries run as the ``postgres``
user (PostgreSQL refuses to run as root).

    with PostgresCluster() as pg:
        url = pg.create_database("t1")   # postgresql://dupcheck@127.0.0.1:PORT/t1

``python -m dupcheck_plugin.dev.postgres`` runs one until Ctrl-C.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import DupcheckError
from .ports import free_port

USER = "dupcheck"


class PostgresUnavailable(DupcheckError, RuntimeError):
    """Debian's postgresql package is not installed."""


def server_bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    if not found:
        raise PostgresUnavailable("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                                  "apt-get install postgresql (make test does it via .ci/install-system-packages)")
    return Path(found[-1]).parent


class PostgresCluster:
    def __init__(self, *, fsync: bool = False) -> None:
        self.bin = server_bin_dir()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="dupcheck-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.fsync = fsync
        self._as_root = os.geteuid() == 0
        self.started = False

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{args[0]} failed ({done.returncode}): {done.stdout[-2000:]}\n{log}")

    def start(self) -> "PostgresCluster":
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", USER, "--auth=trust", "--encoding=UTF8",
                  "--no-instructions")
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
                   f"-c max_connections=200 -c fsync={'on' if self.fsync else 'off'}")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")
        self.started = True
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if self.started:
            self.started = False
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "PostgresCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    import time

    with PostgresCluster(fsync=True) as pg:
        print(f"PostgreSQL on {pg.url('postgres')} (create databases with createdb -h 127.0.0.1 -p {pg.port} "
              f"-U {USER} NAME); Ctrl-C stops it and deletes {pg.root}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
