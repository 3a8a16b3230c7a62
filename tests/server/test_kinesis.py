"""Kinesis Data Streams destinations against real servers: the four
operations through boto3 (every error, restart, DeleteTable), and delivery
end to end to kinesalite (a Kinesis-compatible server from npm, installed
into ``.cache/kinesalite`` on first use), read back with boto3's kinesis
client, including a period with the endpoint down.

DynamoDB's answers asserted here are those recorded against the live
service in the ack-api-quirks findings (verified 2026-10-09); see
docs/kinesis.md."""

from __future__ import annotations

import json
import pathlib
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.conftest import create_table, make_client, unique_name
from tests.shoal_process import free_port, ShoalProcess

REPO = pathlib.Path(__file__).resolve().parents[2]
KINESALITE_DIR = REPO / ".cache" / "kinesalite"
ACCOUNT = "000000000000"
FAST = {"SHOAL_KINESIS_POLL_S": "0.1", "SHOAL_KINESIS_BACKOFF_S": "0.2", "SHOAL_KINESIS_BACKOFF_MAX_S": "1",
        "SHOAL_KINESIS_TIMEOUT_S": "2", "SHOAL_TTL_SWEEP_INTERVAL_S": "0.5",
        "AWS_ACCESS_KEY_ID": "AKIDSHOALTEST", "AWS_SECRET_ACCESS_KEY": "secret"}

STATE = "Table is not in a valid state to enable Kinesis Streaming Destination: "
ENABLE_STATE = STATE + ("EnableKinesisStreamingDestination must be DISABLED or ENABLE_FAILED to perform ENABLE "
                        "operation.")
DISABLE_STATE = STATE + "KinesisStreamingDestination must be ACTIVE to perform DISABLE operation."
NO_PERMISSION = "User does not have a permission to use kinesis stream"
OTHER_REGION = ("The kinesis Arn used to enable kinesis replication belongs to a stream which is not in the "
                "current region")
NOT_ACTIVE = "The kinesis Arn used to enable kinesis replication belongs to a stream which is not in Active state"


def stream_arn(name: str, region: str = "us-east-1", account: str = ACCOUNT) -> str:
    return f"arn:aws:kinesis:{region}:{account}:stream/{name}"


