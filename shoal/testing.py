"""Shoal inside a Python test process: a context manager, a decorator and
(through :mod:`shoal.testing_plugin`) pytest fixtures.

Python teams usually meet a DynamoDB emulator inside their tests, as moto's
``mock_aws``.  Here the emulator is the real server: each block below starts
Shoal on a free loopback port, served by a background thread with its own
event loop, over a temporary data directory (removed afterwards), auth off,
and points boto3 at it through ``AWS_ENDPOINT_URL_DYNAMODB`` (botocore honours
service-specific endpoint variables), so that code under test that simply
calls ``boto3.client("dynamodb")`` talks to Shoal::

    from shoal.testing import mock_shoal, shoal_server

    with shoal_server() as shoal:              # a context manager
        shoal.client().list_tables()           # or boto3.client("dynamodb")
        shoal.reset()                          # every table deleted

    @mock_shoal                                # a decorator, as moto's @mock_aws
    def test_something():
        boto3.client("dynamodb").create_table(...)

A suite written with ``@mock_aws`` switches by changing its import and the
decorator's name.  With pytest, the ``shoal`` fixture (and ``dynamodb``, a
client) come from :mod:`shoal.testing_plugin`, registered as a plugin when
Shoal is installed.

Start-up (``start()`` until the port accepts connections), measured on the
development machine (2 shared cores, Linux, Python 3.11, bytecode cached):
about 90 ms for the first server of a process that has imported boto3 (65 ms
of it importing Shoal's server modules, 35 ms loading the DynamoDB API model),
2.5-4 ms for each later one; where Python may not cache bytecode
(``PYTHONDONTWRITEBYTECODE``) the first takes 220-380 ms.
``ShoalServer.startup_s`` holds the figure of each server.  What keeps it
small: one worker on a thread, no subprocess, no ``gc.freeze``, no fsync
(``sync=False``: test data is thrown away, and a flush per write would make
every test pay for durability it does not need).  The pytest fixture shares
one server per session and empties it around each test instead (under a
millisecond when a test leaves a few small tables).

Importing this module is cheap and starts nothing: it is loaded by the
pytest plugin in every test run, so asyncio, boto3 and Shoal's server modules
are imported only when a server starts.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import shutil
import sys
import tempfile
import threading
import time
from typing import Any, Iterator

__all__ = ["ShoalMock", "ShoalServer", "aws_environment", "mock_shoal", "shoal_server"]

DEFAULT_REGION = "us-east-1"
# Credentials boto3 signs with when the environment names none; with auth off
# Shoal accepts any, and dummy ones keep tests away from real ones.
DUMMY_ACCESS_KEY = "testing"
DUMMY_SECRET_KEY = "testing"
# How long stop() lets requests in flight finish before dropping them.
SHUTDOWN_TIMEOUT_S = 5.0
_START_TIMEOUT_S = 30.0
# The catalog keeps each table under table_key(region, name) =
# b"table/" + region + b"\0" + name (shoal.api.catalog); this range holds all.
_CATALOG_START, _CATALOG_STOP = b"table/", b"table0"


class ShoalServer:
    """One Shoal server on a background thread of this process.

    ``start()`` opens a temporary data directory, binds a free port on
    ``host`` and serves on a thread running its own event loop;
    ``stop()`` drains it, closes the engine and removes the directory.
    It does not touch the environment: :func:`shoal_server` and
    :func:`aws_environment` do that.
    """

    def __init__(self, *, region: str = DEFAULT_REGION, host: str = "127.0.0.1") -> None:
        self.region = region  # for requests whose signature names none
        self.host = host
        self.port: int | None = None
        self.data_dir: str | None = None
        # Buckets of ExportTableToPointInTime and ImportTable: bucket B is the folder s3_dir/B.
        self.s3_dir: str | None = None
        self.startup_s: float | None = None  # how long start() took
        self._engine = None
        self._dispatcher = None
        self._loop = None
        self._thread: threading.Thread | None = None
        self._stop_requested = None  # an asyncio.Event of the server's loop
        self._clients: list = []  # made by client()/resource(), closed by stop()

    @property
    def endpoint_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the Shoal server is not running")
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> ShoalServer:
        """Serve; return once the port accepts connections."""
        if self.running:
            raise RuntimeError("the Shoal server is already running")
        started = time.perf_counter()  # the first start's imports count too
        import concurrent.futures

        from shoal.server.dispatch import Dispatcher
        from shoal.storage.datadir import open_data_dir

        self.data_dir = tempfile.mkdtemp(prefix="shoal-test-")
        try:
            self._engine = open_data_dir(self.data_dir, sync=False)
            self.s3_dir = os.path.join(self.data_dir, "s3")
            os.makedirs(self.s3_dir)
            self._dispatcher = Dispatcher(self._engine, default_region=self.region, s3_dir=self.s3_dir)
            self._loop = _new_loop()
            bound: concurrent.futures.Future = concurrent.futures.Future()
            self._thread = threading.Thread(target=self._serve, args=(bound,), name="shoal-server", daemon=True)
            self._thread.start()
            self.port = bound.result(timeout=_START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def stop(self) -> None:
        """Finish requests in flight, stop the loop and its thread, close the
        engine and remove the data directory.  Safe to call twice."""
        for client in self._clients:
            client.close()  # their pooled connections, before the server drops them
        self._clients.clear()
        if self._thread is not None:
            if self._stop_requested is not None:
                self._loop.call_soon_threadsafe(self._stop_requested.set)
            self._thread.join()
            self._thread = None
        elif self._loop is not None:  # never started serving
            self._loop.close()
        self._loop = self._stop_requested = None
        if self._dispatcher is not None:
            self._dispatcher.close()
            self._dispatcher = None
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        if self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.data_dir = self.s3_dir = None
        self.port = None

    def __enter__(self) -> ShoalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the server thread ---------------------------------------------------

    def _serve(self, bound) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main(bound))
        finally:
            self._loop.close()
            asyncio.set_event_loop(None)

    async def _main(self, bound) -> None:
        import asyncio

        from shoal.server.http import HttpServer

        try:
            server = HttpServer(self._dispatcher)
            await server.start(host=self.host, port=0)
        except BaseException as exc:
            bound.set_exception(exc)
            return
        # Background jobs (index backfill, TTL, streams) run here as in `shoal serve`.
        self._dispatcher.start_background(asyncio.get_running_loop())
        self._stop_requested = asyncio.Event()
        bound.set_result(server.port)
        await self._stop_requested.wait()
        self._dispatcher.stop_background()
        await server.shutdown(SHUTDOWN_TIMEOUT_S)

    def _on_loop(self, function):
        """Run ``function()`` on the server's loop and return its result: it
        then sees storage between two requests, never inside a group commit."""
        import concurrent.futures

        if not self.running:
            raise RuntimeError("the Shoal server is not running")
        done: concurrent.futures.Future = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(function())
            except BaseException as exc:
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return done.result()

    # -- helpers for tests ---------------------------------------------------

    def reset(self) -> None:
        """Delete every table, in every region, as DeleteTable does, and run
        the purge DeleteTable leaves to the background to its end, so that
        nothing of the old tables is left behind.

        Tables protected against deletion are unprotected first, and index
        builds still running are finished, since DeleteTable refuses both.
        Transaction idempotency tokens are forgotten too, so that a token
        reused by the next test is not taken for a retry.  Streams of deleted
        tables stay listed, as in DynamoDB.
        """
        self._on_loop(self._delete_everything)

    def _delete_everything(self) -> None:
        from shoal.api import DEFAULT_ACCOUNT, Context
        from shoal.api.indexes import IndexJobs
        from shoal.api.tables import purge_prefix
        from shoal.api.transactions import TOKEN_PREFIX

        engine, dispatcher = self._engine, self._dispatcher
        index_jobs = IndexJobs(engine)
        while index_jobs():
            pass
        with engine.read() as txn:
            keys = [bytes(key) for key, _ in txn.scan("meta", _CATALOG_START, _CATALOG_STOP)]
        for key in keys:
            region, name = key[len(_CATALOG_START):].decode().split("\0", 1)
            ctx = Context(region, DEFAULT_ACCOUNT, engine, dispatcher.catalog)
            table = dispatcher.operations["DescribeTable"](ctx, {"TableName": name})["Table"]
            if table.get("DeletionProtectionEnabled"):
                dispatcher.operations["UpdateTable"](ctx, {"TableName": name, "DeletionProtectionEnabled": False})
            dispatcher.operations["DeleteTable"](ctx, {"TableName": name})
        while index_jobs():  # the purges of the deleted tables (the background job's steps)
            pass
        purge_prefix(engine, "meta", TOKEN_PREFIX)

    def client(self, service: str = "dynamodb", **kwargs: Any):
        """A boto3 client of this server (``dynamodb`` or ``dynamodbstreams``),
        closed by ``stop()``.  Its region is the one plain boto3 clients use
        here (``AWS_DEFAULT_REGION``, else the server's), so both see the same
        tables; keyword arguments override any setting."""
        import boto3

        client = boto3.client(service, **self._settings(kwargs))
        self._clients.append(client)
        return client

    def resource(self, **kwargs: Any):
        """A boto3 DynamoDB resource of this server (see :meth:`client`)."""
        import boto3

        resource = boto3.resource("dynamodb", **self._settings(kwargs))
        self._clients.append(resource.meta.client)
        return resource

    def _settings(self, overrides: dict) -> dict:
        return {"endpoint_url": self.endpoint_url,
                "region_name": os.environ.get("AWS_DEFAULT_REGION", self.region),
                "aws_access_key_id": DUMMY_ACCESS_KEY, "aws_secret_access_key": DUMMY_SECRET_KEY,
                **overrides}


def _new_loop():
    """uvloop's event loop where it is installed (as `shoal serve` uses), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


# -- the environment boto3 reads ------------------------------------------------


@contextlib.contextmanager
def aws_environment(endpoint_url: str, region: str = DEFAULT_REGION) -> Iterator[None]:
    """Point boto3 clients made inside the block at ``endpoint_url`` (a
    client made before the block keeps the endpoint it was made with).

    Sets ``AWS_ENDPOINT_URL_DYNAMODB`` (and ``..._DYNAMODB_STREAMS``), and
    dummy credentials and ``AWS_DEFAULT_REGION`` where the environment has
    none; hides ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``, which would make
    botocore ignore the endpoint.  Afterwards every variable it touched is
    as it was.  boto3's default session caches the credentials it resolved,
    so the block gets a session of its own and the one before it is put back
    afterwards (see :func:`_fresh_boto3_session`).
    """
    wanted: dict[str, str | None] = {
        "AWS_ENDPOINT_URL_DYNAMODB": endpoint_url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint_url,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": None,
    }
    if not os.environ.get("AWS_ACCESS_KEY_ID"):
        wanted.update(AWS_ACCESS_KEY_ID=DUMMY_ACCESS_KEY, AWS_SECRET_ACCESS_KEY=DUMMY_SECRET_KEY,
                      AWS_SESSION_TOKEN=None)
    if not os.environ.get("AWS_DEFAULT_REGION"):
        wanted["AWS_DEFAULT_REGION"] = region
    saved = {name: os.environ.get(name) for name in wanted}
    _set_environment(wanted)
    boto3 = sys.modules.get("boto3")  # not imported yet: it has no session to replace
    saved_session = boto3.DEFAULT_SESSION if boto3 is not None else None
    if boto3 is not None:
        boto3.DEFAULT_SESSION = _fresh_boto3_session(boto3)
    try:
        yield
    finally:
        _set_environment(saved)
        boto3 = sys.modules.get("boto3")
        if boto3 is not None:
            boto3.DEFAULT_SESSION = saved_session


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# The loader of botocore's JSON models (API shapes, endpoints), shared by the
# sessions _fresh_boto3_session makes: what it holds is the same for all, and
# loading it again costs a new session about 60 ms of its first client's 85.
_boto3_models = None


def _fresh_boto3_session(boto3):
    """A boto3 session that resolves credentials (and everything else) anew,
    from the environment as it is now, without reloading botocore's models."""
    global _boto3_models
    import botocore.session

    core = botocore.session.get_session()
    if _boto3_models is None:
        _boto3_models = core.get_component("data_loader")
    else:
        core.register_component("data_loader", _boto3_models)
    session = boto3.Session(botocore_session=core)
    # Each boto3 session appends its own data directory to the loader's paths.
    _boto3_models.search_paths[:] = dict.fromkeys(_boto3_models.search_paths)
    return session


@contextlib.contextmanager
def shoal_server(*, region: str = DEFAULT_REGION) -> Iterator[ShoalServer]:
    """A fresh Shoal server for the block, with boto3 pointed at it
    (:func:`aws_environment`); stopped, and the environment restored, after."""
    with ShoalServer(region=region) as server, aws_environment(server.endpoint_url, region):
        yield server


# -- the decorator ----------------------------------------------------------------


def mock_shoal(target=None, *, region: str = DEFAULT_REGION):
    """Run tests against Shoal, used as moto's ``mock_aws`` is.

    As a decorator, bare (``@mock_shoal``) or called
    (``@mock_shoal(region="eu-west-1")``): on a function (plain or
    ``async``), each call gets a fresh server.  On a class, each test gets
    one, started before and stopped after the class's own set-up and
    tear-down, so that these see the same tables as the test: for a
    ``unittest.TestCase`` through ``setUp`` and a cleanup, for a pytest class
    through ``setup_method``/``teardown_method``.

    Called without a target it also serves as a context manager
    (``with mock_shoal() as shoal:``) or by hand (``mock = mock_shoal();
    mock.start(); ...; mock.stop()``), as moto's is in ``setUp``/``tearDown``.
    """
    mock = ShoalMock(region)
    return mock if target is None else mock(target)


class ShoalMock:
    """What ``mock_shoal()`` returns: a decorator, and a :func:`shoal_server`
    block that can also be entered and left by ``start()`` and ``stop()``."""

    def __init__(self, region: str = DEFAULT_REGION) -> None:
        self.region = region
        self.server: ShoalServer | None = None  # while started
        self._context = None

    def start(self) -> ShoalServer:
        if self._context is not None:
            raise RuntimeError("this mock_shoal is already started")
        context = shoal_server(region=self.region)
        self.server = context.__enter__()
        self._context = context
        return self.server

    def stop(self) -> None:
        context, self._context, self.server = self._context, None, None
        if context is not None:
            context.__exit__(None, None, None)

    def __enter__(self) -> ShoalServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def __call__(self, target):
        """Decorate ``target``; each run opens a server of its own, so one
        decorated function may run several times, even at once."""
        region = self.region
        if inspect.isclass(target):
            return _decorate_class(target, region)
        if inspect.iscoroutinefunction(target):
            @functools.wraps(target)
            async def run_async(*args, **kwargs):
                with shoal_server(region=region):
                    return await target(*args, **kwargs)

            return run_async

        @functools.wraps(target)
        def run(*args, **kwargs):
            with shoal_server(region=region):
                return target(*args, **kwargs)

        return run


def _decorate_class(cls, region: str):
    import unittest

    if issubclass(cls, unittest.TestCase):
        original_set_up = cls.setUp

        @functools.wraps(original_set_up)
        def set_up(self, *args, **kwargs):
            context = shoal_server(region=region)
            context.__enter__()
            # Cleanups run after tearDown, and even when setUp fails.
            self.addCleanup(context.__exit__, None, None, None)
            original_set_up(self, *args, **kwargs)

        cls.setUp = set_up
        return cls

    original_setup = getattr(cls, "setup_method", None)
    original_teardown = getattr(cls, "teardown_method", None)

    def setup_method(self, method=None):
        context = shoal_server(region=region)
        context.__enter__()
        try:
            _call_xunit(original_setup, self, method)
        except BaseException:  # pytest skips teardown_method when setup_method fails
            context.__exit__(None, None, None)
            raise
        self._shoal_context = context

    def teardown_method(self, method=None):
        try:
            _call_xunit(original_teardown, self, method)
        finally:
            context = self.__dict__.pop("_shoal_context", None)
            if context is not None:
                context.__exit__(None, None, None)

    cls.setup_method = setup_method
    cls.teardown_method = teardown_method
    return cls


def _call_xunit(function, instance, method) -> None:
    """Call a class's own setup_method/teardown_method, which pytest lets
    declare the test method argument or not."""
    if function is None:
        return
    if len(inspect.signature(function).parameters) > 1:
        function(instance, method)
    else:
        function(instance)
