"""The pure parts of exports and imports: Ion text written and read back,
export lines, CSV rows, page tokens, S3 keys, and whose job is alive."""

from __future__ import annotations

import io
import os
import re
import types

import pytest
from amazon.ion import simpleion
from hypothesis import example, given, settings
from hypothesis import strategies as st

from shoal.api import exports, imports, jobs
from shoal.model.values import validate_item

ITEM = {
    "pk": {"S": "x\"y\n✓"}, "n": {"N": "-0.000001"}, "i": {"N": "100"}, "b": {"B": "AP8="}, "t": {"BOOL": True},
    "z": {"NULL": True}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": ["AA==", "AQ=="]},
    "l": {"L": [{"S": ""}, {"L": []}, {"M": {"null": {"BOOL": False}}}]},
    "m": {"M": {"with space": {"N": "1"}, "$dollar": {"S": "d"}, "1st": {"M": {}}, "true": {"S": "kw"}}},
}


def read_back(line: bytes) -> dict:
    return imports._ion_item(line)


def test_ion_item_line_reads_back_exactly():
    line = exports.item_line(ITEM, "ION")
    assert line.startswith(b"$ion_1_0 {Item:{") and line.endswith(b"}\n") and line.count(b"\n") == 1
    assert validate_item(read_back(line)) == validate_item(ITEM)


def test_json_item_line():
    assert exports.item_line({"a": {"S": "x"}}, "DYNAMODB_JSON") == b'{"Item":{"a":{"S":"x"}}}\n'
    assert imports._json_item(b'{"Item":{"a":{"S":"x"}}}') == {"a": {"S": "x"}}
    for bad in (b"[1]", b'{"Item": 1}', b"{", b'{"Other": {}}'):
        with pytest.raises(imports.ItemError):
            imports._json_item(bad)


@pytest.mark.parametrize("text,ion", [("1", "1."), ("-12", "-12."), ("1.5", "1.5"), ("0", "0."),
                                      ("1E+3", "1.d+3"), ("2.5e-7", "2.5d-7")])
def test_ion_decimals(text, ion):
    assert exports.ion_decimal(text) == ion
    value = simpleion.loads(ion)
    assert value.ion_type.name == "DECIMAL"


numbers = st.decimals(allow_nan=False, allow_infinity=False, places=None).filter(
    lambda d: d.is_finite() and (d == 0 or 1e-120 < abs(d) < 1e120)).map(lambda d: format(d.normalize(), "f"))
names = st.text(min_size=1, max_size=8)
scalars = st.one_of(
    st.text(max_size=12).map(lambda s: {"S": s}),
    numbers.filter(lambda t: len(t.replace("-", "").replace(".", "").lstrip("0")) <= 38).map(lambda t: {"N": t}),
    st.booleans().map(lambda b: {"BOOL": b}),
    st.just({"NULL": True}),
    st.binary(min_size=1, max_size=8).map(lambda b: {"B": __import__("base64").b64encode(b).decode()}),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3).map(lambda members: {"L": members}),
    st.dictionaries(names, inner, max_size=3).map(lambda members: {"M": members})), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, values, min_size=1, max_size=5))
@example({"$0": {"S": "a"}, "it's": {"M": {"$12": {"N": "1"}}}})  # read as symbol ids when written as strings
def test_any_item_survives_ion(item):
    try:
        expected = validate_item(item)
    except Exception:  # noqa: BLE001 - not a storable item (an out-of-range number, say)
        return
    assert validate_item(read_back(exports.item_line(expected, "ION"))) == expected


def test_ion_input_dynamodb_does_not_map_is_an_item_error():
    for line in (b'$ion_1_0 {Item:{a:2020-01-01T}}', b"$ion_1_0 {Item:{a:sym}}", b"$ion_1_0 {Item:{a:(1 2)}}",
                 b'$ion_1_0 {Item:{a:$dynamodb_SS::[1]}}', b"$ion_1_0 {Item:{a:nan}}", b"$ion_1_0 5",
                 b"$ion_1_0 {Item:null.struct}", b"{{{"):
        with pytest.raises(imports.ItemError):
            read_back(line)
    assert read_back(b"$ion_1_0 {Item:{a:5, b:1e0, c:null.string, d:{{aGk=}}}}") == {
        "a": {"N": "5"}, "b": {"N": "1"}, "c": {"NULL": True}, "d": {"B": "aGk="}}


