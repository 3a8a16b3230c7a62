"""PartiQL on MRSC tables, across three real ``shoal serve`` processes.

A SELECT with ConsistentRead must give what a strongly consistent Query,
Scan or GetItem gives: every write acknowledged in any region.  INSERT,
UPDATE and DELETE are judged on the latest value, whichever region wrote
it.  As in ``test_mrsc_reads``, us-east-1 is restarted cut off from
us-east-2 (``--peer-pause``), which then writes with us-west-2 alone, so
us-east-1's own table lacks those writes and only a read of two regions'
registers has them.
"""

from __future__ import annotations

import pytest

from shoal.api.partiql import consistent_reads
from tests.server.test_mrsc import REGIONS, Regions, _error
from tests.server.test_mrsc_reads import WANTED_ALL, WANTED_P, _hold_back_learns, _item, _sorted, _strong_table


@pytest.fixture(scope="module")
def regions(tmp_path_factory):
    trio = Regions(str(tmp_path_factory.mktemp("mrsc_partiql")))
    for i in range(3):
        trio.start(i)
    yield trio
    trio.stop()


def _statement_pages(client, statement: str, **extra) -> tuple[list[dict], list[int]]:
    """Every item of a paged ExecuteStatement, and each page's length."""
    items, lengths = [], []
    while True:
        page = client.execute_statement(Statement=statement, **extra)
        items += page["Items"]
        lengths.append(len(page["Items"]))
        if "NextToken" not in page:
            return items, lengths
        extra["NextToken"] = page["NextToken"]


def test_consistent_selects_see_every_write_acknowledged_in_any_region(regions):
    name = "partiql_held_back"
    _strong_table(regions, name)
    _hold_back_learns(regions, name)
    table = f'"{name}"'
    try:
        home = regions.once(0)
        # Eventually consistent: us-east-1's own table, which has not learned us-east-2's writes
        assert home.execute_statement(Statement=f"SELECT * FROM {table} WHERE pk = 'p'")["Items"] == [
            _item("p", sk, f"old{sk}") for sk in (1, 2, 3, 4)]
        assert home.batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM {table} WHERE pk = 'p' AND sk = 2"}])["Responses"] == [
            {"TableName": name, "Item": _item("p", 2, "old2")}]
        # ConsistentRead: the latest of any region, as a consistent Query (partition key equality);
        # what it reads, this region's table then learns
        query = f"SELECT * FROM {table} WHERE pk = 'p'"
        assert home.execute_statement(Statement=query, ConsistentRead=True)["Items"] == WANTED_P
        assert _statement_pages(home, query, ConsistentRead=True, Limit=2) == (WANTED_P, [2, 2, 1])
        assert home.execute_statement(Statement=f"SELECT * FROM {table} WHERE pk = 'p' ORDER BY sk DESC",
                                      ConsistentRead=True)["Items"] == WANTED_P[::-1]
        between = home.execute_statement(Statement=f"SELECT sk, v FROM {table} WHERE pk = 'p' AND sk BETWEEN 2 AND 5",
                                         ConsistentRead=True, ReturnConsumedCapacity="TOTAL")
        assert between["Items"] == [{"sk": i["sk"], "v": i["v"]} for i in WANTED_P[1:4]]
        assert between["ConsumedCapacity"] == {"TableName": name, "CapacityUnits": 1.0}
        filtered = home.execute_statement(Statement=f"SELECT * FROM {table} WHERE pk = 'p' AND begins_with(v, 'new')",
                                          ConsistentRead=True)
        assert [i["sk"]["N"] for i in filtered["Items"]] == ["2", "5", "6"]
        # and as a consistent Scan (no partition key equality), whole and in pages
        scanned = home.execute_statement(Statement=f"SELECT * FROM {table}", ConsistentRead=True)["Items"]
        assert _sorted(scanned) == WANTED_ALL and len(scanned) == len(WANTED_ALL)
        assert _statement_pages(home, f"SELECT * FROM {table}", ConsistentRead=True, Limit=3) == (scanned, [3, 3, 1])
        assert home.execute_statement(Statement=f"SELECT v FROM {table} WHERE sk = 2", ConsistentRead=True)[
            "Items"] == [{"v": {"S": "q2"}}, {"v": {"S": "new2"}}]
        # BatchExecuteStatement: each statement's ConsistentRead is its own
        batch = home.batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM {table} WHERE pk = 'p' AND sk = 2", "ConsistentRead": True},
            {"Statement": f"SELECT * FROM {table} WHERE pk = 'p' AND sk = 3", "ConsistentRead": True},
            {"Statement": f"SELECT v FROM {table} WHERE pk = 'p' AND sk = 6", "ConsistentRead": True},
        ])["Responses"]
        assert batch == [{"TableName": name, "Item": _item("p", 2, "new2")},
                         {"TableName": name},  # deleted in us-east-2
                         {"TableName": name, "Item": {"v": {"S": "new6"}}}]
        # No transactions on an MRSC table, reads or writes; the server serves on
        for statement in (query + " AND sk = 1", f"UPDATE {table} SET v = 'x' WHERE pk = 'p' AND sk = 1"):
            assert _error(lambda: home.execute_transaction(TransactStatements=[{"Statement": statement}])) == (
                "ValidationException", "ExecuteTransaction is not supported on multi-Region strong consistency "
                f"global tables: {name}", 400)
        assert _error(lambda: home.execute_statement(Statement=f"SELECT * FROM {table} WHERE", ConsistentRead=True))[
            0] == "ValidationException"
        assert home.execute_statement(Statement=query + " AND sk = 1", ConsistentRead=True)["Items"] == [
            _item("p", 1, "old1")]
    finally:
        regions.procs[0].stop()
        regions.start(0)


