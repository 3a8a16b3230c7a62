"""On-demand backups (issue 16, point 1) over a real engine: CreateBackup,
DescribeBackup, ListBackups, DeleteBackup, RestoreTableFromBackup."""

from __future__ import annotations

import orjson
import pytest

from shoal.api import DEFAULT_ACCOUNT, Context, backups, items, jobs, query, tables
from shoal.api.catalog import Catalog
from shoal.api.common import successor
from shoal.api.indexes import IndexJobs
from shoal.errors import ShoalError
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"


@pytest.fixture
def ctx(lmdb_engine):
    return Context(REGION, DEFAULT_ACCOUNT, lmdb_engine, Catalog(lmdb_engine))


def make_events(ctx, name="events"):
    tables.create_table(ctx, {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "user_id", "AttributeType": "S"},
                                 {"AttributeName": "ts", "AttributeType": "N"},
                                 {"AttributeName": "content_id", "AttributeType": "S"},
                                 {"AttributeName": "kind", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by_content", "Projection": {"ProjectionType": "ALL"},
                                    "KeySchema": [{"AttributeName": "content_id", "KeyType": "HASH"},
                                                  {"AttributeName": "ts", "KeyType": "RANGE"}]}],
        "LocalSecondaryIndexes": [{"IndexName": "by_kind", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                   "KeySchema": [{"AttributeName": "user_id", "KeyType": "HASH"},
                                                 {"AttributeName": "kind", "KeyType": "RANGE"}]}]})


def put(ctx, user, ts, content="c1", table="events"):
    items.put_item(ctx, {"TableName": table, "Item": {
        "user_id": {"S": user}, "ts": {"N": str(ts)}, "content_id": {"S": content}, "kind": {"S": f"k{ts % 5}"}}})


def _loaded(out):
    return out if isinstance(out, dict) else orjson.loads(out)


def all_items(ctx, table) -> list:
    out = _loaded(query.scan(ctx, {"TableName": table}))
    return sorted(out["Items"], key=lambda i: (i["user_id"]["S"], int(i["ts"]["N"])))


def by_content(ctx, table, content) -> list:
    out = _loaded(query.query(ctx, {
        "TableName": table, "IndexName": "by_content", "KeyConditionExpression": "content_id = :c",
        "ExpressionAttributeValues": {":c": {"S": content}}}))
    return [(i["user_id"]["S"], i["ts"]["N"]) for i in out["Items"]]


def by_kind(ctx, table, user) -> list:
    out = _loaded(query.query(ctx, {
        "TableName": table, "IndexName": "by_kind", "KeyConditionExpression": "user_id = :u",
        "ExpressionAttributeValues": {":u": {"S": user}}}))
    return [(i["kind"]["S"], i["ts"]["N"]) for i in out["Items"]]


def backup(ctx, table="events", name="b1") -> str:
    return backups.create_backup(ctx, {"TableName": table, "BackupName": name})["BackupDetails"]["BackupArn"]


def restore(ctx, arn, target, **overrides):
    """RestoreTableFromBackup, and the wait for its load job: the table ACTIVE."""
    out = backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": target, **overrides})
    assert out["TableDescription"]["TableStatus"] == "CREATING"
    assert out["TableDescription"]["RestoreSummary"]["RestoreInProgress"] is True
    assert jobs.wait_for_jobs(ctx.engine)
    return {"TableDescription": tables.describe_table(ctx, {"TableName": target})["Table"]}


def error_of(call) -> ShoalError:
    with pytest.raises(ShoalError) as err:
        call()
    return err.value


