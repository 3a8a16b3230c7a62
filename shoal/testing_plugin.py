"""pytest fixtures for code that talks to DynamoDB, served by Shoal in the
test process (see :mod:`shoal.testing`).

Registered through the ``pytest11`` entry point, so installing Shoal makes
them available to every test with no conftest:

* ``shoal``: the running :class:`shoal.testing.ShoalServer`, with boto3
  pointed at it (``boto3.client("dynamodb")`` reaches it) and no tables at
  the start of the test; everything the test created is deleted after it.
* ``dynamodb``: a boto3 DynamoDB client of that server.
* ``shoal_session_server``: the one server a test session shares, started by
  the first test that asks for it.  Starting a server is cheap, but deleting
  tables is cheaper, and tables are all a test can leave behind.

A fixture of the same name in a conftest.py takes precedence over these, as
with any plugin.  This module is imported by every pytest run where Shoal is
installed, so it only defines fixtures: nothing starts until one is used.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from shoal.testing import ShoalServer, aws_environment


@pytest.fixture(scope="session")
def shoal_session_server() -> Iterator[ShoalServer]:
    """One Shoal server for the session (per xdist worker), stopped at its end."""
    server = ShoalServer().start()
    yield server
    server.stop()


@pytest.fixture
def shoal(shoal_session_server: ShoalServer) -> Iterator[ShoalServer]:
    """The session's Shoal server, empty, with boto3 pointed at it for this test."""
    shoal_session_server.reset()  # in case a test used the session server directly
    with aws_environment(shoal_session_server.endpoint_url, shoal_session_server.region):
        yield shoal_session_server
    shoal_session_server.reset()


@pytest.fixture
def dynamodb(shoal: ShoalServer):
    """A boto3 DynamoDB client of the test's Shoal server."""
    return shoal.client()
