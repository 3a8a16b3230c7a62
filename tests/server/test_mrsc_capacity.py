"""Capacity on a multi-Region strongly consistent (MRSC) table, across
test_mrsc's three real ``shoal serve`` processes, here recording DynamoDB's
metrics: an MRSC table's writes are consensus rounds served off the event
loop (``shoal.replication.strong``), and are admitted and charged there
(``shoal.capacity.off_loop``) as any table's are on the loop, a
BatchWriteItem's item by item.  A write whose
condition fails consumes write capacity in DynamoDB (the existing item's
size, or one unit): it is throttled against, and counted in
ConsumedWriteCapacityUnits; its ConditionalCheckFailedException carries no
ConsumedCapacity (the error has no such member in DynamoDB's model).
A BatchWriteItem none of whose items its tables' throughput lets it process
is refused with the throttle, as on any table (issue 20: an MRSC table's
batch answered 200, every item unprocessed)."""

from __future__ import annotations

import botocore.exceptions
import pytest

from tests.server.test_dynamodb_metrics import clients, eventually, totals
from tests.server.test_mrsc import REGIONS, Regions, _make_strong, _wait_active, running

ITEM_KB = 100  # an item of about 100 KB: 98 write units (1 KB each, rounded up)
THROTTLED = "ProvisionedThroughputExceededException"


class MeteredRegions(Regions):
    """test_mrsc's regions, each restarted once without ``--no-metrics``."""

    def start(self, i: int, *extra: str) -> None:
        super().start(i, *extra)
        proc = self.procs[i]
        proc.stop()
        proc.extra_args = tuple(arg for arg in proc.extra_args if arg != "--no-metrics")
        proc.start()


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    yield from running(MeteredRegions(str(tmp_path_factory.mktemp("mrsc-capacity"))))


def _strong(regions, name: str, **billing) -> None:
    regions.client(0).create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], **billing)
    _make_strong(regions.client(0), name)
    for i in range(3):
        _wait_active(regions.client(i), name)


def _answer(call) -> dict:
    """The error a call gets: its code, and the response's members."""
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call()
    return caught.value.response


def _failing_writes(client, name: str) -> list:
    """A PutItem, an UpdateItem and a DeleteItem whose conditions fail on item ``big``, then a PutItem again."""
    key = {"pk": {"S": "big"}}
    absent = dict(ConditionExpression="attribute_not_exists(pk)", ReturnConsumedCapacity="TOTAL")
    return [lambda: client.put_item(TableName=name, Item={**key, "v": {"S": "small"}}, **absent),
            lambda: client.update_item(TableName=name, Key=key, UpdateExpression="SET v = :v",
                                       ExpressionAttributeValues={":v": {"S": "small"}}, **absent),
            lambda: client.delete_item(TableName=name, Key=key, **absent),
            lambda: client.put_item(TableName=name, Item={**key, "v": {"S": "small"}}, **absent)]


def test_a_failed_conditional_write_on_an_mrsc_table_consumes_its_write_capacity(regions):
    # One write unit a second, so 300 units of burst capacity: the put takes 98, each failed
    # conditional write on that item 98 more, so the fourth write after the put finds none left.
    name = "mrsc_capacity_failed"
    _strong(regions, name, BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    client = regions.once(0)
    put = client.put_item(TableName=name, Item={"pk": {"S": "big"}, "v": {"S": "x" * (ITEM_KB * 1000)}},
                          ReturnConsumedCapacity="TOTAL")
    assert put["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 98.0}
    answers = [_answer(write) for write in _failing_writes(client, name)]
    assert [a["Error"]["Code"] for a in answers] == ["ConditionalCheckFailedException"] * 3 + [THROTTLED]
    assert all("ConsumedCapacity" not in answer for answer in answers)
    assert answers[3]["ThrottlingReasons"] == [{
        "reason": "TableWriteProvisionedThroughputExceeded",
        "resource": f"arn:aws:dynamodb:{REGIONS[0]}:000000000000:table/{name}"}]
    # A BatchWriteItem's MRSC writes are admitted item by item: none now, so the batch is refused.
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"batch{n}"}}}} for n in range(2)]
    assert _answer(lambda: client.batch_write_item(RequestItems={name: puts}))["Error"]["Code"] == THROTTLED
    # What was consumed: the put and the three failed writes; a throttled request consumes nothing.
    _, _, cw = clients(regions.procs[0], REGIONS[0])
    point = eventually(lambda: totals(cw, "ConsumedWriteCapacityUnits", {"TableName": name}),
                       lambda p: p is not None and p["Sum"] >= 4 * 98.0)
    assert (point["Sum"], point["SampleCount"]) == (4 * 98.0, 4.0)


