"""Routing of DynamoDB JSON-protocol requests, and the one place errors are
rendered to the wire.

A request flows: HTTP envelope checks -> X-Amz-Target -> JSON body ->
credential scope (region) -> model-driven shape validation -> the operation
in ``shoal.api`` -> a JSON response with x-amzn-RequestId and x-amz-crc32.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import string
import time
import traceback
import zlib

import orjson

from shoal.api import DEFAULT_ACCOUNT, DEFAULT_REGION, Context, operations
from shoal.api.catalog import Catalog
from shoal.api.indexes import IndexJobs
from shoal.api.shapes import ShapeValidator
from shoal.api.streams import Materializer, Trimmer
from shoal.api.ttl import Sweeper
from shoal.api.writepath import DEFAULT_RETENTION_S, prune_changes
from shoal.errors import (
    InternalServerError,
    NotImplementedOperation,
    SerializationException,
    ShoalError,
    UnknownOperationException,
)
from shoal.server.committer import DEFAULT_GROUP_COMMIT_WAIT_S, GroupCommitter
from shoal.server.http import Request, Response
from shoal.triggers.runner import TriggerRunner

log = logging.getLogger("shoal")

DYNAMODB_PREFIX = "DynamoDB_20120810."
STREAMS_PREFIX = "DynamoDBStreams_20120810."
JSON_TYPES = ("application/x-amz-json-1.0", "application/json")
FORM_TYPE = "application/x-www-form-urlencoded"

_ALPHABET = string.ascii_uppercase + string.digits

# Operations whose items' attribute values are checked once, by the item
# checks, instead of also by the model's (ShapeValidator.validate(defer_items=True)).
DEFERRED_ITEM_CHECKS = frozenset({"PutItem", "BatchWriteItem"})

# Operations that write: run through group commit, acknowledged once durable.
WRITE_OPERATIONS = frozenset({
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
    "CreateTable", "UpdateTable", "DeleteTable", "TagResource", "UntagResource", "UpdateTimeToLive",
    "PutResourcePolicy", "DeleteResourcePolicy",
    "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
})


def _request_ids():
    """52-character request ids in DynamoDB's style (upper-case letters and
    digits): a random per-process prefix and a hexadecimal counter, unique
    without a random draw per request."""
    prefix = "".join(_ALPHABET[b % 36] for b in os.urandom(40))
    for n in itertools.count():
        yield f"{prefix}{n:012X}"


def region_of(authorization: str | None, default: str) -> tuple[str, str | None]:
    """(region, access key) from a SigV4 Authorization header's credential scope.

    Signatures are not verified here (that is the auth layer's job); a
    missing or unparsable header falls back to the default region.
    """
    if not authorization:
        return default, None
    at = authorization.find("Credential=")
    if at < 0:
        return default, None
    end = authorization.find(",", at)
    scope = authorization[at + 11 : end if end >= 0 else None].strip().split("/")
    if len(scope) >= 3 and scope[2]:
        return scope[2], scope[0] or None
    return default, scope[0] or None


class Dispatcher:
    """The request handler of one worker process."""

    BACKGROUND_INTERVAL_S = 1.0  # between rounds of background work

    def __init__(
        self,
        engine,
        *,
        default_region: str = DEFAULT_REGION,
        change_retention_s: float = DEFAULT_RETENTION_S,
        group_commit: bool = True,
        group_commit_wait_s: float = DEFAULT_GROUP_COMMIT_WAIT_S,
        auth: str = "off",
        data_dir: str | None = None,
        audit_log: str | None = None,
    ) -> None:
        self.engine = engine
        self.group_commit = group_commit
        self.committer = GroupCommitter(engine, max_wait_s=group_commit_wait_s)
        self.catalog = Catalog(engine)
        self.operations = operations()
        self.validator = ShapeValidator.for_service("dynamodb")
        self.streams_validator = ShapeValidator.for_service("dynamodbstreams")
        self.default_region = default_region
        self.change_retention_s = change_retention_s
        self._ids = _request_ids()
        self._background = None
        # Periodic work, each a callable run in its own write transaction on
        # the event loop between requests; returns True while it has more to do.
        self.background_jobs: list = [self._prune, IndexJobs(engine), Sweeper(engine, self.catalog),
                                      Materializer(engine), Trimmer(engine)]
        # Stream triggers (shoal.triggers): deliver on a thread, decide here.
        self.triggers = TriggerRunner(engine)
        self.background_jobs.append(self.triggers)
        self._health = f"healthy: dynamodb.{default_region}.amazonaws.com ".encode()
        # With auth on, every request must carry a valid SigV4 signature and
        # be allowed by the caller's policies (shoal.auth).
        self.gate = None
        if auth == "sigv4":
            from shoal.auth.gate import Gate  # only paid for when auth is on

            self.gate = Gate(engine, data_dir, self.catalog, audit_path=audit_log)
        if self.gate is not None:
            self.background_jobs.append(self.gate.store.prune_expired)

    def __call__(self, request: Request):
        """Answer one request: a Response, or an awaitable of one for writes,
        which are acknowledged only once their group commit is durable."""
        request_id = next(self._ids)
        self.committer.arrivals += 1
        if request.method != "POST":
            if request.method == "GET" and request.path.split("?", 1)[0] == "/":
                return Response(200, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id)], self._health)
            return _unknown_operation_404(request_id)
        content_type = request.headers.get("content-type", "")
        if content_type not in JSON_TYPES:  # parameters, other cases, spaces: normalize
            content_type = content_type.split(";", 1)[0].strip().lower()
        if content_type == FORM_TYPE and self.gate is not None:
            return self._sts(request, request_id)
        if request.body and content_type not in JSON_TYPES:
            return _unknown_operation_404(request_id)
        response_type = "application/json" if content_type == "application/json" else JSON_TYPES[0]
        try:
            operation, job = self._prepare(request, request_id)
            if operation in WRITE_OPERATIONS and self.group_commit:
                return self._respond_later(request_id, response_type, self.committer.submit(job))
            return _response(request_id, response_type, 200, job())
        except Exception as exc:
            return _response(request_id, response_type, *_error(exc, request_id))

    async def _respond_later(self, request_id: str, response_type: str, future) -> Response:
        try:
            body = await future
        except Exception as exc:
            return _response(request_id, response_type, *_error(exc, request_id))
        return _response(request_id, response_type, 200, body)

    def _prepare(self, request: Request, request_id: str | None = None):
        """Route and validate a request; return (operation, a job that runs it
        and returns the response body)."""
        target = request.headers.get("x-amz-target", "")
        if target.startswith(DYNAMODB_PREFIX):
            operation, validator = target[len(DYNAMODB_PREFIX) :], self.validator
        elif target.startswith(STREAMS_PREFIX):
            operation, validator = target[len(STREAMS_PREFIX) :], self.streams_validator
        else:
            raise UnknownOperationException()
        if operation not in validator.operations:
            raise UnknownOperationException()
        if self.gate is not None:
            # As DynamoDB does: the signature is checked once the operation is
            # known, before the body is parsed; policies after validation.
            credentials = self.gate.authenticate(request, operation=operation, request_id=request_id)
            region, access_key = credentials.region, credentials.access_key
        else:
            region, access_key = region_of(request.headers.get("authorization"), self.default_region)
        if not request.body:
            raise SerializationException()
        try:
            data = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            raise SerializationException() from None
        deferred = validator is self.validator and operation in DEFERRED_ITEM_CHECKS
        validator.validate(operation, data, defer_items=deferred)
        if self.gate is not None:
            try:
                self.gate.authorize(credentials, operation, data, request, request_id)
            except ShoalError:
                if deferred:  # a request DynamoDB finds malformed is refused as such first
                    validator.validate(operation, data)
                raise
        handler = self.operations.get(operation)
        if handler is None:
            raise NotImplementedOperation(operation)
        ctx = Context(region, DEFAULT_ACCOUNT, self.engine, self.catalog, access_key)

        def job() -> bytes:
            try:
                result = handler(ctx, data)
            except ShoalError:
                if deferred:  # the model's errors anywhere in the request come first
                    validator.validate(operation, data)
                raise
            return result if isinstance(result, bytes) else orjson.dumps(result)

        return operation, job

    def _sts(self, request: Request, request_id: str) -> Response:
        """The STS query-protocol endpoint (AssumeRole, GetCallerIdentity)."""
        from shoal.auth.sts import error_xml

        try:
            status, content_type, body = self.gate.sts(request, request_id)
        except ShoalError as exc:
            status, content_type = exc.status, "text/xml"
            body = error_xml(exc.type_name, exc.message, request_id)
        return Response(status, [("Content-Type", content_type), ("x-amzn-RequestId", request_id)], body)

    def close(self) -> None:
        """Stop the group committer's sync thread (connections have drained)."""
        self.committer.close()
        self.triggers.close()
        if self.gate is not None:
            self.gate.close()

    def start_background(self, loop) -> None:
        """Run background jobs on ``loop`` (called by the worker once serving)."""
        self._background = loop.create_task(self._run_background())

    def stop_background(self) -> None:
        if self._background is not None:
            self._background.cancel()
            self._background = None

    async def _run_background(self) -> None:

        while True:
            busy = False
            for job in self.background_jobs:
                try:
                    busy = bool(job()) or busy
                except Exception:
                    log.error("background job %s failed:\n%s", getattr(job, "__name__", job),
                              traceback.format_exc())
            # Short pauses while a job has a backlog, so it catches up without
            # holding the loop (each round is one bounded transaction).
            await asyncio.sleep(0.01 if busy else self.BACKGROUND_INTERVAL_S)

    def _prune(self) -> bool:
        """Drop change records past their retention, a bounded amount at a time."""
        with self.engine.write() as txn:
            return prune_changes(txn, self.change_retention_s, time.time()) > 0


def _response(request_id: str, response_type: str, status: int, body: bytes) -> Response:
    return Response(
        status,
        [
            ("Content-Type", response_type),
            ("x-amzn-RequestId", request_id),
            ("x-amz-crc32", str(zlib.crc32(body))),
        ],
        body,
    )


def _error(exc: Exception, request_id: str) -> tuple[int, bytes]:
    """The one place an error becomes a status and a JSON body."""
    if not isinstance(exc, ShoalError):  # a bug: report it, keep serving
        log.error("internal error in request %s:\n%s", request_id,
                  "".join(traceback.format_exception(exc)))
        exc = InternalServerError("Internal server error")
    return exc.status, orjson.dumps(exc.to_body())


def _unknown_operation_404(request_id: str) -> Response:
    body = b"<UnknownOperationException/>\n"
    return Response(
        404,
        [("x-amzn-RequestId", request_id), ("x-amz-crc32", str(zlib.crc32(body)))],
        body,
    )
