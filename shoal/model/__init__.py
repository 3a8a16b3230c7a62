"""DynamoDB's data model: attribute values, numbers, item sizes and key encoding.

Items are kept in their wire form, the dict that DynamoDB's JSON protocol carries
(``{"name": {"S": "x"}, "n": {"N": "1.5"}}``), with numbers in normalized form and
binaries as base64 text, so a stored item can be spliced into a response unchanged.

``policy`` is IAM's policy language (parsing and evaluation), pure like the
rest of this package, so that both the API (resource-based policies) and the
server's authorization (``shoal.auth``) use it without importing each other.
"""
