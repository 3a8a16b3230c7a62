"""Start, measure and stop each system under test.

Every system runs as a child process that the harness starts (in its own
session, so it never receives the terminal's signals), pinned with ``taskset``
to ``SERVER_CPUS`` while wrk runs on the other core.  Each is given its own
port and a fresh data directory in a temporary folder, so nothing here touches
a server the harness did not start.

Measurements read ``/proc`` of the process tree (the server and any children
it forks, e.g. Shoal's workers): CPU time (utime + stime), resident memory
(VmRSS) and the bytes its data directory occupies on disk.
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
from dataclasses import dataclass

from client import Client, Endpoint, wait_until_answering
from workload import table_definitions

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CACHE_DIR = os.path.join(BENCH_DIR, ".cache")
NPM_DIR = os.path.join(CACHE_DIR, "npm")
VENV_DIR = os.path.join(CACHE_DIR, "venv")
DDB_LOCAL_DIR = os.path.join(NPM_DIR, "node_modules", "amplify-dynamodb-simulator", "emulator")
DYNALITE_CLI = os.path.join(NPM_DIR, "node_modules", "dynalite", "cli.js")
SERVER_CPUS = "0"
CLIENT_CPUS = "1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- /proc readings


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def _tree_stat(pid: int, *fields: int) -> int:
    """The sum over the process tree of the given /proc/<pid>/stat fields
    (0-based, counted after the command name)."""
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/stat") as handle:
                values = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(values[i]) for i in fields)
    return total


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole tree, in seconds (fields 14 and 15 of stat)."""
    return _tree_stat(pid, 11, 12) / CLOCK_TICKS


def major_faults(pid: int) -> int:
    """Major page faults (a page read from disk) of the whole tree so far (field 12 of stat)."""
    return _tree_stat(pid, 9)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of the whole tree: all of it (VmRSS), or only the
    anonymous part (RssAnon: heaps and stacks, without mapped files, which
    for a memory-mapped database such as LMDB is page cache the kernel can
    reclaim)."""
    prefix = field + ":"
    total = 0
    for member in process_tree(pid):
        try:
            with open(f"/proc/{member}/status") as handle:
                for line in handle:
                    if line.startswith(prefix):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            continue
    return total


def disk_bytes(path: str) -> int:
    """Bytes allocated on disk under ``path`` (st_blocks, so sparse files count what they use)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


# ---------------------------------------------------------------- systems


