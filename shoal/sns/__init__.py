"""SNS, the subset CloudWatch alarm actions need: topics, http/https
subscriptions with SNS's confirmation handshake, and signed notifications.

```
 query protocol (shoal.server)          alarms (a change of state, in its write transaction)
        |  Sns.prepare -> job                  |  Sns.publish(txn, ...)
        v                                      v
 api.Sns -> topics | subscriptions | publishing     (checks: the model's required members, SNS's rules)
        |     state in the meta space, sns/... (store): topics, subscriptions, tokens, the outbox
        |     every POST built and signed when queued (messages, signing)
        v
 delivery.Delivery   background job: claims due POSTs under a lease, one thread POSTs them,
                     failures retried per the HTTP delivery policy, every outcome audited
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