def test_partiql_writes_are_judged_on_the_latest_value_of_any_region(regions):
    """Before any consistent read teaches us-east-1's table what us-east-2
    wrote, each write from us-east-1 gets the answer the latest value calls
    for, where a write judged on this region's table would get the other."""
    name = "partiql_writes"
    _strong_table(regions, name)
    _hold_back_learns(regions, name)
    table = f'"{name}"'
    query = f"SELECT * FROM {table} WHERE pk = 'p'"
    try:
        home = regions.once(0)
        assert home.execute_statement(Statement=query)["Items"] == [_item("p", sk, f"old{sk}") for sk in (1, 2, 3, 4)]
        # p/5 is only in the other regions' tables: a duplicate
        assert _error(lambda: home.execute_statement(
            Statement=f"INSERT INTO {table} VALUE {{'pk': 'p', 'sk': 5, 'v': 'again'}}")) == (
            "DuplicateItemException", "Duplicate primary key exists in table", 400)
        # p/3 is still in this region's table, but was deleted: INSERT makes it anew
        home.execute_statement(Statement=f"INSERT INTO {table} VALUE {{'pk': 'p', 'sk': 3, 'v': 'back3'}}")
        # p/6 is not in this region's table: UPDATE's attribute_exists and condition hold on the latest value
        updated = home.execute_statement(
            Statement=f"UPDATE {table} SET v = 'upd6' WHERE pk = 'p' AND sk = 6 AND v = 'new6' RETURNING ALL NEW *")
        assert updated["Items"] == [_item("p", 6, "upd6")]
        # p/2 is old2 here, but its latest value is new2: the condition fails, and the item is kept
        assert _error(lambda: home.execute_statement(
            Statement=f"DELETE FROM {table} WHERE pk = 'p' AND sk = 2 AND v = 'old2'"))[:2] == (
            "ConditionalCheckFailedException", "The conditional request failed")
        deleted = home.execute_statement(
            Statement=f"DELETE FROM {table} WHERE pk = 'p' AND sk = 2 AND v = 'new2' RETURNING ALL OLD *")
        assert deleted["Items"] == [_item("p", 2, "new2")]
        wanted = [_item("p", 1, "old1"), _item("p", 3, "back3"), _item("p", 4, "old4"), _item("p", 5, "new5"),
                  _item("p", 6, "upd6")]
        for i in (0, 2):  # us-east-2 is cut off from us-east-1; us-west-2 reads the same
            assert regions.once(i).execute_statement(Statement=query, ConsistentRead=True)["Items"] == wanted
    finally:
        regions.procs[0].stop()
        regions.start(0)
    assert regions.once(1).execute_statement(Statement=query, ConsistentRead=True)["Items"] == wanted


