"""Point-in-time recovery (issue 16, point 2) over an engine: a restore to
any time reproduces the table as it was then, indexes included."""

from __future__ import annotations

import threading

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from shoal.api import DEFAULT_ACCOUNT, Context, items, jobs, pitr, query, tables
from shoal.api.catalog import Catalog
from shoal.api.changelog import consumers, position_at, prune_changes
from shoal.errors import (
    InvalidRestoreTimeException,
    PointInTimeRecoveryUnavailableException,
    ShoalError,
    TableAlreadyExistsException,
)
from shoal.storage.memory_engine import MemoryEngine
from tests.unit.test_backups import _loaded, all_items, by_kind, make_events

REGION = "us-east-1"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def make_ctx():
    engine = MemoryEngine()
    return Context(REGION, DEFAULT_ACCOUNT, engine, Catalog(engine), now=Clock())


def by_content(ctx, table, content) -> list:
    """The GSI's items, with the value each holds (an update changes it)."""
    out = _loaded(query.query(ctx, {
        "TableName": table, "IndexName": "by_content", "KeyConditionExpression": "content_id = :c",
        "ExpressionAttributeValues": {":c": {"S": content}}}))
    return [(i["user_id"]["S"], i["ts"]["N"], i.get("v", {}).get("N")) for i in out["Items"]]


def views(ctx, table) -> tuple:
    """Everything a reader can see of the table: its items and both indexes."""
    return (all_items(ctx, table),
            [by_content(ctx, table, c) for c in ("c0", "c1", "c2")],
            [by_kind(ctx, table, u) for u in ("u0", "u1", "u2")])


def enable(ctx, name="events", days=None):
    spec = {"PointInTimeRecoveryEnabled": True}
    if days is not None:
        spec["RecoveryPeriodInDays"] = days
    return pitr.update_continuous_backups(ctx, {"TableName": name, "PointInTimeRecoverySpecification": spec})


def restore(ctx, target, when=None, **extra):
    request = {"SourceTableName": "events", "TargetTableName": target, **extra}
    if when is None:
        request["UseLatestRestorableTime"] = True
    else:
        request["RestoreDateTime"] = when
    out = pitr.restore_table_to_point_in_time(ctx, request)["TableDescription"]
    assert out["TableStatus"] == "CREATING" and out["RestoreSummary"]["RestoreInProgress"] is True
    assert jobs.wait_for_jobs(ctx.engine)  # the load job: then the table is ACTIVE
    return out


# One step: a put (with a value and content id), an update of one attribute, or a delete.
_keys = st.tuples(st.sampled_from(["u0", "u1", "u2"]), st.integers(0, 5))
_steps = st.lists(st.one_of(
    st.tuples(st.just("put"), _keys, st.integers(0, 9), st.sampled_from(["c0", "c1", "c2"])),
    st.tuples(st.just("update"), _keys, st.integers(0, 9), st.just(None)),
    st.tuples(st.just("delete"), _keys, st.just(0), st.just(None)),
), min_size=1, max_size=40)


def _apply(ctx, step) -> None:
    kind, (user, ts), value, content = step
    key = {"user_id": {"S": user}, "ts": {"N": str(ts)}}
    if kind == "put":
        items.put_item(ctx, {"TableName": "events", "Item": {
            **key, "v": {"N": str(value)}, "content_id": {"S": content}, "kind": {"S": f"k{value % 3}"}}})
    elif kind == "update":
        items.update_item(ctx, {"TableName": "events", "Key": key, "UpdateExpression": "SET v = :v",
                                "ExpressionAttributeValues": {":v": {"N": str(value)}}})
    else:
        items.delete_item(ctx, {"TableName": "events", "Key": key})


@settings(max_examples=40, deadline=None)
@given(steps=_steps, marks=st.lists(st.integers(0, 40), min_size=1, max_size=4, unique=True))
def test_restore_reproduces_the_table_at_each_second(steps, marks):
    ctx = make_ctx()
    make_events(ctx)
    enable(ctx)
    expected = {}
    for n, step in enumerate(steps):
        if n in marks:
            ctx.now.now += 0.5
            expected[ctx.now.now] = views(ctx, "events")  # the table at this second
            ctx.now.now += 0.5
        _apply(ctx, step)
        ctx.now.now += 1
    ctx.now.now += 5  # past the latest restorable time's lag
    for n, (when, seen) in enumerate(sorted(expected.items())):
        restore(ctx, f"restored{n}", when)
        assert views(ctx, f"restored{n}") == seen
    now_seen = views(ctx, "events")
    restore(ctx, "latest")
    assert views(ctx, "latest") == now_seen


