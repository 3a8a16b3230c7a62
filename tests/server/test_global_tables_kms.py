"""A table whose KMS key its region cannot use (INACCESSIBLE_ENCRYPTION_CREDENTIALS):
item requests refused as DynamoDB refuses them, replication into it held and
delivered, nothing lost, once the key is usable again.  Also: a vector index
still being built when a replica is added reaches that replica.  Two real
``shoal serve`` regions (the third of ``test_global_tables.Regions`` is not
started).
"""

from __future__ import annotations

import re
import time

import pytest

from shoal.storage.keyring import set_kms_key_state
from tests.server.item_requests import item_requests
from tests.server.test_global_tables import (
    CONVERGE_S,
    REGIONS,
    Regions,
    _converged,
    _create,
    _data_dir,
    _error,
    _nearest,
    _scan,
    _wait_active,
    _wait_replica_status,
    _wait_table_status,
)

INACCESSIBLE = "INACCESSIBLE_ENCRYPTION_CREDENTIALS"
ACCOUNT = "000000000000"
#: DynamoDB's words by key state (recorded against DynamoDB: control.inaccessible_error).
KMS_WORDS = {
    "Disabled": ("KMS key disabled error", "DisabledException", "{arn} is disabled."),
    "PendingDeletion": ("KMS validation error", "KMSInvalidStateException", "{arn} is pending deletion."),
    "Deleted": ("KMS validation error", "NotFoundException", "Key '{arn}' does not exist"),
}


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    regions = Regions(str(tmp_path_factory.mktemp("kms")), skew=False)
    for i in (0, 1):
        regions.start(i)
    yield regions
    regions.stop()


def _kms_message(state: str, arn: str) -> re.Pattern:
    head, kind, text = KMS_WORDS[state]
    return re.compile(re.escape(f"{head}: com.amazonaws.services.kms.model.{kind}: {text.format(arn=arn)} "
                                f"(Service: AWSKMS; Status Code: 400; Error Code: {kind}; Request ID: ")
                      + "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}" + re.escape("; Proxy: null)"))


def _refused(call) -> tuple[str, str, int]:
    import botocore.exceptions

    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    error = caught.value.response
    return error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]


def _item_count(client, name: str) -> int:
    return client.describe_table(TableName=name)["Table"]["ItemCount"]


def test_item_requests_on_a_table_whose_key_cannot_be_used_are_refused_until_it_can(pair):
    """A regional table encrypted with a customer managed key: while the key
    is disabled, pending deletion or deleted, every item request is refused
    with DynamoDB's ValidationException naming the key and KMS's exception;
    DescribeTable still answers; a table on another key, and the server, go
    on serving; once the key is usable the table is ACTIVE and as it was."""
    client = pair.client(0)
    name, other = "kms_regional", "kms_regional_other"
    for table, key in ((name, "regional-key"), (other, "other-key")):
        _create(client, table)
        client.update_table(TableName=table, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                              "KMSMasterKeyId": key})
        client.put_item(TableName=table, Item={"pk": {"S": "a"}, "kind": {"S": "k"}})
    arn = f"arn:aws:kms:{REGIONS[0]}:{ACCOUNT}:key/regional-key"
    for state in ("Disabled", "PendingDeletion", "Deleted"):
        set_kms_key_state(_data_dir(pair, 0), "regional-key", state)
        try:
            table = _wait_table_status(client, name, INACCESSIBLE)
            assert table["SSEDescription"]["KMSMasterKeyArn"] == arn
            expected = _kms_message(state, arn)
            for label, call in item_requests(client, name, gsi="by_kind").items():
                kind, message, status = _refused(call)
                assert (kind, status) == ("ValidationException", 400), label
                assert expected.fullmatch(message), (label, message)
            assert client.get_item(TableName=other, Key={"pk": {"S": "a"}})["Item"] == {
                "pk": {"S": "a"}, "kind": {"S": "k"}}
            assert client.describe_table(TableName=other)["Table"]["TableStatus"] == "ACTIVE"
        finally:
            set_kms_key_state(_data_dir(pair, 0), "regional-key", "Enabled")
        assert "InaccessibleEncryptionDateTime" not in _wait_table_status(client, name, "ACTIVE")["SSEDescription"]
        assert _scan(client, name) == [{"pk": {"S": "a"}, "kind": {"S": "k"}}]  # nothing refused was written
    client.put_item(TableName=name, Item={"pk": {"S": "b"}, "kind": {"S": "k"}})
    assert [i["pk"]["S"] for i in _scan(client, name)] == ["a", "b"]