def test_a_failed_conditional_write_on_an_on_demand_mrsc_table_is_in_its_consumed_write_units(regions):
    name = "mrsc_capacity_metric"
    _strong(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(1)  # a region other than the table's first
    client.put_item(TableName=name, Item={"pk": {"S": "big"}, "v": {"S": "x" * (ITEM_KB * 1000)}})
    writes = _failing_writes(client, name)
    assert _answer(writes[1])["Error"]["Code"] == "ConditionalCheckFailedException"  # 98 units: the item's size
    missing = _answer(lambda: client.delete_item(TableName=name, Key={"pk": {"S": "none"}},
                                                 ConditionExpression="attribute_exists(pk)"))
    assert missing["Error"]["Code"] == "ConditionalCheckFailedException"  # 1 unit: no item
    _, _, cw = clients(regions.procs[1], REGIONS[1])
    point = eventually(lambda: totals(cw, "ConsumedWriteCapacityUnits", {"TableName": name}),
                       lambda p: p is not None and p["Sum"] >= 98.0 + 98.0 + 1.0)
    assert (point["Sum"], point["SampleCount"]) == (98.0 + 98.0 + 1.0, 3.0)


def test_a_batch_write_none_of_whose_mrsc_items_can_be_processed_is_refused(regions):
    # One write unit a second: a put of about 390 KB (381 units) spends the 300 units of burst
    # capacity and leaves a debt of some 80 seconds, in which no write to the table is admitted.
    name, plain = "mrsc_capacity_batch", "mrsc_capacity_batch_plain"
    _strong(regions, name, BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    client = regions.once(0)
    client.create_table(TableName=plain, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PAY_PER_REQUEST")
    client.get_waiter("table_exists").wait(TableName=plain)
    client.put_item(TableName=name, Item={"pk": {"S": "big"}, "v": {"S": "x" * 390_000}})
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"batch{n}"}}}} for n in range(3)]
    # DynamoDB: "If none of the items can be processed due to insufficient provisioned throughput on
    # all of the tables in the request, then BatchWriteItem returns a ProvisionedThroughputExceededException."
    refused = _answer(lambda: client.batch_write_item(RequestItems={name: puts}, ReturnConsumedCapacity="TOTAL"))
    assert refused["Error"]["Code"] == THROTTLED
    assert refused["ThrottlingReasons"] == [{
        "reason": "TableWriteProvisionedThroughputExceeded",
        "resource": f"arn:aws:dynamodb:{REGIONS[0]}:000000000000:table/{name}"}]
    assert "UnprocessedItems" not in refused
    # With a table that takes its item, the batch is answered: the MRSC part unprocessed, as sent.
    other = [{"PutRequest": {"Item": {"pk": {"S": "plain"}}}}]
    answer = client.batch_write_item(RequestItems={name: puts, plain: other})
    assert answer["UnprocessedItems"] == {name: puts}
    assert client.get_item(TableName=plain, Key={"pk": {"S": "plain"}})["Item"] == {"pk": {"S": "plain"}}
    for n in range(3):  # nothing of the refused parts was written, in any region
        for i in range(3):
            assert "Item" not in regions.client(i).get_item(TableName=name, Key={"pk": {"S": f"batch{n}"}},
                                                            ConsistentRead=True)


