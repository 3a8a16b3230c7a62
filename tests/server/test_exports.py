"""Export to S3 and import from S3 through boto3 against a real ``shoal serve``
(issue 16, point 3): the files under ``--s3-dir`` in DynamoDB's layout and
formats, round trips of every attribute type, incremental exports, CSV
imports with bad lines, DynamoDB's errors, restarts."""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import hashlib
import io
import json
import os
import time
from decimal import Decimal

import pytest
import zstandard
from amazon.ion import simpleion
from botocore.exceptions import ClientError

from shoal.model.size import item_size
from tests.conftest import make_client
from tests.shoal_process import ShoalProcess

BUCKET = "exports"
KEYS = [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
DEFINITIONS = [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"}]


@contextlib.contextmanager
def environment(**values):
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update({name: str(value) for name, value in values.items()})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Server:
    """A ``shoal serve`` with two workers, a folder for S3 and a clock the tests move."""

    def __init__(self, root) -> None:
        self.root = root
        self.s3 = root / "s3"
        (self.s3 / BUCKET).mkdir(parents=True)
        self.clock = root / "clock"
        self.clock.write_text("0")
        self.offset = 0.0
        self.process = None
        self.start()

    def start(self) -> None:
        with environment(SHOAL_TEST_CLOCK_FILE=self.clock):
            self.process = ShoalProcess(self.root / "data", "--workers", "2", "--s3-dir", str(self.s3)).start()
        self.ddb = make_client(self.process.url)

    def stop(self) -> None:
        self.process.stop()

    def move_clock(self, offset: float) -> None:
        self.offset = offset
        self.clock.write_text(str(offset))

    def now(self) -> float:
        return time.time() + self.offset


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = Server(tmp_path_factory.mktemp("exports"))
    yield running
    running.stop()


@pytest.fixture
def ddb(server):
    return server.ddb


def make_table(ddb, name: str, pitr: bool = True, **extra) -> str:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", KeySchema=KEYS,
                     AttributeDefinitions=DEFINITIONS, **extra)
    if pitr:
        ddb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    return ddb.describe_table(TableName=name)["Table"]["TableArn"]


def wait_export(ddb, arn: str) -> dict:
    for _ in range(300):
        description = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        if description["ExportStatus"] != "IN_PROGRESS":
            return description
        time.sleep(0.05)
    raise AssertionError(f"export {arn} still IN_PROGRESS")


def wait_import(ddb, arn: str) -> dict:
    for _ in range(300):
        description = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        if description["ImportStatus"] != "IN_PROGRESS":
            return description
        time.sleep(0.05)
    raise AssertionError(f"import {arn} still IN_PROGRESS")


def export(ddb, table_arn: str, **request) -> dict:
    started = ddb.export_table_to_point_in_time(TableArn=table_arn, S3Bucket=BUCKET, **request)
    assert started["ExportDescription"]["ExportStatus"] == "IN_PROGRESS"
    return wait_export(ddb, started["ExportDescription"]["ExportArn"])


def import_table(ddb, name: str, prefix: str, input_format: str, compression: str = "GZIP",
                 bucket: str = BUCKET, **extra) -> dict:
    extra.setdefault("TableCreationParameters", {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS, "AttributeDefinitions": DEFINITIONS})
    started = ddb.import_table(
        S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": prefix}, InputFormat=input_format,
        InputCompressionType=compression, **extra)
    assert started["ImportTableDescription"]["ImportStatus"] == "IN_PROGRESS"
    return wait_import(ddb, started["ImportTableDescription"]["ImportArn"])


def scan(ddb, name: str) -> list:
    items = ddb.scan(TableName=name, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: (item["pk"]["S"], Decimal(item["sk"]["N"])))


def export_dir(server, description: dict):
    return server.s3 / BUCKET / os.path.dirname(description["ExportManifest"])


def data_lines(server, description: dict) -> list[bytes]:
    lines = []
    manifest = (export_dir(server, description) / "manifest-files.json").read_text()
    for entry in manifest.splitlines():
        key = json.loads(entry)["dataFileS3Key"]
        lines += gzip.decompress((server.s3 / BUCKET / key).read_bytes()).splitlines()
    return lines


EVERY_TYPE = [
    {"pk": {"S": "u1"}, "sk": {"N": "1"}, "s": {"S": "naïve \"quoted\" \n tab\t ✓ 𝄞"}, "empty": {"S": ""},
     "n": {"N": "12345678901234567890123456789012345678"}, "small": {"N": "-0.00000000000000000000000000000000000001"},
     "huge": {"N": "9.9999999999999999999999999999999999999E+125"}, "b": {"B": b"\0\xff bin"},
     "t": {"BOOL": True}, "f": {"BOOL": False}, "nul": {"NULL": True},
     "ss": {"SS": ["a", "b", "zz"]}, "ns": {"NS": ["1", "2.5", "-3e10"]},
     "bs": {"BS": [b"x", b"yz", b"\xfe"]},
     "l": {"L": [{"S": "x"}, {"N": "1"}, {"L": []}, {"M": {}}, {"NULL": True}, {"SS": ["q"]}]},
     "m": {"M": {"deep": {"M": {"deeper": {"L": [{"M": {"k y": {"N": "0.5"}, "null": {"BOOL": True}}}]}}},
                 "$odd name": {"S": "v"}, "1": {"BS": [b"1"]}}}},
    {"pk": {"S": "u1"}, "sk": {"N": "2.5"}, "only": {"S": "keys and one"}},
    {"pk": {"S": "u2 spaced"}, "sk": {"N": "-7"}},
]


@pytest.fixture(scope="module")
def typed_exports(server):
    """The table of EVERY_TYPE exported in both formats."""
    ddb = server.ddb
    arn = make_table(ddb, "typed")
    for item in EVERY_TYPE:
        ddb.put_item(TableName="typed", Item=item)
    return {fmt: export(ddb, arn, ExportFormat=fmt, S3Prefix=f"typed/{fmt.lower()}")
            for fmt in ("DYNAMODB_JSON", "ION")}


def recompressed(server, description: dict, compression: str) -> str:
    """The export's data files again under a new prefix, compressed otherwise; that prefix."""
    prefix = f"recompressed/{compression.lower()}/{description['ExportFormat'].lower()}/"
    target = server.s3 / BUCKET / prefix
    target.mkdir(parents=True)
    for n, line_block in enumerate([data_lines(server, description)]):
        text = b"".join(line + b"\n" for line in line_block)
        data = zstandard.ZstdCompressor().compress(text) if compression == "ZSTD" else text
        (target / f"part-{n}").write_bytes(data)
    return prefix


@pytest.mark.parametrize("input_format,compression", [
    ("DYNAMODB_JSON", "GZIP"), ("ION", "GZIP"), ("DYNAMODB_JSON", "ZSTD"), ("ION", "ZSTD"), ("ION", "NONE"),
    ("DYNAMODB_JSON", "NONE")])
def test_export_then_import_round_trips_every_type(server, typed_exports, input_format, compression):
    ddb = server.ddb
    description = typed_exports[input_format]
    assert description["ExportStatus"] == "COMPLETED" and description["ItemCount"] == len(EVERY_TYPE)
    if compression == "GZIP":
        prefix = os.path.dirname(description["ExportManifest"]) + "/data/"
    else:
        prefix = recompressed(server, description, compression)
    name = f"back-{input_format.lower()}-{compression.lower()}"
    done = import_table(ddb, name, prefix, input_format, compression)
    assert done["ImportStatus"] == "COMPLETED", done
    assert (done["ErrorCount"], done["ProcessedItemCount"], done["ImportedItemCount"]) == (0, 3, 3)
    assert done["ProcessedSizeBytes"] > 0
    assert ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE"
    assert scan(ddb, name) == scan(ddb, "typed")


def test_files_are_dynamodbs_layout_with_checked_manifests(server, typed_exports):
    for fmt, description in typed_exports.items():
        root = export_dir(server, description)
        export_id = description["ExportArn"].rsplit("/", 1)[1]
        assert root.name == export_id and root.parent.name == "AWSDynamoDB"
        assert sorted(p.name for p in root.iterdir()) == [
            "_started", "data", "manifest-files.json", "manifest-files.md5", "manifest-summary.json",
            "manifest-summary.md5"]
        assert (root / "_started").read_bytes() == b""
        for name in ("manifest-files", "manifest-summary"):
            content = (root / f"{name}.json").read_bytes()
            assert (root / f"{name}.md5").read_bytes() == base64.b64encode(hashlib.md5(content).digest())
        total = 0
        for line in (root / "manifest-files.json").read_text().splitlines():
            entry = json.loads(line)
            assert set(entry) == {"itemCount", "md5Checksum", "etag", "dataFileS3Key"}
            assert entry["dataFileS3Key"].startswith(f"typed/{fmt.lower()}/AWSDynamoDB/{export_id}/data/")
            assert entry["dataFileS3Key"].endswith(".ion.gz" if fmt == "ION" else ".json.gz")
            data = (server.s3 / BUCKET / entry["dataFileS3Key"]).read_bytes()
            digest = hashlib.md5(data).digest()
            assert entry["md5Checksum"] == base64.b64encode(digest).decode()
            assert entry["etag"] == hashlib.md5(digest).hexdigest() + "-1"
            lines = gzip.decompress(data).splitlines()
            assert entry["itemCount"] == len(lines)
            total += len(lines)
            for text in lines:
                if fmt == "ION":
                    assert text.startswith(b"$ion_1_0 {Item:")
                    assert "Item" in simpleion.loads(text.decode())
                else:
                    assert set(json.loads(text)) == {"Item"}
        assert total == len(EVERY_TYPE)
        summary = json.loads((root / "manifest-summary.json").read_text())
        assert summary["version"] == "2020-06-30"
        assert summary["exportArn"] == description["ExportArn"]
        assert summary["tableArn"] == description["TableArn"] and summary["tableId"] == description["TableId"]
        assert summary["itemCount"] == len(EVERY_TYPE) and summary["outputFormat"] == fmt
        assert summary["s3Bucket"] == BUCKET and summary["s3Prefix"] == f"typed/{fmt.lower()}"
        assert summary["manifestFilesS3Key"] == f"typed/{fmt.lower()}/AWSDynamoDB/{export_id}/manifest-files.json"
        assert summary["billedSizeBytes"] == description["BilledSizeBytes"] > 0
        for field in ("startTime", "endTime", "exportTime"):
            assert summary[field].endswith("Z")
        assert description["ExportManifest"] == f"typed/{fmt.lower()}/AWSDynamoDB/{export_id}/manifest-summary.json"
        assert "ExportType" not in description  # as DynamoDB: not given, not answered


def test_ion_lines_use_dynamodbs_ion_types(server, typed_exports):
    lines = data_lines(server, typed_exports["ION"])
    first = next(line for line in lines if b'pk:"u1",sk:1.,' in line)
    value = simpleion.loads(first.decode())["Item"]
    annotations = {name: [a.text for a in value[name].ion_annotations] for name in ("ss", "ns", "bs")}
    assert annotations == {"ss": ["$dynamodb_SS"], "ns": ["$dynamodb_NS"], "bs": ["$dynamodb_BS"]}
    assert value["n"] == Decimal("12345678901234567890123456789012345678")
    assert bytes(value["b"]) == b"\0\xff bin"


def test_full_export_is_the_table_at_its_export_time(server):
    ddb = server.ddb
    arn = make_table(ddb, "moving")
    for n in range(6):
        ddb.put_item(TableName="moving", Item={"pk": {"S": f"k{n}"}, "sk": {"N": "0"}, "v": {"N": "1"}})
    time.sleep(0.05)
    at = server.now()
    time.sleep(0.05)
    seen = scan(ddb, "moving")
    ddb.delete_item(TableName="moving", Key={"pk": {"S": "k1"}, "sk": {"N": "0"}})
    ddb.put_item(TableName="moving", Item={"pk": {"S": "k2"}, "sk": {"N": "0"}, "v": {"N": "2"}})
    ddb.put_item(TableName="moving", Item={"pk": {"S": "new"}, "sk": {"N": "0"}})
    for fmt in ("DYNAMODB_JSON", "ION"):
        done = export(ddb, arn, ExportTime=at, ExportFormat=fmt, S3Prefix=f"moving-{fmt}")
        assert done["ItemCount"] == 6 and done["ExportTime"].timestamp() == pytest.approx(at, abs=0.002)
        prefix = os.path.dirname(done["ExportManifest"]) + "/data/"
        assert import_table(ddb, f"moving-{fmt.lower()}", prefix, fmt)["ImportedItemCount"] == 6
        assert scan(ddb, f"moving-{fmt.lower()}") == seen


def test_incremental_export_holds_exactly_its_window(server):
    ddb = server.ddb
    arn = make_table(ddb, "changing")

    def put(pk: str, version: int) -> None:
        ddb.put_item(TableName="changing", Item={"pk": {"S": pk}, "sk": {"N": "0"}, "v": {"N": str(version)}})

    def key(pk: str) -> dict:
        return {"pk": {"S": pk}, "sk": {"N": "0"}}

    put("a", 0)
    put("b", 0)
    put("e", 0)
    ddb.delete_item(TableName="changing", Key=key("e"))
    base = server.offset
    server.move_clock(base + 1000)
    time.sleep(0.02)
    window_from = server.now()
    time.sleep(0.02)
    put("a", 1)  # updated
    ddb.delete_item(TableName="changing", Key=key("b"))  # deleted
    put("c", 1)  # created
    put("d", 1)  # created and deleted: not in the export
    ddb.delete_item(TableName="changing", Key=key("d"))
    put("e", 1)  # re-created, then updated twice
    put("e", 2)
    put("e", 3)
    time.sleep(0.02)
    server.move_clock(base + 2500)
    time.sleep(0.02)
    window_to = server.now() - 500
    put("f", 1)  # after the window
    put("a", 9)
    lines = {}
    for view in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
        done = export(ddb, arn, ExportType="INCREMENTAL_EXPORT", S3Prefix=f"inc/{view}", IncrementalExportSpecification={
            "ExportFromTime": window_from, "ExportToTime": window_to, "ExportViewType": view})
        assert done["ExportStatus"] == "COMPLETED", done
        assert done["ExportType"] == "INCREMENTAL_EXPORT" and done["ItemCount"] == 4
        assert done["IncrementalExportSpecification"]["ExportViewType"] == view
        assert "ExportTime" not in done
        entries = [json.loads(line) for line in data_lines(server, done)]
        lines[view] = {entry["Keys"]["pk"]["S"]: entry for entry in entries}
        for entry in entries:
            micros = int(entry["Metadata"]["WriteTimestampMicros"]["N"])
            assert window_from * 1e6 <= micros < window_to * 1e6
            assert entry["Keys"] == key(entry["Keys"]["pk"]["S"])
        summary = json.loads((export_dir(server, done) / "manifest-summary.json").read_text())
        assert summary["exportType"] == "INCREMENTAL_EXPORT" and summary["outputView"] == view
        assert summary["itemCount"] == 4
        for entry in json.loads("[" + ",".join((export_dir(server, done) / "manifest-files.json")
                                               .read_text().splitlines()) + "]"):
            assert entry["dataFileS3Key"].startswith(f"inc/{view}/AWSDynamoDB/data/")  # DynamoDB's shared folder
    both, new = lines["NEW_AND_OLD_IMAGES"], lines["NEW_IMAGE"]
    assert sorted(both) == sorted(new) == ["a", "b", "c", "e"]
    version = lambda image: image["v"]["N"]  # noqa: E731
    assert (version(both["a"]["OldImage"]), version(both["a"]["NewImage"])) == ("0", "1")
    assert version(both["b"]["OldImage"]) == "0" and "NewImage" not in both["b"]
    assert "OldImage" not in both["c"] and version(both["c"]["NewImage"]) == "1"
    assert "OldImage" not in both["e"] and version(both["e"]["NewImage"]) == "3"
    assert all("OldImage" not in entry for entry in new.values())
    assert set(new["b"]) == {"Metadata", "Keys"}
    assert version(new["a"]["NewImage"]) == "1"


def test_csv_import_types_keys_and_counts_bad_lines(server):
    ddb = server.ddb
    source = server.s3 / BUCKET / "csv"
    source.mkdir()
    rows = io.StringIO()
    writer = csv.writer(rows)
    writer.writerow(["pk", "sk", "title", "year", "genre"])
    writer.writerow(["a", "1", "Dark, Side", "1973", "rock"])
    writer.writerow(["b", "2.50", "multi\nline", "", ""])
    writer.writerow(["", "3", "no key", "1", "x"])  # an empty key: bad
    writer.writerow(["c", "three", "not a number key", "1", "x"])  # bad
    writer.writerow(["d", "4", "too", "many", "columns", "here"])  # bad
    writer.writerow(["e", "5", "", "2001", "jazz"])
    (source / "part1.csv").write_bytes(gzip.compress(rows.getvalue().encode()))
    (source / "part2.csv").write_bytes(gzip.compress(b"pk,sk,title,year,genre\nf,6,t,1,x\n"))
    (source / "part3.csv").write_bytes(b"not gzip: the object cannot be read, one error")
    parameters = {"TableName": "from-csv", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                  "AttributeDefinitions": DEFINITIONS + [{"AttributeName": "genre", "AttributeType": "S"}],
                  "GlobalSecondaryIndexes": [{"IndexName": "by_genre", "Projection": {"ProjectionType": "ALL"},
                                              "KeySchema": [{"AttributeName": "genre", "KeyType": "HASH"}]}]}
    done = import_table(ddb, "from-csv", "csv/", "CSV", TableCreationParameters=parameters)
    assert done["ImportStatus"] == "FAILED"
    assert done["FailureCode"] == "ItemValidationError"
    assert done["FailureMessage"] == ("Some of the items failed validation checks and were not imported. "
                                      "Please check CloudWatch error logs for more details.")
    assert (done["ErrorCount"], done["ImportedItemCount"]) == (4, 4)
    assert done["ProcessedItemCount"] == 7
    items = {item["pk"]["S"]: item for item in scan(ddb, "from-csv")}
    assert sorted(items) == ["a", "b", "e", "f"]
    assert items["a"] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "title": {"S": "Dark, Side"}, "year": {"S": "1973"},
                          "genre": {"S": "rock"}}
    assert items["b"]["sk"] == {"N": "2.5"} and items["b"]["title"] == {"S": "multi\nline"}
    assert items["b"]["year"] == {"S": ""} and "genre" not in items["b"]  # an empty index key: left out
    described = ddb.describe_table(TableName="from-csv")["Table"]
    assert described["TableStatus"] == "ACTIVE"
    # Cells are measured, not validated: the sizes are still DynamoDB's.
    assert described["TableSizeBytes"] == sum(map(item_size, items.values())) == 39 + 27 + 29 + 24  # b: 2.5 takes 3 bytes
    assert described["GlobalSecondaryIndexes"][0]["IndexSizeBytes"] == sum(
        item_size(item) for item in items.values() if "genre" in item)
    jazz = ddb.query(TableName="from-csv", IndexName="by_genre", KeyConditionExpression="genre = :g",
                     ExpressionAttributeValues={":g": {"S": "jazz"}})["Items"]
    assert [item["pk"]["S"] for item in jazz] == ["e"]

    # HeaderList and another delimiter: the first line is data.
    (server.s3 / BUCKET / "csv2").mkdir()
    (server.s3 / BUCKET / "csv2" / "rows").write_text("x;10;hello\ny;11;world\n")
    done = import_table(ddb, "from-csv2", "csv2/", "CSV", "NONE", InputFormatOptions={
        "Csv": {"Delimiter": ";", "HeaderList": ["pk", "sk", "word"]}})
    assert done["ImportStatus"] == "COMPLETED" and done["ImportedItemCount"] == 2
    assert done["InputFormatOptions"] == {"Csv": {"Delimiter": ";", "HeaderList": ["pk", "sk", "word"]}}
    assert scan(ddb, "from-csv2")[1] == {"pk": {"S": "y"}, "sk": {"N": "11"}, "word": {"S": "world"}}


