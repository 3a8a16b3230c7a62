"""The one object the dispatcher calls to authenticate and authorize a request.

``Gate.authenticate(request)`` verifies the SigV4 signature against the IAM
store and returns the ``Credentials`` (region from the credential scope);
``Gate.authorize(credentials, operation, data, request)`` raises
AccessDeniedException unless the caller's policies allow the operation.
The catalog supplies partition key names for ``dynamodb:LeadingKeys``.
"""

from __future__ import annotations

import time

from shoal.auth.actions import authorize, request_context
from shoal.auth.iam import DEFAULT_ACCOUNT, IamStore
from shoal.auth.sigv4 import Credentials, verify


class Gate:
    """Authentication and authorization of one worker process."""

    def __init__(self, engine, data_dir, catalog, *, account: str = DEFAULT_ACCOUNT) -> None:
        self.engine = engine
        self.catalog = catalog
        self.account = account
        self.store = IamStore(engine, data_dir, account=account)

    def authenticate(self, request, service: str = "dynamodb") -> Credentials:
        """Who signed ``request``; raises the AWS authentication errors."""
        return verify(request, lookup_secret=self.store.lookup, service=service)

    def authorize(self, credentials: Credentials, operation: str, data: dict, request) -> None:
        """Raise AccessDeniedException unless the signer may run ``operation``."""
        principal = credentials.identity.principal
        if principal.is_root:
            return
        region = credentials.region
        peer = request.peer[0] if request.peer else None
        authorize(principal, operation, data, region, self.account, self._key_lookup(region),
                  request_context=request_context(peer, request.secure, time.time()))

    def _key_lookup(self, region: str):
        def lookup(table_name: str, index_name: str | None):
            with self.engine.read() as txn:
                table = self.catalog.get(txn, region, table_name)
            if table is None:
                return None
            if index_name is None:
                return table.hash_key
            index = table.index_map.get(index_name)
            return index.hash_key if index is not None else None
        return lookup
