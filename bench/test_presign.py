"""Checks of the pre-signed request pools (bench/presign.py) that need no server or wrk.

    cd bench && python3 -m pytest test_presign.py -q

Signatures are checked against an independent SigV4 computation (hashlib and
hmac, from the AWS documentation's steps), not against botocore itself.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sys

import orjson
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from client import Endpoint  # noqa: E402
from presign import write_pool  # noqa: E402
from workload import DataSet, preload_keys  # noqa: E402

KEY, SECRET = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
ENDPOINT = Endpoint(8123, credentials=(KEY, SECRET))


def _parse(line: bytes) -> tuple[dict, bytes]:
    head, _, body = line.rstrip(b"\n").replace(b"\t", b"\r\n").partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST / HTTP/1.1"
    headers = {}
    for header in lines[1:]:
        name, _, value = header.partition(": ")
        headers[name.lower()] = value
    return headers, body


def _expected_signature(headers: dict, body: bytes) -> str:
    """SigV4 of a POST / to DynamoDB, computed from scratch."""
    auth = headers["authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0].split(";")
    scope = auth.split("Credential=")[1].split(",")[0].split("/", 1)[1]
    date, region, service, _ = scope.split("/")
    canonical = "\n".join(["POST", "/", "", *(f"{h}:{headers[h].strip()}" for h in signed), "",
                           ";".join(signed), hashlib.sha256(body).hexdigest()])
    to_sign = "\n".join(["AWS4-HMAC-SHA256", headers["x-amz-date"], scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + SECRET).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@pytest.fixture(scope="module")
def counts_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("pool") / "counts.txt"
    DataSet.build(3_000).write_counts(path)
    return str(path)


def _pool(tmp_path, counts_path, mode, size=200):
    path = tmp_path / f"{mode}.txt"
    write_pool(str(path), ENDPOINT, mode, counts_path, size, seed=7)
    with open(path, "rb") as handle:
        return handle.readlines()


@pytest.mark.parametrize("mode", ["get", "query", "put", "point"])
def test_every_request_is_one_line_and_correctly_signed(tmp_path, counts_path, mode):
    lines = _pool(tmp_path, counts_path, mode)
    assert len(lines) == 200
    bodies = set()
    for line in lines:
        assert b"\r" not in line and line.count(b"\n") == 1
        headers, body = _parse(line)
        assert headers["host"] == "127.0.0.1:8123"
        assert int(headers["content-length"]) == len(body)
        assert headers["content-type"] == "application/x-amz-json-1.0"
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={KEY}/")
        assert "host" in headers["authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")
        assert headers["authorization"].endswith("Signature=" + _expected_signature(headers, body))
        assert orjson.loads(body)["TableName"] == "viewer_events" or "RequestItems" in orjson.loads(body)
        bodies.add(body)
    # distinct requests, not one repeated (a latest-20 Query varies only by user: 100 users here)
    assert len(bodies) > (30 if mode == "query" else 150)


def test_get_reads_preloaded_keys(tmp_path, counts_path):
    preloaded = {(uid, str(ts)) for uid, ts in preload_keys(DataSet.build(3_000), 0, 1)}
    for line in _pool(tmp_path, counts_path, "get"):
        headers, body = _parse(line)
        assert headers["x-amz-target"] == "DynamoDB_20120810.GetItem"
        key = orjson.loads(body)["Key"]
        assert (key["user_id"]["S"], key["ts"]["N"]) in preloaded


def test_query_is_latest_twenty_and_put_has_fresh_sort_keys(tmp_path, counts_path):
    query = orjson.loads(_parse(_pool(tmp_path, counts_path, "query", 1)[0])[1])
    assert query["ScanIndexForward"] is False and query["Limit"] == 20
    stamps = [orjson.loads(_parse(line)[1])["Item"]["ts"]["N"] for line in _pool(tmp_path, counts_path, "put")]
    assert len(set(stamps)) == len(stamps)


def test_point_mix_is_nine_gets_to_one_put(tmp_path, counts_path):
    targets = [_parse(line)[0]["x-amz-target"] for line in _pool(tmp_path, counts_path, "point", 2_000)]
    share = targets.count("DynamoDB_20120810.GetItem") / len(targets)
    assert 0.87 < share < 0.93
    assert set(targets) == {"DynamoDB_20120810.GetItem", "DynamoDB_20120810.PutItem"}


def test_modes_that_cannot_be_presigned_are_refused(tmp_path, counts_path):
    with pytest.raises(ValueError, match="cannot be pre-signed"):
        write_pool(str(tmp_path / "x.txt"), ENDPOINT, "app", counts_path, 10)
