"""Stream triggers over a real LMDB engine and a real local HTTP receiver,
driving the materializer and the trigger runner directly (no Shoal server):
batches, Lambda record shape, batching window, retries and back-off, giving
up, leases between workers, lineage order, starting positions, redelivery."""

from __future__ import annotations

import http.server
import threading

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, items, streams, tables
from shoal.api.catalog import Catalog
from shoal.storage.lmdb_engine import LmdbEngine
from shoal.triggers import TriggerError, TriggerRunner, TriggerSettings, add_trigger, list_triggers, remove_trigger
from shoal.triggers.store import lambda_record, lease_decision, set_enabled
from tests.unit.conftest import Clock

REGION = "us-east-1"
FAST = TriggerSettings(lease_s=5.0, backoff_s=1.0, backoff_max_s=8.0, timeout_s=5.0)


class Receiver:
    """A local HTTP endpoint collecting POSTed batches; answers 500 to the
    next ``fail`` requests, and records every request (failed ones too)."""

    def __init__(self) -> None:
        self.batches: list[dict] = []
        self.requests = 0
        self.fail = 0
        self.lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with owner.lock:
                    owner.requests += 1
                    failing = owner.fail > 0
                    if failing:
                        owner.fail -= 1
                    else:
                        owner.batches.append(orjson.loads(body))
                answer = b"boom" if failing else b"{}"
                self.send_response(500 if failing else 200)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/events"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def records(self) -> list[dict]:
        with self.lock:
            return [r for batch in self.batches for r in batch["Records"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def ctx(engine):
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))


@pytest.fixture
def runner(engine, clock):
    r = TriggerRunner(engine, FAST, clock=clock)
    yield r
    r.close()


def make_table(ctx, name="events", view="NEW_AND_OLD_IMAGES"):
    body = {"TableName": name, "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST"}
    if view:
        body["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": view}
    return tables.create_table(ctx, body)["TableDescription"]


def put(ctx, pk, n, name="events"):
    items.put_item(ctx, {"TableName": name, "Item": {"pk": {"S": pk}, "n": {"N": str(n)}}})


def materialize(engine, config=None):
    job = streams.Materializer(engine, config or streams.StreamConfig())
    while job():
        pass


def run(runner, rounds=50):
    """Rounds of the runner (no event loop here), waiting for each delivery,
    until nothing more is sent."""
    for _ in range(rounds):
        runner()
        if not runner.in_flight:
            return
        assert runner.wait_idle()
    raise AssertionError("the runner never went idle")


def state(engine, trigger_id):
    (described,) = list_triggers(engine, trigger_id)
    return described


# ---------------------------------------------------------------- configuration


def test_add_requires_table_and_enabled_stream(engine, ctx, receiver):
    with pytest.raises(TriggerError, match="table missing does not exist in region us-east-1"):
        add_trigger(engine, region=REGION, table="missing", url=receiver.url)
    make_table(ctx, "plain", view=None)
    with pytest.raises(TriggerError, match="table plain has no enabled stream"):
        add_trigger(engine, region=REGION, table="plain", url=receiver.url)


@pytest.mark.parametrize("options, message", [
    ({"url": "ftp://x/"}, "--url must be an http:// or https:// URL"),
    ({"batch_size": 0}, "--batch-size must be between 1 and 10000"),
    ({"batch_size": 10001}, "--batch-size must be between 1 and 10000"),
    ({"batching_window": 301}, "--batching-window must be between 0 and 300 seconds"),
    ({"starting_position": "AT_TIMESTAMP"}, "--starting-position must be TRIM_HORIZON or LATEST"),
    ({"maximum_retry_attempts": -2}, "--maximum-retry-attempts must be between -1"),
])
def test_add_validates_options(engine, ctx, receiver, options, message):
    make_table(ctx)
    with pytest.raises(TriggerError, match=message):
        add_trigger(engine, region=REGION, table="events", **{"url": receiver.url, **options})


