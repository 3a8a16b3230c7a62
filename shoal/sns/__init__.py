"""SNS, the subset CloudWatch alarm actions need: topics, http/https
subscriptions with SNS's confirmation handshake, and signed notifications.

```
 query protocol (shoal.server)      alarms (state change, in their write transaction)
        |  Sns.prepare -> job              |  Sns.publish(txn, ...)
        v                                  v
 api.Sns  -- topics, subscriptions, tokens, and the outbox of POSTs to make (store, meta space sns/...)
        |                                         each message built and signed when queued (messages, signing)
        v
 delivery.Delivery  background job: claims due POSTs under a lease, one thread POSTs them,
                    outcomes retried per the HTTP delivery policy and audited
```
"""

from __future__ import annotations

from shoal.sns.api import OPERATIONS, Sns
from shoal.sns.delivery import Delivery, RetryPolicy
from shoal.sns.errors import (
    AuthorizationError,
    InternalError,
    InvalidAction,
    InvalidParameter,
    InvalidParameterValue,
    NotFound,
    SnsError,
    ValidationError,
)

__all__ = ["OPERATIONS", "Sns", "Delivery", "RetryPolicy", "SnsError", "InvalidParameter", "InvalidParameterValue",
           "NotFound", "AuthorizationError", "ValidationError", "InvalidAction", "InternalError"]
