"""Routing of DynamoDB JSON-protocol requests, and the one place errors are
rendered to the wire.

A request flows: HTTP envelope checks -> X-Amz-Target -> JSON body ->
credential scope (region) -> model-driven shape validation -> the operation
in ``shoal.api`` -> a JSON response with x-amzn-RequestId and x-amz-crc32.
Writes are answered once their group commit is durable
(``shoal.server.committer``); over an engine that reads ahead (PostgreSQL),
the GetItems of one turn of the event loop are answered in the next, their
keys read in one round trip (``shoal.server.batched_reads``).
With metrics on, each DynamoDB request's operation, table, latency and
outcome, and what it consumed (``Context.meter``), go to the worker's
recorder (``shoal.metrics``); for the tables with contributor insights on,
the keys it read or wrote (or was refused for want of throughput) are
counted after it ran (``shoal.metrics.insights``).  CloudWatch's metric API (JSON protocol,
``X-Amz-Target: GraniteServiceVersion20100801.<Op>``, signed for the service
``monitoring``) and ``GET /metrics`` (Prometheus) are answered here too.
"""

from __future__ import annotations

import gzip
import ipaddress
import itertools
import logging
import os
import string
import asyncio
import traceback
import zlib
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from urllib.parse import parse_qsl

import orjson

from shoal.api import DEFAULT_ACCOUNT, DEFAULT_REGION, Context, backups, bulk, exports, jobs, operations
from shoal.api.catalog import Catalog, PinnedCatalog
from shoal.api.partiql import OPERATIONS as PARTIQL_OPERATIONS, reads_only
from shoal.api.keys_ahead import KEYED_WRITES
from shoal.api.shapes import ShapeValidator
from shoal.autoscaling import TARGET_PREFIX as AUTOSCALING_PREFIX, AutoScaling, Scaler
from shoal.capacity import Capacity, enabled_by_default as capacity_by_default, shared_buckets
from shoal.capacity.control_plane import OPERATIONS as CONTROL_PLANE_OPERATIONS
from shoal.api.changelog import DEFAULT_RETENTION_S
from shoal.errors import (
    CORAL_NS,
    InternalServerError,
    NotImplementedOperation,
    SerializationException,
    ShoalError,
    UnknownOperationException,
)
from shoal.metrics import Metrics, enabled_by_default as metrics_by_default, switch_off as metrics_off
from shoal.metrics import dynamodb as dynamodb_metrics
from shoal.auth.audit import DEFAULT_FILE as DEFAULT_AUDIT_FILE, AuditLog
from shoal.metrics.alarms import Alarms, Evaluator as AlarmEvaluator
from shoal.metrics.insights import Insights
from shoal.server import cbor_protocol
from shoal.server.services import CERTIFICATE_PATH, Services, signed_service
from shoal.sns import Delivery as SnsDelivery, Sns
from shoal.metrics.cloudwatch import TARGET_PREFIX as CLOUDWATCH_PREFIX
from shoal.metrics.errors import as_cloudwatch
from shoal.server.background import BackgroundJobs
from shoal.server.batched_reads import ReadBatcher
from shoal.server.committer import DEFAULT_GROUP_COMMIT_WAIT_S, GroupCommitter
from shoal.settings import request_clock
from shoal.server.http import DEFAULT_MAX_BODY, TOO_LARGE_MESSAGE, Request, Response

log = logging.getLogger("shoal")

DYNAMODB_PREFIX = "DynamoDB_20120810."
STREAMS_PREFIX = "DynamoDBStreams_20120810."
JSON_TYPES = ("application/x-amz-json-1.0", "application/json")
AUTOSCALING_JSON = "application/x-amz-json-1.1"  # Application Auto Scaling's protocol (shoal.autoscaling)
FORM_TYPE = "application/x-www-form-urlencoded"
# STS's actions: an unsigned form request naming one goes to STS (which refuses it).
STS_ACTIONS = frozenset({"AssumeRole", "GetCallerIdentity", "GetSessionToken", "GetFederationToken",
                         "GetAccessKeyInfo", "AssumeRoleWithWebIdentity", "AssumeRoleWithSAML",
                         "DecodeAuthorizationMessage"})