def test_change_lines_by_view():
    keys, old, new = {"k": {"S": "a"}}, {"k": {"S": "a"}, "v": {"N": "1"}}, {"k": {"S": "a"}, "v": {"N": "2"}}
    line = exports.change_line(keys, old, new, 1_700_000_000_123_000, "NEW_AND_OLD_IMAGES", "DYNAMODB_JSON")
    assert line == (b'{"Metadata":{"WriteTimestampMicros":{"N":"1700000000123000"}},"Keys":{"k":{"S":"a"}},'
                    b'"OldImage":{"k":{"S":"a"},"v":{"N":"1"}},"NewImage":{"k":{"S":"a"},"v":{"N":"2"}}}\n')
    assert b"OldImage" not in exports.change_line(keys, old, new, 1, "NEW_IMAGE", "DYNAMODB_JSON")
    deleted = exports.change_line(keys, old, None, 1, "NEW_IMAGE", "DYNAMODB_JSON")
    assert deleted == b'{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"k":{"S":"a"}}}\n'
    ion = exports.change_line(keys, old, new, 7, "NEW_AND_OLD_IMAGES", "ION")
    parsed = simpleion.loads(ion.decode())
    assert list(parsed) == ["Metadata", "Keys", "OldImage", "NewImage"]
    assert parsed["Metadata"]["WriteTimestampMicros"] == 7


def test_page_tokens_fit_list_imports_pattern():
    arn = "arn:aws:dynamodb:us-east-1:000000000000:table/abc/import/01700000000000-0123abcd"
    token = exports.page_token(arn)
    assert re.fullmatch(r"([0-9a-f]{16})+", token) and len(token) >= 112
    assert exports.page_after(token, "ListImports") == arn
    with pytest.raises(Exception, match="Invalid NextToken provided for ListExports"):
        exports.page_after("not hex", "ListExports")


def test_object_paths_stay_in_their_bucket(tmp_path):
    assert exports.object_path(str(tmp_path), "a/b/c.json") == os.path.join(str(tmp_path), "a", "b", "c.json")
    for key in ("../x", "a/../../x", "/etc/passwd", "a/./b"):
        with pytest.raises(exports.S3Error) as info:
            exports.object_path(str(tmp_path), key)
        assert info.value.code == "S3AccessDenied"
    ctx = types.SimpleNamespace(s3_dir=str(tmp_path))
    with pytest.raises(exports.S3Error) as info:
        exports.bucket_path(ctx, "missing")
    assert info.value.code == "S3NoSuchBucket"
    with pytest.raises(exports.S3Error):
        exports.bucket_path(types.SimpleNamespace(s3_dir=None), "x")


def test_export_prefixes():
    assert exports._export_base(None) == "AWSDynamoDB"
    assert exports._export_base("p") == "p/AWSDynamoDB"
    assert exports._export_base("p/") == "p/AWSDynamoDB"


def test_csv_rows_type_only_keys():
    table = types.SimpleNamespace(key_schema=[("pk", "HASH"), ("sk", "RANGE")])
    record = {"options": None, "parameters": {"AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"},
        {"AttributeName": "g", "AttributeType": "N"}]}}
    text = io.StringIO('pk,sk,g,other\na,1,5,"x,y"\nb,2,,\n\nc,3\n')
    rows = list(imports._csv_items(table, record, text))
    assert rows[0] == {"pk": {"S": "a"}, "sk": {"N": "1"}, "g": {"N": "5"}, "other": {"S": "x,y"}}
    assert rows[1] == {"pk": {"S": "b"}, "sk": {"N": "2"}, "other": {"S": ""}}
    assert isinstance(rows[2], imports.ItemError) and len(rows) == 3
    with_header = dict(record, options={"Csv": {"Delimiter": "\t", "HeaderList": ["pk", "sk"]}})
    assert list(imports._csv_items(table, with_header, io.StringIO("a\t1\n"))) == [{"pk": {"S": "a"},
                                                                                    "sk": {"N": "1"}}]


def test_whose_job_is_alive():
    me = jobs.runner()
    record = {"arn": "arn:x/export/1", "runner": dict(me), "beat": 0}
    assert not jobs.runner_alive(record)  # this process, but no such job runs here
    assert not jobs.runner_alive(dict(record, runner={"pid": me["pid"], "token": "an earlier process"}))
    assert not jobs.runner_alive(dict(record, runner={"pid": 2 ** 22 + 12345, "token": "gone"}))
    parent = {"pid": os.getppid(), "token": "another process"}
    import time

    assert jobs.runner_alive(dict(record, runner=parent, beat=time.time()))
    assert not jobs.runner_alive(dict(record, runner=parent, beat=time.time() - jobs.STALE_S - 1))
    # A process of another node (another machine or pid namespace, over a shared
    # PostgreSQL store): its pid means nothing here, even one equal to ours or to
    # no process; its heartbeat alone tells.
    for pid in (me["pid"], 2 ** 22 + 12345):
        elsewhere = {"pid": pid, "token": "elsewhere", "node": "another-boot/pid:[1]"}
        assert jobs.runner_alive(dict(record, runner=elsewhere, beat=time.time()))
        assert not jobs.runner_alive(dict(record, runner=elsewhere, beat=time.time() - jobs.STALE_S - 1))
    assert me["node"] == jobs.node_id() and me["node"]
    status, code, _ = exports.shown_status(dict(record, status="IN_PROGRESS"))
    assert (status, code) == ("FAILED", "InternalServerError")
