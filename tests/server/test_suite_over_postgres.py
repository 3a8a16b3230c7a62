"""The boto3 suite over PostgreSQL, through two nodes in turn (issue 19, point 6).

The server tests that use the session's shared server (the ``shoal``, ``ddb``
and ``ddb_resource`` fixtures of tests/conftest.py) run again in a pytest of
their own with ``SHOAL_TEST_STORAGE`` naming a fresh database: the shared
server is then two ``shoal serve --storage`` nodes over it, and every request
of those clients goes to the other node than the one before (a write on one,
the read that checks it on the other).  The modules are the core's: items,
batches, queries and scans, transactions, indexes, tables, PartiQL, and the
conformance modules of expressions, queries and the control plane."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from botocore.exceptions import ClientError

from tests.conftest import alternate, make_client, unique_name
from tests.postgres_cluster import postgres_cluster  # noqa: F401 (a session fixture: a PostgreSQL server)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = ["test_items.py", "test_batch.py", "test_query_scan.py", "test_transactions.py", "test_indexes.py",
           "test_tables.py", "test_partiql.py", "test_expression_conformance.py", "test_query_conformance.py",
           "test_control_conformance.py", "test_item_edge_conformance.py", "test_multi_attribute_keys.py"]
# what a data directory's own files hold (LMDB's keys, read from the test), not what the API answers
LMDB_ONLY = ["test_tables.py::test_delete_table_answers_at_once_and_the_storage_follows"]


def test_the_core_server_suite_passes_over_postgresql_through_two_nodes_in_turn(postgres_cluster):  # noqa: F811
    database = postgres_cluster.create_database("suite")
    env = dict(os.environ, SHOAL_TEST_STORAGE=database)
    env.pop("PYTEST_XDIST_WORKER", None)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", "-n", "0",
         *[os.path.join("tests", "server", name) for name in MODULES],
         *[arg for name in LMDB_ONLY for arg in ("--deselect", os.path.join("tests", "server", name))]],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and " failed" not in run.stdout


def test_the_suite_s_clients_send_each_request_to_the_other_node(tmp_path):
    """What the run above relies on: ``alternate``'s client goes to each node in turn (two
    servers with data of their own here, so that where a request went shows)."""
    from tests.shoal_process import ShoalProcess

    first = ShoalProcess(tmp_path / "a").start()
    second = ShoalProcess(tmp_path / "b").start()
    try:
        ddb = alternate(make_client(first.url), [first.url, second.url])
        name = unique_name("turns")
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",  # the first node
                         KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
        with pytest.raises(ClientError) as missing:  # the second, which has no such table
            ddb.describe_table(TableName=name)
        assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
        assert ddb.describe_table(TableName=name)["Table"]["TableName"] == name  # the first again
    finally:
        first.stop()
        second.stop()
