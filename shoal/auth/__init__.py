"""Authentication (SigV4) and authorization (IAM policies) for Shoal.

* ``sigv4``   verifies Signature Version 4 requests (header and presigned forms).
* ``shoal.model.policy`` (the policy language, below both this package and ``shoal.api``)
  evaluates IAM policy documents as IAM does.
* ``actions`` maps a DynamoDB operation to its IAM action, resources and condition keys.
* ``iam``     stores users, keys, groups, roles and policies in the data directory.
* ``sts``     answers AssumeRole and GetCallerIdentity in STS's query protocol.
* ``cli``     the ``shoal iam ...`` commands.
"""
