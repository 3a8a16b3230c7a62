"""Shoal: a DynamoDB-compatible database server with durable embedded storage."""

__version__ = "0.1.0"
