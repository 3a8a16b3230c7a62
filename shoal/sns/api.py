"""The SNS operations alarm actions need, over plain dicts.

``Sns.prepare`` checks a request and returns a job; the codec (query
protocol) and the dispatcher stay outside.  A request is checked in two
steps: the parameters the model requires (``ValidationError``, in Coral's
words), then SNS's own rules, in the order SNS applies them, with its
messages (``Invalid parameter: ...``).  What depends on stored state (does the
topic exist?) is checked by the job, in its transaction.

Served: CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes,
SetTopicAttributes, Subscribe (http and https), ConfirmSubscription,
Unsubscribe, ListSubscriptions, ListSubscriptionsByTopic, Publish.  What SNS
would POST (confirmations, notifications) is queued in the outbox in the same
transaction, signed, and sent by ``shoal.sns.delivery.Delivery``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
import secrets
import time
import uuid
from typing import Callable

import orjson

from shoal.errors import validation_errors
from shoal.sns import messages
from shoal.sns.delivery import RetryPolicy
from shoal.sns.errors import InvalidAction, InvalidParameter, NotFound, ValidationError
from shoal.sns.signing import SIGNATURE_VERSION, Signer
from shoal.sns.store import (
    SUB_PREFIX,
    TOPIC_PREFIX,
    delete_sub,
    load_sub,
    load_token,
    load_topic,
    save_delivery,
    save_sub,
    save_token,
    save_topic,
    scan_json,
    sub_key,
    topic_key,
    topic_subs,
)

READS = frozenset({"ListTopics", "GetTopicAttributes", "ListSubscriptions", "ListSubscriptionsByTopic"})
WRITES = frozenset({"CreateTopic", "DeleteTopic", "SetTopicAttributes", "Subscribe", "ConfirmSubscription",
                    "Unsubscribe", "Publish"})
OPERATIONS = READS | WRITES

PAGE = 100  # ListTopics and ListSubscriptions(ByTopic) answer 100 at a time
MAX_MESSAGE_BYTES = 262_144
TOKEN_LIFETIME_S = 3 * 86400  # a confirmation link stays valid for three days
PENDING_IN_SUBSCRIBE = "pending confirmation"  # Subscribe's SubscriptionArn for an unconfirmed one
PENDING_IN_LISTS = "PendingConfirmation"  # ListSubscriptions'
SNS_PROTOCOLS = ("http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose")
SERVED_PROTOCOLS = ("http", "https")

_TOPIC_NAME = re.compile(r"[A-Za-z0-9_-]{1,256}$")
#: Subject: ASCII, starting with a letter, digit or punctuation, no control characters, under 100.
_SUBJECT = re.compile(r"[!-~][ -~]{0,98}$")
TOPIC_ATTRIBUTES = frozenset({
    "DeliveryPolicy", "DisplayName", "Policy", "SignatureVersion", "TracingConfig", "KmsMasterKeyId",
    "ArchivePolicy", "DataProtectionPolicy",
    "HTTPSuccessFeedbackRoleArn", "HTTPFailureFeedbackRoleArn", "HTTPSuccessFeedbackSampleRate",
})
SUBSCRIPTION_ATTRIBUTES = frozenset({"DeliveryPolicy", "FilterPolicy", "FilterPolicyScope", "RawMessageDelivery",
                                     "RedrivePolicy", "SubscriptionRoleArn", "ReplayPolicy"})
SERVED_SUBSCRIPTION_ATTRIBUTES = frozenset({"DeliveryPolicy", "RawMessageDelivery"})


def _model():
    import botocore.session

    return botocore.session.get_session().get_service_model("sns")


class _Required:
    """The members each operation's input requires, from botocore's SNS model."""

    _required: dict[str, list[str]] | None = None
    _names: frozenset | None = None

    @classmethod
    def load(cls) -> None:
        if cls._required is None:
            model = _model()
            cls._names = frozenset(model.operation_names)
            cls._required = {}
            for name in model.operation_names:
                shape = model.operation_model(name).input_shape
                cls._required[name] = list(shape.required_members) if shape is not None else []

    @classmethod
    def check(cls, operation: str, data: dict) -> None:
        cls.load()
        missing = [f"Value null at '{m[0].lower() + m[1:]}' failed to satisfy constraint: Member must not be null"
                   for m in cls._required.get(operation, ()) if data.get(m) is None]
        if missing:
            raise ValidationError(validation_errors(missing))


def _text(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"Invalid parameter: {name}")
    return value


def _flag(data: dict, name: str) -> bool:
    """A boolean member: a bool from JSON, "true"/"false" from a query string."""
    value = data.get(name)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _topic_arn(arn: str, region: str, member: str = "TopicArn") -> str:
    """``arn`` if it is a topic ARN of ``region``, else SNS's complaint."""
    parts = arn.split(":")
    if len(parts) < 6:
        raise InvalidParameter(f"Invalid parameter: {member} Reason: An ARN must have at least 6 elements, "
                               f"not {len(parts)}")
    if parts[0] != "arn" or parts[2] != "sns" or parts[3] != region:
        raise InvalidParameter(f"Invalid parameter: {member}")
    if len(parts) > 6 or not _TOPIC_NAME.match(parts[5]):
        raise InvalidParameter("Invalid parameter: Topic Name")
    return arn