_ALPHABET = string.ascii_uppercase + string.digits

# Operations whose items' attribute values are checked once, by the item
# checks, instead of also by the model's (ShapeValidator.validate(defer_items=True)).
DEFERRED_ITEM_CHECKS = frozenset({"PutItem", "BatchWriteItem"})

# Operations that write: run through group commit, acknowledged once durable.
WRITE_OPERATIONS = frozenset({
    "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems",
    "CreateTable", "UpdateTable", "DeleteTable", "TagResource", "UntagResource", "UpdateTimeToLive",
    "PutResourcePolicy", "DeleteResourcePolicy", "UpdateContinuousBackups",
    "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
    "CreateGlobalTable", "UpdateGlobalTable", "UpdateGlobalTableSettings", "UpdateTableReplicaAutoScaling",
    "EnableKinesisStreamingDestination", "DisableKinesisStreamingDestination", "UpdateKinesisStreamingDestination",
})

# Operations whose cancellation names the tables of its items in conflict (TransactionConflict).

# Operations whose work grows with a table's size (a copy, a restore): each
# runs on a thread of its own, in its own bounded transactions, so the event
# loop goes on serving meanwhile.  One at a time per worker process.
LONG_OPERATIONS = frozenset({"CreateBackup", "RestoreTableFromBackup", "RestoreTableToPointInTime"})


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
        s3_dir: str | None = None,
        metrics: bool | None = None,
        console: bool = True,
        capacity: bool | None = None,
        batch_reads: bool | None = None,
    ) -> None:
        self.engine = engine
        # Over an engine that reads ahead (PostgreSQL), the GetItems of one turn
        # of the event loop share one round trip (shoal.server.batched_reads).
        if batch_reads if batch_reads is not None else getattr(engine, "reads_ahead", False):
            self.reads = ReadBatcher(engine, self._answer)
        else:
            self.reads = None
        self.console = console  # the web console at /console (shoal.console), off with --no-console
        # Buckets for exports and imports: --s3-dir, by default <data dir>/s3.
        self.s3_dir = s3_dir or (os.path.join(data_dir, "s3") if data_dir else None)
        self.clock = request_clock()
        self.group_commit = group_commit
        self.committer = GroupCommitter(engine, max_wait_s=group_commit_wait_s)
        self.catalog = Catalog(engine)
        # Throughput limits (shoal.capacity): provisioned tables' and GSIs'
        # capacity units, on-demand maximums; SHOAL_CAPACITY=off switches them off.
        self.capacity = None
        if capacity if capacity is not None else capacity_by_default():
            # Over PostgreSQL the database's buckets: every node draws on one budget.
            self.capacity = Capacity(shared_buckets(engine, data_dir))
            self.catalog.capacity = self.capacity
        #: The operations held to DynamoDB's control-plane rate (none without capacity; a long one is
        #: never rated: it runs off the loop).
        self._rated = CONTROL_PLANE_OPERATIONS - LONG_OPERATIONS if self.capacity is not None else frozenset()
        self.operations = operations()
        from shoal.replication import replica_scaling  # DynamoDB's view of the auto scaling records

        self.operations.update(replica_scaling.OPERATIONS)
        self.validator = ShapeValidator.for_service("dynamodb")
        self.streams_validator = ShapeValidator.for_service("dynamodbstreams")
        self.default_region = default_region
        self.change_retention_s = change_retention_s
        self._ids = _request_ids()
        self._long_work = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shoal-long")
        self._health = f"healthy: dynamodb.{default_region}.amazonaws.com".encode()
        # With auth on, every request must carry a valid SigV4 signature and
        # be allowed by the caller's policies (shoal.auth).
        self.gate = None
        if auth == "sigv4":
            from shoal.auth.gate import Gate  # only paid for when auth is on

            self.gate = Gate(engine, data_dir, self.catalog, audit_path=audit_log)
        exports.recover_interrupted(engine)  # exports and imports a stopped process left IN_PROGRESS
        backups.recover_interrupted(engine, self.catalog)  # and half-made backups and restored tables
        # Bulk put operations a stopped process left running go on from their last chunk.
        bulk.resume_interrupted(Context(default_region, DEFAULT_ACCOUNT, engine, self.catalog, None, self.clock,
                                        self.s3_dir))
        # Metrics (shoal serve --metrics on|off, SHOAL_METRICS): recorded per
        # request, flushed by a background job; CloudWatch's API answers either way.
        self.metrics = None
        if metrics if metrics is not None else metrics_by_default():
            self.metrics = Metrics(engine, self.clock)
            self._metered, self._metered_request = self.metrics.recorder.pairs, self.metrics.recorder.request
        else:
            metrics_off(engine)
        # Contributor insights (shoal.metrics.insights): the keys of requests to the
        # tables and GSIs that have them on, counted after the operation ran
        self.insights = Insights(engine, self.catalog, self.clock, self.committer.submit)
        self._cloudwatch_api = None  # built on the first CloudWatch request, or for the alarms below
        # SNS (the topics alarm actions notify) and alarms, evaluated by every
        # worker (metrics on or off: PutMetricData's custom metrics have alarms
        # too); each change of state is made once, each notification POSTed once.
        self.sns = Sns(engine, self.clock)
        self.alarms = Alarms(engine, self.clock, self.cloudwatch_api(), self.sns.publish)
        self._notifications_audit = self.gate.audit if self.gate is not None else (
            AuditLog(audit_log or os.path.join(data_dir, DEFAULT_AUDIT_FILE), engine=engine) if data_dir else None)
        self.sns_delivery = SnsDelivery(engine, self.clock, self._audit_delivery)
        self.services = Services(self)
        extra_jobs = list(self.metrics.jobs(self.committer.submit)) if self.metrics is not None else []
        extra_jobs += [AlarmEvaluator(self.alarms), self.sns_delivery, self.insights]
        # Application Auto Scaling's API, and the job that follows its targets' consumption
        self.autoscaling = AutoScaling(engine, self.catalog, self.clock)
        if self.capacity is not None:
            extra_jobs.append(Scaler(engine, self.catalog, self.capacity, self.clock))
        self.background = BackgroundJobs.for_worker(
            engine, self.catalog, change_retention_s=change_retention_s,
            iam_store=self.gate.store if self.gate is not None else None, extra_jobs=extra_jobs)

    def _cross_origin(self, request: Request):
        """CORS as DynamoDB does it: any origin is allowed; a preflight
        (OPTIONS) is told the method and headers it asked for are allowed."""
        extra = [("Access-Control-Allow-Origin", "*"), ("Access-Control-Expose-Headers", CORS_EXPOSED)]
        if request.method == "OPTIONS":
            for asked, allowed in (("access-control-request-method", "Access-Control-Allow-Methods"),
                                   ("access-control-request-headers", "Access-Control-Allow-Headers")):
                value = request.headers.get(asked)
                if value is not None:
                    extra.append((allowed, value))
            extra.append(("Access-Control-Max-Age", CORS_MAX_AGE))
        answer = self(request, cross_origin=False)
        if isinstance(answer, Response):
            answer.headers.extend(extra)
            return answer
        return self._cross_origin_later(answer, extra)

    @staticmethod
    async def _cross_origin_later(pending, extra: list) -> Response:
        response = await pending
        response.headers.extend(extra)
        return response

    def _health_of(self, request: Request) -> bytes:
        """``GET /``: DynamoDB answers ``healthy: `` and the endpoint's host."""
        host = request.headers.get("host")
        if not host or not host.isprintable():
            return self._health
        return b"healthy: " + host.encode("utf-8", "replace")

    def _storage_health(self, request_id: str) -> Response:
        """``GET /health``, for load balancers: 200 when a read of storage
        succeeds, 503 while it fails (a PostgreSQL database out of reach);
        the body names the storage and its state.  Open to anyone, as ``GET /``."""
        from shoal.auth.iam import shares_store  # PostgreSQL, plain or encrypted at rest

        kind = "postgresql" if shares_store(self.engine) else "lmdb"
        try:
            with self.engine.read() as txn:
                txn.get("meta", b"health")
            status, body = 200, {"status": "ok", "storage": kind}
        except Exception as exc:  # whatever the engine raises: the node is not serving
            status, body = 503, {"status": "unavailable", "storage": kind, "reason": str(exc)[:300]}
        return Response(status, [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)],
                        orjson.dumps(body))

    def __call__(self, request: Request, cross_origin: bool = True):
        """Answer one request: a Response, or an awaitable of one for writes,
        which are acknowledged only once their group commit is durable."""
        if cross_origin and "origin" in request.headers:  # a browser's: answered with CORS headers
            return self._cross_origin(request)
        request_id = next(self._ids)
        self.committer.arrivals += 1
        if request.method != "POST":
            if request.method == "GET":
                path, _, query = request.path.partition("?")
                if path == "/" and "Action=" in query:  # SNS's SubscribeURL and UnsubscribeURL
                    return self.services.query(request, request_id, query, "sns")
                if path == CERTIFICATE_PATH:
                    return self.services.certificate(request_id)
                if path == "/":
                    return Response(200, [("Content-Type", "text/plain"), ("x-amzn-RequestId", request_id)],
                                    self._health_of(request))
                if path == "/metrics":
                    return self._prometheus(request, request_id)
                if path == "/health":
                    return self._storage_health(request_id)
                if self.console and (path == "/console" or path.startswith("/console/")):
                    from shoal.console import respond as console_page

                    return console_page(path, request, request_id)
            if request.method == "OPTIONS":
                return Response(200, [("x-amzn-RequestId", request_id)], b"")
            return _unknown_operation_404(request_id)
        content_type = request.headers.get("content-type", "")
        if content_type not in JSON_TYPES:  # parameters, other cases, spaces: normalize
            content_type = content_type.split(";", 1)[0].strip().lower()
        if content_type == FORM_TYPE:
            return self._form(request, request_id)
        if content_type == cbor_protocol.CONTENT_TYPE and request.path.startswith("/service/"):
            called = cbor_protocol.operation_of(request.path)
            if called is not None and called[0] in cbor_protocol.SERVICES:
                return self.services.cbor(request, request_id, called[1])
        if content_type == AUTOSCALING_JSON and request.headers.get("x-amz-target", "").startswith(AUTOSCALING_PREFIX):
            return self.services.autoscaling(request, request_id,
                                             request.headers["x-amz-target"][len(AUTOSCALING_PREFIX):])
        if request.body and content_type not in JSON_TYPES:
            return _unknown_operation_404(request_id)
        response_type = "application/json" if content_type == "application/json" else JSON_TYPES[0]
        replication = getattr(self, "replication", None)  # shoal serve --region (shoal.replication.attach)
        if replication is not None:  # peers' requests, and the refusal of those signed for another region
            answer = replication.screen(request, request_id)
            if answer is not None:
                return answer
        if request.headers.get("x-amz-target", "").startswith(CLOUDWATCH_PREFIX):
            return self.services.json(request, request_id,
                                      request.headers["x-amz-target"][len(CLOUDWATCH_PREFIX):])
        handle = None
        started = perf_counter() if self.metrics is not None else 0.0
        try:
            writes, job, handle = self._prepare(request, request_id)
            if writes and self.group_commit:
                return self._respond_later(request_id, response_type, self.committer.submit(job), request.headers,
                                           handle, started)
            if job.long and self._serving():
                future = asyncio.get_running_loop().run_in_executor(self._long_work, job)
                return self._respond_later(request_id, response_type, future, request.headers, handle, started)
            if self.reads is not None and job.read is not None:  # a GetItem, read with others of its turn
                later = self.reads.submit(job, *job.read, (request, request_id, response_type, handle, started))
                if later is not None:
                    return later
        except Exception as exc:
            if self.metrics is not None:
                self._record_failure(handle, exc, request)
            return _response(request_id, response_type, *_error(exc, request_id))
        return self._answer(job, request, request_id, response_type, handle, started)

    @staticmethod
    def _serving() -> bool:
        """Whether an event loop runs this (it does, unless called directly, in-process)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _answer(self, job, request: Request, request_id: str, response_type: str, handle, started: float) -> Response:
        """Run ``job`` now and make its Response, as ``__call__`` does
        (``shoal.server.batched_reads`` answers its GetItems so)."""
        try:
            body = job()
        except Exception as exc:
            if self.metrics is not None:
                self._record_failure(handle, exc, request)
            return _response(request_id, response_type, *_error(exc, request_id))
        return _succeeded(request_id, response_type, body, request.headers, handle, started)

    async def _respond_later(self, request_id: str, response_type: str, future, headers: dict, handle=None,
                             started: float = 0.0) -> Response:
        try:
            body = await future
        except Exception as exc:
            if self.metrics is not None:
                self._record_failure(handle, exc, None)
            return _response(request_id, response_type, *_error(exc, request_id))
        return _succeeded(request_id, response_type, body, headers, handle, started)

    def _prepare(self, request: Request, request_id: str | None = None, off_loop: bool = False):
        """Route and validate a request; return (whether it writes, a job that
        runs it and returns the response body, its metrics handle or None).  Whether it writes is decided
        by what it does: a PartiQL request whose statements are all SELECTs is a
        read, and does not wait for a group commit.  ``off_loop``: the job
        runs on another thread than the loop's (``shoal.replication.protocol``),
        so it must not name itself the loop's current request (shoal.capacity):
        what it draws on is charged off the loop (``shoal.capacity.off_loop``)."""
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
        body = request.body
        encoding = request.headers.get("content-encoding")
        if encoding is not None:  # after the signature check: it covers the encoded bytes
            body = decoded_body(body, encoding)
        if not body:
            raise SerializationException()
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise SerializationException() from None
        deferred = validator is self.validator and operation in DEFERRED_ITEM_CHECKS
        validator.validate(operation, data, defer_items=deferred)
        catalog = self.catalog
        if self.gate is not None:
            try:
                pins = self.gate.authorize(credentials, operation, data, request, request_id)
            except ShoalError:
                if deferred:  # a request DynamoDB finds malformed is refused as such first
                    validator.validate(operation, data)
                raise
            if pins:  # the operation runs on the tables the decision saw, or finds them gone
                catalog = PinnedCatalog(catalog, pins)
        handler = self.operations.get(operation)
        if handler is None:
            raise NotImplementedOperation(operation)
        if self.metrics is not None:  # the request's cell (shoal.metrics.recorder): where it meters, and its handle
            try:
                meter, handle = self._metered[operation][data["TableName"]][region]
            except KeyError:  # the cell's first request, or one naming no table (its own meter, and its data)
                meter, handle = self._metered_request(region, data.get("TableName"), operation, data)
        else:
            meter = handle = None
        ctx = Context(region, DEFAULT_ACCOUNT, self.engine, catalog, access_key, self.clock, self.s3_dir)
        writes = operation in WRITE_OPERATIONS and not (operation in PARTIQL_OPERATIONS and reads_only(operation, data))
        long_running = operation in LONG_OPERATIONS
        # A long operation runs on a thread of its own (shoal-long) while the loop
        # serves others: it must not set or settle the loop's current request
        # (shoal.capacity), and it draws on no item throughput (all control plane);
        # nor must any other job run off the loop (it is charged there).
        capacity = self.capacity if not (long_running or off_loop) else None
        control_plane = operation in self._rated  # (no step more than without capacity)

        def job() -> bytes:
            nonlocal meter
            ctx.meter, meter = meter, None  # metered by its first run only, not again alone after its group failed
            if capacity is not None:  # the request Catalog.require admits to limited tables (shoal.capacity)
                capacity.current = (operation, writes, data, ctx)
            try:
                if control_plane:  # DynamoDB's control-plane rate (shoal.capacity.control_plane)
                    self.capacity.control_plane(operation, ctx.account, region)
                result = handler(ctx, data)
            except ShoalError:
                if capacity is not None:  # what admission charged it is given back
                    capacity.failed(writes, data)
                if deferred:  # the model's errors anywhere in the request come first
                    validator.validate(operation, data)
                raise
            except BaseException:
                if capacity is not None:
                    capacity.failed(writes, data)
                raise
            finally:
                if capacity is not None:
                    # (nothing of the request is kept past it: a request kept until the next one, its
                    # body and context, cost a GetItem as much CPU as its charging did)
                    capacity.current = None
                    if capacity.metered is not None:  # it drew on limited throughput: charge it
                        capacity.settle(ctx)
            return result if isinstance(result, bytes) else orjson.dumps(result)

        if self.insights.active:  # some table has contributor insights on: count the keys once the job ran
            job = self.insights.counting(job, region, operation, data)  # (nothing captured otherwise: no cost)
        job.long = long_running
        if self.reads is not None:  # a GetItem's table and key, for reading it ahead with others'
            job.read = (ctx, data) if operation == "GetItem" else None
            # a write's tables and keys, its items locked and read with its group's (Engine.lock_ahead)
            job.item_write = (ctx, operation, data) if operation in KEYED_WRITES else None
        return writes, job, handle

    # -- metrics ----------------------------------------------------------------------------

    def _record_failure(self, handle, exc: Exception, request: Request | None) -> None:
        """A DynamoDB request answered with an error."""
        error = exc.type_name if isinstance(exc, ShoalError) else "InternalServerError"
        status = exc.status if isinstance(exc, ShoalError) else 500
        if handle is None:  # refused before the operation was known or ran
            if request is None:
                return
            region = region_of(request.headers.get("authorization"), self.default_region)[0]
            operation, table, reasons = None, None, None
        else:
            region, table, operation = handle.key
            table = dynamodb_metrics.table_name(table)
            reasons = None
            if error == "TransactionCanceledException" and getattr(handle, "data", None) is not None:
                reasons = _conflicting_tables(handle.data, exc)  # its data: it names no table
            elif error == "ConditionalCheckFailedException" and handle.key[1] is None:
                table = handle.condition_failed_on()  # a PartiQL statement's table, from what it metered
        self.metrics.recorder.failed(region, operation, table, error, status, int(self.clock() // 60), reasons)

    def _prometheus(self, request: Request, request_id: str) -> Response:
        """``GET /metrics``: open to loopback clients; with auth on, any other
        client must sign the request (SigV4, service ``monitoring``) as an
        identity allowed ``cloudwatch:GetMetricData``."""
        from shoal.metrics.prometheus import CONTENT_TYPE, exposition

        peer = request.peer[0] if request.peer else None
        if self.gate is not None and not _is_loopback(peer):
            try:
                credentials = self.gate.authenticate(request, "monitoring", operation="GetMetricData",
                                                     request_id=request_id)
                self.gate.authorize_monitoring(credentials, "GetMetricData", {}, request, request_id)
            except ShoalError as exc:
                error = as_cloudwatch(exc)
                return Response(error.status, [("Content-Type", "text/plain; charset=utf-8"),
                                               ("x-amzn-RequestId", request_id)],
                                f"{error.code}: {error.message}\n".encode())
        def scrape() -> bytes:
            return self.metrics.exposition() if self.metrics is not None else exposition(self.engine)

        cold = self.cloudwatch_api().cold_reads  # a scrape reads every series: not kept mapped
        body = scrape() if cold is None else cold.run(scrape)
        return Response(200, [("Content-Type", CONTENT_TYPE), ("x-amzn-RequestId", request_id)], body)

    def _form(self, request: Request, request_id: str):
        """A form-encoded request (the query protocol): STS with auth on,
        CloudWatch or SNS (``shoal.server.services``), by the service its
        signature names, or, unsigned, by its Action."""
        service = signed_service(request.headers.get("authorization"))
        if service is None:
            action = dict(parse_qsl(request.body.decode("utf-8", "replace"))).get("Action")
            service = "sts" if action in STS_ACTIONS else None
        if service == "sts":
            return self._sts(request, request_id) if self.gate is not None else _unknown_operation_404(request_id)
        if service is not None and service not in ("monitoring", "sns"):
            return _unknown_operation_404(request_id)
        try:
            body = decoded_body(request.body, request.headers["content-encoding"]) \
                if "content-encoding" in request.headers else request.body
        except ShoalError as exc:
            return _response(request_id, JSON_TYPES[0], *_error(exc, request_id))
        return self.services.query(request, request_id, body, {"monitoring": "cloudwatch", "sns": "sns"}.get(service))

    def cloudwatch_api(self):
        """CloudWatch's metric operations (``shoal.metrics.cloudwatch``), built once."""
        if self._cloudwatch_api is None:
            from shoal.metrics.cloudwatch import CloudWatch

            flush = self.metrics.recorder.flush if self.metrics is not None else None
            self._cloudwatch_api = CloudWatch(self.engine, self.clock, flush, self.insights.flush)
        return self._cloudwatch_api

    def _audit_delivery(self, *, action: str, resource: str, decision: str, reason: str) -> None:
        """An SNS delivery's outcome, in the audit log (with auth on, the gate's)."""
        if self._notifications_audit is None:
            return
        try:
            self._notifications_audit.record(principal=None, source=None, action=action, resource=resource,
                                             decision=decision, reason=reason)
        except OSError as exc:
            log.error("cannot write the audit log: %s", exc)

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
        if self.metrics is not None:
            try:
                self.metrics.close()
            except Exception:  # never keep a worker from closing its storage
                log.error("could not write the last metrics:\n%s", traceback.format_exc())
        replicator = getattr(getattr(self, "replication", None), "replicator", None)
        if replicator is not None:  # before storage closes: it gives up its lease in a transaction
            replicator.close()
        self.committer.close()
        self.sns_delivery.close()
        if self.capacity is not None:
            self.capacity.shared.close()
        if self.gate is None and self._notifications_audit is not None:
            self._notifications_audit.close()
        self._long_work.shutdown(wait=True)
        jobs.stop_jobs(self.engine)
        self.background.close()
        if self.gate is not None:
            self.gate.close()

    def start_background(self, loop) -> None:
        """Run background jobs on ``loop`` (called by the worker once serving)."""
        self.background.start(loop)

    def stop_background(self) -> None:
        self.background.stop()