@dataclass
class System:
    """One server under test: how to start it and what it stores on disk."""

    name: str
    label: str
    has_data: bool = True  # False for the constant-reply ceiling: no tables, no preload
    on_disk: bool = True
    start_timeout: float = 90.0
    port: int = 0
    data_dir: str = ""
    proc: subprocess.Popen | None = None
    startup_s: float = 0.0
    log_path: str = ""
    tls: bool = False  # served over HTTPS (wrk and the set-up client use https://)
    signs: bool = False  # verifies SigV4: the load is pre-signed (bench/presign.py)

    def command(self) -> list[str]:
        raise NotImplementedError

    def cwd(self) -> str | None:
        return None

    def credentials(self) -> tuple[str, str] | None:
        """The (access key, secret) requests must be signed with, or None if signatures are not checked."""
        return None

    def endpoint(self) -> Endpoint:
        """How the harness's clients reach this system."""
        return Endpoint(self.port, tls=self.tls, credentials=self.credentials())

    def prepare_data_dir(self, workdir: str) -> str:
        """A fresh, empty data directory for this system under ``workdir``."""
        path = os.path.join(workdir, self.name)
        os.makedirs(path, exist_ok=True)
        return path

    def start(self, workdir: str) -> float:
        """Start the server; returns the seconds from the command to its first answered request."""
        self.port = free_port()
        self.data_dir = self.prepare_data_dir(workdir)
        self.log_path = os.path.join(workdir, f"{self.name}.log")
        log = open(self.log_path, "wb")
        started = time.monotonic()
        self.proc = subprocess.Popen(["taskset", "-c", SERVER_CPUS, *self.command()], cwd=self.cwd(),
                                     stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        log.close()
        try:
            answered = wait_until_answering(self.endpoint, self.start_timeout,
                                            alive=lambda: self.proc.poll() is None)
        except Exception:
            self.stop()
            raise RuntimeError(f"{self.label} did not start; see {self.log_path}:\n{self.log_tail()}")
        self.startup_s = answered - started
        return self.startup_s

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as handle:
                return "".join(handle.readlines()[-lines:])
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def major_faults(self) -> int:
        return major_faults(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def anon_rss_bytes(self) -> int:
        return rss_bytes(self.pid, "RssAnon")

    def disk_bytes(self) -> int | None:
        return disk_bytes(self.data_dir) if self.on_disk else None

    def stop(self) -> None:
        """SIGTERM the server (by its pid), then SIGKILL if it lingers."""
        if self.proc is not None:
            terminate(self.proc, 15)


def shoal_command() -> list[str]:
    """How to run the ``shoal`` command: the installed script, or the module."""
    shoal = shutil.which("shoal")
    return [shoal] if shoal else [sys.executable, "-m", "shoal"]


class Shoal(System):
    def __init__(self, workers: int = 1, data_dir: str | None = None, name: str = "shoal",
                 label: str = "Shoal") -> None:
        super().__init__(name, label)
        self.workers = workers
        self.fixed_data_dir = data_dir
        self.prewarm = False  # scale mode: `--prewarm`, and wait_prewarmed() before measuring

    def prepare_data_dir(self, workdir: str) -> str:
        # scale mode serves a data directory that the bulk loader filled
        return self.fixed_data_dir or super().prepare_data_dir(workdir)

    def command(self) -> list[str]:
        base = shoal_command()
        prewarm = ["--prewarm", "--log-level", "info"] if self.prewarm else []
        return [*base, "serve", "--port", str(self.port), "--data-dir", self.data_dir,
                "--workers", str(self.workers), *prewarm, *self.security_options()]

    def wait_prewarmed(self, timeout_s: float = 600.0) -> float | None:
        """Wait for every worker's "prewarm: ..." log line; the seconds waited, or None on time-out."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            try:
                with open(self.log_path, errors="replace") as handle:
                    done = sum(1 for line in handle if "prewarm:" in line)
            except OSError:
                done = 0
            if done >= self.workers:
                return time.monotonic() - started
            time.sleep(0.2)
        return None

    def security_options(self) -> list[str]:
        return []


class ShoalPostgres(Shoal):
    """``shoal serve --storage postgresql://...``: the same server over a
    PostgreSQL from Debian's packages (tests/postgres_cluster.py: initdb into
    a temporary directory, a free port), started on first use and pinned to
    the server's core with it, so both share what one core gives; a fresh
    database per run."""

    _cluster = None

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-pg", label="Shoal over PostgreSQL")
        self.dsn: str | None = None

    def prepare_data_dir(self, workdir: str) -> str:
        path = super().prepare_data_dir(workdir)
        if ShoalPostgres._cluster is None:
            import atexit

            sys.path.insert(0, os.path.dirname(BENCH_DIR))
            from tests.postgres_cluster import PostgresCluster, missing_binaries_message, postgres_bin_dir

            bin_dir = postgres_bin_dir()
            if bin_dir is None:
                raise RuntimeError(missing_binaries_message())
            cluster = ShoalPostgres._cluster = PostgresCluster(bin_dir).start()
            atexit.register(cluster.stop)
            subprocess.run(["sh", "-c", f"for p in $(pgrep -f 'postgres.*{cluster.port}'); do taskset -pc "
                                        f"{SERVER_CPUS} $p; done"], capture_output=True)
        self.dsn = ShoalPostgres._cluster.create_database("bench")
        return path

    def command(self) -> list[str]:
        return [*super().command(), "--storage", self.dsn]


class ShoalSigV4(Shoal):
    """``shoal serve --auth sigv4``: every request signed with the root credentials it writes at start-up."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-sigv4", label="Shoal SigV4")
        self.signs = True

    def security_options(self) -> list[str]:
        return ["--auth", "sigv4"]

    def credentials(self) -> tuple[str, str] | None:
        """From ``<data dir>/root-credentials`` (None until the server has written it)."""
        values = {}
        try:
            with open(os.path.join(self.data_dir, "root-credentials")) as handle:
                for line in handle:
                    name, sep, value = line.partition("=")
                    if sep:
                        values[name.strip()] = value.strip()
        except OSError:
            return None
        if "aws_access_key_id" not in values or "aws_secret_access_key" not in values:
            return None
        return values["aws_access_key_id"], values["aws_secret_access_key"]


class ShoalSigV4User(ShoalSigV4):
    """``--auth sigv4`` with the runs signed by an IAM user (not root), whose
    identity policy allows the workload's item operations on the events table
    only, with a condition: so every request goes through policy evaluation."""

    POLICY = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
        "Resource": "arn:aws:dynamodb:*:*:table/viewer_events",
        "Condition": {"StringNotEqualsIfExists": {"dynamodb:Select": "ALL_PROJECTED_ATTRIBUTES"}}}]}

    def __init__(self, workers: int = 1) -> None:
        Shoal.__init__(self, workers, name="shoal-sigv4-user", label="Shoal SigV4 IAM user")
        self.signs = True
        self.user_keys: tuple[str, str] | None = None

    def credentials(self) -> tuple[str, str] | None:
        return self.user_keys or super().credentials()  # root's for the preload

    def after_preload(self) -> None:
        """Create the user, its key and policy with ``shoal iam`` (the server is running)."""
        base = shoal_command()

        def iam(*args) -> dict:
            out = subprocess.run([*base, "iam", *args, "--data-dir", self.data_dir],
                                 capture_output=True, text=True, check=True).stdout
            return json.loads(out) if out.strip() else {}

        iam("create-user", "--user-name", "bench")
        key = iam("create-access-key", "--user-name", "bench")["AccessKey"]
        iam("put-user-policy", "--user-name", "bench", "--policy-name", "events",
            "--policy-document", json.dumps(self.POLICY))
        self.user_keys = (key["AccessKeyId"], key["SecretAccessKey"])