def test_a_restored_table_is_the_source_at_backup_time(ctx):
    make_events(ctx)
    for n in range(1200):  # more than one copy chunk and one build chunk
        put(ctx, f"u{n % 7}", n, f"c{n % 3}")
    before = all_items(ctx, "events")
    created = backups.create_backup(ctx, {"TableName": "events", "BackupName": "nightly"})["BackupDetails"]
    assert created["BackupStatus"] == "CREATING" and created["BackupType"] == "USER"  # DynamoDB's answer
    described = backups.describe_backup(ctx, {"BackupArn": created["BackupArn"]})["BackupDescription"]
    assert described["BackupDetails"] == {**created, "BackupStatus": "AVAILABLE"}
    assert created["BackupName"] == "nightly" and created["BackupSizeBytes"] > 0
    arn = created["BackupArn"]
    prefix, _, suffix = arn.rpartition("/backup/")
    assert prefix == "arn:aws:dynamodb:us-east-1:000000000000:table/events"
    stamp, _, rand = suffix.partition("-")
    assert len(stamp) == 14 and stamp.isdigit() and len(rand) == 8
    put(ctx, "late", 1)  # after the backup: not in it
    items.delete_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "u0"}, "ts": {"N": "0"}}})

    answer = restore(ctx, arn, "events_restored")["TableDescription"]
    assert answer["TableStatus"] == "ACTIVE" and answer["ItemCount"] == 1200
    summary = answer["RestoreSummary"]
    assert summary["SourceBackupArn"] == arn and summary["RestoreInProgress"] is False
    assert summary["SourceTableArn"] == "arn:aws:dynamodb:us-east-1:000000000000:table/events"
    assert all_items(ctx, "events_restored") == before
    for content in ("c0", "c1", "c2"):
        assert sorted(by_content(ctx, "events_restored", content)) == sorted(
            (i["user_id"]["S"], i["ts"]["N"]) for i in before if i["content_id"]["S"] == content)
    assert by_kind(ctx, "events_restored", "u0") == sorted(
        ((i["kind"]["S"], i["ts"]["N"]) for i in before if i["user_id"]["S"] == "u0"),
        key=lambda kind_ts: (kind_ts[0], int(kind_ts[1])))
    described = tables.describe_table(ctx, {"TableName": "events_restored"})["Table"]
    assert described["RestoreSummary"] == summary
    assert [g["IndexName"] for g in described["GlobalSecondaryIndexes"]] == ["by_content"]
    assert [i["IndexName"] for i in described["LocalSecondaryIndexes"]] == ["by_kind"]


def test_writes_during_the_copy_are_not_in_the_backup(ctx, monkeypatch):
    make_events(ctx)
    for n in range(30):
        put(ctx, "u", n)
    monkeypatch.setattr(backups, "COPY_CHUNK", 10)
    real = backups.stored_size
    seen = []

    def size_and_write(raw):
        seen.append(1)
        if len(seen) == 15:  # after the first chunk was copied, a writer goes on
            put(ctx, "during", 1)
            items.delete_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "u"}, "ts": {"N": "29"}}})
        return real(raw)
    monkeypatch.setattr(backups, "stored_size", size_and_write)
    arn = backup(ctx)
    restore(ctx, arn, "copy")
    assert [i["user_id"]["S"] for i in all_items(ctx, "copy")] == ["u"] * 30


def test_a_backup_survives_the_deletion_of_its_source(ctx):
    make_events(ctx)
    for n in range(50):
        put(ctx, "u", n)
    before = all_items(ctx, "events")
    arn = backup(ctx)
    tables.delete_table(ctx, {"TableName": "events"})
    while IndexJobs(ctx.engine)():  # the source's storage purged entirely
        pass
    assert backups.describe_backup(ctx, {"BackupArn": arn})["BackupDescription"]["BackupDetails"]["BackupStatus"] \
        == "AVAILABLE"
    restore(ctx, arn, "events")  # under the source's own name
    assert all_items(ctx, "events") == before


def test_describe_backup_gives_the_source_and_its_features(ctx):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)
    description = backups.describe_backup(ctx, {"BackupArn": arn})["BackupDescription"]
    source = description["SourceTableDetails"]
    assert source["TableName"] == "events" and source["ItemCount"] == 1 and source["BillingMode"] == "PAY_PER_REQUEST"
    assert source["ProvisionedThroughput"] == {"ReadCapacityUnits": 0, "WriteCapacityUnits": 0}
    assert source["KeySchema"][0] == {"AttributeName": "user_id", "KeyType": "HASH"}
    features = description["SourceTableFeatureDetails"]
    assert features["GlobalSecondaryIndexes"][0]["IndexName"] == "by_content"
    assert features["LocalSecondaryIndexes"][0]["Projection"] == {"ProjectionType": "KEYS_ONLY"}


