"""Publishing: Publish, ``Sns.publish`` (for alarms), and queueing signed POSTs.

A notification goes to every confirmed subscription of the topic.  Each POST
is built, signed and put in the outbox in the publisher's write transaction,
so an alarm's change of state and its notification commit (or vanish)
together, and every retry sends the very same message.
"""

from __future__ import annotations

import base64
import dataclasses
import re
import secrets
import time
import uuid

import orjson

from shoal.sns import messages
from shoal.sns.checks import text, topic_arn
from shoal.sns.delivery import RetryPolicy
from shoal.sns.errors import InvalidParameter, NotFound
from shoal.sns.signing import SIGNATURE_VERSION
from shoal.sns.store import load_topic, save_delivery, topic_subs

MAX_MESSAGE_BYTES = 262_144
#: Subject: ASCII, starting with a letter, digit or punctuation, no control characters, under 100.
SUBJECT = re.compile(r"[!-~][ -~]{0,98}$")


def check_publish(data: dict, region: str) -> None:
    """SNS's checks, in its order."""
    subject, message = text(data, "Subject"), text(data, "Message")
    if subject is not None and not SUBJECT.match(subject):
        raise InvalidParameter("Invalid parameter: Subject")
    if not message:
        raise InvalidParameter("Invalid parameter: Empty message")
    if data.get("PhoneNumber") is not None:
        raise InvalidParameter("Invalid parameter: PhoneNumber Reason: Shoal does not send SMS messages")
    if len(message.encode("utf-8")) > MAX_MESSAGE_BYTES:
        raise InvalidParameter("Invalid parameter: Message too long")
    if data.get("MessageDeduplicationId") is not None:
        raise InvalidParameter("Invalid parameter: MessageDeduplicationId Reason: The request includes "
                               "MessageDeduplicationId parameter that is not valid for this topic type")
    if data.get("MessageStructure") is not None:
        _check_structure(data["MessageStructure"], message)
    arn = text(data, "TopicArn") or text(data, "TargetArn")
    if arn is None:
        raise InvalidParameter("Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter")
    topic_arn(arn, region, "TopicArn" if data.get("TopicArn") is not None else "TargetArn")


def _check_structure(structure, message: str) -> None:
    if structure != "json":
        raise InvalidParameter("Invalid parameter: MessageStructure")
    try:
        per_protocol = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise InvalidParameter("Invalid parameter: Message Structure - JSON message body failed to parse") from None
    if not isinstance(per_protocol, dict) or not isinstance(per_protocol.get("default"), str):
        raise InvalidParameter("Invalid parameter: Message Structure - No default entry in JSON message body")


def publish_request(sns, data: dict, region: str, base: str) -> dict:
    with sns.engine.write() as txn:
        message_id = publish(sns, txn, region, data.get("TopicArn") or data["TargetArn"], data["Message"],
                             data.get("Subject"), structure=data.get("MessageStructure"),
                             attributes=data.get("MessageAttributes"))
        if message_id is None:
            raise NotFound("Topic does not exist")
    return {"MessageId": message_id}


def publish(sns, txn, region: str, arn: str, message: str, subject: str | None = None, *,
            structure: str | None = None, attributes: dict | None = None) -> str | None:
    """Queue ``message`` to every confirmed subscription in ``txn``; its MessageId, or None without the topic."""
    topic = load_topic(txn, arn)
    if topic is None or topic["region"] != region:
        return None
    message_id = str(uuid.uuid4())
    now = sns.clock()
    per_protocol = orjson.loads(message) if structure == "json" else None
    for sub in topic_subs(txn, arn):
        if sub["pending"]:
            continue
        body = message if per_protocol is None else per_protocol.get(sub["protocol"], per_protocol["default"])
        queue(sns, txn, topic, sub, messages.notification(message_id, arn, subject, body, now), now, attributes)
    return message_id


def queue(sns, txn, topic: dict, sub: dict, document: dict, now: float, attributes: dict | None = None) -> None:
    """Sign ``document`` and put its POST to ``sub`` in the outbox, due now."""
    version = topic["attributes"].get("SignatureVersion", SIGNATURE_VERSION)
    signature = sns.signer.sign(txn, document, now, version)
    body = messages.signed(document, version, signature, sub["base"], sub["arn"])
    notification = document["Type"] == "Notification"
    if attributes and notification:
        body["MessageAttributes"] = _message_attributes(attributes)
    raw = notification and sub["attributes"].get("RawMessageDelivery", "").lower() == "true"
    headers = messages.headers(document, sub["arn"])
    if raw:
        headers["x-amz-sns-rawdelivery"] = "true"
    policy = RetryPolicy.from_json(sub["attributes"].get("DeliveryPolicy") or topic["attributes"].get("DeliveryPolicy"))
    # Ids begin with the time in nanoseconds, so POSTs due at once go in the order they were queued.
    record = {"id": f"{time.time_ns():016x}{secrets.token_hex(8)}", "kind": document["Type"], "sub": sub["arn"],
              "topic": topic["arn"], "url": sub["endpoint"], "headers": headers,
              "body": document["Message"] if raw else messages.render(body), "message_id": document["MessageId"],
              "attempts": 0, "owner": None, "created": round(now, 3), "policy": dataclasses.asdict(policy)}
    save_delivery(txn, now, record)


def _message_attributes(attributes: dict) -> dict:
    """MessageAttributes as an http/https notification carries them: Type and Value."""
    out = {}
    for name, value in attributes.items():
        if not isinstance(value, dict):
            continue
        text_value = value.get("StringValue")
        if text_value is None and value.get("BinaryValue") is not None:
            binary = value["BinaryValue"]
            text_value = binary if isinstance(binary, str) else base64.b64encode(binary).decode()
        out[name] = {"Type": value.get("DataType", "String"), "Value": text_value}
    return out