def test_json_and_ion_imports_count_bad_lines_and_keep_the_last_duplicate(server):
    ddb = server.ddb
    folder = server.s3 / BUCKET / "mixed"
    folder.mkdir()
    (folder / "a.json").write_text("\n".join([
        '{"Item": {"pk": {"S": "k"}, "sk": {"N": "1"}, "v": {"S": "first"}}}',
        '{"Item": {"pk": {"S": "k"}, "sk": {"N": "1"}, "v": {"S": "last"}}}',
        "not json",
        '{"Item": {"pk": {"N": "1"}, "sk": {"N": "1"}}}',
        '{"Item": {"pk": {"S": "ok"}, "sk": {"N": "2"}, "bad": {"SS": []}}}',
        '{"NotItem": {}}',
        "",
        '{"Item": {"pk": {"S": "k2"}, "sk": {"N": "1e2"}}}']))
    done = import_table(ddb, "mixed-json", "mixed/a", "DYNAMODB_JSON", "NONE")
    assert (done["ImportStatus"], done["ErrorCount"], done["ProcessedItemCount"]) == ("FAILED", 4, 7)
    assert done["ImportedItemCount"] == 2
    assert [item["v"]["S"] for item in scan(ddb, "mixed-json") if "v" in item] == ["last"]
    (folder / "b.ion").write_text('$ion_1_0 {Item:{pk:"i",sk:1.,s:$dynamodb_NS::[1,2d1]}}\n'
                                  '$ion_1_0 {Item:{pk:"j",sk:2020-01-01T}}\n{{{\n')
    done = import_table(ddb, "mixed-ion", "mixed/b", "ION", "NONE")
    assert (done["ImportStatus"], done["ErrorCount"], done["ImportedItemCount"]) == ("FAILED", 2, 1)
    assert sorted(scan(ddb, "mixed-ion")[0]["s"]["NS"]) == ["1", "20"]