def damage(ctx, arn):
    """Flip one byte of one stored item of the backup, as a disk fault would."""
    with ctx.engine.write() as txn:
        record = orjson.loads(txn.get("meta", backups.backup_key(REGION, arn)))
        prefix = bytes.fromhex(record["prefix"])
        key, raw = next(iter(txn.scan("items", prefix, prefix + b"\xff" * 8)))
        key, raw = bytes(key), bytearray(raw)
        raw[-2] ^= 0x01
        txn.put("items", key, bytes(raw))


def test_a_damaged_backup_is_refused_and_no_table_is_left(ctx):
    make_events(ctx)
    for n in range(20):
        put(ctx, "u", n)
    arn = backup(ctx)
    damage(ctx, arn)
    err = error_of(lambda: restore(ctx, arn, "copy"))
    assert err.type_name == "InternalServerError"
    assert err.message == (f"Backup {arn} is damaged: its stored items do not match the checksum taken "
                           "when it was made. Nothing was restored.")
    with ctx.engine.read() as txn:
        assert ctx.catalog.get(txn, REGION, "copy") is None


def test_a_restore_that_fails_while_writing_leaves_no_table(ctx, monkeypatch):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)

    def broken(*args):
        raise RuntimeError("disk full")
    monkeypatch.setattr(backups, "load_items", broken)
    backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": "copy"})  # answered: CREATING
    assert jobs.wait_for_jobs(ctx.engine)
    with ctx.engine.read() as txn:
        assert ctx.catalog.get(txn, REGION, "copy") is None
        assert list(txn.scan("meta", b"restore-job/", b"restore-job0")) == []  # and no job record