def test_list_and_remove(engine, ctx, receiver):
    desc = make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=7)
    (shown,) = list_triggers(engine)
    assert shown["Id"] == config["id"]
    assert shown["EventSourceArn"] == desc["LatestStreamArn"]
    assert (shown["BatchSize"], shown["State"], shown["StartingPosition"]) == (7, "Enabled", "TRIM_HORIZON")
    assert shown["MaximumRetryAttempts"] == -1 and shown["LagRecords"] == 0 and shown["Lease"] is None
    remove_trigger(engine, config["id"])
    assert list_triggers(engine) == []
    with pytest.raises(TriggerError, match=f"no trigger with id {config['id']}"):
        remove_trigger(engine, config["id"])


# ---------------------------------------------------------------- delivery


def test_delivers_lambda_shaped_records_in_order(engine, ctx, receiver, runner):
    desc = make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url)
    put(ctx, "a", 1)
    put(ctx, "a", 2)
    items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": "a"}}})
    materialize(engine)
    assert state(engine, config["id"])["LagRecords"] == 3
    run(runner)
    records = receiver.records
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    first = records[0]
    assert set(first) == {"eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb",
                          "eventSourceARN"}
    assert (first["eventSource"], first["eventVersion"], first["awsRegion"]) == ("aws:dynamodb", "1.1", REGION)
    assert first["eventSourceARN"] == desc["LatestStreamArn"]
    assert first["dynamodb"]["NewImage"] == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert records[1]["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert records[2]["dynamodb"]["Keys"] == {"pk": {"S": "a"}}
    seqs = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert seqs == sorted(seqs)
    shown = state(engine, config["id"])
    assert shown["LagRecords"] == 0 and shown["DeliveredRecords"] == 3 and shown["DeliveredBatches"] == 1
    assert list(shown["Checkpoint"].values()) == [records[-1]["dynamodb"]["SequenceNumber"]]
    assert shown["LastDeliveryTime"] is not None and shown["Lease"]["Owner"] == runner.owner


def test_batch_size_splits_batches(engine, ctx, receiver, runner):
    make_table(ctx)
    add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=3)
    for n in range(7):
        put(ctx, f"k{n}", n)
    materialize(engine)
    run(runner)
    assert [len(b["Records"]) for b in receiver.batches] == [3, 3, 1]
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in receiver.records] == list(range(7))


def test_batching_window_holds_a_short_batch(engine, ctx, receiver, runner, clock):
    make_table(ctx)
    add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=3, batching_window=60)
    put(ctx, "a", 1)
    materialize(engine)
    run(runner)
    assert receiver.batches == []  # short batch, window open
    for n in range(2, 5):
        put(ctx, "a", n)
    materialize(engine)
    run(runner)
    assert [len(b["Records"]) for b in receiver.batches] == [3]  # a full batch goes at once
    clock.offset = 61
    run(runner)
    assert [len(b["Records"]) for b in receiver.batches] == [3, 1]  # the window has passed


def test_latest_skips_earlier_changes(engine, ctx, receiver, runner):
    make_table(ctx)
    put(ctx, "old", 1)
    materialize(engine)
    add_trigger(engine, region=REGION, table="events", url=receiver.url, starting_position="LATEST")
    put(ctx, "new", 2)
    materialize(engine)
    run(runner)
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in receiver.records] == ["new"]


def test_follows_shard_lineage_parents_first(engine, ctx, receiver, runner):
    make_table(ctx)
    add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=100)
    rollover = streams.StreamConfig(rollover_records=3)
    for n in range(10):
        put(ctx, f"k{n % 2}", n)
        materialize(engine, rollover)
    run(runner)
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in receiver.records] == list(range(10))
    assert [len(b["Records"]) for b in receiver.batches] == [3, 3, 3, 1]  # one shard per batch
    assert len(state(engine, list_triggers(engine)[0]["Id"])["Checkpoint"]) == 4


def test_user_identity_spelled_as_lambda_does():
    stored = b"\0" * 8 + orjson.dumps({"eventID": "e", "userIdentity": {"PrincipalId": "dynamodb.amazonaws.com",
                                                                          "Type": "Service"}})
    record = orjson.loads(lambda_record(stored, b',"eventSourceARN":"arn:x"}'))
    assert record == {"eventID": "e", "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
                      "eventSourceARN": "arn:x"}
    plain = orjson.loads(lambda_record(b"\0" * 8 + b'{"eventID":"e"}', b',"eventSourceARN":"arn:x"}'))
    assert plain == {"eventID": "e", "eventSourceARN": "arn:x"}


