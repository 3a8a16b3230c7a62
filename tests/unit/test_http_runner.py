"""shoal.server.runner: worker processes, signals, graceful exit.

Each test runs ``serve`` in a child Python process (it installs signal
handlers and may fork), with a tiny handler that tells which process
answered.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from shoal.server.runner import serve

REPO = pathlib.Path(__file__).resolve().parents[2]

SERVER_SCRIPT = textwrap.dedent("""
    import asyncio, gc, os, sys, time
    from shoal.server.http import Response
    from shoal.server.runner import serve

    exit_dir, workers = sys.argv[1], int(sys.argv[2])
    fail = len(sys.argv) > 3 and sys.argv[3] == "fail"

    async def slow(delay):
        await asyncio.sleep(delay)
        return Response(200, [], b"slow:%d" % os.getpid())

    def factory():
        if fail:
            raise RuntimeError("storage cannot open")
        def handler(request):
            if request.path in ("/slow", "/sync-slow"):  # the test waits for this before it signals
                open(os.path.join(exit_dir, "arrived-%d" % os.getpid()), "w").close()
            if request.path == "/slow":
                return slow(1.0)
            if request.path == "/frozen":
                return Response(200, [], b"%d" % gc.get_freeze_count())
            if request.path == "/sync-slow":
                time.sleep(1.0)
                return Response(200, [], b"sync-slow:%d" % os.getpid())
            return Response(200, [], b"%d" % os.getpid())
        return handler

    def on_worker_exit():
        open(os.path.join(exit_dir, "exit-%d" % os.getpid()), "w").close()

    sys.exit(serve(factory, "127.0.0.1", 0, workers=workers,
                   on_ready=lambda url: print("READY", url, flush=True), on_worker_exit=on_worker_exit))
""")


class Served:
    """``serve`` running in a child process."""

    def __init__(self, tmp_path: pathlib.Path, workers: int, *extra: str) -> None:
        script = tmp_path / "serve_script.py"
        script.write_text(SERVER_SCRIPT)
        self.exit_dir = tmp_path / "exits"
        self.exit_dir.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.exit_dir), str(workers), *extra],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                     start_new_session=True)
        self.port: int | None = None

    def wait_ready(self, timeout: float = 20) -> "Served":
        line = self._readline(timeout)
        assert line.startswith("READY http://127.0.0.1:"), line + self.proc.stderr.read()
        self.port = int(line.rsplit(":", 1)[1])
        return self

    def _readline(self, timeout: float) -> str:
        result = []
        reader = threading.Thread(target=lambda: result.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        return result[0].strip() if result else ""

    def get(self, path: str = "/") -> bytes:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body=b"{}")
            response = conn.getresponse()
            assert response.status == 200
            return response.read()
        finally:
            conn.close()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.stderr = self.proc.stderr.read()
            self.proc.stdout.close()
            self.proc.stderr.close()

    def cleanup(self) -> None:
        """Stop the server and its workers (its own process group)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if not self.proc.stdout.closed:
            self.wait()

    def exited_workers(self) -> set[int]:
        return {int(p.name.split("-")[1]) for p in self.exit_dir.iterdir() if p.name.startswith("exit-")}


@pytest.fixture
def spawn(tmp_path):
    started: list[Served] = []

    def start(workers: int, *extra: str) -> Served:
        served = Served(tmp_path, workers, *extra)
        started.append(served)
        return served

    yield start
    for served in started:
        served.cleanup()


def _in_background(fn):
    result: list = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def test_one_worker_serves_in_process_and_exits_cleanly(spawn):
    served = spawn(1).wait_ready()
    assert served.get() == str(served.proc.pid).encode()
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    assert served.exited_workers() == {served.proc.pid}  # on_worker_exit ran


@pytest.mark.parametrize("workers", [1, 2])
def test_workers_take_start_up_objects_out_of_garbage_collection(spawn, workers):
    served = spawn(workers).wait_ready()
    assert int(served.get("/frozen")) > 1000


def _wait_arrived(served, timeout: float = 30.0) -> None:
    """Poll until the server has begun the slow request (no fixed sleep)."""
    deadline = time.monotonic() + timeout
    while not any(name.startswith("arrived-") for name in os.listdir(served.exit_dir)):
        assert time.monotonic() < deadline, "the request never reached the server"
        time.sleep(0.005)


def test_one_worker_finishes_in_flight_request_on_sigint(spawn):
    served = spawn(1).wait_ready()
    thread, result = _in_background(lambda: served.get("/slow"))
    _wait_arrived(served)
    served.signal(signal.SIGINT)
    thread.join(10)
    assert result == [b"slow:%d" % served.proc.pid]
    assert served.wait() == 0


def test_one_worker_finishes_synchronous_slow_request(spawn):
    served = spawn(1).wait_ready()
    thread, result = _in_background(lambda: served.get("/sync-slow"))
    _wait_arrived(served)
    served.signal(signal.SIGTERM)
    thread.join(10)
    assert result == [b"sync-slow:%d" % served.proc.pid]
    assert served.wait() == 0


def test_two_workers_both_serve(spawn):
    served = spawn(2).wait_ready()
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(int(served.get()))
    assert len(pids) == 2
    assert served.proc.pid not in pids  # the parent only supervises
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    assert served.exited_workers() == pids


def test_two_workers_finish_in_flight_requests_on_sigterm(spawn):
    served = spawn(2).wait_ready()
    threads = [_in_background(lambda: served.get("/slow")) for _ in range(6)]
    time.sleep(0.3)
    served.signal(signal.SIGTERM)
    for thread, result in threads:
        thread.join(10)
        assert result and result[0].startswith(b"slow:")
    assert served.wait() == 0
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", served.port), timeout=1)


def test_a_dead_worker_is_reported_and_replaced(spawn):
    served = spawn(2).wait_ready()
    victim = int(served.get())
    os.kill(victim, signal.SIGKILL)
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        try:
            pids.add(int(served.get()))
        except OSError:
            time.sleep(0.05)
    assert len(pids) == 2 and victim not in pids
    served.signal(signal.SIGTERM)
    assert served.wait() == 0
    assert f"worker {victim} was killed by SIGKILL; starting a new one" in served.stderr


def test_a_worker_that_cannot_start_stops_the_server(spawn):
    served = spawn(2, "fail")
    assert served.wait() == 1
    assert "storage cannot open" in served.stderr
    assert "shoal: a worker failed to start" in served.stderr


def test_port_in_use_raises_oserror():
    holder = socket.create_server(("127.0.0.1", 0))
    port = holder.getsockname()[1]
    try:
        for workers in (1, 2):
            with pytest.raises(OSError):
                serve(lambda: None, "127.0.0.1", port, workers=workers)
    finally:
        holder.close()


def test_second_multi_worker_server_cannot_share_the_port(spawn):
    served = spawn(2).wait_ready()
    with pytest.raises(OSError):
        serve(lambda: None, "127.0.0.1", served.port, workers=2)
    assert served.get()


def test_workers_stop_when_the_supervisor_is_killed(spawn):
    served = spawn(2).wait_ready()
    pids = set()
    deadline = time.monotonic() + 10
    while len(pids) < 2 and time.monotonic() < deadline:
        pids.add(int(served.get()))
    served.proc.kill()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and served.exited_workers() != pids:
        time.sleep(0.05)
    assert served.exited_workers() == pids  # each drained and ran on_worker_exit