def test_restore_overrides(ctx):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)
    answer = restore(ctx, arn, "provisioned", BillingModeOverride="PROVISIONED",
                     ProvisionedThroughputOverride={"ReadCapacityUnits": 7, "WriteCapacityUnits": 3},
                     GlobalSecondaryIndexOverride=[], LocalSecondaryIndexOverride=[])["TableDescription"]
    assert answer["ProvisionedThroughput"]["ReadCapacityUnits"] == 7
    assert "BillingModeSummary" not in answer or answer["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert "GlobalSecondaryIndexes" not in answer and "LocalSecondaryIndexes" not in answer
    assert {d["AttributeName"] for d in answer["AttributeDefinitions"]} == {"user_id", "ts"}
    assert answer["ItemCount"] == 1


def test_list_backups_filters_and_pages(ctx):
    make_events(ctx)
    make_events(ctx, "other")
    clock = iter(range(1_700_000_000, 1_700_000_100))
    ctx.now = lambda: float(next(clock))
    arns = [backup(ctx, "events", f"e{n}") for n in range(3)]
    other = backup(ctx, "other", "o1")
    listed = backups.list_backups(ctx, {})
    assert [s["BackupArn"] for s in listed["BackupSummaries"]] == sorted(arns + [other])
    assert "LastEvaluatedBackupArn" not in listed
    summary = listed["BackupSummaries"][0]
    assert summary["TableName"] == "events" and summary["BackupStatus"] == "AVAILABLE"
    assert summary["BackupType"] == "USER" and summary["BackupName"] == "e0"

    def names(**request):
        return [s["BackupName"] for s in backups.list_backups(ctx, request)["BackupSummaries"]]
    assert names(TableName="events") == ["e0", "e1", "e2"]
    assert names(TableName="arn:aws:dynamodb:us-east-1:000000000000:table/other") == ["o1"]
    assert names(TableName="arn:aws:dynamodb:eu-west-1:000000000000:table/other") == []
    assert names(TableName="nothing") == []
    created = [s["BackupCreationDateTime"] for s in backups.list_backups(ctx, {"TableName": "events"})["BackupSummaries"]]
    assert names(TableName="events", TimeRangeLowerBound=created[1]) == ["e1", "e2"]  # inclusive
    assert names(TableName="events", TimeRangeUpperBound=created[1]) == ["e0"]  # exclusive
    assert names(BackupType="SYSTEM") == [] and names(BackupType="AWS_BACKUP") == []
    assert len(names(BackupType="ALL")) == 4

    page = backups.list_backups(ctx, {"TableName": "events", "Limit": 2})
    assert [s["BackupName"] for s in page["BackupSummaries"]] == ["e0", "e1"]
    assert page["LastEvaluatedBackupArn"] == page["BackupSummaries"][-1]["BackupArn"]
    rest = backups.list_backups(ctx, {"TableName": "events", "Limit": 2,
                                      "ExclusiveStartBackupArn": page["LastEvaluatedBackupArn"]})
    assert [s["BackupName"] for s in rest["BackupSummaries"]] == ["e2"] and "LastEvaluatedBackupArn" not in rest


def test_delete_backup_removes_the_record_and_its_items(ctx):
    make_events(ctx)
    for n in range(1500):  # more than one purge step
        put(ctx, "u", n)
    arn = backup(ctx)
    with ctx.engine.read() as txn:
        prefix = bytes.fromhex(orjson.loads(txn.get("meta", backups.backup_key(REGION, arn)))["prefix"])
    answer = backups.delete_backup(ctx, {"BackupArn": arn})["BackupDescription"]
    assert answer["BackupDetails"]["BackupStatus"] == "DELETED"
    assert answer["SourceTableDetails"]["ItemCount"] == 1500
    assert backups.list_backups(ctx, {})["BackupSummaries"] == []
    while IndexJobs(ctx.engine)():
        pass
    with ctx.engine.read() as txn:
        assert next(iter(txn.scan("items", prefix, prefix + b"\xff" * 8)), None) is None
    assert error_of(lambda: backups.describe_backup(ctx, {"BackupArn": arn})).type_name == "BackupNotFoundException"


def test_errors_and_their_wording(ctx):
    make_events(ctx)
    missing = "arn:aws:dynamodb:us-east-1:000000000000:table/events/backup/01700000000000-0123abcd"
    for call in (lambda: backups.describe_backup(ctx, {"BackupArn": missing}),
                 lambda: backups.delete_backup(ctx, {"BackupArn": missing}),
                 lambda: restore(ctx, missing, "copy")):
        err = error_of(call)
        assert (err.type_name, err.status, err.message) == ("BackupNotFoundException", 400,
                                                            f"Backup not found: {missing}")
    err = error_of(lambda: backup(ctx, "nothing"))
    assert (err.type_name, err.status, err.message) == ("TableNotFoundException", 400, "Table not found: nothing")
    arn = backup(ctx)
    err = error_of(lambda: restore(ctx, arn, "events"))
    assert (err.type_name, err.status, err.message) == ("TableAlreadyExistsException", 400,
                                                        "Table already exists: events")
    with ctx.engine.write() as txn:  # a backup still being made (another worker's)
        key = backups.backup_key(REGION, arn)
        record = orjson.loads(txn.get("meta", key))
        txn.put("meta", key, orjson.dumps(dict(record, status="CREATING")))
    for call in (lambda: backups.delete_backup(ctx, {"BackupArn": arn}), lambda: restore(ctx, arn, "copy")):
        err = error_of(call)
        assert (err.type_name, err.status, err.message) == ("BackupInUseException", 400,
                                                            f"Backup is being created: {arn}")


def test_a_backup_in_an_encrypted_data_directory_is_encrypted_and_restores(tmp_path):
    from shoal.storage.encrypted import EncryptedEngine
    from shoal.storage.keyring import DataKeys

    inner = LmdbEngine(tmp_path / "enc", sync=False)
    engine = EncryptedEngine(inner, DataKeys(b"v" * 32, b"p" * 32, b"o" * 32))
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
    try:
        make_events(ctx)
        for n in range(20):
            put(ctx, "secret-user", n, "secret-content")
        before = all_items(ctx, "events")
        arn = backup(ctx)
        with engine.read() as txn:
            prefix = bytes.fromhex(orjson.loads(txn.get("meta", backups.backup_key(REGION, arn)))["prefix"])
        with inner.read() as txn:  # underneath: the backup's items are there, none readable
            stored = [bytes(raw) for _, raw in txn.scan("items", b"", None)]
        assert stored and not any(b"secret" in raw for raw in stored)
        assert backups.describe_backup(ctx, {"BackupArn": arn})["BackupDescription"][
            "SourceTableFeatureDetails"]["SSEDescription"] == {"Status": "ENABLED", "SSEType": "AES256"}
        restore(ctx, arn, "copy")
        assert all_items(ctx, "copy") == before and prefix
    finally:
        engine.close()


def test_a_restore_left_half_made_is_deleted_at_the_next_start(ctx, monkeypatch):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)
    monkeypatch.setattr(jobs, "start_job", lambda *args: None)  # the process stops before the load runs
    backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": "copy"})
    described = tables.describe_table(ctx, {"TableName": "copy"})["Table"]
    assert described["TableStatus"] == "CREATING" and described["RestoreSummary"]["RestoreInProgress"] is True
    with pytest.raises(ShoalError) as err:  # not reachable by the data plane while CREATING
        put(ctx, "v", 2, table="copy")
    assert (err.value.type_name, err.value.message) == ("ResourceNotFoundException", "Requested resource not found")
    with pytest.raises(ShoalError) as err:  # nor changed: a stream or replicas would miss the items loaded later
        tables.update_table(ctx, {"TableName": "copy", "StreamSpecification": {
            "StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    assert (err.value.type_name, err.value.message) == (
        "ResourceInUseException", "Attempt to change a resource which is still in use: Table is being created: copy")

    with ctx.engine.write() as txn:  # as if written by a process that has stopped
        (key, raw), = txn.scan("meta", b"restore-job/", b"restore-job0")
        job = orjson.loads(raw)
        job["runner"] = {"pid": 2 ** 22 + 12345, "token": "gone"}
        txn.put("meta", bytes(key), orjson.dumps(job))
    backups.recover_interrupted(ctx.engine, ctx.catalog)  # a worker's start
    with ctx.engine.read() as txn:
        assert ctx.catalog.get(txn, REGION, "copy") is None
        assert list(txn.scan("meta", b"restore-job/", b"restore-job0")) == []


def test_backup_in_use_and_invalid_arns(ctx, monkeypatch):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)
    with pytest.raises(ShoalError) as err:
        backups.describe_backup(ctx, {"BackupArn": "arn:aws:dynamodb:us-east-1:000000000000:table/events"})
    assert (err.value.type_name, err.value.message) == ("ValidationException", "Invalid Backup ARN")
    started = []
    monkeypatch.setattr(jobs, "start_job", lambda ctx, job_arn, work: started.append(job_arn))
    monkeypatch.setattr(jobs, "runner_alive", lambda record: True)  # the first restore is still loading
    backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": "copy1"})
    assert started
    with pytest.raises(ShoalError) as err:
        backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": "copy2"})
    assert (err.value.type_name, err.value.message) == (
        "BackupInUseException", f"Backup is being used to restore another table: {arn}")
    with pytest.raises(ShoalError) as err:
        backups.delete_backup(ctx, {"BackupArn": arn})
    assert (err.value.type_name, err.value.message) == (
        "BackupInUseException", f"Backup is being used to restore table: {arn}")


def test_a_backup_left_creating_is_dropped_at_the_next_start(ctx):
    make_events(ctx)
    put(ctx, "u", 1)
    arn = backup(ctx)
    key = backups.backup_key(REGION, arn)
    with ctx.engine.write() as txn:  # as a process that stopped half-way through the copy leaves it
        record = orjson.loads(txn.get("meta", key))
        record.update(status="CREATING", runner={"pid": 2 ** 22 + 12345, "token": "gone"})
        txn.put("meta", key, orjson.dumps(record))
    backups.recover_interrupted(ctx.engine, ctx.catalog)
    with pytest.raises(ShoalError) as err:
        backups.describe_backup(ctx, {"BackupArn": arn})
    assert err.value.type_name == "BackupNotFoundException"
    prefix = bytes.fromhex(record["prefix"])
    with ctx.engine.read() as txn:  # its items are purged (one purge step holds them all)
        assert list(txn.scan("items", prefix, successor(prefix))) == []


# ---------------------------------------------------------------- the bulk load


def _stats(ctx, name) -> dict:
    """Everything a load keeps besides the items and entries themselves:
    the table's and each index's counters, and the item-collection sizes
    (by partition, without the table's own prefix)."""
    from shoal.api.indexes import collection_range

    described = tables.describe_table(ctx, {"TableName": name})["Table"]
    out = {"table": (described["ItemCount"], described["TableSizeBytes"])}
    for member in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        for index in described.get(member) or ():
            out[index["IndexName"]] = (index["ItemCount"], index["IndexSizeBytes"])
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, REGION, name)
        start = collection_range(table)
        out["collections"] = {bytes(key[len(start):]): bytes(value)
                              for key, value in txn.scan("meta", start, successor(start))}
    return out


