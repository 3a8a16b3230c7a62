"""``Sns``: the SNS operations alarm actions need, over plain dicts.

``Sns.prepare`` checks a request and returns a job; the codec (query
protocol) and the dispatcher stay outside.  Checks that need no stored state
run in ``prepare`` (``shoal.sns.checks`` and each operation's ``check_*``);
the job checks the rest (does the topic exist?) in its own transaction.

    topics          CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes, SetTopicAttributes
    subscriptions   Subscribe (http, https), ConfirmSubscription, Unsubscribe, ListSubscriptions(ByTopic)
    publishing      Publish, and queueing every signed POST in the outbox for ``shoal.sns.delivery``
"""

from __future__ import annotations

from typing import Callable

import orjson

from shoal.sns import publishing, subscriptions, topics
from shoal.sns.checks import Required
from shoal.sns.errors import InvalidAction
from shoal.sns.signing import Signer
from shoal.sns.store import SIGNING_KEY, load_sub

# operation: (whether it writes, its check with no state, its job)
_OPERATIONS = {
    "CreateTopic": (True, topics.check_create, topics.create),
    "DeleteTopic": (True, topics.check_arn, topics.delete),
    "ListTopics": (False, None, topics.list_topics),
    "GetTopicAttributes": (False, topics.check_arn, topics.get_attributes),
    "SetTopicAttributes": (True, topics.check_set_attributes, topics.set_attributes),
    "Subscribe": (True, subscriptions.check_subscribe, subscriptions.subscribe),
    "ConfirmSubscription": (True, subscriptions.check_confirm, subscriptions.confirm),
    "Unsubscribe": (True, subscriptions.check_unsubscribe, subscriptions.unsubscribe),
    "ListSubscriptions": (False, None, subscriptions.list_all),
    "ListSubscriptionsByTopic": (False, topics.check_arn, subscriptions.list_by_topic),
    "Publish": (True, publishing.check_publish, publishing.publish_request),
}
OPERATIONS = frozenset(_OPERATIONS)


class Sns:
    """SNS's topics, subscriptions and publishing for one data directory."""

    def __init__(self, engine, clock: Callable[[], float], account: str = "000000000000") -> None:
        self.engine = engine
        self.clock = clock
        self.account = account
        self.signer = Signer()

    @staticmethod
    def known(operation: str) -> bool:
        """Whether ``operation`` is one of SNS's (Shoal serves ``OPERATIONS``)."""
        return operation in Required.operations()

    def prepare(self, operation: str, data: dict, region: str, endpoint: str) -> tuple[bool, Callable[[], dict]]:
        """Check a request; return (whether it writes, a job that runs it in
        its own transaction and returns the output's members as a dict).
        ``endpoint`` is Shoal's base URL as the client reached it, for the
        links subscribers receive (SubscribeURL, UnsubscribeURL, SigningCertURL)."""
        served = _OPERATIONS.get(operation)
        if served is None:
            if self.known(operation):
                raise InvalidAction(f"Shoal does not implement the SNS operation {operation} yet")
            raise InvalidAction(f"Could not find operation {operation} for version 2010-03-31")
        writes, check, run = served
        data = data if isinstance(data, dict) else {}
        Required.check(operation, data)
        if check is not None:
            check(data, region)
        base = endpoint.rstrip("/")
        return writes, lambda: run(self, data, region, base)

    def publish(self, txn, region: str, topic_arn: str, message: str, subject: str | None = None) -> str | None:
        """Queue a notification of ``message`` to every confirmed subscriber
        of the topic inside the caller's write transaction ``txn`` (an alarm's
        change of state and its notification commit together); returns its
        MessageId, or None when the topic does not exist."""
        return publishing.publish(self, txn, region, topic_arn, message, subject)

    def unauthenticated(self, operation: str, data: dict) -> bool:
        """Whether SNS takes this request unsigned: a ConfirmSubscription (the
        SubscribeURL link), and an Unsubscribe (the UnsubscribeURL link) of a
        subscription not confirmed with AuthenticateOnUnsubscribe."""
        if operation == "ConfirmSubscription":
            return True
        if operation == "Unsubscribe" and isinstance(data.get("SubscriptionArn"), str):
            with self.engine.read() as txn:
                sub = load_sub(txn, data["SubscriptionArn"])
            return sub is None or not sub.get("authenticate_on_unsubscribe")
        return False

    def certificate_pem(self) -> bytes:
        """The certificate of the key that signs messages (served at SigningCertURL)."""
        with self.engine.read() as txn:
            raw = txn.get("meta", SIGNING_KEY)
        if raw is not None:
            return orjson.loads(bytes(raw))["certificate"].encode()
        with self.engine.write() as txn:
            return self.signer.key_pair(txn, self.clock())["certificate"].encode()