def test_with_two_other_regions_down_a_consistent_select_fails_and_an_eventual_one_is_served(regions):
    name = "partiql_down"
    _strong_table(regions, name)
    home = regions.once(0)
    home.execute_statement(Statement=f"INSERT INTO \"{name}\" VALUE {{'pk': 'p', 'sk': 1, 'v': 'one'}}")
    regions.procs[1].kill()
    regions.procs[2].kill()
    try:
        unavailable = ("InternalServerError", "Internal server error: the request was not applied: 2 of 3 regions "
                       "did not answer; a majority (2) is needed", 500)
        assert _error(lambda: home.execute_statement(Statement=f"SELECT * FROM \"{name}\" WHERE pk = 'p'",
                                                     ConsistentRead=True)) == unavailable
        assert _error(lambda: home.execute_statement(Statement=f"SELECT * FROM \"{name}\"",
                                                     ConsistentRead=True)) == unavailable
        failed = home.batch_execute_statement(Statements=[
            {"Statement": f"SELECT * FROM \"{name}\" WHERE pk = 'p' AND sk = 1", "ConsistentRead": True}])
        assert failed["Responses"][0]["Error"]["Code"] == "InternalServerError"
        assert home.execute_statement(Statement=f"SELECT * FROM \"{name}\" WHERE pk = 'p'")["Items"] == [
            _item("p", 1, "one")]
    finally:
        regions.start(1)
        regions.start(2)
    assert home.execute_statement(Statement=f"SELECT * FROM \"{name}\" WHERE pk = 'p'", ConsistentRead=True)[
        "Items"] == [_item("p", 1, "one")]


def test_the_tables_a_request_reads_with_consistent_read():
    """What the replication screen sends off the event loop (a SELECT with
    ConsistentRead waits for a peer on an MRSC table)."""
    assert consistent_reads("ExecuteStatement", {"Statement": 'SELECT * FROM "t1" WHERE pk = 1',
                                                 "ConsistentRead": True}) == {"t1"}
    assert consistent_reads("ExecuteStatement", {"Statement": 'SELECT * FROM "t1"'}) == set()
    assert consistent_reads("ExecuteStatement", {"Statement": 'SELECT * FROM "t1"', "ConsistentRead": False}) == set()
    assert consistent_reads("ExecuteStatement", {"Statement": "DELETE FROM t1 WHERE pk = 1",
                                                 "ConsistentRead": True}) == set()
    assert consistent_reads("ExecuteStatement", {"Statement": "SELECT FROM", "ConsistentRead": True}) == set()
    assert consistent_reads("BatchExecuteStatement", {"Statements": [
        {"Statement": "SELECT * FROM t1 WHERE pk = 1", "ConsistentRead": True},
        {"Statement": "SELECT * FROM t2 WHERE pk = 1"},
        {"Statement": 'SELECT * FROM "t3"."i" WHERE pk = 1', "ConsistentRead": True},
        {"Statement": 7, "ConsistentRead": True}, "not a statement"]}) == {"t1", "t3"}
    assert consistent_reads("ExecuteTransaction", {"TransactStatements": [
        {"Statement": "SELECT * FROM t1 WHERE pk = 1"}]}) == set()
