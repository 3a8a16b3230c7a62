"""The dispatcher's side of metrics, in-process: who may scrape ``GET
/metrics`` with auth on, and that ``--metrics off`` records nothing and keeps
no change-log consumer."""

from __future__ import annotations

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import orjson
import pytest

from shoal.api.changelog import consumers
from shoal.auth.iam import bootstrap_root
from shoal.server.dispatch import Dispatcher, _is_loopback
from shoal.server.http import Request
from shoal.storage.lmdb_engine import LmdbEngine


@pytest.fixture
def engine(tmp_path):
    eng = LmdbEngine(tmp_path / "db", sync=False)
    yield eng
    eng.close()


def scrape(dispatcher, peer: str, headers: dict | None = None):
    return dispatcher(Request("GET", "/metrics", dict(headers or {}), b"", (peer, 40000), False))


def signed_headers(key: str, secret: str) -> dict:
    request = botocore.awsrequest.AWSRequest(method="GET", url="http://shoal.example:8000/metrics")
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "monitoring", "us-east-1").add_auth(request)
    return {name.lower(): value for name, value in request.headers.items()}


def test_loopback_addresses():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("::ffff:127.0.0.1")
    assert not _is_loopback("10.1.2.3") and not _is_loopback(None) and not _is_loopback("not an address")


def test_with_auth_on_a_remote_scrape_must_be_signed(engine, tmp_path):
    key, secret, _ = bootstrap_root(engine, tmp_path)
    dispatcher = Dispatcher(engine, auth="sigv4", data_dir=tmp_path, metrics=True)
    try:
        local = scrape(dispatcher, "127.0.0.1")
        assert local.status == 200 and b"shoal_storage_data_bytes" in local.body
        refused = scrape(dispatcher, "10.1.2.3")
        assert refused.status == 403 and refused.body.startswith(b"MissingAuthenticationToken")
        signed = scrape(dispatcher, "10.1.2.3", {**signed_headers(key, secret), "host": "shoal.example:8000"})
        assert signed.status == 200, signed.body
        forged = scrape(dispatcher, "10.1.2.3", {**signed_headers(key, "wrong"), "host": "shoal.example:8000"})
        assert forged.status == 403 and forged.body.startswith(b"SignatureDoesNotMatch")
    finally:
        dispatcher.close()


def test_with_auth_off_anyone_may_scrape(engine):
    dispatcher = Dispatcher(engine, metrics=True)
    try:
        assert scrape(dispatcher, "10.1.2.3").status == 200
    finally:
        dispatcher.close()


def test_metrics_off_records_nothing_and_keeps_no_consumer(engine):
    on = Dispatcher(engine, metrics=True)
    on.close()
    with engine.read() as txn:
        assert "metrics" in consumers(txn)
    dispatcher = Dispatcher(engine, metrics=False)
    try:
        headers = {"x-amz-target": "DynamoDB_20120810.ListTables", "content-type": "application/x-amz-json-1.0"}
        assert dispatcher(Request("POST", "/", headers, b"{}", ("127.0.0.1", 1), False)).status == 200
        assert dispatcher.metrics is None
        with engine.read() as txn:
            assert "metrics" not in consumers(txn)
        body = scrape(dispatcher, "127.0.0.1").body  # the stored figures are still served
        assert b"dynamodb_" not in body and b"shoal_storage_entries" in body
        answer = dispatcher(Request("POST", "/", {"x-amz-target": "GraniteServiceVersion20100801.ListMetrics",
                                                  "content-type": "application/x-amz-json-1.0"}, b"{}",
                                    ("127.0.0.1", 1), False))
        assert answer.status == 200 and orjson.loads(answer.body) == {"Metrics": []}
    finally:
        dispatcher.close()