class Kinesalite:
    """A kinesalite process on a fixed port, its streams kept in a folder so
    that it can be stopped and started again without losing them."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Kinesalite":
        binary = KINESALITE_DIR / "node_modules" / ".bin" / "kinesalite"
        self.proc = subprocess.Popen([str(binary), "--port", str(self.port), "--path", str(self.path),
                                      "--createStreamMs", "0", "--deleteStreamMs", "0",
                                      "--shardLimit", "100000"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("kinesalite did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture(scope="module")
def kinesalite(tmp_path_factory):
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed on this machine")
    if not (KINESALITE_DIR / "node_modules" / ".bin" / "kinesalite").exists():
        KINESALITE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(KINESALITE_DIR), "--no-audit", "--no-fund",
                        "--loglevel=error", "kinesalite@3"], check=True, timeout=300)
    server = Kinesalite(tmp_path_factory.mktemp("kinesalite")).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def kinesis(kinesalite):
    return make_client(kinesalite.url, "kinesis")


@pytest.fixture(scope="module")
def server(tmp_path_factory, kinesalite):
    proc = ShoalProcess(tmp_path_factory.mktemp("kinesis"), "--workers", "2",
                        env={**FAST, "SHOAL_KINESIS_ENDPOINT": kinesalite.url}).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ddb(server):
    return make_client(server.url)


def make_stream(kinesis, shards: int = 1) -> str:
    name = unique_name("ks")
    kinesis.create_stream(StreamName=name, ShardCount=shards)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    return name


def destinations(ddb, table) -> list[dict]:
    return ddb.describe_kinesis_streaming_destination(TableName=table)["KinesisDataStreamDestinations"]


def wait_status(ddb, table, arn, status, timeout=20.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        entry = next(d for d in destinations(ddb, table) if d["StreamArn"] == arn)
        if entry["DestinationStatus"] == status:
            return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"{arn} is {entry}, not {status}")
        time.sleep(0.05)


def error_of(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def read_stream(kinesis, name) -> list[dict]:
    """Every record of the stream, shard by shard in order, data decoded."""
    out = []
    for shard in kinesis.list_shards(StreamName=name)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            out.extend({"data": json.loads(r["Data"]), "key": r["PartitionKey"]} for r in page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


def wait_records(kinesis, name, count, timeout=30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        records = read_stream(kinesis, name)
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


# ---------------------------------------------------------------- the control plane


def test_a_table_without_destinations_lists_none(ddb):
    table = create_table(ddb, range_key=None)
    assert ddb.describe_kinesis_streaming_destination(TableName=table)["KinesisDataStreamDestinations"] == []
    # The table's ARN names it too.
    arn = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
    answer = ddb.describe_kinesis_streaming_destination(TableName=arn)
    assert (answer["TableName"], answer["KinesisDataStreamDestinations"]) == (table, [])


def test_every_operation_on_a_missing_table_is_resource_not_found(ddb):
    missing = unique_name("missing")
    message = f"Requested resource not found: Table: {missing} not found"
    arn = stream_arn("anything")
    assert error_of(ddb.describe_kinesis_streaming_destination, TableName=missing) == (
        "ResourceNotFoundException", message)
    assert error_of(ddb.enable_kinesis_streaming_destination, TableName=missing, StreamArn=arn) == (
        "ResourceNotFoundException", message)
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=missing, StreamArn=arn) == (
        "ResourceNotFoundException", message)
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=missing, StreamArn=arn,
                    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"}) == (
        "ResourceNotFoundException", message)


def test_enable_then_active_and_one_live_destination_per_table(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    first, second = stream_arn(make_stream(kinesis)), stream_arn(make_stream(kinesis))
    answer = ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=first)
    answer.pop("ResponseMetadata")
    assert answer == {"TableName": table, "StreamArn": first, "DestinationStatus": "ENABLING",
                      "EnableKinesisStreamingConfiguration": {}}
    # While ENABLING and once ACTIVE: no second enable, of it or of another stream.
    assert error_of(ddb.enable_kinesis_streaming_destination, TableName=table, StreamArn=first) == (
        "ValidationException", ENABLE_STATE)
    assert wait_status(ddb, table, first, "ACTIVE") == {"StreamArn": first, "DestinationStatus": "ACTIVE"}
    for arn in (first, second):
        assert error_of(ddb.enable_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                        EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MILLISECOND"}
                        ) == ("ValidationException", ENABLE_STATE)
    assert destinations(ddb, table) == [{"StreamArn": first, "DestinationStatus": "ACTIVE"}]


def test_update_changes_the_precision_and_refuses_what_dynamodb_refuses(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    arn = stream_arn(make_stream(kinesis))
    never = stream_arn("never-attached-stream")
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=never,
                    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"}) == (
        "ValidationException",
        f"{STATE}No streaming destination with streamArn: {never} found for table with tableName: {table}")
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    not_active = (f"{STATE}Kinesis streaming is not in ACTIVE state. Updates are only allowed in ACTIVE state. "
                  f"TableName: {table}, kdsArn: {arn}")
    wait_status(ddb, table, arn, "ACTIVE")
    no_config = ("ValidationException", "Streaming destination cannot be updated with given parameters: "
                 "UpdateKinesisStreamingConfiguration cannot be null or contain only null values")
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=arn) == no_config
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                    UpdateKinesisStreamingConfiguration={}) == no_config
    table_id = ddb.describe_table(TableName=table)["Table"]["TableId"]
    # Without a precision the destination uses MILLISECOND: asking for it changes nothing.
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MILLISECOND"}) == (
        "ValidationException", f"Invalid Request: Precision is already set to the desired value of MILLISECOND "
                               f"for tableId: {table_id}, kdsArn: {arn}")
    answer = ddb.update_kinesis_streaming_destination(
        TableName=table, StreamArn=arn,
        UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
    answer.pop("ResponseMetadata")
    assert answer == {"TableName": table, "StreamArn": arn, "DestinationStatus": "UPDATING",
                      "UpdateKinesisStreamingConfiguration": {"ApproximateCreationDateTimePrecision": "MICROSECOND"}}
    assert wait_status(ddb, table, arn, "ACTIVE") == {
        "StreamArn": arn, "DestinationStatus": "ACTIVE", "ApproximateCreationDateTimePrecision": "MICROSECOND"}
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"}) == (
        "ValidationException", f"Invalid Request: Precision is already set to the desired value of MICROSECOND "
                               f"for tableId: {table_id}, kdsArn: {arn}")
    # A disabled destination cannot be updated; disabling forgot the precision.
    ddb.disable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    assert wait_status(ddb, table, arn, "DISABLED") == {"StreamArn": arn, "DestinationStatus": "DISABLED"}
    assert error_of(ddb.update_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                    UpdateKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"}) == (
        "ValidationException", not_active)


def test_disable_and_enable_again(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    arn = stream_arn(make_stream(kinesis))
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=table, StreamArn=arn) == (
        "ValidationException", DISABLE_STATE)
    ddb.enable_kinesis_streaming_destination(
        TableName=table, StreamArn=arn,
        EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=table, StreamArn=arn) == (
        "ValidationException", DISABLE_STATE)  # still ENABLING, or just ACTIVE: wait first
    wait_status(ddb, table, arn, "ACTIVE")
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=table, StreamArn=arn,
                    EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"}) == (
        "ValidationException", "Stream cannot be disabled using EnableKinesisStreamingConfiguration parameters")
    answer = ddb.disable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    answer.pop("ResponseMetadata")
    assert answer == {"TableName": table, "StreamArn": arn, "DestinationStatus": "DISABLING"}
    assert wait_status(ddb, table, arn, "DISABLED") == {"StreamArn": arn, "DestinationStatus": "DISABLED"}
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=table, StreamArn=arn) == (
        "ValidationException", DISABLE_STATE)
    # Enabling it again flips the same entry.
    assert ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)["DestinationStatus"] == "ENABLING"
    wait_status(ddb, table, arn, "ACTIVE")
    assert destinations(ddb, table) == [{"StreamArn": arn, "DestinationStatus": "ACTIVE"}]


def test_streams_that_cannot_be_used_fail_to_enable_and_stay_listed(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    missing = stream_arn(unique_name("nostream"))
    elsewhere = stream_arn(make_stream(kinesis), region="eu-west-1")
    other_account = stream_arn(make_stream(kinesis), account="123456789012")
    not_a_stream = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table}"
    for arn in (missing, elsewhere, other_account, not_a_stream):
        assert ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)["DestinationStatus"] == \
            "ENABLING"
        wait_status(ddb, table, arn, "ENABLE_FAILED")
    assert destinations(ddb, table) == [
        {"StreamArn": not_a_stream, "DestinationStatus": "ENABLE_FAILED",
         "DestinationStatusDescription": NO_PERMISSION},
        {"StreamArn": other_account, "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NOT_ACTIVE},
        {"StreamArn": elsewhere, "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": OTHER_REGION},
        {"StreamArn": missing, "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NO_PERMISSION},
    ]
    assert error_of(ddb.disable_kinesis_streaming_destination, TableName=table, StreamArn=missing) == (
        "ValidationException", DISABLE_STATE)
    # Once the stream exists, enabling the failed entry again works (in place).
    name = missing.rsplit("/", 1)[1]
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=missing)
    wait_status(ddb, table, missing, "ACTIVE")
    assert [d["DestinationStatus"] for d in destinations(ddb, table)] == [
        "ENABLE_FAILED", "ENABLE_FAILED", "ENABLE_FAILED", "ACTIVE"]


def test_malformed_requests_are_refused_and_the_server_goes_on(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    with pytest.raises(ParamValidationError):  # botocore checks the model's minimum length itself
        ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn="not-an-arn")
    code, message = _raw_error(ddb.meta.endpoint_url, "EnableKinesisStreamingDestination",
                               {"TableName": table, "StreamArn": "not-an-arn"})
    assert (code, message) == ("ValidationException", "1 validation error detected: Value 'not-an-arn' at "
                               "'streamArn' failed to satisfy constraint: Member must have length greater than or "
                               "equal to 37")
    code, message = _raw_error(ddb.meta.endpoint_url, "EnableKinesisStreamingDestination",
                               {"TableName": table, "StreamArn": stream_arn("s1"),
                                "EnableKinesisStreamingConfiguration": {
                                    "ApproximateCreationDateTimePrecision": "SECOND"}})
    assert (code, message) == ("ValidationException", "1 validation error detected: Value 'SECOND' at "
                               "'enableKinesisStreamingConfiguration.approximateCreationDateTimePrecision' failed to "
                               "satisfy constraint: Member must satisfy enum value set: [MILLISECOND, MICROSECOND]")
    assert destinations(ddb, table) == []


def _raw_error(url: str, operation: str, body: dict) -> tuple[str, str]:
    """Send a request botocore would refuse to send; the error's code and message."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": f"DynamoDB_20120810.{operation}",
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDSHOALTEST/20260101/us-east-1/dynamodb/aws4_request, "
                         "SignedHeaders=host, Signature=0"})
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read())
        return answer["__type"].rsplit("#", 1)[-1], answer.get("message") or answer.get("Message")
    raise AssertionError("the request succeeded")


