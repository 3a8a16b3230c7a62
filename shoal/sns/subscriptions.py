"""Subscriptions: Subscribe, ConfirmSubscription, Unsubscribe, ListSubscriptions(ByTopic).

SNS's handshake: Subscribe stores the subscription as pending, with a token,
and queues a SubscriptionConfirmation POST carrying the token and a
SubscribeURL; the subscription gets notifications once ConfirmSubscription
presents the token (through the API or by a GET of the SubscribeURL, unsigned)
within three days.  Until then Subscribe answers ``pending confirmation`` (the
ARN with ReturnSubscriptionArn) and the lists show ``PendingConfirmation``.
Subscribing the same endpoint again answers the same subscription, and sends
the confirmation again while it is pending.  Only http and https are served.
"""

from __future__ import annotations

import secrets
import uuid

from shoal.sns import messages
from shoal.sns.checks import delivery_policy, flag, next_token, resume_after, text, topic_arn
from shoal.sns.errors import InvalidParameter
from shoal.sns.publishing import queue
from shoal.sns.store import (
    SUB_PREFIX,
    delete_sub,
    load_sub,
    load_token,
    page,
    save_sub,
    save_token,
    sub_key,
    topic_subs,
)
from shoal.sns.topics import existing

PAGE = 100
TOKEN_LIFETIME_S = 3 * 86400  # a confirmation link stays valid for three days
PENDING_IN_SUBSCRIBE = "pending confirmation"
PENDING_IN_LISTS = "PendingConfirmation"
SERVED_PROTOCOLS = ("http", "https")
ATTRIBUTES = frozenset({"DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery", "RedrivePolicy",
                        "SubscriptionRoleArn", "ReplayPolicy"})
SERVED_ATTRIBUTES = frozenset({"DeliveryPolicy", "RawMessageDelivery"})


def check_attribute(name: str, value) -> None:
    prefix = "Invalid parameter: Attributes Reason: "
    if name not in ATTRIBUTES:
        raise InvalidParameter(f"{prefix}AttributeName")
    if name not in SERVED_ATTRIBUTES:
        raise InvalidParameter(f"{prefix}Shoal does not support the subscription attribute {name}")
    if not isinstance(value, str):
        raise InvalidParameter(f"{prefix}{name}")
    if name == "RawMessageDelivery" and value.lower() not in ("true", "false"):
        raise InvalidParameter(f"{prefix}RawMessageDelivery: Invalid value [{value}]. Must be true or false.")
    if name == "DeliveryPolicy":
        delivery_policy(value, prefix)


