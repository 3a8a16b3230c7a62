"""Topics: CreateTopic, DeleteTopic, ListTopics, GetTopicAttributes, SetTopicAttributes.

A topic's ARN is ``arn:aws:sns:<region>:<account>:<name>``.  CreateTopic is
idempotent: the same name answers the same ARN, unless the request names
attributes or tags other than the topic's, which SNS refuses.  DeleteTopic
takes the topic's subscriptions with it (SNS keeps them detached for a while;
Shoal drops them at once, and what the outbox still holds for them is dropped
when it comes due).
"""

from __future__ import annotations

import orjson

from shoal.sns import messages
from shoal.sns.checks import TOPIC_NAME, delivery_policy, next_token, resume_after, text, topic_arn
from shoal.sns.delivery import RetryPolicy
from shoal.sns.errors import InvalidParameter, NotFound
from shoal.sns.store import TOPIC_PREFIX, delete_sub, load_topic, page, save_topic, topic_key, topic_subs

PAGE = 100
ATTRIBUTES = frozenset({
    "DeliveryPolicy", "DisplayName", "Policy", "SignatureVersion", "TracingConfig", "KmsMasterKeyId",
    "ArchivePolicy", "DataProtectionPolicy",
    "HTTPSuccessFeedbackRoleArn", "HTTPFailureFeedbackRoleArn", "HTTPSuccessFeedbackSampleRate",
})


def check_attribute(name: str, value, prefix: str) -> None:
    if name not in ATTRIBUTES:
        raise InvalidParameter(f"{prefix}AttributeName")
    if not isinstance(value, str):
        raise InvalidParameter(f"{prefix}{name}")
    if name == "SignatureVersion" and value not in ("1", "2"):
        raise InvalidParameter(f"{prefix}SignatureVersion: Invalid value [{value}]. Must be 1 or 2.")
    if name == "DeliveryPolicy":
        delivery_policy(value, prefix)


def existing(txn, arn: str) -> dict:
    topic = load_topic(txn, arn)
    if topic is None:
        raise NotFound("Topic does not exist")
    return topic


def check_create(data: dict, region: str) -> None:
    name = text(data, "Name")
    attributes = data.get("Attributes") or {}
    if not isinstance(attributes, dict):
        raise InvalidParameter("Invalid parameter: Attributes")
    if str(attributes.get("FifoTopic", "false")).lower() == "true":
        raise InvalidParameter("Invalid parameter: Attributes Reason: Shoal does not offer FIFO topics")
    if not TOPIC_NAME.match(name):
        raise InvalidParameter("Invalid parameter: Topic Name")
    for key, value in attributes.items():
        if key != "FifoTopic":
            check_attribute(key, value, "Invalid parameter: Attributes Reason: ")
    tags = data.get("Tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, dict) and isinstance(t.get("Key"), str)
                                             and isinstance(t.get("Value"), str) for t in tags):
        raise InvalidParameter("Invalid parameter: Tags")


def create(sns, data: dict, region: str, base: str) -> dict:
    name = data["Name"]
    attributes = {k: v for k, v in (data.get("Attributes") or {}).items() if k != "FifoTopic"}
    tags = [{"Key": t["Key"], "Value": t["Value"]} for t in data.get("Tags") or []]
    arn = f"arn:aws:sns:{region}:{sns.account}:{name}"
    with sns.engine.write() as txn:
        topic = load_topic(txn, arn)
        if topic is not None:
            if any(topic["attributes"].get(k) != v for k, v in attributes.items()):
                raise InvalidParameter("Invalid parameter: Attributes Reason: Topic already exists with "
                                       "different attributes")
            if tags and sorted(map(str, topic["tags"])) != sorted(map(str, tags)):
                raise InvalidParameter("Invalid parameter: Tags Reason: Topic already exists with different tags")
            return {"TopicArn": arn}
        save_topic(txn, {"arn": arn, "name": name, "region": region, "attributes": attributes, "tags": tags,
                         "created": round(sns.clock(), 3)})
    return {"TopicArn": arn}


def check_arn(data: dict, region: str) -> None:
    topic_arn(text(data, "TopicArn"), region)


def delete(sns, data: dict, region: str, base: str) -> dict:
    """Delete a topic and its subscriptions; a topic that is not there is no error (as in SNS)."""
    arn = data["TopicArn"]
    with sns.engine.write() as txn:
        for sub in list(topic_subs(txn, arn)):
            delete_sub(txn, sub)
        txn.delete("meta", topic_key(arn))
    return {}


def list_topics(sns, data: dict, region: str, base: str) -> dict:
    prefix = TOPIC_PREFIX + f"arn:aws:sns:{region}:{sns.account}:".encode()
    with sns.engine.read() as txn:
        topics, last = page(txn, prefix, resume_after(text(data, "NextToken"), prefix), PAGE)
    out = {"Topics": [{"TopicArn": t["arn"]} for t in topics]}
    if last is not None:
        out["NextToken"] = next_token(last)
    return out


def default_policy(arn: str, account: str) -> str:
    """The access policy SNS gives a new topic: its owner may do everything."""
    actions = ["SNS:GetTopicAttributes", "SNS:SetTopicAttributes", "SNS:AddPermission", "SNS:RemovePermission",
               "SNS:DeleteTopic", "SNS:Subscribe", "SNS:ListSubscriptionsByTopic", "SNS:Publish"]
    return orjson.dumps({"Version": "2008-10-17", "Id": "__default_policy_ID", "Statement": [{
        "Sid": "__default_statement_ID", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": actions,
        "Resource": arn, "Condition": {"StringEquals": {"AWS:SourceOwner": account}}}]}).decode()


def effective_delivery_policy(topic: dict) -> str:
    policy = RetryPolicy.from_json(topic["attributes"].get("DeliveryPolicy"))
    return orjson.dumps({"http": {"defaultHealthyRetryPolicy": policy.to_json(), "disableSubscriptionOverrides": False,
                                  "defaultRequestPolicy": {"headerContentType": messages.CONTENT_TYPE}}}).decode()


def get_attributes(sns, data: dict, region: str, base: str) -> dict:
    arn = data["TopicArn"]
    with sns.engine.read() as txn:
        topic = existing(txn, arn)
        subs = list(topic_subs(txn, arn))
    pending = sum(1 for s in subs if s["pending"])
    attributes = {"Policy": default_policy(arn, sns.account), "Owner": sns.account,
                  "SubscriptionsPending": str(pending), "TopicArn": arn,
                  "EffectiveDeliveryPolicy": effective_delivery_policy(topic),
                  "SubscriptionsConfirmed": str(len(subs) - pending), "DisplayName": "", "SubscriptionsDeleted": "0"}
    attributes.update(topic["attributes"])
    return {"Attributes": attributes}


def check_set_attributes(data: dict, region: str) -> None:
    check_arn(data, region)
    value = data.get("AttributeValue")
    check_attribute(text(data, "AttributeName"), "" if value is None else value, "Invalid parameter: ")


def set_attributes(sns, data: dict, region: str, base: str) -> dict:
    with sns.engine.write() as txn:
        topic = existing(txn, data["TopicArn"])
        value = data.get("AttributeValue")
        if value in (None, ""):
            topic["attributes"].pop(data["AttributeName"], None)
        else:
            topic["attributes"][data["AttributeName"]] = value
        save_topic(txn, topic)
    return {}