# A batch naming an MRSC table runs off the event loop (its MRSC writes, or consistent reads, are
# rounds); the other tables it names are then admitted and charged there too, item by item (issue
# 20: their writes and reads were metered but neither admitted nor charged, so a provisioned table
# took a whole batch beyond its throughput).  (A BatchGetItem's consistent reads of an MRSC table
# are rounds too, but the replication screen does not yet send such a batch off the loop.)

BIG = "x" * 390_000  # an item of about 390 KB: 381 write units, 96 strongly consistent read units


def _plain(client, name: str, reads: int, writes: int) -> None:
    client.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                        BillingMode="PROVISIONED",
                        ProvisionedThroughput={"ReadCapacityUnits": reads, "WriteCapacityUnits": writes})
    client.get_waiter("table_exists").wait(TableName=name)


def test_a_batch_write_naming_an_mrsc_table_admits_and_charges_its_other_tables_item_by_item(regions):
    # The plain table: one write unit a second, 300 units of burst. Its first 390 KB item takes 381
    # units, so the next is refused, and the batch's debt leaves nothing for the next batch.
    name, plain = "mrsc_capacity_mixed", "mrsc_capacity_mixed_plain"
    _strong(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(0)
    _plain(client, plain, 1, 1)
    bigs = [{"PutRequest": {"Item": {"pk": {"S": f"big{n}"}, "v": {"S": BIG}}}} for n in range(3)]
    first = client.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}],
                                                  plain: bigs}, ReturnConsumedCapacity="TOTAL")
    assert first["UnprocessedItems"] == {plain: bigs[1:]}
    assert {c["TableName"]: c["CapacityUnits"] for c in first["ConsumedCapacity"]} == {name: 1.0, plain: 381.0}
    assert "Item" in client.get_item(TableName=plain, Key={"pk": {"S": "big0"}}, ProjectionExpression="pk")
    for n in (1, 2):
        assert "Item" not in client.get_item(TableName=plain, Key={"pk": {"S": f"big{n}"}},
                                             ProjectionExpression="pk")
    # The 381 units were charged: the plain table's part of the next batch comes back unprocessed.
    small = [{"PutRequest": {"Item": {"pk": {"S": f"small{n}"}}}} for n in range(2)]
    second = client.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}],
                                                   plain: small})
    assert second["UnprocessedItems"] == {plain: small}
    assert client.get_item(TableName=name, Key={"pk": {"S": "b"}}, ConsistentRead=True)["Item"] == {"pk": {"S": "b"}}


def test_a_batch_write_whose_mrsc_and_other_tables_are_all_spent_is_refused(regions):
    # Both tables in debt: the batch could process none of its items, so it is refused with the
    # throttle of the first table it names, as on the loop.
    name, plain = "mrsc_capacity_spent", "mrsc_capacity_spent_plain"
    _strong(regions, name, BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1})
    client = regions.once(0)
    _plain(client, plain, 1, 1)
    client.put_item(TableName=name, Item={"pk": {"S": "big"}, "v": {"S": BIG}})
    bigs = [{"PutRequest": {"Item": {"pk": {"S": f"big{n}"}, "v": {"S": BIG}}}} for n in range(2)]
    mrsc = [{"PutRequest": {"Item": {"pk": {"S": "c"}}}}]
    answer = client.batch_write_item(RequestItems={name: mrsc, plain: bigs})
    assert answer["UnprocessedItems"] == {name: mrsc, plain: bigs[1:]}
    refused = _answer(lambda: client.batch_write_item(RequestItems={plain: bigs[1:], name: mrsc}))
    assert refused["Error"]["Code"] == THROTTLED
    assert refused["ThrottlingReasons"] == [{
        "reason": "TableWriteProvisionedThroughputExceeded",
        "resource": f"arn:aws:dynamodb:{REGIONS[0]}:000000000000:table/{plain}"}]


