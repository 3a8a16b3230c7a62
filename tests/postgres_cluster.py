"""A throwaway PostgreSQL server for tests, from Debian's binaries.

``PostgresCluster`` runs ``initdb`` into a fresh temporary directory and
starts ``postgres`` on a free TCP port of 127.0.0.1, with its unix socket in
that directory too (never the system's /var/run/postgresql), and
``stop()`` removes it all.  Durability settings are off (``fsync``,
``synchronous_commit``, ``full_page_writes``): these tests do not crash the
machine, and a commit then costs no disk flush.  PostgreSQL refuses to run
as root, so under root the server runs as the ``postgres`` user (Debian's
package creates it), owning the directory.

The ``postgres_cluster`` fixture (session-scoped, shared through the
conftest files) installs Debian's ``postgresql`` when its binaries are
missing (``tests.debian_packages``) and FAILS, rather than skips, when it
cannot: a skipped suite would hide that the PostgreSQL engine went untested.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import pytest

_names = itertools.count()
SUPERUSER = "shoal"


def postgres_bin_dir() -> str | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or None."""
    found = [path for path in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(path, "initdb"))]
    if not found:
        return None
    return max(found, key=lambda path: int(path.split("/")[-2]) if path.split("/")[-2].isdigit() else 0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """One PostgreSQL server in a temporary directory (see the module docstring)."""

    def __init__(self, bin_dir: str, options: str = "") -> None:
        self.bin_dir = bin_dir
        self.options = options  # more server settings (-c name=value ...), after the defaults
        self.root = tempfile.mkdtemp(prefix="shoal-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = _free_port()
        self._run_as = None
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            self._run_as = (account.pw_uid, account.pw_gid)
            os.chown(self.root, *self._run_as)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> None:
        kwargs = {}
        if self._run_as is not None:
            kwargs = {"user": self._run_as[0], "group": self._run_as[1], "extra_groups": []}
        result = subprocess.run([os.path.join(self.bin_dir, args[0]), *args[1:]], capture_output=True, text=True,
                                timeout=timeout, cwd=self.root, **kwargs)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> "PostgresCluster":
        self._run("initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--no-instructions")
        return self.resume()

    def pause(self) -> None:
        """Stop the server (its data kept), as an outage of the database would."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", "fast", "-w", timeout=60)
        self.started = False

    def resume(self) -> "PostgresCluster":
        """Start the server (again) on its port."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   f"-c shared_buffers=64MB {self.options}")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", self.data, "-l", os.path.join(self.root, "log"),
                  "-o", options)
        self.started = True
        return self

    @classmethod
    def standby_of(cls, primary: "PostgresCluster") -> "PostgresCluster":
        """A streaming standby of ``primary`` (started with ``REPLICATION``
        settings), made by pg_basebackup and started on its own port; it
        takes part in synchronous replication (``synchronous_standby_names``)."""
        standby = cls(primary.bin_dir, "-c hot_standby=on")
        # --checkpoint=fast: the backup begins with an immediate checkpoint of the primary, where
        # the default (spread) one took 90 s of a test's minute and a half
        standby._run("pg_basebackup", "-D", standby.data, "-h", "127.0.0.1", "-p", str(primary.port), "-U",
                     SUPERUSER, "-R", "-X", "stream", "--no-sync", "--checkpoint=fast", timeout=300)
        return standby.resume()

    def promote(self) -> None:
        """Make a standby the primary (as a failover does)."""
        self._run("pg_ctl", "promote", "-w", "-t", "60", "-D", self.data, timeout=90)

    def kill(self) -> None:
        """Stop the server at once, as a crash would (``pg_ctl stop -m immediate``: no checkpoint)."""
        self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", timeout=60)
        self.started = False

    def dsn(self, database: str = "postgres") -> str:
        """A ``postgresql://`` URL of ``database``, over TCP (as ``shoal serve --storage`` takes it)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "db") -> str:
        """A new empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "log")) as handle:
                return handle.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.started:
            try:
                self._run("pg_ctl", "stop", "-D", self.data, "-m", "immediate", "-w", timeout=60)
            finally:
                self.started = False
        shutil.rmtree(self.root, ignore_errors=True)


#: Settings of a primary that streams to a standby; once the standby runs,
#: ``make_synchronous`` makes every commit wait for it, so that a failover
#: loses no acknowledged write (set before, a commit would wait for a
#: standby that does not exist yet).
REPLICATION = "-c wal_level=replica -c max_wal_senders=5 -c synchronous_commit=on"


def make_synchronous(primary: "PostgresCluster") -> None:
    """Commits on ``primary`` wait for any standby (``synchronous_standby_names = '*'``)."""
    import psycopg

    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
        conn.execute("SELECT pg_reload_conf()")


def missing_binaries_message() -> str:
    return ("PostgreSQL's server binaries are not installed (no /usr/lib/postgresql/*/bin/initdb): the "
            "PostgreSQL engine's tests need them; install Debian's package: apt-get install postgresql")


@pytest.fixture(scope="session")
def postgres_cluster():
    """A PostgreSQL server for the whole session (per xdist worker); fails when
    PostgreSQL is not installed."""
    from tests.debian_packages import PackagesUnavailable, ensure

    try:
        ensure(("postgresql",), lambda: postgres_bin_dir() is not None,
               "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb) are")
    except PackagesUnavailable as exc:
        pytest.fail(f"{exc}\n{missing_binaries_message()}", pytrace=False)
    bin_dir = postgres_bin_dir()
    cluster = PostgresCluster(bin_dir)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    yield cluster
    cluster.stop()
