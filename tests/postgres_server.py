"""A throwaway PostgreSQL server for the tests: initdb with a password, pg_ctl on a free loopback port, removed at the end.

Debian's PostgreSQL package is found through `pg_config --bindir` (else /usr/lib/postgresql/*/bin).
PostgreSQL refuses to run as root: under root the server runs as the `postgres` user. The tests
that use it fail when the server cannot start; only where no PostgreSQL is installed at all and
the environment is not CI (`CI` unset) are they skipped, so that a user's fresh clone still passes.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.parse
from pathlib import Path

import pytest

USER = "mlflow"
# Every character that is hard for a URI or a masker, between distinctive pieces: a leak of the password, or of
# any piece of it, is found by a plain search.
PASSWORD = "Zq7vK/Wm4xB@Rt8nJ:Hy2cP,Lb6sD)Qf3gT(Nk9wE%Vd5jR#Xp1hM?Gc7uY&Tz4rW=Bj8eQ+Fm2kS;Ps6yA Du9oL"
PASSWORD_PIECES = tuple(re.split(r"[/@:,)(%#?&=+; ]", PASSWORD))
ENCODED_PASSWORD = urllib.parse.quote(PASSWORD, safe="")
# Raw wherever SQLAlchemy (MLflow's and Optuna's stores) takes it raw: all but `%` (it would be decoded) and `@`
# (SQLAlchemy ends the password at its first raw `@` and takes the rest for the host).
RAW_PASSWORD = PASSWORD.replace("%", "%25").replace("@", "%40")


def postgres_bindir() -> Path | None:
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
        if out and (Path(out) / "initdb").is_file():
            return Path(out)
    except (OSError, subprocess.SubprocessError):
        pass
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One server; `uri(database)` gives the tracking-style URI with the password, `create_database` a new database."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="reviewkit-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        password_file = self.root / "password"
        password_file.write_text(PASSWORD + "\n")
        if self.as_user:
            os.chown(password_file, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", self.data, "-U", USER, "--auth=scram-sha-256", f"--pwfile={password_file}",
                  "-E", "UTF8", "--no-locale")
        password_file.unlink()
        self.start()

    def _run(self, tool: str, *args) -> None:
        result = subprocess.run([*self.as_user, str(self.bindir / tool), *map(str, args)], capture_output=True,
                                text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()[-2000:]}\n{log}")

    def start(self) -> None:
        # Socket directory inside the temporary root: /var/run/postgresql may not exist or be writable.
        self._run("pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                  "-o", f"-h 127.0.0.1 -p {self.port} -k {self.root}", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def uri(self, database: str, password: str = ENCODED_PASSWORD, scheme: str = "postgresql") -> str:
        return f"{scheme}://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database NAME, made as docs/team.md makes one (`createdb`); returns its URI."""
        result = subprocess.run([str(self.bindir / "createdb"), "--host", "127.0.0.1", "--port", str(self.port),
                                 "--username", USER, name], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "PGPASSWORD": PASSWORD})
        if result.returncode != 0:
            raise RuntimeError(f"createdb {name} failed: {result.stderr.strip()}")
        return self.uri(name)

    def remove(self) -> None:
        try:
            self.stop()
        except (RuntimeError, subprocess.SubprocessError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    bindir = postgres_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed, and CI must run the database tests (.ci/run installs it)")
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql); CI runs these tests")
    try:
        return PostgresServer(bindir)
    except (RuntimeError, OSError, KeyError, subprocess.SubprocessError) as exc:
        pytest.fail(f"the test PostgreSQL server did not start: {exc}")