def test_a_batch_write_naming_an_mrsc_table_admits_its_other_tables_writes_by_their_gsis_too(regions):
    # The plain table has write units to spare, its GSI one a second: each 390 KB item written
    # to the GSI takes 381 of its 300 units of burst, so the second is refused for the index.
    name, plain = "mrsc_capacity_gsi", "mrsc_capacity_gsi_plain"
    _strong(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(0)
    client.create_table(
        TableName=plain, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000},
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"},
                                 "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}])
    client.get_waiter("table_exists").wait(TableName=plain)
    bigs = [{"PutRequest": {"Item": {"pk": {"S": f"big{n}"}, "g": {"S": "g"}, "v": {"S": BIG}}}} for n in range(3)]
    answer = client.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": "a"}}}}],
                                                   plain: bigs}, ReturnConsumedCapacity="INDEXES")
    assert answer["UnprocessedItems"] == {plain: bigs[1:]}
    used = {c["TableName"]: c for c in answer["ConsumedCapacity"]}[plain]
    assert used["GlobalSecondaryIndexes"] == {"by_g": {"CapacityUnits": 381.0}}
    # The index's 381 units were charged: an item with the index's key is refused for it in the next batch.
    small = [{"PutRequest": {"Item": {"pk": {"S": "small"}, "g": {"S": "g"}}}}]
    second = client.batch_write_item(RequestItems={name: [{"PutRequest": {"Item": {"pk": {"S": "b"}}}}],
                                                   plain: small})
    assert second["UnprocessedItems"] == {plain: small}


def _codes(answer: dict) -> list:
    """Each statement's outcome in a BatchExecuteStatement's answer: its error code, or "ok"."""
    return [response.get("Error", {}).get("Code", "ok") for response in answer["Responses"]]