def _item_records(ctx, name) -> tuple[int, list]:
    """(the table's item change records, its bulk-load records' details)."""
    from shoal.api.changelog import LOAD_OP, decode_change, read_raw_changes

    with ctx.engine.read() as txn:
        table_id = ctx.catalog.get(txn, REGION, name).table_id
        decoded = [decode_change(value)[1] for _, owner, value in read_raw_changes(txn) if owner == table_id]
    return (sum("op" not in record for record in decoded),
            [record["ItemCount"] for record in decoded if record.get("op") == LOAD_OP])


def test_a_restore_loads_in_bulk_and_keeps_what_the_write_path_keeps(ctx, monkeypatch):
    """A restored table holds what the per-item write path would have made
    of the same items (counters, index sizes, item-collection sizes), with
    one change record per transaction instead of one per item: no stream
    record or point-in-time undo ever needs the restored items' own."""
    make_events(ctx)
    for n in range(230):
        put(ctx, f"u{n % 7}", n, f"c{n % 3}")
    items.put_item(ctx, {"TableName": "events", "Item": {  # in no index: no content_id, no kind
        "user_id": {"S": "bare"}, "ts": {"N": "1"}, "blob": {"B": "AAEC"}}})
    arn = backup(ctx)
    monkeypatch.setattr(backups, "LOAD_CHUNK", 100)
    restore(ctx, arn, "copy")
    assert _stats(ctx, "copy") == _stats(ctx, "events")
    assert _stats(ctx, "copy")["table"][0] == 231 and len(_stats(ctx, "copy")["collections"]) == 8
    assert _item_records(ctx, "copy") == (0, [100, 100, 31])
    assert _item_records(ctx, "events")[0] == 231
    # Written afterwards through the ordinary path, the counters go on from the load's.
    put(ctx, "u0", 0, "c2")  # replaces an item: its GSI entry moves
    put(ctx, "u0", 0, "c2", table="copy")
    items.delete_item(ctx, {"TableName": "copy", "Key": {"user_id": {"S": "u1"}, "ts": {"N": "1"}}})
    items.delete_item(ctx, {"TableName": "events", "Key": {"user_id": {"S": "u1"}, "ts": {"N": "1"}}})
    assert _stats(ctx, "copy") == _stats(ctx, "events")
    assert all_items(ctx, "copy") == all_items(ctx, "events")
    assert by_content(ctx, "copy", "c2") == by_content(ctx, "events", "c2")


