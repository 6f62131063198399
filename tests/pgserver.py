"""A throw-away PostgreSQL server for the tests: private data folder, private Unix socket.

:func:`start` runs Debian's ``initdb`` and ``postgres`` (``/usr/lib/postgresql/<N>/bin``)
as a non-root user: the user running the tests, or, when that is root (CI), the
unprivileged system user :data:`PG_USER` (created if missing).  The server listens on
no TCP address, only on a Unix socket in its own folder; it has a superuser with a
password (scram-sha-256) and every test database gets its own role and password
(:meth:`PgServer.create_database`).  :meth:`PgServer.stop` shuts it down and removes
the folder.  Development tooling only: nothing here is part of the package.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

#: the system user the server runs as when the tests run as root
PG_USER = "rmteach-pgtest"
#: the major version the course documents and CI installs (Debian 12's postgresql)
PG_MAJOR = 15
PORT = 5432  # only names the socket file: the server listens on no TCP port


def pg_bin_dir() -> Optional[Path]:
    """``/usr/lib/postgresql/15/bin`` (or the newest version there) if it holds initdb and postgres."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    preferred = [p for p in found if Path(p).parts[-3] == str(PG_MAJOR)]
    for path in preferred or found[::-1]:
        bindir = Path(path).parent
        if (bindir / "postgres").is_file():
            return bindir
    return None


def _server_user() -> tuple[int, int, str]:
    """(uid, gid, name) the server runs as: never root."""
    if os.geteuid() != 0:
        return os.geteuid(), os.getegid(), pwd.getpwuid(os.geteuid()).pw_name
    try:
        pw = pwd.getpwnam(PG_USER)
    except KeyError:
        useradd = shutil.which("useradd", path="/usr/sbin:/sbin:/usr/bin:/bin")
        nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        subprocess.run([useradd or "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", nologin, "--user-group", PG_USER], check=True, capture_output=True)
        pw = pwd.getpwnam(PG_USER)
    return pw.pw_uid, pw.pw_gid, PG_USER


@dataclass
class PgServer:
    bindir: Path
    root: Path  # the private folder: data/, socket/, the log
    uid: int
    gid: int
    user: str
    password: str
    proc: Optional[subprocess.Popen] = None
    databases: list[str] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def _run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        """Run a command as the server's user (setuid/setgid in the child, no extra groups)."""
        as_user = {} if self.uid == os.geteuid() else {"user": self.uid, "group": self.gid, "extra_groups": []}
        return subprocess.run(cmd, capture_output=True, text=True, cwd=self.root, **as_user, **kw)

    def url(self, user: str, password: str, database: str, driver: str = "postgresql+psycopg") -> str:
        """The SQLAlchemy URL of ``database`` as ``user`` over the private socket."""
        return f"{driver}://{user}:{password}@/{database}?host={self.socket_dir}&port={PORT}"

    def admin_url(self, database: str = "postgres") -> str:
        return self.url("admin", self.password, database)

    def version(self) -> str:
        return self._run(str(self.bindir / "postgres"), "--version").stdout.strip()

    def sql(self, *statements: str, database: str = "postgres") -> None:
        """Run statements as the superuser (autocommit: CREATE DATABASE needs it)."""
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), port=PORT, user="admin", password=self.password,
                             dbname=database, autocommit=True) as con:
            for statement in statements:
                con.execute(statement)

    def create_database(self, name: str) -> tuple[str, str]:
        """A new database ``name`` owned by a new role ``name`` with a random password: (url, password)."""
        password = secrets.token_urlsafe(12)
        self.sql(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'", f"CREATE DATABASE {name} OWNER {name}")
        self.databases.append(name)
        return self.url(name, password, name), password

    def start(self, timeout: float = 60) -> "PgServer":
        for sub in (self.data, self.socket_dir):
            sub.mkdir(mode=0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        for path in (self.root, self.data, self.socket_dir, pwfile):
            os.chown(path, self.uid, self.gid)
        init = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "admin", f"--pwfile={pwfile}",
                         "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8")
        pwfile.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed (exit {init.returncode}):\n{init.stdout}\n{init.stderr}")
        log = open(self.log, "ab")
        as_user = {} if self.uid == os.geteuid() else {"user": self.uid, "group": self.gid, "extra_groups": []}
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-k", str(self.socket_dir), "-p", str(PORT),
             "-c", "listen_addresses=", "-c", "fsync=off", "-c", "max_connections=100"],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, start_new_session=True, **as_user,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            ready = subprocess.run([str(self.bindir / "pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(PORT)])
            if ready.returncode == 0:
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections in {timeout} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        """Fast shutdown (SIGINT; SIGKILL after 30 s), then remove the whole folder."""
        try:
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(timeout=10)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start() -> PgServer:
    """A running server on a fresh private folder (raises ``RuntimeError`` if it cannot start)."""
    bindir = pg_bin_dir()
    if bindir is None:
        raise FileNotFoundError("no /usr/lib/postgresql/*/bin/initdb (apt-get install -y postgresql)")
    uid, gid, user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="rmteach-pg-"))
    server = PgServer(bindir=bindir, root=root, uid=uid, gid=gid, user=user, password=secrets.token_urlsafe(16))
    try:
        return server.start()
    except BaseException:
        server.stop()
        raise