def _page_token(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode()


def _after_token(token: str | None, prefix: bytes) -> bytes | None:
    """The key a NextToken resumes after (it must lie in ``prefix``'s range)."""
    if token is None:
        return None
    try:
        key = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise InvalidParameter("Invalid parameter: NextToken") from None
    if not key.startswith(prefix):
        raise InvalidParameter("Invalid parameter: NextToken")
    return key


def _page(txn, prefix: bytes, token: str | None, shape: Callable[[dict], dict], key_name: str) -> dict:
    items, last = [], None
    rows = scan_json(txn, prefix, _after_token(token, prefix))
    for key, value in rows:
        if len(items) == PAGE:
            return {key_name: items, "NextToken": _page_token(last)}
        items.append(shape(value))
        last = key
    return {key_name: items}


def _subscription_view(sub: dict) -> dict:
    return {"SubscriptionArn": PENDING_IN_LISTS if sub["pending"] else sub["arn"], "Owner": sub["owner"],
            "Protocol": sub["protocol"], "Endpoint": sub["endpoint"], "TopicArn": sub["topic"]}


def _default_policy(arn: str, account: str) -> str:
    """The access policy SNS gives a new topic: its owner may do everything."""
    actions = ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission",
               "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"]
    return orjson.dumps({"Version": "2008-10-17", "Id": "__default_policy_ID", "Statement": [{
        "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": actions,
        "Resource": arn, "Condition": {"StringEquals": {"AWS:SourceOwner": account}}}]}).decode()


def _effective_delivery_policy(topic: dict) -> str:
    policy = RetryPolicy.from_json(topic["attributes"].get("DeliveryPolicy"))
    return orjson.dumps({"http": {"defaultHealthyRetryPolicy": policy.to_json(), "disableSubscriptionOverrides": False,
                                  "defaultRequestPolicy": {"headerContentType": messages.CONTENT_TYPE}}}).decode()


def _check_topic_attribute(name: str, value, prefix: str) -> None:
    if name not in TOPIC_ATTRIBUTES:
        raise InvalidParameter(f"{prefix}AttributeName")
    if not isinstance(value, str):
        raise InvalidParameter(f"{prefix}{name}")
    if name == "SignatureVersion" and value not in ("1", "2"):
        raise InvalidParameter(f"{prefix}SignatureVersion: Invalid value [{value}]. Must be 1 or 2.")
    if name == "DeliveryPolicy":
        try:
            RetryPolicy.from_json(value)
        except (ValueError, TypeError) as exc:
            raise InvalidParameter(f"{prefix}DeliveryPolicy: {exc}") from None


def _check_subscription_attribute(name: str, value) -> None:
    prefix = "Invalid parameter: Attributes Reason: "
    if name not in SUBSCRIPTION_ATTRIBUTES:
        raise InvalidParameter(f"{prefix}AttributeName")
    if name not in SERVED_SUBSCRIPTION_ATTRIBUTES:
        raise InvalidParameter(f"{prefix}Shoal does not support the subscription attribute {name}")
    if not isinstance(value, str):
        raise InvalidParameter(f"{prefix}{name}")
    if name == "RawMessageDelivery" and value.lower() not in ("true", "false"):
        raise InvalidParameter(f"{prefix}RawMessageDelivery: Invalid value [{value}]. Must be true or false.")
    if name == "DeliveryPolicy":
        try:
            RetryPolicy.from_json(value)
        except (ValueError, TypeError) as exc:
            raise InvalidParameter(f"{prefix}DeliveryPolicy: {exc}") from None