def test_errors_as_dynamodb_words_them(server):
    ddb = server.ddb
    off = make_table(ddb, "no-pitr", pitr=False)
    on = make_table(ddb, "with-pitr")

    def error(call, **request):
        with pytest.raises(ClientError) as info:
            call(**request)
        return info.value.response["Error"]["Code"], info.value.response["Error"]["Message"]

    assert error(ddb.export_table_to_point_in_time, TableArn=off, S3Bucket=BUCKET) == (
        "PointInTimeRecoveryUnavailableException", "Point in time recovery is not enabled for table 'no-pitr'")
    missing = on.replace("with-pitr", "missing-table")
    assert error(ddb.export_table_to_point_in_time, TableArn=missing, S3Bucket=BUCKET) == (
        "TableNotFoundException", f"Table not found: {missing}")
    assert error(ddb.export_table_to_point_in_time, TableArn=on, S3Bucket=BUCKET, ExportTime=server.now() - 3600) == (
        "InvalidExportTimeException", "Export Time is invalid")
    code, message = error(ddb.export_table_to_point_in_time, TableArn=on, S3Bucket=BUCKET,
                          ExportType="INCREMENTAL_EXPORT", IncrementalExportSpecification={
                              "ExportFromTime": server.now() - 1, "ExportToTime": server.now()})
    assert code == "InvalidExportTimeException"
    assert message.startswith("Difference between export period")
    unknown = on + "/export/01700000000000-0badf00d"
    assert error(ddb.describe_export, ExportArn=unknown) == ("ExportNotFoundException", f"Export not found: {unknown}")

    first = ddb.export_table_to_point_in_time(TableArn=on, S3Bucket=BUCKET, ClientToken="token-1")
    again = ddb.export_table_to_point_in_time(TableArn=on, S3Bucket=BUCKET, ClientToken="token-1")
    assert again["ExportDescription"]["ExportArn"] == first["ExportDescription"]["ExportArn"]
    assert again["ExportDescription"]["ClientToken"] == "token-1"
    code, message = error(ddb.export_table_to_point_in_time, TableArn=on, S3Bucket=BUCKET, ClientToken="token-1",
                          ExportFormat="ION")
    assert code == "ExportConflictException" and "Duplicate request detected" in message

    started = ddb.export_table_to_point_in_time(TableArn=on, S3Bucket="no-such-bucket")
    failed = wait_export(ddb, started["ExportDescription"]["ExportArn"])
    assert (failed["ExportStatus"], failed["FailureCode"]) == ("FAILED", "S3NoSuchBucket")
    assert failed["FailureMessage"].startswith("The specified bucket does not exist")

    assert error(ddb.import_table, S3BucketSource={"S3Bucket": BUCKET}, InputFormat="CSV",
                 TableCreationParameters={"TableName": "with-pitr", "KeySchema": KEYS,
                                          "AttributeDefinitions": DEFINITIONS, "BillingMode": "PAY_PER_REQUEST"}) == (
        "ResourceInUseException", "Table already exists: with-pitr")
    done = import_table(ddb, "never-made", "x", "CSV", bucket="no-such-bucket")
    assert (done["ImportStatus"], done["FailureCode"]) == ("FAILED", "S3NoSuchBucket")
    assert "never-made" not in ddb.list_tables()["TableNames"]  # as DynamoDB: the table is not created
    unknown = on + "/import/01700000000000-0badf00d"
    assert error(ddb.describe_import, ImportArn=unknown) == ("ImportNotFoundException", f"Import not found: {unknown}")
    request = {"S3BucketSource": {"S3Bucket": BUCKET, "S3KeyPrefix": "nothing-here/"}, "InputFormat": "CSV",
               "ClientToken": "import-token", "TableCreationParameters": {
                   "TableName": "token-table", "KeySchema": KEYS, "AttributeDefinitions": DEFINITIONS,
                   "BillingMode": "PAY_PER_REQUEST"}}
    first = ddb.import_table(**request)["ImportTableDescription"]["ImportArn"]
    assert ddb.import_table(**request)["ImportTableDescription"]["ImportArn"] == first
    code, message = error(ddb.import_table, **dict(request, InputFormat="ION"))
    assert code == "ImportConflictException" and "Duplicate request detected" in message
    assert wait_import(ddb, first)["ImportStatus"] == "COMPLETED"