def test_a_partiql_batch_writing_an_mrsc_table_admits_and_charges_its_other_tables_statement_by_statement(regions):
    # Off the loop each statement on the plain table (one write unit a second, 300 of burst) is
    # admitted and charged in turn: the first 390 KB insert takes 381 units, the next are refused.
    name, plain = "mrsc_capacity_partiql", "mrsc_capacity_partiql_plain"
    _strong(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(0)
    _plain(client, plain, 1, 1)
    statements = [{"Statement": f"INSERT INTO {name} VALUE {{'pk': 'a'}}"}] + [
        {"Statement": f"INSERT INTO {plain} VALUE {{'pk': ?, 'v': ?}}", "Parameters": [{"S": f"big{n}"}, {"S": BIG}]}
        for n in range(3)]
    answer = client.batch_execute_statement(Statements=statements)
    assert _codes(answer) == ["ok", "ok", "ProvisionedThroughputExceeded", "ProvisionedThroughputExceeded"]
    # answered as on the loop, where requiring the table refuses the statement: naming no table
    assert answer["Responses"][2] == {"Error": {"Code": "ProvisionedThroughputExceeded", "Message": (
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API")}}
    assert [n for n in range(3) if "Item" in client.get_item(TableName=plain, Key={"pk": {"S": f"big{n}"}},
                                                             ProjectionExpression="pk")] == [0]


def test_a_partiql_batch_reading_an_mrsc_table_strongly_admits_and_charges_its_other_reads(regions):
    # A strongly consistent SELECT of the MRSC table (a round) sends the batch off the loop; there
    # the plain table's reads (one unit a second, 300 of burst; 96 units for each 390 KB item read
    # strongly) and the MRSC table's eventually consistent ones (48 units each) are admitted and
    # charged in turn: the plain table serves four, the MRSC table five after its round's 96.
    name, plain = "mrsc_capacity_partiql_reads", "mrsc_capacity_partiql_reads_plain"
    _strong(regions, name, BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000})
    client = regions.once(0)
    _plain(client, plain, 1, 1000)
    for table in (name, plain):
        for n in range(7):
            client.put_item(TableName=table, Item={"pk": {"S": f"big{n}"}, "v": {"S": BIG}})
    statements = [{"Statement": f"SELECT pk FROM {name} WHERE pk = 'big0'", "ConsistentRead": True}]
    statements += [{"Statement": f"SELECT pk FROM {plain} WHERE pk = 'big{n}'", "ConsistentRead": True}
                   for n in range(5)]
    statements += [{"Statement": f"SELECT pk FROM {name} WHERE pk = 'big{n}'"} for n in range(1, 7)]
    answer = client.batch_execute_statement(Statements=statements)
    refused = "ProvisionedThroughputExceeded"
    assert _codes(answer) == ["ok"] + ["ok"] * 4 + [refused] + ["ok"] * 5 + [refused]


def test_a_batch_get_reading_an_mrsc_table_strongly_admits_its_other_tables_item_by_item(regions):
    # The MRSC table's key read strongly is a round; the plain table beside it (one read unit a
    # second, 300 of burst, 96 units for each 390 KB item read strongly) is admitted key by key,
    # on the loop or off it (shoal.api.batch): it serves four keys, the fifth comes back unprocessed.
    name, plain = "mrsc_capacity_batch_get", "mrsc_capacity_batch_get_plain"
    _strong(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(0)
    _plain(client, plain, 1, 1000)
    for n in range(5):
        client.put_item(TableName=plain, Item={"pk": {"S": f"big{n}"}, "v": {"S": BIG}})
    keys = [{"pk": {"S": f"big{n}"}} for n in range(5)]
    answer = client.batch_get_item(RequestItems={name: {"Keys": [{"pk": {"S": "a"}}], "ConsistentRead": True},
                                                 plain: {"Keys": keys, "ConsistentRead": True,
                                                         "ProjectionExpression": "pk"}})
    assert answer["UnprocessedKeys"] == {plain: {"Keys": keys[4:], "ConsistentRead": True,
                                                 "ProjectionExpression": "pk"}}
    assert sorted(item["pk"]["S"] for item in answer["Responses"][plain]) == [f"big{n}" for n in range(4)]


# An MRSC table's writes consume write units in its GSIs, as any table's do (issue 20: the rounds
# metered and charged the table's units only, and ConsumedCapacity's INDEXES detail left the GSIs out).

def _strong_with_gsi(regions, name: str, **billing) -> None:
    gsi = {"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
           "Projection": {"ProjectionType": "ALL"}}
    if billing.get("BillingMode") == "PROVISIONED":
        gsi["ProvisionedThroughput"] = {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
    regions.client(0).create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[gsi], **billing)
    _make_strong(regions.client(0), name)
    for i in range(3):
        _wait_active(regions.client(i), name)


def _indexes(name: str, table: float, gsi: float) -> dict:
    return {"TableName": name, "CapacityUnits": table + gsi, "Table": {"CapacityUnits": table},
            "GlobalSecondaryIndexes": {"by_g": {"CapacityUnits": gsi}}}


def test_mrsc_writes_report_their_gsi_write_units(regions):
    name = "mrsc_capacity_gsi_units"
    _strong_with_gsi(regions, name, BillingMode="PAY_PER_REQUEST")
    client = regions.once(1)
    indexes = {"ReturnConsumedCapacity": "INDEXES"}
    put = client.put_item(TableName=name, Item={"pk": {"S": "a"}, "g": {"S": "g1"}, "v": {"S": "x" * 1500}},
                          **indexes)
    assert put["ConsumedCapacity"] == _indexes(name, 2.0, 2.0)
    # The index key changes: its old entry removed and a new one written, one unit each
    update = client.update_item(TableName=name, Key={"pk": {"S": "a"}}, UpdateExpression="SET g = :g REMOVE v",
                                ExpressionAttributeValues={":g": {"S": "g2"}}, **indexes)
    assert update["ConsumedCapacity"] == _indexes(name, 2.0, 3.0)
    total = client.put_item(TableName=name, Item={"pk": {"S": "b"}, "g": {"S": "g"}}, ReturnConsumedCapacity="TOTAL")
    assert total["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 2.0}
    # An item the index does not hold costs the index nothing
    plain = client.put_item(TableName=name, Item={"pk": {"S": "c"}}, **indexes)
    assert plain["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}}
    delete = client.delete_item(TableName=name, Key={"pk": {"S": "a"}}, **indexes)
    assert delete["ConsumedCapacity"] == _indexes(name, 1.0, 1.0)
    batch = client.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": "d"}, "g": {"S": "g"}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "b"}}}}]}, **indexes)
    assert batch["ConsumedCapacity"] == [_indexes(name, 2.0, 2.0)]
    statement = client.execute_statement(Statement=f"INSERT INTO {name} VALUE {{'pk': 'e', 'g': 'g'}}", **indexes)
    assert statement["ConsumedCapacity"] == _indexes(name, 1.0, 1.0)
    # and they are in the index's ConsumedWriteCapacityUnits
    _, _, cw = clients(regions.procs[1], REGIONS[1])
    point = eventually(lambda: totals(cw, "ConsumedWriteCapacityUnits",
                                      {"TableName": name, "GlobalSecondaryIndexName": "by_g"}),
                       lambda p: p is not None and p["Sum"] >= 10.0)
    assert point["Sum"] == 10.0


def test_mrsc_writes_are_charged_their_gsi_write_units(regions):
    # The GSI has one write unit a second, 300 of burst: a 390 KB item written to it takes 381, so
    # the next write is refused for the index, a single-item write as a batch's.
    name = "mrsc_capacity_gsi_charged"
    _strong_with_gsi(regions, name, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000})
    client = regions.once(0)
    client.put_item(TableName=name, Item={"pk": {"S": "big"}, "g": {"S": "g"}, "v": {"S": BIG}})
    refused = _answer(lambda: client.put_item(TableName=name, Item={"pk": {"S": "small"}, "g": {"S": "g"}}))
    assert refused["Error"]["Code"] == THROTTLED
    assert [reason["reason"] for reason in refused["ThrottlingReasons"]] == ["IndexWriteProvisionedThroughputExceeded"]
    batch = _answer(lambda: client.batch_write_item(RequestItems={name: [
        {"PutRequest": {"Item": {"pk": {"S": "small"}, "g": {"S": "g"}}}}]}))
    assert batch["Error"]["Code"] == THROTTLED


def test_a_batch_of_mrsc_writes_is_charged_their_gsi_write_units(regions):
    # Each batch's round is charged as it ends, its GSI units too: a 390 KB item's 381 spend the GSI's
    # burst, so the same batch's next write to the table is unprocessed.
    name = "mrsc_capacity_gsi_batch"
    _strong_with_gsi(regions, name, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000})
    client = regions.once(0)
    puts = [{"PutRequest": {"Item": {"pk": {"S": f"big{n}"}, "g": {"S": "g"}, "v": {"S": BIG}}}} for n in range(3)]
    answer = client.batch_write_item(RequestItems={name: puts}, ReturnConsumedCapacity="INDEXES")
    assert answer["UnprocessedItems"] == {name: puts[1:]}
    assert answer["ConsumedCapacity"] == [_indexes(name, 381.0, 381.0)]


def test_a_consistent_batch_get_of_an_mrsc_table_is_admitted_and_charged_key_by_key(regions):
    # Each key read strongly is a round, charged as a strongly consistent GetItem (96 units for a 390
    # KB item) against the table's one read unit a second (300 of burst): four keys are read, the
    # fifth comes back unprocessed, and the next batch, finding the table spent, is refused.
    name = "mrsc_capacity_batch_get_strong"
    _strong(regions, name, BillingMode="PROVISIONED",
            ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1000})
    client = regions.once(0)
    for n in range(5):
        client.put_item(TableName=name, Item={"pk": {"S": f"big{n}"}, "v": {"S": BIG}})
    keys = [{"pk": {"S": f"big{n}"}} for n in range(5)]
    part = {"ConsistentRead": True, "ProjectionExpression": "pk"}
    answer = client.batch_get_item(RequestItems={name: {"Keys": keys, **part}}, ReturnConsumedCapacity="TOTAL")
    assert sorted(item["pk"]["S"] for item in answer["Responses"][name]) == [f"big{n}" for n in range(4)]
    assert answer["UnprocessedKeys"] == {name: {"Keys": keys[4:], **part}}
    assert answer["ConsumedCapacity"] == [{"TableName": name, "CapacityUnits": 384.0}]
    refused = _answer(lambda: client.batch_get_item(RequestItems={name: {"Keys": keys[4:], **part}}))
    assert refused["Error"]["Code"] == THROTTLED