def test_deleting_the_table_removes_its_destinations(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    arn = stream_arn(make_stream(kinesis))
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    wait_status(ddb, table, arn, "ACTIVE")
    ddb.delete_table(TableName=table)
    assert error_of(ddb.describe_kinesis_streaming_destination, TableName=table)[0] == "ResourceNotFoundException"
    create_table(ddb, name=table, range_key=None)
    assert destinations(ddb, table) == []


def test_destinations_survive_a_restart(tmp_path, kinesalite, kinesis):
    data = tmp_path / "data"
    env = {**FAST, "SHOAL_KINESIS_ENDPOINT": kinesalite.url}
    proc = ShoalProcess(data, "--kinesis-endpoint", kinesalite.url, env=FAST).start()  # the flag, then the variable
    try:
        ddb = make_client(proc.url)
        table = create_table(ddb, range_key=None)
        arn = stream_arn(make_stream(kinesis))
        failed = stream_arn(unique_name("nostream"))
        ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=failed)
        wait_status(ddb, table, failed, "ENABLE_FAILED")
        ddb.enable_kinesis_streaming_destination(
            TableName=table, StreamArn=arn,
            EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
        wait_status(ddb, table, arn, "ACTIVE")
        before = destinations(ddb, table)
    finally:
        proc.stop()
    proc = ShoalProcess(data, env=env).start()
    try:
        ddb = make_client(proc.url)
        assert destinations(ddb, table) == before == [
            {"StreamArn": arn, "DestinationStatus": "ACTIVE", "ApproximateCreationDateTimePrecision": "MICROSECOND"},
            {"StreamArn": failed, "DestinationStatus": "ENABLE_FAILED",
             "DestinationStatusDescription": NO_PERMISSION}]
        # Delivery goes on after the restart.
        ddb.put_item(TableName=table, Item={"pk": {"S": "after-restart"}})
        records = wait_records(kinesis, arn.rsplit("/", 1)[1], 1)
        assert [r["data"]["dynamodb"]["Keys"] for r in records] == [{"pk": {"S": "after-restart"}}]
    finally:
        proc.stop()


def test_without_an_endpoint_a_destination_fails_to_enable(tmp_path):
    proc = ShoalProcess(tmp_path / "data", env=FAST).start()
    try:
        ddb = make_client(proc.url)
        table = create_table(ddb, range_key=None)
        arn = stream_arn("some-stream")
        ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
        assert wait_status(ddb, table, arn, "ENABLE_FAILED") == {
            "StreamArn": arn, "DestinationStatus": "ENABLE_FAILED", "DestinationStatusDescription": NO_PERMISSION}
        ddb.put_item(TableName=table, Item={"pk": {"S": "still-serving"}})
        assert ddb.get_item(TableName=table, Key={"pk": {"S": "still-serving"}})["Item"] == {
            "pk": {"S": "still-serving"}}
    finally:
        proc.stop()


# ---------------------------------------------------------------- delivery


def test_item_changes_arrive_in_dynamodb_record_format(ddb, kinesis):
    table = create_table(ddb)  # pk S, sk N
    name = make_stream(kinesis)
    arn = stream_arn(name)
    ddb.put_item(TableName=table, Item={"pk": {"S": "before"}, "sk": {"N": "0"}})  # before enabling: not sent
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    wait_status(ddb, table, arn, "ACTIVE")
    started = time.time()
    key = {"pk": {"S": "a"}, "sk": {"N": "1"}}
    ddb.put_item(TableName=table, Item={**key, "v": {"S": "one"}})
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET v = :v", ExpressionAttributeValues={
        ":v": {"S": "two"}})
    ddb.update_item(TableName=table, Key=key, UpdateExpression="SET v = :v", ExpressionAttributeValues={
        ":v": {"S": "two"}})  # changes nothing: no record
    ddb.delete_item(TableName=table, Key=key)
    records = wait_records(kinesis, name, 3)
    assert len(records) == 3
    datas = [r["data"] for r in records]
    for data in datas:
        moment = data["dynamodb"].pop("ApproximateCreationDateTime")
        assert started - 2 <= moment / 1000 <= time.time() + 2
        assert len(data.pop("eventID")) == 36
    assert datas == [
        {"awsRegion": "us-east-1", "eventName": "INSERT", "userIdentity": None, "recordFormat": "application/json",
         "tableName": table, "dynamodb": {"Keys": key, "NewImage": {**key, "v": {"S": "one"}}, "SizeBytes": 18,
                                          "ApproximateCreationDateTimePrecision": "MILLISECOND"},
         "eventSource": "aws:dynamodb"},
        {"awsRegion": "us-east-1", "eventName": "MODIFY", "userIdentity": None, "recordFormat": "application/json",
         "tableName": table, "dynamodb": {"Keys": key, "NewImage": {**key, "v": {"S": "two"}},
                                          "OldImage": {**key, "v": {"S": "one"}}, "SizeBytes": 29,
                                          "ApproximateCreationDateTimePrecision": "MILLISECOND"},
         "eventSource": "aws:dynamodb"},
        {"awsRegion": "us-east-1", "eventName": "REMOVE", "userIdentity": None, "recordFormat": "application/json",
         "tableName": table, "dynamodb": {"Keys": key, "OldImage": {**key, "v": {"S": "two"}}, "SizeBytes": 18,
                                          "ApproximateCreationDateTimePrecision": "MILLISECOND"},
         "eventSource": "aws:dynamodb"},
    ]
    assert len({r["key"] for r in records}) == 1  # one item, one partition key