# ---------------------------------------------------------------- failures


def test_failures_back_off_then_deliver_everything(engine, ctx, receiver, runner, clock):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=2)
    for n in range(5):
        put(ctx, "a", n)
    materialize(engine)
    receiver.fail = 3
    run(runner)
    shown = state(engine, config["id"])
    assert shown["Attempts"] == 1 and shown["LastError"] == "HTTP 500 Internal Server Error: boom"
    assert shown["NextRetryTime"] == pytest.approx(clock() + 1.0, abs=0.5)
    run(runner)
    assert receiver.requests == 1  # still backing off
    clock.offset += 1.1
    run(runner)
    shown = state(engine, config["id"])
    assert shown["Attempts"] == 2 and shown["NextRetryTime"] == pytest.approx(clock() + 2.0, abs=0.5)
    clock.offset += 2.1
    run(runner)
    assert state(engine, config["id"])["Attempts"] == 3
    clock.offset += 4.1
    run(runner)
    assert [int(r["dynamodb"]["NewImage"]["n"]["N"]) for r in receiver.records] == list(range(5))
    shown = state(engine, config["id"])
    assert shown["Attempts"] == 0 and shown["NextRetryTime"] is None and shown["LagRecords"] == 0
    assert shown["LastError"] == "HTTP 500 Internal Server Error: boom"  # kept for inspection


def test_unreachable_endpoint_is_an_error_not_a_crash(engine, ctx, runner):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url="http://127.0.0.1:9/")
    put(ctx, "a", 1)
    materialize(engine)
    run(runner)
    shown = state(engine, config["id"])
    assert shown["Attempts"] == 1 and "ConnectionRefusedError" in shown["LastError"]


def test_gives_up_by_disabling_and_resumes_when_enabled(engine, ctx, receiver, runner, clock):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url, maximum_retry_attempts=1)
    put(ctx, "a", 1)
    materialize(engine)
    receiver.fail = 2
    run(runner)
    clock.offset += 1.1
    run(runner)
    shown = state(engine, config["id"])
    assert shown["State"] == "Disabled" and shown["Attempts"] == 2
    assert shown["DisabledReason"] == "gave up after 2 failed attempts: HTTP 500 Internal Server Error: boom"
    set_enabled(engine, config["id"], True)
    run(runner)
    assert len(receiver.records) == 1
    shown = state(engine, config["id"])
    assert shown["State"] == "Enabled" and shown["DisabledReason"] is None and shown["LagRecords"] == 0


# ---------------------------------------------------------------- leases and redelivery


def test_lease_decisions():
    mine = {"owner": "me", "pid": 1, "expires": 100.0}
    assert lease_decision(None, "me", 50.0, 30.0) == "take"
    assert lease_decision(mine, "me", 100.0, 30.0) == "take"  # expired
    assert lease_decision(mine, "me", 75.0, 30.0) == "hold"
    assert lease_decision(mine, "me", 85.0, 30.0) == "renew"
    assert lease_decision(mine, "other", 50.0, 30.0, alive=lambda pid: True) == "busy"
    assert lease_decision(mine, "other", 50.0, 30.0, alive=lambda pid: False) == "take"


def test_one_worker_delivers_until_its_lease_expires(engine, ctx, receiver, clock):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=1)
    first, second = TriggerRunner(engine, FAST, clock=clock), TriggerRunner(engine, FAST, clock=clock)
    try:
        put(ctx, "a", 1)
        materialize(engine)
        run(first)
        run(second)
        assert len(receiver.records) == 1 and state(engine, config["id"])["Lease"]["Owner"] == first.owner
        put(ctx, "a", 2)
        materialize(engine)
        run(second)
        assert len(receiver.records) == 1  # the lease is first's
        clock.offset += FAST.lease_s + 1  # first stalls past its lease
        run(second)
        assert len(receiver.records) == 2 and state(engine, config["id"])["Lease"]["Owner"] == second.owner
    finally:
        first.close()
        second.close()


