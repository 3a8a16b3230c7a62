"""Start and stop real ``shoal serve`` processes for tests."""

from __future__ import annotations

import collections
import configparser
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

_URL = re.compile(r"at (https?://\S+) ")


def free_port() -> int:
    """A TCP port free on loopback now (for a server that must keep its port across restarts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def root_credentials(data_dir) -> tuple[str, str]:
    """(access key, secret) of the root user that ``--auth sigv4`` wrote to ``data_dir``."""
    creds = configparser.ConfigParser()
    creds.read(os.path.join(data_dir, "root-credentials"))
    return creds["default"]["aws_access_key_id"], creds["default"]["aws_secret_access_key"]


def moved_clock(tmp_path_factory):
    """A file for SHOAL_TEST_CLOCK_FILE (seconds added to a server's clock,
    0 at first): tests move a server's time instead of waiting."""
    clock = tmp_path_factory.mktemp("clock") / "offset"
    clock.write_text("0")
    return clock


class ShoalProcess:
    """A ``shoal serve`` child process on a free port."""

    def __init__(self, data_dir, *extra_args: str, port: int = 0, env: dict | None = None) -> None:
        self.data_dir = str(data_dir)
        self.extra_args = extra_args
        self.port = port
        self.env = env or {}  # variables set for this server only
        self.proc: subprocess.Popen | None = None
        self.url: str | None = None
        self.banner = ""
        self._log: collections.deque[str] = collections.deque(maxlen=400)

    def start(self, timeout: float = 20.0) -> "ShoalProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shoal", "serve", "--port", str(self.port),
             "--data-dir", self.data_dir, *self.extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read()
                raise RuntimeError(f"shoal exited during start-up: {err}")
            self.banner += line
            match = _URL.search(line)
            if match:
                self.url = match.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                break
        else:
            raise RuntimeError("shoal did not print its URL in time")
        # Read the log as it comes: a server whose stderr pipe fills (a few
        # tracebacks of deep recursion do) would block, and tests would hang.
        threading.Thread(target=self._read_log, args=(self.proc.stderr,), daemon=True).start()
        self._wait_healthy(deadline)
        return self

    def _read_log(self, stream) -> None:
        try:
            for line in stream:
                self._log.append(line)
        except (OSError, ValueError):  # closed by stop()
            pass

    def log_tail(self) -> str:
        """The last lines the server logged (its stderr): tracebacks of 500s."""
        return "".join(self._log)

    def _wait_healthy(self, deadline: float) -> None:
        # The health check only asks whether the server answers; over HTTPS it
        # does not verify the (test's self-signed) certificate.
        context = ssl._create_unverified_context() if self.url.startswith("https") else None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2, context=context) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("shoal did not answer its health check")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