def test_list_exports_and_imports_page_newest_first(server):
    ddb = server.ddb
    arn = make_table(ddb, "listed")
    made = [ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=BUCKET, S3Prefix="listed")
            ["ExportDescription"]["ExportArn"] for _ in range(3)]
    seen, token = [], None
    while True:
        page = ddb.list_exports(TableArn=arn, MaxResults=2, **({"NextToken": token} if token else {}))
        assert len(page["ExportSummaries"]) <= 2
        seen += page["ExportSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    assert [summary["ExportArn"] for summary in seen] == sorted(made, reverse=True)
    assert {summary["ExportType"] for summary in seen} == {"FULL_EXPORT"}
    for made_arn in made:
        wait_export(ddb, made_arn)
    everything = ddb.list_exports()["ExportSummaries"]
    assert set(made) <= {summary["ExportArn"] for summary in everything}
    for n in range(2):
        import_table(ddb, f"listed-{n}", "nothing-here/", "CSV")
    imports = ddb.list_imports(PageSize=1)
    assert len(imports["ImportSummaryList"]) == 1 and len(imports["NextToken"]) >= 112
    rest = ddb.list_imports(PageSize=25, NextToken=imports["NextToken"])["ImportSummaryList"]
    assert imports["ImportSummaryList"][0]["ImportArn"] not in {summary["ImportArn"] for summary in rest}


def test_restart_during_and_after_an_export(server):
    ddb = server.ddb
    arn = make_table(ddb, "restarted")
    ddb.put_item(TableName="restarted", Item={"pk": {"S": "x"}, "sk": {"N": "1"}})
    finished = export(ddb, arn, S3Prefix="restart")
    # An export whose time is now waits a second for writes in flight: the
    # server stops meanwhile.
    running = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=BUCKET, S3Prefix="restart")
    running_arn = running["ExportDescription"]["ExportArn"]
    assert ddb.describe_export(ExportArn=running_arn)["ExportDescription"]["ExportStatus"] == "IN_PROGRESS"
    server.stop()
    server.start()
    ddb = server.ddb
    after = ddb.describe_export(ExportArn=finished["ExportArn"])["ExportDescription"]
    assert after["ExportStatus"] == "COMPLETED" and after["ItemCount"] == 1
    interrupted = ddb.describe_export(ExportArn=running_arn)["ExportDescription"]
    assert interrupted["ExportStatus"] == "FAILED" and interrupted["FailureCode"]
    statuses = {s["ExportArn"]: s["ExportStatus"] for s in ddb.list_exports(TableArn=arn)["ExportSummaries"]}
    assert statuses == {finished["ExportArn"]: "COMPLETED", running_arn: "FAILED"}


def test_an_import_that_fails_at_once_is_still_answered_in_progress(server):
    """ImportTable answers the record it wrote (IN_PROGRESS), even when its
    job has already failed and left the running set (a missing bucket fails
    in microseconds): it was shown FAILED, as an interrupted job, now and then
    (seen once in a full run on a loaded machine; a race, so this loop catches
    it only when the job wins it)."""
    ddb = server.ddb
    for n in range(40):
        started = ddb.import_table(
            S3BucketSource={"S3Bucket": "no-such-bucket", "S3KeyPrefix": "x"}, InputFormat="CSV",
            InputCompressionType="NONE", TableCreationParameters={
                "TableName": f"never-made-{n}", "BillingMode": "PAY_PER_REQUEST", "KeySchema": KEYS,
                "AttributeDefinitions": DEFINITIONS})["ImportTableDescription"]
        assert (started["ImportStatus"], "FailureCode" in started) == ("IN_PROGRESS", False), (n, started)
        done = wait_import(ddb, started["ImportArn"])
        assert (done["ImportStatus"], done["FailureCode"]) == ("FAILED", "S3NoSuchBucket")