class ShoalPITR(Shoal):
    """``shoal serve`` with point-in-time recovery switched on for every table
    (UpdateContinuousBackups once the preload is done): the cost of keeping
    the change log for the recovery window, against plain Shoal."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-pitr", label="Shoal PITR")

    def after_preload(self) -> None:
        client = Client(self.endpoint())
        try:
            for definition in table_definitions():
                client.call("UpdateContinuousBackups", {
                    "TableName": definition["TableName"],
                    "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
        finally:
            client.close()


class ShoalNoMetrics(Shoal):
    """``shoal serve --no-metrics``: against plain Shoal (metrics on, the
    default), what recording CloudWatch's metrics costs (issue 17's bound)."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-nometrics", label="Shoal, metrics off")

    def security_options(self) -> list[str]:
        return ["--no-metrics"]


class ShoalNoCapacity(Shoal):
    """``shoal serve --capacity off``: against plain Shoal (limits enforced, the
    default), what enforcing provisioned throughput and on-demand maximums
    costs (issue 20's bound); measured on provisioned tables far from their
    limits (bench/overhead_ab.py creates them), since an unlimited on-demand
    table is not charged at all."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-nocapacity", label="Shoal, capacity off")

    def security_options(self) -> list[str]:
        return ["--capacity", "off"]


class ShoalTLS(Shoal):
    """``shoal serve --tls-cert --tls-key`` with a self-signed certificate the harness makes."""

    def __init__(self, workers: int = 1) -> None:
        super().__init__(workers, name="shoal-tls", label="Shoal TLS")
        self.tls = True
        self.cert_paths: tuple[str, str] | None = None

    def prepare_data_dir(self, workdir: str) -> str:
        self.cert_paths = self_signed_certificate(workdir, "shoal-tls")
        return super().prepare_data_dir(workdir)

    def security_options(self) -> list[str]:
        cert, key = self.cert_paths
        return ["--tls-cert", cert, "--tls-key", key]


def self_signed_certificate(folder: str, stem: str) -> tuple[str, str]:
    """A P-256 certificate for 127.0.0.1/localhost valid for two days; returns (cert, key) PEM paths."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = os.path.join(folder, f"{stem}-cert.pem"), os.path.join(folder, f"{stem}-key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return cert_path, key_path


class DynamoDBLocal(System):
    def __init__(self) -> None:
        super().__init__("dynamodb-local", "DynamoDB Local")

    def command(self) -> list[str]:
        return ["java", "-Djava.library.path=./DynamoDBLocal_lib", "-jar", "DynamoDBLocal.jar",
                "-port", str(self.port), "-dbPath", self.data_dir]

    def cwd(self) -> str:
        return DDB_LOCAL_DIR


class Dynalite(System):
    def __init__(self) -> None:
        super().__init__("dynalite", "dynalite")

    def command(self) -> list[str]:
        # --createTableMs 0 etc. would make it faster to set up, but we keep its defaults
        return ["node", DYNALITE_CLI, "--port", str(self.port), "--path", self.data_dir]


class Moto(System):
    def __init__(self) -> None:
        super().__init__("moto", "moto", on_disk=False)

    def command(self) -> list[str]:
        return [os.path.join(VENV_DIR, "bin", "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]


class Ceiling(System):
    """bench/http_ceiling.py's constant-reply app: Shoal's HTTP layer with no work behind it."""

    def __init__(self) -> None:
        super().__init__("ceiling", "HTTP ceiling", has_data=False, on_disk=False)

    def command(self) -> list[str]:
        return [sys.executable, os.path.join(BENCH_DIR, "ceiling_server.py"), str(self.port)]


def make_systems(names: list[str], shoal_workers: int = 1) -> list[System]:
    """The systems named, in the order given."""
    factories = {"shoal": lambda: Shoal(shoal_workers), "shoal-sigv4": lambda: ShoalSigV4(shoal_workers),
                 "shoal-sigv4-user": lambda: ShoalSigV4User(shoal_workers),
                 "shoal-tls": lambda: ShoalTLS(shoal_workers), "shoal-pitr": lambda: ShoalPITR(shoal_workers),
                 "shoal-pg": lambda: ShoalPostgres(shoal_workers),
                 "shoal-nometrics": lambda: ShoalNoMetrics(shoal_workers),
                 "shoal-nocapacity": lambda: ShoalNoCapacity(shoal_workers),
                 "dynamodb-local": DynamoDBLocal,
                 "dynalite": Dynalite, "moto": Moto, "ceiling": Ceiling}
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown systems {unknown}; choose from {sorted(factories)}")
    return [factories[name]() for name in names]


ALL_SYSTEMS = ["shoal", "dynamodb-local", "dynalite", "moto", "ceiling"]  # the default full run
SECURITY_SYSTEMS = ["shoal", "shoal-sigv4", "shoal-sigv4-user", "shoal-tls"]  # run.py --security: auth and TLS against plain


def terminate(proc, wait_s: float = 20) -> None:
    """Stop a server process: SIGTERM, then SIGKILL after ``wait_s`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