# A compressed request may expand to at most DynamoDB's request size (16 MB,
# what BatchWriteItem may send), the limit of an uncompressed body: a few KB
# of gzip must not make Shoal allocate more than a plain request could.
MAX_DECODED_BODY = DEFAULT_MAX_BODY


class RequestEntityTooLarge(ShoalError):
    """A request above DynamoDB's request size once unpacked: answered as
    one sent that large is (``shoal.server.http``), never as a fault of
    Shoal's."""

    type_name = "RequestEntityTooLargeException"
    namespace = CORAL_NS
    status = 413

    def __init__(self) -> None:
        super().__init__(TOO_LARGE_MESSAGE)


def decoded_body(body: bytes, encoding: str) -> bytes:
    """A request body sent with ``Content-Encoding``: gzip (one or more
    members) or deflate (zlib).  DynamoDB answers an unknown encoding or a
    body that does not decode with a 500 InternalServerError, and so does
    Shoal; a body that unpacks past ``MAX_DECODED_BODY`` is refused as an
    over-large request (413), and no more than that is ever unpacked."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip", "deflate"):
        raise InternalServerError("Internal server error")
    wbits = 31 if encoding != "deflate" else 15
    out = []
    size = 0
    rest = body
    try:
        while True:
            decoder = zlib.decompressobj(wbits)
            part = decoder.decompress(rest, MAX_DECODED_BODY - size + 1)
            size += len(part)
            if size > MAX_DECODED_BODY:  # (output stops one byte past the limit)
                raise RequestEntityTooLarge()
            if not decoder.eof:  # a stream cut short
                raise InternalServerError("Internal server error")
            out.append(part)
            rest = decoder.unused_data
            if not rest or wbits != 31:
                break
    except zlib.error:
        raise InternalServerError("Internal server error") from None
    if rest:  # bytes after the last complete stream
        raise InternalServerError("Internal server error")
    return b"".join(out)


# DynamoDB compresses an answer of about 4 KB or more for a client whose
# Accept-Encoding takes gzip or deflate; x-amz-crc32 is then the checksum of
# the compressed bytes, which is what the SDKs verify.
COMPRESS_MIN_BYTES = 4096
_ENCODERS = {
    "gzip": lambda body: gzip.compress(body, compresslevel=1, mtime=0),
    "deflate": lambda body: zlib.compress(body, 1),
}


def chosen_encoding(accept: str) -> str | None:
    """The encoding (gzip or deflate) an Accept-Encoding header prefers, or
    None: the highest q wins (a q that does not parse counts as 1, one
    outside [0, 1] is clamped, the first q of an entry counts), ``*`` stands
    for gzip then deflate where they are not named (RFC 9110 12.5.3), and
    q=0 refuses.  At equal q a named coding beats one ``*`` stands for (the
    client asked for it by name: ``*, deflate`` is answered with deflate),
    then the earlier entry wins.  Only the exact tokens ``gzip`` and ``deflate``
    count (not ``x-gzip``)."""
    named: dict[str, tuple[float, int]] = {}
    star: tuple[float, int] | None = None
    for position, entry in enumerate(accept.split(",")):
        name, _, params = entry.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    q = 1.0
                if q != q:  # NaN
                    q = 1.0
                break
        if name == "*":
            star = star or (q, position)
        elif name in _ENCODERS:
            named.setdefault(name, (q, position))
    candidates = []
    for rank, name in enumerate(("gzip", "deflate")):
        by_star = name not in named
        q, position = (star or (0.0, 0)) if by_star else named[name]
        if q > 0:
            candidates.append((-q, by_star, position, rank, name))
    return min(candidates)[4] if candidates else None


def _encoded_response(request_id: str, response_type: str, body: bytes, accept: str) -> Response:
    encoding = chosen_encoding(accept)
    if encoding is None:
        return _response(request_id, response_type, 200, body)
    body = _ENCODERS[encoding](body)
    return Response(
        200,
        [
            ("Content-Type", response_type),
            ("x-amzn-RequestId", request_id),
            ("Content-Encoding", encoding),
            ("x-amz-crc32", str(zlib.crc32(body))),
        ],
        body,
    )


def _succeeded(request_id: str, response_type: str, body: bytes, headers: dict, handle, started: float) -> Response:
    """The 200 of a request whose job returned ``body``: its latency to its
    metrics cell (metrics on), the body compressed when it is large and the
    client accepts an encoding."""
    if handle is not None:  # metrics on: the request's latency, to its cell (shoal.metrics.recorder)
        handle.done(perf_counter() - started)
    if len(body) >= COMPRESS_MIN_BYTES and "accept-encoding" in headers:
        return _encoded_response(request_id, response_type, body, headers["accept-encoding"])
    return _response(request_id, response_type, 200, body)


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


def _conflicting_tables(data: dict, exc: Exception) -> list:
    """The tables of a cancelled transaction's items that were in conflict."""
    reasons = getattr(exc, "reasons", None) or ()
    items = data.get("TransactItems") or ()
    out = []
    for reason, item in zip(reasons, items):
        if isinstance(reason, dict) and reason.get("Code") == "TransactionConflict" and isinstance(item, dict):
            for part in item.values():
                name = dynamodb_metrics.table_name(part.get("TableName")) if isinstance(part, dict) else None
                if name:
                    out.append(name)
    return out


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


CORS_EXPOSED = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date"
CORS_MAX_AGE = "172800"


def _unknown_operation_404(request_id: str) -> Response:
    body = b"<UnknownOperationException/>\n"
    return Response(
        404,
        [("x-amzn-RequestId", request_id), ("x-amz-crc32", str(zlib.crc32(body)))],
        body,
    )