class Sns:
    """SNS's topics, subscriptions and publishing for one data directory."""

    def __init__(self, engine, clock: Callable[[], float], account: str = "000000000000") -> None:
        self.engine = engine
        self.clock = clock
        self.account = account
        self.signer = Signer()
        self._handlers = {
            "CreateTopic": self.create_topic, "DeleteTopic": self.delete_topic, "ListTopics": self.list_topics,
            "GetTopicAttributes": self.get_topic_attributes, "SetTopicAttributes": self.set_topic_attributes,
            "Subscribe": self.subscribe, "ConfirmSubscription": self.confirm_subscription,
            "Unsubscribe": self.unsubscribe, "ListSubscriptions": self.list_subscriptions,
            "ListSubscriptionsByTopic": self.list_subscriptions_by_topic, "Publish": self.publish_request,
        }
        self._checks = {"CreateTopic": self._check_create_topic, "Subscribe": self._check_subscribe,
                        "Publish": self._check_publish, "SetTopicAttributes": self._check_set_topic_attributes}

    # -- the interface the dispatcher uses ------------------------------------------------

    @staticmethod
    def known(operation: str) -> bool:
        """Whether ``operation`` is one of SNS's (Shoal serves ``OPERATIONS``)."""
        _Required.load()
        return operation in _Required._names

    def prepare(self, operation: str, data: dict, region: str, endpoint: str) -> tuple[bool, Callable[[], dict]]:
        """Check a request; return (whether it writes, a job that runs it in
        its own transaction and returns the output's members as a dict).
        ``endpoint`` is Shoal's base URL as the client reached it (for the
        links in what subscribers receive)."""
        handler = self._handlers.get(operation)
        if handler is None:
            if self.known(operation):
                raise InvalidAction(f"Shoal does not implement the SNS operation {operation} yet")
            raise InvalidAction(f"Could not find operation {operation} for version 2010-03-31")
        data = data if isinstance(data, dict) else {}
        _Required.check(operation, data)
        check = self._checks.get(operation)
        if check is not None:
            check(data, region)
        base = endpoint.rstrip("/")
        return operation in WRITES, lambda: handler(data, region, base)

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
            raw = txn.get("meta", b"sns/signing")
        if raw is None:
            with self.engine.write() as txn:
                return self.signer.key_pair(txn, self.clock())["certificate"].encode()
        return orjson.loads(bytes(raw))["certificate"].encode()

    # -- topics -------------------------------------------------------------------------------

    def _check_create_topic(self, data: dict, region: str) -> None:
        name = _text(data, "Name")
        attributes = data.get("Attributes") or {}
        if not isinstance(attributes, dict):
            raise InvalidParameter("Invalid parameter: Attributes")
        if str(attributes.get("FifoTopic", "false")).lower() == "true":
            raise InvalidParameter("Invalid parameter: Attributes Reason: Shoal does not offer FIFO topics")
        if not _TOPIC_NAME.match(name):
            raise InvalidParameter("Invalid parameter: Topic Name")
        for key, value in attributes.items():
            if key != "FifoTopic":
                _check_topic_attribute(key, value, "Invalid parameter: Attributes Reason: ")
        tags = data.get("Tags") or []
        if not isinstance(tags, list) or not all(isinstance(t, dict) and isinstance(t.get("Key"), str)
                                                 and isinstance(t.get("Value"), str) for t in tags):
            raise InvalidParameter("Invalid parameter: Tags")

    def create_topic(self, data: dict, region: str, base: str) -> dict:
        name = data["Name"]
        attributes = {k: v for k, v in (data.get("Attributes") or {}).items() if k != "FifoTopic"}
        tags = [{"Key": t["Key"], "Value": t["Value"]} for t in data.get("Tags") or []]
        arn = f"arn:aws:sns:{region}:{self.account}:{name}"
        with self.engine.write() as txn:
            topic = load_topic(txn, arn)
            if topic is not None:
                if any(topic["attributes"].get(k) != v for k, v in attributes.items()):
                    raise InvalidParameter("Invalid parameter: Attributes Reason: Topic already exists with "
                                           "different attributes")
                if tags and sorted(map(str, topic["tags"])) != sorted(map(str, tags)):
                    raise InvalidParameter("Invalid parameter: Tags Reason: Topic already exists with different tags")
                return {"TopicArn": arn}
            save_topic(txn, {"arn": arn, "name": name, "region": region, "attributes": attributes, "tags": tags,
                             "created": round(self.clock(), 3)})
        return {"TopicArn": arn}

    def delete_topic(self, data: dict, region: str, base: str) -> dict:
        """Delete a topic and its subscriptions; a topic that is not there is no error (as in SNS)."""
        arn = _topic_arn(data["TopicArn"], region)
        with self.engine.write() as txn:
            for sub in list(topic_subs(txn, arn)):
                delete_sub(txn, sub)
            txn.delete("meta", topic_key(arn))
        return {}

    def list_topics(self, data: dict, region: str, base: str) -> dict:
        prefix = TOPIC_PREFIX + f"arn:aws:sns:{region}:{self.account}:".encode()
        with self.engine.read() as txn:
            return _page(txn, prefix, _text(data, "NextToken"), lambda t: {"TopicArn": t["arn"]}, "Topics")

    def _topic(self, txn, arn: str) -> dict:
        topic = load_topic(txn, arn)
        if topic is None:
            raise NotFound("Topic does not exist")
        return topic

    def get_topic_attributes(self, data: dict, region: str, base: str) -> dict:
        arn = _topic_arn(data["TopicArn"], region)
        with self.engine.read() as txn:
            topic = self._topic(txn, arn)
            subs = list(topic_subs(txn, arn))
        pending = sum(1 for s in subs if s["pending"])
        attributes = {"Policy": _default_policy(arn, self.account), "Owner": self.account,
                      "SubscriptionsPending": str(pending), "TopicArn": arn,
                      "EffectiveDeliveryPolicy": _effective_delivery_policy(topic),
                      "SubscriptionsConfirmed": str(len(subs) - pending), "DisplayName": "",
                      "SubscriptionsDeleted": "0"}
        attributes.update(topic["attributes"])
        return {"Attributes": attributes}

    def _check_set_topic_attributes(self, data: dict, region: str) -> None:
        _topic_arn(data["TopicArn"], region)
        value = data.get("AttributeValue")
        _check_topic_attribute(_text(data, "AttributeName"), "" if value is None else value, "Invalid parameter: ")

    def set_topic_attributes(self, data: dict, region: str, base: str) -> dict:
        arn = data["TopicArn"]
        with self.engine.write() as txn:
            topic = self._topic(txn, arn)
            value = data.get("AttributeValue")
            if value in (None, ""):
                topic["attributes"].pop(data["AttributeName"], None)
            else:
                topic["attributes"][data["AttributeName"]] = value
            save_topic(txn, topic)
        return {}

    # -- subscriptions -------------------------------------------------------------------------

    def _check_subscribe(self, data: dict, region: str) -> None:
        _topic_arn(_text(data, "TopicArn"), region)
        attributes = data.get("Attributes") or {}
        if not isinstance(attributes, dict):
            raise InvalidParameter("Invalid parameter: Attributes")
        for name, value in attributes.items():
            _check_subscription_attribute(name, value)

    def subscribe(self, data: dict, region: str, base: str) -> dict:
        arn = data["TopicArn"]
        protocol, endpoint = data["Protocol"], _text(data, "Endpoint")
        attributes = dict(data.get("Attributes") or {})
        now = self.clock()
        with self.engine.write() as txn:
            topic = self._topic(txn, arn)
            if protocol not in SERVED_PROTOCOLS:
                # Shoal delivers over http and https only; SNS's wording for a protocol it lacks.
                raise InvalidParameter(f"Invalid parameter: Amazon SNS does not support this protocol string: "
                                       f"{protocol}")
            if not endpoint or not endpoint.startswith(f"{protocol}://"):
                raise InvalidParameter("Invalid parameter: Endpoint must match the specified protocol")
            for sub in topic_subs(txn, arn):
                if sub["protocol"] == protocol and sub["endpoint"] == endpoint:
                    if any(sub["attributes"].get(k) != v for k, v in attributes.items()):
                        raise InvalidParameter("Invalid parameter: Attributes Reason: Subscription already exists "
                                               "with different attributes")
                    if sub["pending"]:  # subscribing again sends the confirmation again
                        self._queue_confirmation(txn, topic, sub, now)
                    return {"SubscriptionArn": self._subscribe_answer(sub, data)}
            sub = {"arn": f"{arn}:{uuid.uuid4()}", "topic": arn, "protocol": protocol, "endpoint": endpoint,
                   "owner": self.account, "pending": True, "token": secrets.token_hex(64), "base": base,
                   "attributes": attributes, "created": round(now, 3), "authenticate_on_unsubscribe": False}
            save_sub(txn, sub)
            self._queue_confirmation(txn, topic, sub, now)
        return {"SubscriptionArn": self._subscribe_answer(sub, data)}

    @staticmethod
    def _subscribe_answer(sub: dict, data: dict) -> str:
        if sub["pending"] and not _flag(data, "ReturnSubscriptionArn"):
            return PENDING_IN_SUBSCRIBE
        return sub["arn"]

    def _queue_confirmation(self, txn, topic: dict, sub: dict, now: float) -> None:
        save_token(txn, sub["token"], {"sub": sub["arn"], "topic": topic["arn"],
                                       "expires": round(now + TOKEN_LIFETIME_S, 3)})
        document = messages.confirmation(str(uuid.uuid4()), topic["arn"], sub["token"], sub["base"], now)
        self._queue(txn, topic, sub, document, now)

    def confirm_subscription(self, data: dict, region: str, base: str) -> dict:
        arn, token = data["TopicArn"], data["Token"]
        if len(arn.split(":")) < 6:
            raise InvalidParameter("Invalid parameter: Topic")
        with self.engine.write() as txn:
            found = load_token(txn, token)
            if found is None or found["expires"] <= self.clock():
                raise InvalidParameter("Invalid parameter: Token")
            if found["topic"] != arn:
                raise InvalidParameter("Invalid parameter: Topic")
            sub = load_sub(txn, found["sub"])
            if sub is None:
                raise InvalidParameter("Invalid parameter: Token")
            if sub["pending"]:
                sub.update(pending=False, confirmed=round(self.clock(), 3),
                           authenticate_on_unsubscribe=_flag(data, "AuthenticateOnUnsubscribe"))
                save_sub(txn, sub)
        return {"SubscriptionArn": sub["arn"]}

    def unsubscribe(self, data: dict, region: str, base: str) -> dict:
        """Delete a subscription; one that is not there is no error (as in SNS)."""
        arn = data["SubscriptionArn"]
        parts = arn.split(":")
        if len(parts) < 6:
            raise InvalidParameter(f"Invalid parameter: SubscriptionArn Reason: An ARN must have at least 6 "
                                   f"elements, not {len(parts)}")
        if len(parts) == 6:
            raise InvalidParameter("Invalid parameter: SubscriptionId")
        with self.engine.write() as txn:
            sub = load_sub(txn, arn)
            if sub is not None:
                delete_sub(txn, sub)
        return {}

    def list_subscriptions(self, data: dict, region: str, base: str) -> dict:
        prefix = SUB_PREFIX + f"arn:aws:sns:{region}:{self.account}:".encode()
        with self.engine.read() as txn:
            return _page(txn, prefix, _text(data, "NextToken"), _subscription_view, "Subscriptions")

    def list_subscriptions_by_topic(self, data: dict, region: str, base: str) -> dict:
        arn = _topic_arn(data["TopicArn"], region)
        with self.engine.read() as txn:
            self._topic(txn, arn)
            return _page(txn, sub_key(arn) + b":", _text(data, "NextToken"), _subscription_view, "Subscriptions")

    # -- publishing -----------------------------------------------------------------------------

    def _check_publish(self, data: dict, region: str) -> None:
        subject, message = _text(data, "Subject"), _text(data, "Message")
        if subject is not None and not _SUBJECT.match(subject):
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
            if data["MessageStructure"] != "json":
                raise InvalidParameter("Invalid parameter: MessageStructure")
            try:
                structured = orjson.loads(message)
            except orjson.JSONDecodeError:
                raise InvalidParameter("Invalid parameter: Message Structure - JSON message body failed to "
                                       "parse") from None
            if not isinstance(structured, dict) or not isinstance(structured.get("default"), str):
                raise InvalidParameter("Invalid parameter: Message Structure - No default entry in JSON message "
                                       "body")
        arn = _text(data, "TopicArn") or _text(data, "TargetArn")
        if arn is None:
            raise InvalidParameter("Invalid parameter: TopicArn or TargetArn Reason: no value for required "
                                   "parameter")
        _topic_arn(arn, region, "TopicArn" if data.get("TopicArn") is not None else "TargetArn")

    def publish_request(self, data: dict, region: str, base: str) -> dict:
        arn = data.get("TopicArn") or data["TargetArn"]
        with self.engine.write() as txn:
            message_id = self.publish(txn, region, arn, data["Message"], data.get("Subject"),
                                      structure=data.get("MessageStructure"),
                                      attributes=data.get("MessageAttributes"))
            if message_id is None:
                raise NotFound("Topic does not exist")
        return {"MessageId": message_id}

    def publish(self, txn, region: str, topic_arn: str, message: str, subject: str | None = None, *,
                structure: str | None = None, attributes: dict | None = None) -> str | None:
        """Queue a notification of ``message`` to every confirmed subscriber
        of the topic, inside the caller's write transaction ``txn`` (so a
        change and its notification commit together); returns its MessageId,
        or None when the topic does not exist."""
        topic = load_topic(txn, topic_arn)
        if topic is None or topic["region"] != region:
            return None
        message_id = str(uuid.uuid4())
        now = self.clock()
        per_protocol = orjson.loads(message) if structure == "json" else None
        for sub in topic_subs(txn, topic_arn):
            if sub["pending"]:
                continue
            text = message if per_protocol is None else per_protocol.get(sub["protocol"], per_protocol["default"])
            document = messages.notification(message_id, topic_arn, subject, text, now)
            self._queue(txn, topic, sub, document, now, attributes)
        return message_id

    def _queue(self, txn, topic: dict, sub: dict, document: dict, now: float, attributes: dict | None = None) -> None:
        """Sign ``document`` and put its POST to ``sub`` in the outbox, due now."""
        version = topic["attributes"].get("SignatureVersion", SIGNATURE_VERSION)
        signature = self.signer.sign(txn, document, now, version)
        body_document = messages.signed(document, version, signature, sub["base"], sub["arn"])
        if attributes and document["Type"] == "Notification":
            body_document["MessageAttributes"] = _message_attributes(attributes)
        raw = document["Type"] == "Notification" and sub["attributes"].get("RawMessageDelivery", "").lower() == "true"
        headers = messages.headers(document, sub["arn"])
        if raw:
            headers["x-amz-sns-rawdelivery"] = "true"
        policy_text = sub["attributes"].get("DeliveryPolicy") or topic["attributes"].get("DeliveryPolicy")
        # Ids begin with the time in nanoseconds, so messages due at once go in the order they were queued.
        record = {"id": f"{time.time_ns():016x}{secrets.token_hex(8)}", "kind": document["Type"], "sub": sub["arn"], "topic": topic["arn"],
                  "url": sub["endpoint"], "headers": headers,
                  "body": document["Message"] if raw else messages.render(body_document),
                  "message_id": document["MessageId"], "attempts": 0, "owner": None, "created": round(now, 3),
                  "policy": dataclasses.asdict(RetryPolicy.from_json(policy_text))}
        save_delivery(txn, now, record)


def _message_attributes(attributes: dict) -> dict:
    """MessageAttributes as an http/https notification carries them: Type and Value."""
    out = {}
    for name, value in attributes.items():
        if not isinstance(value, dict):
            continue
        kind = value.get("DataType", "String")
        text = value.get("StringValue")
        if text is None and value.get("BinaryValue") is not None:
            binary = value["BinaryValue"]
            text = binary if isinstance(binary, str) else base64.b64encode(binary).decode()
        out[name] = {"Type": kind, "Value": text}
    return out
