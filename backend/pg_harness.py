"""A private PostgreSQL server for tests and benchmarks: initdb into a folder, start, stop.

The binaries come from Debian's ``postgresql`` package
(``/usr/lib/postgresql/<version>/bin``; ``scripts/bootstrap --system`` installs
it). The server listens only on a Unix socket in its own folder (no TCP
port), trusts local connections and runs as the ``postgres`` user when we
are root, since postgres refuses to run as root. Nothing starts before
:meth:`PostgresServer.start`; :meth:`PostgresServer.stop` ends the server
and :meth:`PostgresServer.remove` its folder.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

DEBIAN_ROOT = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"  # the Debian package's system user
PORT = 5432  # names the socket file only: the server listens on no TCP port
_START_TIMEOUT_S = 60


class PostgresMissing(RuntimeError):
    """Debian's PostgreSQL binaries are not installed."""


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb, or None."""
    found = []
    for path in DEBIAN_ROOT.glob("*/bin/initdb"):
        version = path.parent.parent.name
        if version.isdigit():
            found.append((int(version), path.parent))
    return max(found)[1] if found else None


def _run_as() -> list[str]:
    """The command prefix that drops root to the postgres user (nothing when not root)."""
    if os.geteuid() != 0:
        return []
    pwd.getpwnam(SERVICE_USER)  # KeyError when the package's user is missing
    return ["runuser", "-u", SERVICE_USER, "--"]


@dataclass
class PostgresServer:
    """One private cluster in ``root`` (``root/data``, the socket in ``root``)."""

    root: Path
    bin_dir: Path
    settings: dict[str, str] = field(default_factory=dict)

    @classmethod
    def create(cls, *, fsync: bool = True, settings: dict[str, str] | None = None,
               parent: Path | None = None) -> PostgresServer:
        """initdb a new cluster in a fresh folder under ``parent`` (default /tmp; the
        postgres user must be able to reach it)."""
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresMissing(
                f"no PostgreSQL under {DEBIAN_ROOT}: install Debian's postgresql package "
                "(scripts/bootstrap --system)")
        # /tmp: short socket paths, reachable by the postgres user (mkdtemp: a fresh name)
        root = Path(tempfile.mkdtemp(prefix="pkpg-", dir=parent or "/tmp"))  # noqa: S108
        root.chmod(0o755)
        prefix = _run_as()
        if prefix:
            shutil.chown(root, SERVICE_USER, SERVICE_USER)
        server = cls(root, bin_dir, {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{root}'",
            "port": str(PORT),
            "max_connections": "200",
            "fsync": "on" if fsync else "off",
            # commits reach the OS before they are acknowledged even without fsync, so an
            # immediate (crash) restart of the server loses no acknowledged commit
            "synchronous_commit": "on",
            "full_page_writes": "on" if fsync else "off",
            "shared_buffers": "128MB",
            **(settings or {}),
        })
        initdb = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*prefix, str(bin_dir / "initdb"), "-D", str(server.data), "-U", SERVICE_USER,
             "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
            check=False, capture_output=True, text=True, cwd=root)
        if initdb.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresMissing(f"initdb failed in {root}: {initdb.stderr.strip()}")
        with (server.data / "postgresql.conf").open("a") as conf:
            for key, value in server.settings.items():
                conf.write(f"{key} = {value}\n")
        return server

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        return self.root / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVICE_USER}@/{database}?host={self.root}&port={PORT}"

    def _pg_ctl(self, *arguments: str) -> None:
        subprocess.run(  # noqa: S603 - fixed argv, no shell
            [*_run_as(), str(self.bin_dir / "pg_ctl"), "-D", str(self.data),
             "-l", str(self.log_path), "-t", str(_START_TIMEOUT_S), *arguments],
            check=True, capture_output=True, cwd=self.root)

    def start(self) -> None:
        self._pg_ctl("-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions; ``immediate``: a crash)."""
        if (self.data / "postmaster.pid").exists():
            self._pg_ctl("-w", "-m", mode, "stop")

    def restart(self, mode: str = "fast") -> None:
        self._pg_ctl("-w", "-m", mode, "restart")

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` with psql (no bound values: for fixed test statements only)."""
        result = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", str(self.root), "-p", str(PORT), "-U", SERVICE_USER, "-d", database,
             "-c", sql], check=True, capture_output=True, text=True)
        return result.stdout.strip()

    def create_database(self, name: str) -> str:
        """A new empty database; returns its URL."""
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", name):
            raise ValueError("database names here are lower-case identifiers")
        self.psql(f"CREATE DATABASE {name}")
        return self.url(name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