def test_position_at_finds_the_last_record_at_or_before_a_time():
    ctx = make_ctx()
    make_events(ctx)
    stamps = []
    for n in range(20):
        ctx.now.now += 1 + (n % 3)
        items.put_item(ctx, {"TableName": "events", "Item": {"user_id": {"S": "u"}, "ts": {"N": str(n)}}})
        stamps.append(ctx.now.now)
    with ctx.engine.read() as txn:
        first = position_at(txn, int(stamps[0] * 1000))
        assert position_at(txn, int(stamps[0] * 1000) - 1) == first - 1  # before every item: the creation
        for n, stamp in enumerate(stamps):
            assert position_at(txn, int(stamp * 1000)) == first + n
            assert position_at(txn, int(stamp * 1000) + 1) == first + n
        assert position_at(txn, int(stamps[-1] * 1000) + 10_000) == first + 19


def _code(exc: ShoalError) -> tuple[str, str]:
    return exc.type_name, exc.message


def test_settings_window_and_errors():
    ctx = make_ctx()
    make_events(ctx)
    off = pitr.describe_continuous_backups(ctx, {"TableName": "events"})["ContinuousBackupsDescription"]
    assert off == {"ContinuousBackupsStatus": "ENABLED",
                   "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}}
    with pytest.raises(PointInTimeRecoveryUnavailableException) as err:
        restore(ctx, "copy")
    assert err.value.message == "Point in time recovery is not enabled for table 'events'"

    on = enable(ctx, days=2)["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert on == {"PointInTimeRecoveryStatus": "ENABLED", "RecoveryPeriodInDays": 2,
                  "EarliestRestorableDateTime": START, "LatestRestorableDateTime": START}
    with ctx.engine.read() as txn:
        assert consumers(txn)["pitr"][1] == 2 * 86400  # the log is kept for the period
    ctx.now.now += 3 * 86400
    window = pitr.describe_continuous_backups(ctx, {"TableName": "events"})[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert window["EarliestRestorableDateTime"] == ctx.now.now - 2 * 86400  # the window moved
    assert window["LatestRestorableDateTime"] == ctx.now.now - pitr.LATEST_LAG_S
    with pytest.raises(InvalidRestoreTimeException) as err:
        restore(ctx, "copy", START + 10)
    assert err.value.message == (
        "RestoreDateTime '2027-01-15T08:00:10.000Z' must be within EarliestRestorableDateTime "
        "'2027-01-16T08:00:00.000Z' and LatestRestorableDateTime '2027-01-18T07:59:59.000Z'")
    with pytest.raises(InvalidRestoreTimeException):
        restore(ctx, "copy", ctx.now.now + 60)  # the future
    with pytest.raises(TableAlreadyExistsException) as err:
        restore(ctx, "events")
    assert err.value.message == "Table already exists: events"

    # A longer period does not reach back past the window as it stands.
    enable(ctx, days=35)
    window = pitr.describe_continuous_backups(ctx, {"TableName": "events"})[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    assert window["EarliestRestorableDateTime"] == ctx.now.now - 2 * 86400
    assert window["RecoveryPeriodInDays"] == 35

    pitr.update_continuous_backups(ctx, {"TableName": "events", "PointInTimeRecoverySpecification": {
        "PointInTimeRecoveryEnabled": False}})
    with ctx.engine.read() as txn:
        assert "pitr" not in consumers(txn)  # nothing kept for it any more
    with pytest.raises(ShoalError) as err:
        pitr.update_continuous_backups(ctx, {"TableName": "events", "PointInTimeRecoverySpecification": {
            "PointInTimeRecoveryEnabled": False, "RecoveryPeriodInDays": 3}})
    assert _code(err.value) == ("ValidationException", "Invalid Request: Cannot specify RecoveryPeriodInDays "
                                                        "when disabling point-in-time recovery.")


def test_pruned_records_bound_the_window():
    """Records the log no longer holds cannot be undone: the window starts
    no earlier than the oldest record kept."""
    ctx = make_ctx()
    make_events(ctx)
    enable(ctx, days=1)
    items.put_item(ctx, {"TableName": "events", "Item": {"user_id": {"S": "u"}, "ts": {"N": "1"}}})
    ctx.now.now += 2 * 86400
    items.put_item(ctx, {"TableName": "events", "Item": {"user_id": {"S": "u"}, "ts": {"N": "2"}}})
    with ctx.engine.write() as txn:
        assert prune_changes(txn, 0, ctx.now.now) > 0  # the first day is past every retention
    with ctx.engine.read() as txn:
        oldest = next(iter(txn.scan("changes")))
    window = pitr.describe_continuous_backups(ctx, {"TableName": "events"})[
        "ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    # The period alone would reach back to a day ago; the log holds only the second put.
    assert window["EarliestRestorableDateTime"] == int.from_bytes(oldest[1][:8], "big") / 1000 == ctx.now.now
    with pytest.raises(InvalidRestoreTimeException):
        restore(ctx, "copy", ctx.now.now - 86400 + 1)
    restore(ctx, "copy", window["EarliestRestorableDateTime"])
    assert [i["ts"]["N"] for i in all_items(ctx, "copy")] == ["1", "2"]


def test_deleted_table_leaves_a_system_backup():
    from shoal.api import backups

    ctx = make_ctx()
    make_events(ctx)
    for n in range(5):
        items.put_item(ctx, {"TableName": "events", "Item": {
            "user_id": {"S": "u0"}, "ts": {"N": str(n)}, "content_id": {"S": "c1"}, "kind": {"S": "k1"}}})
    enable(ctx)
    before = views(ctx, "events")
    tables.delete_table(ctx, {"TableName": "events"})
    assert backups.list_backups(ctx, {})["BackupSummaries"] == []  # USER backups by default
    (summary,) = backups.list_backups(ctx, {"BackupType": "SYSTEM"})["BackupSummaries"]
    assert summary["BackupName"] == "events$DeletedTableBackup"
    assert summary["BackupArn"].endswith("-00000000")
    assert summary["BackupExpiryDateTime"] == START + 35 * 86400
    backups.restore_table_from_backup(ctx, {"BackupArn": summary["BackupArn"], "TargetTableName": "events"})
    assert jobs.wait_for_jobs(ctx.engine)
    assert views(ctx, "events") == before
    with pytest.raises(ShoalError) as err:
        backups.delete_backup(ctx, {"BackupArn": summary["BackupArn"]})
    assert err.value.message.startswith("Invalid Request: User is not allowed to delete the system backup")
    ctx.now.now += 36 * 86400
    assert backups.list_backups(ctx, {"BackupType": "ALL"})["BackupSummaries"] == []  # expired
    # The new table of the same name has no recovery of its own.
    with pytest.raises(PointInTimeRecoveryUnavailableException):
        restore(ctx, "copy")


# ---------------------------------------------------------------- the undo's reading of the log


def _awkward_table(ctx):
    """Key attributes named like the record's own fields, so that slicing
    a record by its field names would go wrong if it were naive."""
    tables.create_table(ctx, {
        "TableName": "awkward", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "new", "KeyType": "HASH"}, {"AttributeName": "old", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "new", "AttributeType": "S"},
                                 {"AttributeName": "old", "AttributeType": "N"}]})


_AWKWARD_VALUES = ['"}},"old":{"N":"1"}', "back\\slash\\", 'quote"}},"old":null', "é\u2028\n\x00", ',"new":{', "plain"]


def test_the_undo_reads_keys_and_images_as_the_records_hold_them():
    """``read_item_befores`` gives, for every item record, the same keys and
    image before as decoding the record does, whatever the values hold
    (quotes, backslashes, control characters, an attribute named "new"),
    and skips the table's own records."""
    from shoal.api.changelog import decode_change, read_item_befores, read_raw_changes

    ctx = make_ctx()
    _awkward_table(ctx)
    for n, text in enumerate(_AWKWARD_VALUES):
        key = {"new": {"S": text}, "old": {"N": str(n)}}
        items.put_item(ctx, {"TableName": "awkward", "Item": {**key, "v": {"S": text}}})
        items.put_item(ctx, {"TableName": "awkward", "Item": {
            **key, "new_too": {"M": {"old": {"NULL": True}, "new": {"S": text}}}}})
        items.update_item(ctx, {"TableName": "awkward", "Key": key, "UpdateExpression": "SET #n = :v",
                                "ExpressionAttributeNames": {"#n": "w"},
                                "ExpressionAttributeValues": {":v": {"L": [{"S": ',"new":'}]}}})
        items.delete_item(ctx, {"TableName": "awkward", "Key": key})
    tables.tag_resource(ctx, {"ResourceArn": tables.describe_table(ctx, {"TableName": "awkward"})["Table"]["TableArn"],
                              "Tags": [{"Key": "k", "Value": "v"}]})
    with ctx.engine.read() as txn:
        table = ctx.catalog.get(txn, REGION, "awkward")
        expected = []
        decoded = 0  # records whose layout makes the reader decode them
        for _, table_id, value in read_raw_changes(txn):
            record = decode_change(value)[1]
            if table_id == table.table_id and "op" not in record:
                expected.append((record["keys"], record["old"]))
                decoded += value.count(b',"new":') > 1
        got = [(orjson.loads(keys), None if old is None else orjson.loads(old))
               for keys, old in read_item_befores(txn, table.table_id)]
        raw_olds = [old for _, old in read_item_befores(txn, table.table_id)]
    assert len(expected) == 4 * len(_AWKWARD_VALUES)
    assert 0 < decoded < len(expected)  # both ways of reading are exercised
    assert got == expected
    assert all(old is None or type(old) is bytes for old in raw_olds)


def test_restore_of_awkward_items_is_exact():
    ctx = make_ctx()
    _awkward_table(ctx)
    enable(ctx, "awkward")
    for n, text in enumerate(_AWKWARD_VALUES):
        items.put_item(ctx, {"TableName": "awkward", "Item": {
            "new": {"S": text}, "old": {"N": str(n)}, "new_too": {"M": {"new": {"S": text}}}}})
    ctx.now.now += 1
    seen = _loaded(query.scan(ctx, {"TableName": "awkward"}))["Items"]
    ctx.now.now += 1
    for n, text in enumerate(_AWKWARD_VALUES):
        key = {"new": {"S": text}, "old": {"N": str(n)}}
        if n % 2:
            items.delete_item(ctx, {"TableName": "awkward", "Key": key})
        else:
            items.put_item(ctx, {"TableName": "awkward", "Item": {**key, "v": {"S": ',"new":"x"'}}})
    ctx.now.now += 5
    restore(ctx, "then", START + 1.5, SourceTableName="awkward")
    assert _loaded(query.scan(ctx, {"TableName": "then"}))["Items"] == seen


def test_recovery_cannot_start_while_a_restore_loads_the_table():
    """A restored table's items are loaded in bulk, without a record each:
    recovery is refused until the table is ACTIVE, as DynamoDB refuses it
    while a new table's backups are set up, so no window reaches back into
    the load; a log that says otherwise is refused at the restore."""
    from shoal.api import backups
    from shoal.api.changelog import LOAD_OP, record_table_change

    ctx = make_ctx()
    make_events(ctx)
    items.put_item(ctx, {"TableName": "events", "Item": {"user_id": {"S": "u"}, "ts": {"N": "1"}}})
    arn = backups.create_backup(ctx, {"TableName": "events", "BackupName": "b"})["BackupDetails"]["BackupArn"]
    started = threading.Event()
    release = threading.Event()
    real = jobs.start_job

    def held(job_ctx, job_arn, work):  # the load waits until the refusal is seen
        def waiting(*args):
            started.set()
            release.wait(10)
            return work(*args)
        return real(job_ctx, job_arn, waiting)

    jobs.start_job = held
    try:
        backups.restore_table_from_backup(ctx, {"BackupArn": arn, "TargetTableName": "copy"})
        assert started.wait(10)
        with pytest.raises(ShoalError) as err:
            enable(ctx, "copy")
        assert _code(err.value) == ("ContinuousBackupsUnavailableException",
                                    "Backups are being enabled for the table: copy. Please retry later")
    finally:
        jobs.start_job = real
        release.set()
    assert jobs.wait_for_jobs(ctx.engine)
    ctx.now.now += 1
    enable(ctx, "copy")  # ACTIVE: accepted

    # A bulk load after the restore time cannot be undone.
    with ctx.engine.write() as txn:
        record_table_change(txn, ctx.catalog.get(txn, REGION, "copy"), LOAD_OP, {"ItemCount": 1}, ctx.now.now + 1)
    ctx.now.now += 5
    with pytest.raises(InvalidRestoreTimeException) as err:
        restore(ctx, "again", START + 1.5, SourceTableName="copy")
    assert err.value.message == ("Table 'copy' was loaded in bulk after the restore time; "
                                 "it cannot be restored to before its load completed")


def test_the_undo_reads_records_a_replica_applied():
    """A record applied from a peer (``originSeq`` and ``originTime`` after
    its origin) has another layout: it is read by decoding, with the same
    keys and image before."""
    from shoal.api.changelog import read_item_befores
    from shoal.api.common import key_of, storage_key
    from shoal.replication.apply import ReplicatedWriteLog

    ctx = make_ctx()
    make_events(ctx)
    first = {"user_id": {"S": "u"}, "ts": {"N": "1"}, "v": {"S": "local"}}
    items.put_item(ctx, {"TableName": "events", "Item": first})
    with ctx.engine.write() as txn:
        table = ctx.catalog.get(txn, REGION, "events")
        log = ReplicatedWriteLog(txn)
        log.origin, log.origin_seq, log.origin_time = "eu-west-1:0011223344556677", 9, START
        log.origin_json = b'"eu-west-1:0011223344556677"'  # as apply_changes encodes it once a batch
        replaced = {"user_id": {"S": "u"}, "ts": {"N": "1"}, "v": {"S": "from a peer"}}
        skey = storage_key(table, key_of(table, replaced))
        log.write_item(table, skey, key_of(table, replaced), txn.get("items", skey), replaced, 40)
        log.finish()
    with ctx.engine.read() as txn:
        got = [(orjson.loads(keys), None if old is None else orjson.loads(old))
               for keys, old in read_item_befores(txn, table.table_id)]
    key = {"user_id": {"S": "u"}, "ts": {"N": "1"}}
    assert got == [(key, None), (key, first)]