def test_crash_before_checkpoint_redelivers(engine, ctx, receiver, clock):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url)
    put(ctx, "a", 1)
    materialize(engine)
    crashed = TriggerRunner(engine, FAST, clock=clock)
    crashed()
    assert crashed.wait_idle()
    crashed.close()  # delivered, but the outcome is never recorded
    assert len(receiver.records) == 1 and state(engine, config["id"])["LagRecords"] == 1
    clock.offset += FAST.lease_s + 1
    successor = TriggerRunner(engine, FAST, clock=clock)
    try:
        run(successor)
    finally:
        successor.close()
    assert [r["eventID"] for r in receiver.records] == [receiver.records[0]["eventID"]] * 2
    assert state(engine, config["id"])["LagRecords"] == 0


def test_outcome_of_a_worker_that_lost_its_lease_is_dropped(engine, ctx, receiver, clock):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url)
    put(ctx, "a", 1)
    materialize(engine)
    slow, other = TriggerRunner(engine, FAST, clock=clock), TriggerRunner(engine, FAST, clock=clock)
    try:
        slow()
        assert slow.wait_idle()
        clock.offset += FAST.lease_s + 1
        other()  # takes the expired lease and sends the same batch
        slow()  # too late: its checkpoint is not recorded
        assert state(engine, config["id"])["DeliveredBatches"] == 0
        run(other)
        assert state(engine, config["id"])["DeliveredBatches"] == 1
    finally:
        slow.close()
        other.close()


def test_removed_trigger_stops(engine, ctx, receiver, runner):
    make_table(ctx)
    config = add_trigger(engine, region=REGION, table="events", url=receiver.url)
    remove_trigger(engine, config["id"])
    put(ctx, "a", 1)
    materialize(engine)
    run(runner)
    assert receiver.requests == 0


def test_backoff_is_capped():
    settings = TriggerSettings(backoff_s=0.5, backoff_max_s=10.0)
    assert [settings.backoff(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0]
    assert settings.backoff(10_000) == 10.0


# ---------------------------------------------------------------- property: no loss, order kept


def stream_records(ctx, arn) -> list[tuple[str, dict]]:
    """(shard id, record) of every record through the Streams API, parents first."""
    out = []
    for shard in streams.describe_stream(ctx, {"StreamArn": arn})["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(ctx, {"StreamArn": arn, "ShardId": shard["ShardId"],
                                                    "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        while iterator:
            page = orjson.loads(streams.get_records(ctx, {"ShardIterator": iterator}))
            out.extend((shard["ShardId"], r) for r in page["Records"])
            iterator = page.get("NextShardIterator") if page["Records"] else None
    return out


@pytest.fixture(scope="module")
def shared_receiver():
    r = Receiver()
    yield r
    r.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), min_size=1, max_size=25),
       batch_size=st.integers(1, 6), failures=st.integers(0, 4), rollover=st.sampled_from([0, 2, 5]))
def test_property_every_record_once_in_stream_order(tmp_path_factory, shared_receiver, ops, batch_size, failures,
                                                    rollover):
    """Whatever the writes, batch size, shard rollovers and failures, the
    receiver gets exactly the stream's records (no crash here, so once each),
    in stream order, never two shards in one batch."""
    receiver = shared_receiver
    with receiver.lock:
        receiver.batches.clear()
        receiver.fail = failures
    engine = LmdbEngine(tmp_path_factory.mktemp("prop") / "db", sync=False)
    clock = Clock()
    runner = TriggerRunner(engine, FAST, clock=clock)
    try:
        ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
        arn = make_table(ctx)["LatestStreamArn"]
        add_trigger(engine, region=REGION, table="events", url=receiver.url, batch_size=batch_size)
        config = streams.StreamConfig(rollover_records=rollover)
        for n, (key, is_put) in enumerate(ops):
            if is_put:
                put(ctx, key, n)
            else:
                items.delete_item(ctx, {"TableName": "events", "Key": {"pk": {"S": key}}})
            materialize(engine, config)
        for _ in range(failures + 1):
            run(runner)
            clock.offset += FAST.backoff_max_s + 0.1
        shard_of = {r["eventID"]: shard for shard, r in stream_records(ctx, arn)}
        assert [r["eventID"] for r in receiver.records] == list(shard_of)
        assert all(len(b["Records"]) <= batch_size for b in receiver.batches)
        for batch in receiver.batches:
            assert len({shard_of[r["eventID"]] for r in batch["Records"]}) == 1
    finally:
        runner.close()
        engine.close()