def check_subscribe(data: dict, region: str) -> None:
    topic_arn(text(data, "TopicArn"), region)
    text(data, "Protocol")
    text(data, "Endpoint")
    attributes = data.get("Attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidParameter("Invalid parameter: Attributes")
    for name, value in attributes.items():
        check_attribute(name, value)


def subscribe(sns, data: dict, region: str, base: str) -> dict:
    arn, protocol, endpoint = data["TopicArn"], data["Protocol"], data.get("Endpoint")
    attributes = dict(data.get("Attributes") or {})
    now = sns.clock()
    with sns.engine.write() as txn:
        topic = existing(txn, arn)
        if protocol not in SERVED_PROTOCOLS:
            # Shoal delivers over http and https only, and says so as SNS does for a protocol it lacks.
            raise InvalidParameter(f"Invalid parameter: Amazon SNS does not support this protocol string: {protocol}")
        if not endpoint or not endpoint.startswith(f"{protocol}://"):
            raise InvalidParameter("Invalid parameter: Endpoint must match the specified protocol")
        for sub in topic_subs(txn, arn):
            if sub["protocol"] == protocol and sub["endpoint"] == endpoint:
                if any(sub["attributes"].get(k) != v for k, v in attributes.items()):
                    raise InvalidParameter("Invalid parameter: Attributes Reason: Subscription already exists "
                                           "with different attributes")
                if sub["pending"]:
                    queue_confirmation(sns, txn, topic, sub, now)
                return {"SubscriptionArn": _answer(sub, data)}
        sub = {"arn": f"{arn}:{uuid.uuid4()}", "topic": arn, "protocol": protocol, "endpoint": endpoint,
               "owner": sns.account, "pending": True, "token": secrets.token_hex(64), "base": base,
               "attributes": attributes, "created": round(now, 3), "authenticate_on_unsubscribe": False}
        save_sub(txn, sub)
        queue_confirmation(sns, txn, topic, sub, now)
    return {"SubscriptionArn": _answer(sub, data)}


def _answer(sub: dict, data: dict) -> str:
    if sub["pending"] and not flag(data, "ReturnSubscriptionArn"):
        return PENDING_IN_SUBSCRIBE
    return sub["arn"]


def queue_confirmation(sns, txn, topic: dict, sub: dict, now: float) -> None:
    """(Re)start the token's three days and queue the SubscriptionConfirmation POST."""
    save_token(txn, sub["token"], {"sub": sub["arn"], "topic": topic["arn"],
                                   "expires": round(now + TOKEN_LIFETIME_S, 3)})
    document = messages.confirmation(str(uuid.uuid4()), topic["arn"], sub["token"], sub["base"], now)
    queue(sns, txn, topic, sub, document, now)


def check_confirm(data: dict, region: str) -> None:
    text(data, "Token")
    if len(text(data, "TopicArn").split(":")) < 6:
        raise InvalidParameter("Invalid parameter: Topic")


def confirm(sns, data: dict, region: str, base: str) -> dict:
    """Confirm with a token (idempotent while the token lasts); the region
    does not matter, as the SubscribeURL is followed unsigned."""
    arn, token = data["TopicArn"], data["Token"]
    with sns.engine.write() as txn:
        found = load_token(txn, token)
        if found is None or found["expires"] <= sns.clock():
            raise InvalidParameter("Invalid parameter: Token")
        if found["topic"] != arn:
            raise InvalidParameter("Invalid parameter: Topic")
        sub = load_sub(txn, found["sub"])
        if sub is None:
            raise InvalidParameter("Invalid parameter: Token")
        if sub["pending"]:
            sub.update(pending=False, confirmed=round(sns.clock(), 3),
                       authenticate_on_unsubscribe=flag(data, "AuthenticateOnUnsubscribe"))
            save_sub(txn, sub)
    return {"SubscriptionArn": sub["arn"]}


def check_unsubscribe(data: dict, region: str) -> None:
    parts = text(data, "SubscriptionArn").split(":")
    if len(parts) < 6:
        raise InvalidParameter(f"Invalid parameter: SubscriptionArn Reason: An ARN must have at least 6 elements, "
                               f"not {len(parts)}")
    if len(parts) == 6:
        raise InvalidParameter("Invalid parameter: SubscriptionId")


def unsubscribe(sns, data: dict, region: str, base: str) -> dict:
    """Delete a subscription; one that is not there is no error (as in SNS)."""
    with sns.engine.write() as txn:
        sub = load_sub(txn, data["SubscriptionArn"])
        if sub is not None:
            delete_sub(txn, sub)
    return {}


def view(sub: dict) -> dict:
    return {"SubscriptionArn": PENDING_IN_LISTS if sub["pending"] else sub["arn"], "Owner": sub["owner"],
            "Protocol": sub["protocol"], "Endpoint": sub["endpoint"], "TopicArn": sub["topic"]}


def _listing(txn, prefix: bytes, token: str | None) -> dict:
    subs, last = page(txn, prefix, resume_after(token, prefix), PAGE)
    out = {"Subscriptions": [view(s) for s in subs]}
    if last is not None:
        out["NextToken"] = next_token(last)
    return out


def list_all(sns, data: dict, region: str, base: str) -> dict:
    prefix = SUB_PREFIX + f"arn:aws:sns:{region}:{sns.account}:".encode()
    with sns.engine.read() as txn:
        return _listing(txn, prefix, text(data, "NextToken"))


def list_by_topic(sns, data: dict, region: str, base: str) -> dict:
    arn = data["TopicArn"]
    with sns.engine.read() as txn:
        existing(txn, arn)
        return _listing(txn, sub_key(arn) + b":", text(data, "NextToken"))
