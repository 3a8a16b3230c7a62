"""Run the HTTP server in one or several worker processes.

``workers=1`` serves in the calling process.  With more, the parent binds
the port, forks the workers and supervises them; it serves nothing itself.

Why one listening socket per worker (``SO_REUSEPORT``) rather than one
socket shared by all: with a shared socket every worker is woken by each
new connection and the first one to run accepts all that are pending
(libuv accepts in a loop), so a client opening its connection pool at once
lands mostly on one worker.  With ``SO_REUSEPORT`` the kernel spreads
connections across the workers' own accept queues by hash.  The parent
keeps a bound (never listening) socket on the port so that the port stays
Shoal's while a worker restarts, and before that it binds the port once
*without* ``SO_REUSEPORT`` to prove nobody else (say, a second Shoal) is
listening there: ``SO_REUSEPORT`` alone would let two servers share a port
silently.  Where ``SO_REUSEPORT`` is missing the workers share the
parent's listening socket instead.

Signals: SIGTERM or SIGINT to the parent is forwarded (as SIGTERM) to the
workers; each stops accepting, finishes its requests in flight, calls
``on_worker_exit`` (to close its storage) and exits 0; the parent then
returns 0.  A worker that dies otherwise is reported and restarted, unless
workers keep dying (then everything stops and ``serve`` returns 1).
"""

from __future__ import annotations

import asyncio
import errno
import gc
import os
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
from typing import Callable

from shoal.server.http import (
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADER,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    Handler,
    HttpServer,
)

_SUPERVISED = (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT)
_RESTART_WINDOW_S = 60.0
_MAX_RESTARTS = 5  # deaths within the window before the parent gives up
_START_TIMEOUT_S = 60.0


def serve(
    handler_factory: Callable[[], Handler],
    host: str,
    port: int,
    *,
    workers: int = 1,
    ssl_context: ssl.SSLContext | None = None,
    on_ready: Callable[[str], None] | None = None,
    on_worker_exit: Callable[[], None] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    max_header: int = DEFAULT_MAX_HEADER,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT,
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
    backlog: int = 2048,
) -> int:
    """Serve HTTP on ``host``:``port`` (0 picks a free port) until SIGTERM or
    SIGINT, and return the process exit code.

    Each worker calls ``handler_factory()`` in its own process (after the
    fork), so each opens its own storage, and ``on_worker_exit()`` once its
    connections are drained.  ``on_ready(url)`` is called once every worker
    is accepting connections.  Raises ``OSError`` if the port cannot be bound.
    """
    settings = _WorkerSettings(handler_factory, on_worker_exit, ssl_context, backlog, shutdown_timeout,
                               dict(max_body=max_body, max_header=max_header, read_timeout=read_timeout,
                                    keepalive_timeout=keepalive_timeout))
    if workers <= 1:
        sock = _bind(host, port, reuse_port=False)
        sock.listen(backlog)
        url = _url(host, sock.getsockname()[1], ssl_context)
        return _run_worker(sock, settings, lambda: on_ready and on_ready(url))
    return _Supervisor(settings, host, port, workers, on_ready).run()


class _WorkerSettings:
    """What every worker needs to serve (inherited across fork, never pickled)."""

    def __init__(self, handler_factory, on_worker_exit, ssl_context, backlog, shutdown_timeout, limits) -> None:
        self.handler_factory = handler_factory
        self.on_worker_exit = on_worker_exit
        self.ssl_context = ssl_context
        self.backlog = backlog
        self.shutdown_timeout = shutdown_timeout
        self.limits = limits


def _url(host: str, port: int, ssl_context) -> str:
    scheme = "https" if ssl_context is not None else "http"
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}"


def _bind(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening), SO_REUSEADDR set."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # e.g. Windows: the standard loop works, slower
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_worker(sock: socket.socket, settings: _WorkerSettings, on_started: Callable[[], object]) -> int:
    """Serve on a listening socket in a fresh event loop until SIGTERM/SIGINT."""
    loop = _new_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(_worker_main(sock, settings, on_started))
    finally:
        loop.close()
        asyncio.set_event_loop(None)


async def _worker_main(sock: socket.socket, settings: _WorkerSettings, on_started) -> int:
    loop = asyncio.get_running_loop()
    handler = settings.handler_factory()
    try:
        server = HttpServer(handler, ssl_context=settings.ssl_context, **settings.limits)
        await server.start(sock, backlog=settings.backlog)
        # Handlers with work of their own (change-log pruning, index backfill,
        # time to live) run it on this loop between requests.
        start_background = getattr(handler, "start_background", None)
        if start_background is not None:
            start_background(loop)
        stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        # What start-up built (modules, the API model's checkers, caches) lives
        # as long as the worker: move it out of the collector's generations,
        # so that the full collections that requests in flight set off (a
        # BatchWriteItem's parsed items survive the younger ones while they
        # wait for a group commit) no longer traverse it (docs/optimisations.md).
        gc.freeze()
        on_started()
        await stop.wait()
        stop_background = getattr(handler, "stop_background", None)
        if stop_background is not None:
            stop_background()
        await server.shutdown(settings.shutdown_timeout)
    finally:
        if settings.on_worker_exit is not None:
            settings.on_worker_exit()
    return 0


