"""The messages SNS POSTs to http/https subscribers: headers and JSON body.

Each is built (and signed) when it is queued, not when it is sent, so every
retry carries the same MessageId, Timestamp and Signature, as SNS's do.  The
body is the JSON document SNS sends, laid out as SNS lays it out (two-space
indent, ``"Name" : value``), with ``Content-Type: text/plain; charset=UTF-8``.
"""

from __future__ import annotations

import datetime
import json
from urllib.parse import quote

from shoal.sns.signing import CERTIFICATE_PATH

CONTENT_TYPE = "text/plain; charset=UTF-8"


def timestamp(now: float) -> str:
    """SNS's Timestamp: UTC, ISO 8601 with milliseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def subscribe_url(base: str, topic_arn: str, token: str) -> str:
    return f"{base}/?Action=ConfirmSubscription&TopicArn={quote(topic_arn, safe=':')}&Token={token}"


def unsubscribe_url(base: str, subscription_arn: str) -> str:
    return f"{base}/?Action=Unsubscribe&SubscriptionArn={quote(subscription_arn, safe=':')}"


def certificate_url(base: str) -> str:
    return base + CERTIFICATE_PATH


def confirmation_message(topic_arn: str) -> str:
    return (f"You have chosen to subscribe to the topic {topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message.")


def confirmation(message_id: str, topic_arn: str, token: str, base: str, now: float) -> dict:
    """A SubscriptionConfirmation document, unsigned (Signature fields follow)."""
    return {"Type": "SubscriptionConfirmation", "MessageId": message_id, "Token": token, "TopicArn": topic_arn,
            "Message": confirmation_message(topic_arn), "SubscribeURL": subscribe_url(base, topic_arn, token),
            "Timestamp": timestamp(now)}


def notification(message_id: str, topic_arn: str, subject: str | None, message: str, now: float) -> dict:
    """A Notification document, unsigned; Subject only when the publisher gave one."""
    document = {"Type": "Notification", "MessageId": message_id, "TopicArn": topic_arn}
    if subject is not None:
        document["Subject"] = subject
    document["Message"] = message
    document["Timestamp"] = timestamp(now)
    return document


def signed(document: dict, version: str, signature: str, base: str, subscription_arn: str | None) -> dict:
    """``document`` with its signature fields (and, for a Notification, UnsubscribeURL)."""
    document = dict(document, SignatureVersion=version, Signature=signature, SigningCertURL=certificate_url(base))
    if document["Type"] == "Notification":
        document["UnsubscribeURL"] = unsubscribe_url(base, subscription_arn)
    return document


def render(document: dict) -> str:
    return json.dumps(document, indent=2, separators=(",", " : "), ensure_ascii=False)


def headers(document: dict, subscription_arn: str | None) -> dict:
    """The POST's SNS headers; a confirmation names no subscription (it has
    none yet, as far as the endpoint knows)."""
    out = {"x-amz-sns-message-type": document["Type"], "x-amz-sns-message-id": document["MessageId"],
           "x-amz-sns-topic-arn": document["TopicArn"]}
    if document["Type"] == "Notification":
        out["x-amz-sns-subscription-arn"] = subscription_arn
    out["Content-Type"] = CONTENT_TYPE
    return out
