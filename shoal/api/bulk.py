"""Bulk put operations: StartBulkPutItems, DescribeBulkOperation, ListBulkOperations, CancelBulkOperation.

Being written; until then its operations are unknown to the router.
"""

OPERATIONS: dict = {}
