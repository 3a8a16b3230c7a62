"""SDKs other than boto3 against a real Shoal: PynamoDB and the AWS SDK for
JavaScript v3 (its low-level client and the DocumentClient), unmodified, on
viewer events.

The JavaScript SDK is installed with npm into ``.cache/js-sdk`` of the
checkout the first time (a pinned version); only a machine without Node.js
and npm skips that test.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess

import pytest
from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    VersionAttribute,
)
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model
from pynamodb.transactions import TransactWrite

from tests.conftest import unique_name

REPO = pathlib.Path(__file__).resolve().parents[2]
JS_DIR = REPO / ".cache" / "js-sdk"
JS_PACKAGES = ["@aws-sdk/client-dynamodb@3.1169.0", "@aws-sdk/lib-dynamodb@3.1169.0"]
SCENARIO = pathlib.Path(__file__).with_name("js") / "sdk_scenario.mjs"


# ---------------------------------------------------------------- PynamoDB


def _models(url: str):
    table = unique_name("pynamo_events")

    class Device(MapAttribute):
        type = UnicodeAttribute()
        os = UnicodeAttribute()
        app_version = UnicodeAttribute()

    class ByContent(GlobalSecondaryIndex):
        class Meta:
            index_name = "by_content"
            projection = KeysOnlyProjection()

        content_id = UnicodeAttribute(hash_key=True)
        ts = NumberAttribute(range_key=True)

    class ViewerEvent(Model):
        class Meta:
            table_name = table
            host = url
            region = "us-east-1"
            aws_access_key_id = "AKIDSHOALPYNAMO"
            aws_secret_access_key = "secret"
            billing_mode = "PAY_PER_REQUEST"
            max_retry_attempts = 0

        user_id = UnicodeAttribute(hash_key=True)
        ts = NumberAttribute(range_key=True)
        event_type = UnicodeAttribute()
        content_id = UnicodeAttribute()
        device = Device(null=True)
        position_s = NumberAttribute(null=True)
        tags = UnicodeSetAttribute(null=True)
        watch_count = NumberAttribute(null=True)
        version = VersionAttribute()
        by_content = ByContent()

    return ViewerEvent, Device


def _event(model, device, user: str, ts: int, **extra):
    return model(user, ts, event_type="play", content_id="c000114",
                 device=device(type="tv", os="webos", app_version="5.29.9"),
                 position_s=1687.183, tags={"music", "anime"}, **extra)


def test_pynamodb_models_indexes_conditions_and_transactions(shoal):
    ViewerEvent, Device = _models(shoal.url)
    ViewerEvent.create_table(wait=True)
    assert ViewerEvent.exists()
    try:
        for i in range(5):
            _event(ViewerEvent, Device, "u0001", 1700000000000 + i).save()

        got = ViewerEvent.get("u0001", 1700000000002)
        assert (got.event_type, got.device.os, got.position_s, got.tags, got.version) == (
            "play", "webos", 1687.183, {"music", "anime"}, 1)

        latest = list(ViewerEvent.query("u0001", scan_index_forward=False, limit=2))
        assert [e.ts for e in latest] == [1700000000004, 1700000000003]
        in_range = ViewerEvent.query("u0001", ViewerEvent.ts.between(1700000000001, 1700000000003))
        assert [e.ts for e in in_range] == [1700000000001, 1700000000002, 1700000000003]
        assert ViewerEvent.count("u0001", ViewerEvent.ts >= 1700000000003) == 2

        # Optimistic locking: the version attribute becomes a condition.
        stale = ViewerEvent.get("u0001", 1700000000000)
        fresh = ViewerEvent.get("u0001", 1700000000000)
        fresh.update(actions=[ViewerEvent.watch_count.add(1), ViewerEvent.position_s.set(1800.5)])
        assert (fresh.watch_count, fresh.position_s, fresh.version) == (1, 1800.5, 2)
        stale.position_s = 1.0
        with pytest.raises(PutError) as failed:
            stale.save()
        assert failed.value.cause_response_code == "ConditionalCheckFailedException"
        with pytest.raises(UpdateError) as failed:
            stale.update(actions=[ViewerEvent.watch_count.add(1)])
        assert failed.value.cause_response_code == "ConditionalCheckFailedException"
        assert ViewerEvent.get("u0001", 1700000000000).position_s == 1800.5

        with ViewerEvent.batch_write() as batch:
            for i in range(30):  # more than one BatchWriteItem
                batch.save(_event(ViewerEvent, Device, f"u{100 + i:04d}", 1700000001000))
        keys = [(f"u{100 + i:04d}", 1700000001000) for i in range(30)] + [("nobody", 1)]
        assert len(list(ViewerEvent.batch_get(keys))) == 30

        indexed = list(ViewerEvent.by_content.query("c000114", ViewerEvent.ts >= 1700000001000))
        assert len(indexed) == 30 and all(e.event_type is None for e in indexed)  # keys only
        played = ViewerEvent.scan(ViewerEvent.user_id.startswith("u01"), page_size=7)
        assert len(list(played)) == 30

        with pytest.raises(TransactWriteError) as failed:
            with TransactWrite(connection=ViewerEvent._get_connection().connection) as txn:
                txn.save(_event(ViewerEvent, Device, "u0200", 1700000002000))
                txn.condition_check(ViewerEvent, "u0001", 1700000000003,
                                    condition=ViewerEvent.user_id.does_not_exist())
        assert failed.value.cause_response_code == "TransactionCanceledException"
        # PynamoDB sends condition checks first, then the puts.
        assert [r.code if r else None for r in failed.value.cancellation_reasons] == [
            "ConditionalCheckFailed", None]
        with pytest.raises(DoesNotExist):
            ViewerEvent.get("u0200", 1700000002000)

        doomed = ViewerEvent.get("u0001", 1700000000004)
        doomed.delete()
        with pytest.raises(DeleteError) as failed:
            ViewerEvent.get("u0001", 1700000000003).delete(condition=ViewerEvent.watch_count > 5)
        assert failed.value.cause_response_code == "ConditionalCheckFailedException"
        assert ViewerEvent.count("u0001") == 4
    finally:
        ViewerEvent.delete_table()
    assert not ViewerEvent.exists()


# ---------------------------------------------------------------- JavaScript


@pytest.fixture(scope="module")
def js_sdk() -> pathlib.Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("Node.js and npm are not installed on this machine")
    if not (JS_DIR / "node_modules" / "@aws-sdk" / "lib-dynamodb").is_dir():
        JS_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(JS_DIR), "--no-audit", "--no-fund",
                        "--loglevel=error", *JS_PACKAGES], check=True, timeout=300)
    # Node resolves ES-module imports beside the script, so it runs from there.
    shutil.copy(SCENARIO, JS_DIR / SCENARIO.name)
    return JS_DIR / SCENARIO.name


def test_javascript_sdk_v3_scenario(shoal, js_sdk):
    table = unique_name("js_events")
    run = subprocess.run(["node", str(js_sdk), shoal.url, table], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)

    assert out["describe"] == {"status": "ACTIVE", "index": "by_content",
                               "arn": f"arn:aws:dynamodb:us-east-1:000000000000:table/{table}"}
    assert out["get"] == {"user_id": "u0001", "ts": 1700000000002, "event_type": "play",
                          "content_id": "c000114", "position_s": 1687.183, "seq": 2,
                          "device": {"type": "tv", "os": "webos", "app_version": "5.29.9"},
                          "tags": ["anime", "music"]}
    assert out["pages"] == {"first": [1700000000004, 1700000000003],
                            "lastKey": {"user_id": "u0001", "ts": 1700000000003},
                            "second": [1700000000002, 1700000000001]}
    assert out["update"] == {"watch_count": 1, "position_s": 1800.5}
    assert out["conditionFailed"] == {"name": "ConditionalCheckFailedException", "status": 400,
                                      "message": "The conditional request failed",
                                      "item": {"seq": "1"}, "reasons": None}
    assert out["batchWrite"] == {}
    assert out["batchGet"] == ["u0100", "u0124"]
    assert out["transaction"]["name"] == "TransactionCanceledException"
    assert out["transaction"]["status"] == 400
    assert out["transaction"]["reasons"] == ["None", "ConditionalCheckFailed"]
    assert out["afterTransaction"] is None
    assert out["scan"] == {"scanned": 30, "pages": 5}  # pages of 7
    assert out["indexCount"] == 30
    assert out["deleted"] is None
    assert out["missingTable"] == {"name": "ResourceNotFoundException", "status": 400,
                                   "message": "Requested resource not found", "item": None, "reasons": None}
    assert out["badKeyCondition"]["name"] == "ValidationException"
    assert out["badKeyCondition"]["message"] == "Query condition missed key schema element: user_id"
    assert out["badItem"] == {"name": "ValidationException", "status": 400, "item": None, "reasons": None,
                              "message": "The provided key element does not match the schema"}