def test_a_bulk_load_replaces_an_item_met_twice():
    """``BulkLoad.put`` of a key already stored (an import's duplicate)
    replaces the item: its old index entries go, the counters count it once."""
    from shoal.api.common import key_of, storage_key
    from shoal.api.writepath import BulkLoad, encode_stored
    from shoal.model.size import item_size
    from shoal.storage.memory_engine import MemoryEngine

    engine = MemoryEngine()
    ctx = Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine))
    make_events(ctx, "loaded")
    make_events(ctx, "written")
    versions = [{"user_id": {"S": "u"}, "ts": {"N": str(n % 3)}, "content_id": {"S": f"c{n}"},
                 "kind": {"S": f"k{n}"}, "pad": {"S": "x" * n}} for n in range(6)]
    versions.append({"user_id": {"S": "u"}, "ts": {"N": "0"}})  # the last of key 0: in no index
    with engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "loaded")
        load = BulkLoad(txn, table)
        for item in versions:
            load.put(storage_key(table, key_of(table, item)), encode_stored(item, item_size(item)), dict(item))
        load.finish()
    for item in versions:
        items.put_item(ctx, {"TableName": "written", "Item": item})
    assert _stats(ctx, "loaded") == _stats(ctx, "written")
    assert _stats(ctx, "loaded")["table"][0] == 3
    assert all_items(ctx, "loaded") == all_items(ctx, "written")
    for content in ("c0", "c3", "c4", "c5"):
        assert by_content(ctx, "loaded", content) == by_content(ctx, "written", content)
    assert by_content(ctx, "loaded", "c4") == [("u", "1")] and by_content(ctx, "loaded", "c3") == []
    assert by_kind(ctx, "loaded", "u") == by_kind(ctx, "written", "u") == [("k4", "1"), ("k5", "2")]
    assert _item_records(ctx, "loaded") == (0, [7])