def test_batches_transactions_and_time_to_live_deletions_are_sent(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    name = make_stream(kinesis)
    arn = stream_arn(name)
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    wait_status(ddb, table, arn, "ACTIVE")
    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": {"pk": {"S": f"b{i}"}}}} for i in range(3)]})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {"pk": {"S": "t"}}}},
        {"Delete": {"TableName": table, "Key": {"pk": {"S": "b0"}}}}])
    expired = str(int(time.time()) - 60)
    ddb.put_item(TableName=table, Item={"pk": {"S": "ttl"}, "exp": {"N": expired}})
    service = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    records = wait_records(kinesis, name, 7)
    events = [(r["data"]["eventName"], r["data"]["dynamodb"]["Keys"]["pk"]["S"], r["data"]["userIdentity"])
              for r in records]
    assert sorted(events, key=str) == sorted([
        ("INSERT", "b0", None), ("INSERT", "b1", None), ("INSERT", "b2", None), ("INSERT", "t", None),
        ("REMOVE", "b0", None), ("INSERT", "ttl", None), ("REMOVE", "ttl", service)], key=str)
    # One shard: log order.  The sweeper's deletion comes last and names the service.
    assert events.index(("INSERT", "b0", None)) < events.index(("REMOVE", "b0", None))
    assert events[-2:] == [("INSERT", "ttl", None), ("REMOVE", "ttl", service)]