def test_replication_into_an_inaccessible_replica_is_held_and_delivered_once_its_key_is_usable(pair):
    """While a replica's key is unusable in its region, the writes of the
    other region are kept there (the replica takes none: its ItemCount does
    not move) and that region shows the replica
    INACCESSIBLE_ENCRYPTION_CREDENTIALS, not REGION_DISABLED, while its own
    table stays ACTIVE and serving; once the key is usable every write made
    meanwhile (puts, an update, a delete) reaches the replica, which then
    takes writes of its own that reach the other region."""
    first, second = pair.client(0), pair.client(1)
    name = "kms_held"
    _create(first, name)
    first.update_table(TableName=name, SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                         "KMSMasterKeyId": "first-key"})
    for n in range(3):
        first.put_item(TableName=name, Item={"pk": {"S": f"before{n}"}, "kind": {"S": "k"}})
    first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1],
                                                                   "KMSMasterKeyId": "second-key"}}])
    _wait_active(first, name)
    assert len(_converged(pair, name, indexes=(0, 1))) == 3
    set_kms_key_state(_data_dir(pair, 1), "second-key", "Disabled")
    try:
        _wait_table_status(second, name, INACCESSIBLE)
        assert _wait_replica_status(first, name, REGIONS[1], INACCESSIBLE) == {
            "RegionName": REGIONS[1], "ReplicaStatus": INACCESSIBLE, "KMSMasterKeyId": "second-key"}
        for n in range(50):
            first.put_item(TableName=name, Item={"pk": {"S": f"during{n:02}"}, "kind": {"S": "k"}, "n": {"N": str(n)}})
        first.update_item(TableName=name, Key={"pk": {"S": "before0"}}, UpdateExpression="SET n = :n",
                          ExpressionAttributeValues={":n": {"N": "100"}})
        first.delete_item(TableName=name, Key={"pk": {"S": "before1"}})
        time.sleep(3.0)  # several of the sender's attempts: each refused, none taken
        assert _item_count(second, name) == 3
        table = first.describe_table(TableName=name)["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["Replicas"] == [{"RegionName": REGIONS[1], "ReplicaStatus": INACCESSIBLE,
                                      "KMSMasterKeyId": "second-key"}]
        assert _error(lambda: second.put_item(TableName=name, Item={"pk": {"S": "refused"}}))[0] == (
            "ValidationException")
    finally:
        set_kms_key_state(_data_dir(pair, 1), "second-key", "Enabled")
    _wait_table_status(second, name, "ACTIVE")
    assert _wait_replica_status(first, name, REGIONS[1], "ACTIVE")["ReplicaStatus"] == "ACTIVE"
    items = _converged(pair, name, indexes=(0, 1))
    assert [i["pk"]["S"] for i in items] == ["before0", "before2", *(f"during{n:02}" for n in range(50))]
    assert items[0] == {"pk": {"S": "before0"}, "kind": {"S": "k"}, "n": {"N": "100"}}
    assert _item_count(second, name) == 52
    second.put_item(TableName=name, Item={"pk": {"S": "from-second"}, "kind": {"S": "k"}})
    deadline = time.monotonic() + CONVERGE_S
    while first.get_item(TableName=name, Key={"pk": {"S": "from-second"}}).get("Item") is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_a_vector_index_still_being_built_when_a_replica_is_added_is_built_in_the_replica(pair):
    """The replica is made with the index (its CreateTable names it) and
    builds it from the items it is sent, while the source region is still
    building its own."""
    first, second = pair.client(0), pair.client(1)
    name = "gt_vector_building"
    first.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    items = [{"pk": {"S": f"far{n:04}"}, "embedding": {"L": [{"N": str(50 + n % 97)}, {"N": str(60 + n % 89)}]}}
             for n in range(3000)] + [{"pk": {"S": "near"}, "embedding": {"L": [{"N": "1"}, {"N": "1"}]}}]
    for start in range(0, len(items), 25):
        first.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]})
    first.update_table(TableName=name, VectorIndexUpdates=[{"Create": {
        "IndexName": "by_embedding", "VectorAttribute": {"AttributeName": "embedding"}, "Dimensions": 2,
        "DistanceFunction": "EUCLIDEAN", "Projection": {"ProjectionType": "ALL"}}}])
    answer = first.update_table(TableName=name, ReplicaUpdates=[{"Create": {"RegionName": REGIONS[1]}}])
    assert [v["IndexStatus"] for v in answer["TableDescription"]["VectorIndexes"]] == ["CREATING"]
    _wait_active(first, name)
    deadline = time.monotonic() + CONVERGE_S
    while True:  # ACTIVE there once built, and answering with the source's items
        shown = second.describe_table(TableName=name)["Table"].get("VectorIndexes", [])
        if [(v["IndexName"], v["IndexStatus"]) for v in shown] == [("by_embedding", "ACTIVE")] \
                and not shown[0].get("Backfilling") and _nearest(second, name, (0, 0)) == "near":
            break
        assert time.monotonic() < deadline, shown
        time.sleep(0.2)
    assert second.describe_table(TableName=name)["Table"]["ItemCount"] == 3001
    second.put_item(TableName=name, Item={"pk": {"S": "nearer"}, "embedding": {"L": [{"N": "0"}, {"N": "0"}]}})
    assert _nearest(second, name, (0, 0)) == "nearer"