class _Supervisor:
    """The parent of several workers: binds, forks, forwards signals, restarts."""

    def __init__(self, settings: _WorkerSettings, host: str, port: int, workers: int, on_ready) -> None:
        self.settings = settings
        self.host = host
        self.workers = workers
        self.on_ready = on_ready
        self.reuse_port = hasattr(socket, "SO_REUSEPORT")
        self.holder = self._reserve(host, port)
        self.port = self.holder.getsockname()[1]
        self.children: dict[int, float] = {}  # pid -> start time
        self.deaths: list[float] = []
        self.parent_pid = os.getpid()
        self.ready_r, self.ready_w = os.pipe()
        os.set_blocking(self.ready_r, False)

    def _reserve(self, host: str, port: int) -> socket.socket:
        if not self.reuse_port:
            sock = _bind(host, port, reuse_port=False)
            sock.listen(self.settings.backlog)
            return sock
        probe = _bind(host, port, reuse_port=False)  # fails if anyone holds the port
        port = probe.getsockname()[1]
        probe.close()
        return _bind(host, port, reuse_port=True)

    def run(self) -> int:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SUPERVISED)
        old_chld = signal.signal(signal.SIGCHLD, _ignore)
        try:
            code = self._start_all()
            if code is None:
                if self.on_ready is not None:
                    self.on_ready(_url(self.host, self.port, self.settings.ssl_context))
                code = self._supervise()
            return code
        finally:
            self._stop_all()
            signal.signal(signal.SIGCHLD, old_chld)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            self.holder.close()
            os.close(self.ready_r)
            os.close(self.ready_w)

    # -- children ------------------------------------------------------------

    def _spawn(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._child()  # never returns
        self.children[pid] = time.monotonic()

    def _child(self) -> None:
        code = 1
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _stop_with_parent(self.parent_pid)
            signal.pthread_sigmask(signal.SIG_SETMASK, set())
            os.close(self.ready_r)
            if self.reuse_port:
                sock = _bind(self.host, self.port, reuse_port=True)
                sock.listen(self.settings.backlog)
                self.holder.close()
            else:
                sock = self.holder
            code = _run_worker(sock, self.settings, self._report_ready)
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _report_ready(self) -> None:
        try:
            os.write(self.ready_w, b"r")
        except OSError:
            pass

    def _start_all(self) -> int | None:
        """Fork the workers and wait until all accept; None when they do."""
        for _ in range(self.workers):
            self._spawn()
        ready = 0
        deadline = time.monotonic() + _START_TIMEOUT_S
        while ready < self.workers:
            if time.monotonic() > deadline:
                print("shoal: workers did not start in time", file=sys.stderr)
                return 1
            info = signal.sigtimedwait(_SUPERVISED, 0.02)
            if info is not None and info.si_signo != signal.SIGCHLD:
                return 0  # stopped during start-up
            if self._reap(restart=False):
                print("shoal: a worker failed to start", file=sys.stderr)
                return 1
            ready += self._drain_ready()
        return None

    def _drain_ready(self) -> int:
        try:
            return len(os.read(self.ready_r, 4096))
        except BlockingIOError:
            return 0

    def _supervise(self) -> int:
        while True:
            info = signal.sigwaitinfo(_SUPERVISED)
            if info.si_signo != signal.SIGCHLD:
                return 0 if self._stop_all() else 1
            self._drain_ready()
            if self._reap(restart=True) and self._too_many_deaths():
                print("shoal: workers keep dying; stopping", file=sys.stderr)
                return 1

    def _reap(self, *, restart: bool) -> bool:
        """Collect dead workers (reporting each); True if any died."""
        died = False
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if self.children.pop(pid, None) is None:
                continue
            died = True
            self.deaths.append(time.monotonic())
            print(f"shoal: worker {pid} {_describe(status)}"
                  f"{'; starting a new one' if restart else ''}", file=sys.stderr, flush=True)
            if restart and not self._too_many_deaths():
                self._spawn()
        return died

    def _too_many_deaths(self) -> bool:
        recent = time.monotonic() - _RESTART_WINDOW_S
        self.deaths = [t for t in self.deaths if t >= recent]
        return len(self.deaths) > _MAX_RESTARTS

    def _stop_all(self) -> bool:
        """SIGTERM every worker and wait for them; True if all exited 0.
        Workers still running after their own drain time get SIGKILL."""
        ok = True
        self._signal_children(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_timeout + 10
        while self.children:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._signal_children(signal.SIGKILL)
                deadline = time.monotonic() + 10
                remaining = 10
            info = signal.sigtimedwait(_SUPERVISED, min(remaining, 0.5))
            if info is not None and info.si_signo != signal.SIGCHLD:
                self._signal_children(signal.SIGTERM)  # asked again: pass it on
            while self.children:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    self.children.clear()
                    break
                if pid == 0:
                    break
                if self.children.pop(pid, None) is not None and status != 0:
                    ok = False
                    print(f"shoal: worker {pid} {_describe(status)}", file=sys.stderr, flush=True)
        return ok

    def _signal_children(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            except OSError as exc:  # pragma: no cover - unexpected
                if exc.errno != errno.ESRCH:
                    raise


def _stop_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM to this worker if the supervisor dies
    (say, SIGKILLed), so workers never outlive it and hold the port.  Linux
    only; elsewhere orphans are left to the operator."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _ignore(signum, frame) -> None:
    """A SIGCHLD handler that does nothing: with the signal blocked it is
    only there so that the kernel queues SIGCHLD for sigwaitinfo."""


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"


__all__ = ["serve"]