def test_microsecond_precision_and_disabling_stops_delivery(ddb, kinesis):
    table = create_table(ddb, range_key=None)
    name = make_stream(kinesis)
    arn = stream_arn(name)
    ddb.enable_kinesis_streaming_destination(
        TableName=table, StreamArn=arn,
        EnableKinesisStreamingConfiguration={"ApproximateCreationDateTimePrecision": "MICROSECOND"})
    wait_status(ddb, table, arn, "ACTIVE")
    started = time.time()
    ddb.put_item(TableName=table, Item={"pk": {"S": "micro"}})
    ddb.disable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    wait_status(ddb, table, arn, "DISABLED")
    ddb.put_item(TableName=table, Item={"pk": {"S": "after-disable"}})
    time.sleep(1.0)  # several delivery rounds: nothing more may arrive
    records = read_stream(kinesis, name)
    assert [r["data"]["dynamodb"]["Keys"] for r in records] == [{"pk": {"S": "micro"}}]
    data = records[0]["data"]["dynamodb"]
    assert data["ApproximateCreationDateTimePrecision"] == "MICROSECOND"
    assert started - 2 <= data["ApproximateCreationDateTime"] / 1_000_000 <= time.time() + 2


def test_nothing_is_lost_while_the_endpoint_is_down(ddb, kinesis, kinesalite):
    table = create_table(ddb, range_key=None)
    name = make_stream(kinesis, shards=2)
    arn = stream_arn(name)
    ddb.enable_kinesis_streaming_destination(TableName=table, StreamArn=arn)
    wait_status(ddb, table, arn, "ACTIVE")
    keys = [f"k{i}" for i in range(12)]
    for k in keys:
        ddb.put_item(TableName=table, Item={"pk": {"S": k}, "n": {"N": "0"}})
    assert len(wait_records(kinesis, name, len(keys))) == len(keys)
    kinesalite.stop()
    try:
        for round_ in (1, 2, 3):
            for k in keys:
                ddb.update_item(TableName=table, Key={"pk": {"S": k}}, UpdateExpression="SET n = :n",
                                ExpressionAttributeValues={":n": {"N": str(round_)}})
        for k in keys[::3]:
            ddb.delete_item(TableName=table, Key={"pk": {"S": k}})
        time.sleep(1.5)  # the server tries, fails and backs off meanwhile
        # Still ACTIVE, as DynamoDB keeps a destination whose stream it cannot reach.
        assert destinations(ddb, table) == [{"StreamArn": arn, "DestinationStatus": "ACTIVE"}]
    finally:
        kinesalite.start()
    expected_total = len(keys) * 4 + len(keys[::3])
    records = wait_records(kinesis, name, expected_total, timeout=60)
    # At least once: a batch in flight when the endpoint went down may come twice.
    by_item: dict[str, list] = {}
    for record in records:
        data = record["data"]
        by_item.setdefault(data["dynamodb"]["Keys"]["pk"]["S"], []).append(
            (data["eventID"], data["eventName"], (data["dynamodb"].get("NewImage") or {}).get("n", {}).get("N")))
    for k in keys:
        seen, unique = set(), []
        for event in by_item[k]:
            if event[0] not in seen:
                seen.add(event[0])
                unique.append(event[1:])
        wanted = [("INSERT", "0"), ("MODIFY", "1"), ("MODIFY", "2"), ("MODIFY", "3")]
        if k in keys[::3]:
            wanted.append(("REMOVE", None))
        assert unique == wanted, k
