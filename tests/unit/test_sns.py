"""shoal.sns over real engines and a real webhook: topics, the subscription
handshake, signed notifications, retries, leases across processes, errors."""

from __future__ import annotations

import asyncio
import base64
import http.server
import json
import multiprocessing
import threading
from urllib.parse import parse_qsl, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from shoal.sns import (
    OPERATIONS,
    Delivery,
    InvalidAction,
    InvalidParameter,
    NotFound,
    RetryPolicy,
    Sns,
    ValidationError,
)
from shoal.sns.store import outbox
from shoal.storage.lmdb_engine import LmdbEngine

REGION = "us-east-1"
ACCOUNT = "123456789012"
BASE = "http://127.0.0.1:8000"
T0 = 1_800_000_000.0


class ManualClock:
    """Time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Webhook:
    """An http.server endpoint recording every request; answers the statuses
    queued in ``answers`` first, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.answers: list[int] = []
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with hook.lock:
                    hook.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                          "body": body.decode("utf-8")})
                    status = hook.answers.pop(0) if hook.answers else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def documents(self) -> list[dict]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Audit:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def __call__(self, **record) -> None:
        self.records.append(record)

    @property
    def decisions(self) -> list[str]:
        return [r["decision"] for r in self.records]


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def sns(lmdb_engine, clock):
    return Sns(lmdb_engine, clock, ACCOUNT)


@pytest.fixture
def audit():
    return Audit()


@pytest.fixture
def delivery(lmdb_engine, clock, audit):
    job = Delivery(lmdb_engine, clock, audit, lease_s=60.0, timeout_s=2.0)
    yield job
    job.close()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def call(sns, operation, data=None, region=REGION):
    writes, job = sns.prepare(operation, data or {}, region, BASE)
    assert writes == (operation not in ("ListTopics", "ListSubscriptions", "ListSubscriptionsByTopic",
                                        "GetTopicAttributes"))
    return job()


def refused(error_type, code, status, message, operation, data, sns, region=REGION):
    with pytest.raises(error_type) as info:
        call(sns, operation, data, region)
    error = info.value
    assert (error.code, error.status, error.sender, error.message) == (code, status, status < 500, message)


def run(delivery, rounds=20):
    """Rounds of the job (no event loop here), waiting for each POST, until nothing is in flight."""
    for _ in range(rounds):
        delivery()
        if not delivery.in_flight:
            return
        assert delivery.wait_idle()
    raise AssertionError("the delivery job never went idle")


def topic_arn(name="alarms"):
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


def pending_outbox(engine) -> list[tuple[float, dict]]:
    with engine.read() as txn:
        return list(outbox(txn))


def canonical(document: dict) -> bytes:
    """SNS's string to sign, written out here independently of shoal.sns.signing."""
    if document["Type"] == "Notification":
        names = ["Message", "MessageId"] + (["Subject"] if "Subject" in document else []) + \
            ["Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{name}\n{document[name]}\n" for name in names).encode()


def verify(sns, document: dict, digest=hashes.SHA1) -> None:
    """Raises InvalidSignature unless the document's signature is the certificate's key's."""
    certificate = x509.load_pem_x509_certificate(sns.certificate_pem())
    certificate.public_key().verify(base64.b64decode(document["Signature"]), canonical(document),
                                    padding.PKCS1v15(), digest())


def subscribed(sns, delivery, webhook, name="alarms", attributes=None) -> tuple[str, dict]:
    """A confirmed http subscription of the webhook to a new topic: (its ARN, the confirmation received)."""
    call(sns, "CreateTopic", {"Name": name})
    data = {"TopicArn": topic_arn(name), "Protocol": "http", "Endpoint": webhook.url}
    if attributes:
        data["Attributes"] = attributes
    call(sns, "Subscribe", data)
    run(delivery)
    confirmation = webhook.documents()[-1]
    arn = call(sns, "ConfirmSubscription", {"TopicArn": topic_arn(name), "Token": confirmation["Token"]})
    return arn["SubscriptionArn"], confirmation


# ---------------------------------------------------------------- topics


def test_create_topic_is_idempotent_for_the_same_name_and_attributes(sns):
    arn = call(sns, "CreateTopic", {"Name": "alarms", "Attributes": {"DisplayName": "Alarms"},
                                    "Tags": [{"Key": "team", "Value": "ops"}]})
    assert arn == {"TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms"}
    assert call(sns, "CreateTopic", {"Name": "alarms", "Attributes": {"DisplayName": "Alarms"}}) == arn
    assert call(sns, "CreateTopic", {"Name": "alarms"}) == arn
    assert call(sns, "ListTopics") == {"Topics": [arn]}
    assert call(sns, "CreateTopic", {"Name": "alarms"}, region="eu-west-1") == \
        {"TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms"}
    assert call(sns, "ListTopics") == {"Topics": [arn]}  # regions apart


def test_create_topic_with_other_attributes_or_tags_conflicts(sns):
    call(sns, "CreateTopic", {"Name": "alarms", "Attributes": {"DisplayName": "Alarms"},
                              "Tags": [{"Key": "team", "Value": "ops"}]})
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: Attributes Reason: Topic already exists with different attributes",
            "CreateTopic", {"Name": "alarms", "Attributes": {"DisplayName": "Other"}}, sns)
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: Tags Reason: Topic already exists with different tags",
            "CreateTopic", {"Name": "alarms", "Tags": [{"Key": "team", "Value": "dev"}]}, sns)


@pytest.mark.parametrize("name", ["", "a b", "x" * 257, "alarms.fifo", "a:b"])
def test_create_topic_refuses_a_bad_name(sns, name):
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Topic Name", "CreateTopic",
            {"Name": name}, sns)


def test_topic_attributes_read_and_set(sns):
    call(sns, "CreateTopic", {"Name": "alarms"})
    attributes = call(sns, "GetTopicAttributes", {"TopicArn": topic_arn()})["Attributes"]
    assert {k: attributes[k] for k in ("TopicArn", "Owner", "DisplayName", "SubscriptionsConfirmed",
                                       "SubscriptionsPending", "SubscriptionsDeleted")} == {
        "TopicArn": topic_arn(), "Owner": ACCOUNT, "DisplayName": "", "SubscriptionsConfirmed": "0",
        "SubscriptionsPending": "0", "SubscriptionsDeleted": "0"}
    assert json.loads(attributes["EffectiveDeliveryPolicy"])["http"]["defaultHealthyRetryPolicy"] == {
        "minDelayTarget": 20, "maxDelayTarget": 20, "numRetries": 3, "numMaxDelayRetries": 0,
        "numNoDelayRetries": 0, "numMinDelayRetries": 0, "backoffFunction": "linear"}
    assert json.loads(attributes["Policy"])["Statement"][0]["Resource"] == topic_arn()
    assert call(sns, "SetTopicAttributes", {"TopicArn": topic_arn(), "AttributeName": "DisplayName",
                                            "AttributeValue": "Ops"}) == {}
    assert call(sns, "GetTopicAttributes", {"TopicArn": topic_arn()})["Attributes"]["DisplayName"] == "Ops"
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: AttributeName", "SetTopicAttributes",
            {"TopicArn": topic_arn(), "AttributeName": "Colour", "AttributeValue": "red"}, sns)
    refused(NotFound, "NotFound", 404, "Topic does not exist", "GetTopicAttributes",
            {"TopicArn": topic_arn("other")}, sns)


# ---------------------------------------------------------------- the subscription handshake


def test_subscribe_posts_a_signed_subscription_confirmation(sns, delivery, webhook, audit, lmdb_engine):
    call(sns, "CreateTopic", {"Name": "alarms"})
    answer = call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url})
    assert answer == {"SubscriptionArn": "pending confirmation"}
    (listed,) = call(sns, "ListSubscriptions")["Subscriptions"]
    assert listed == {"SubscriptionArn": "PendingConfirmation", "Owner": ACCOUNT, "Protocol": "http",
                      "Endpoint": webhook.url, "TopicArn": topic_arn()}
    assert webhook.requests == []  # nothing is sent until the delivery job runs
    run(delivery)
    (request,) = webhook.requests
    document = json.loads(request["body"])
    assert request["path"] == "/hook"
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert {k: v for k, v in headers.items() if k.startswith("x-amz-sns-")} == {
        "x-amz-sns-message-type": "SubscriptionConfirmation", "x-amz-sns-message-id": document["MessageId"],
        "x-amz-sns-topic-arn": topic_arn()}
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    assert headers["user-agent"] == "Amazon Simple Notification Service Agent"
    assert list(document) == ["Type", "MessageId", "Token", "TopicArn", "Message", "SubscribeURL", "Timestamp",
                              "SignatureVersion", "Signature", "SigningCertURL"]
    assert document["Type"] == "SubscriptionConfirmation"
    assert document["Message"] == (f"You have chosen to subscribe to the topic {topic_arn()}.\n"
                                   "To confirm the subscription, visit the SubscribeURL included in this message.")
    assert document["SubscribeURL"] == (f"{BASE}/?Action=ConfirmSubscription&TopicArn={topic_arn()}"
                                        f"&Token={document['Token']}")
    assert document["Timestamp"] == "2027-01-15T08:00:00.000Z"  # T0, in SNS's format
    assert document["SignatureVersion"] == "1"
    assert document["SigningCertURL"] == f"{BASE}/SimpleNotificationService-shoal.pem"
    verify(sns, document)
    assert len(document["Token"]) == 128 and pending_outbox(lmdb_engine) == []
    sub = call(sns, "ListSubscriptionsByTopic", {"TopicArn": topic_arn()})["Subscriptions"][0]
    assert sub["SubscriptionArn"] == "PendingConfirmation"
    assert audit.records == [{"action": "sns:Deliver", "resource": sub_arn_of(lmdb_engine), "decision": "delivered",
                              "reason": "HTTP 200 OK"}]


def sub_arn_of(engine) -> str:
    with engine.read() as txn:
        (key, _), = list(txn.scan("meta", b"sns/sub/", b"sns/sub0"))
    return bytes(key)[len(b"sns/sub/"):].decode()


def test_a_pending_subscription_gets_no_notifications(sns, delivery, webhook):
    call(sns, "CreateTopic", {"Name": "alarms"})
    call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url})
    assert call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "early"})["MessageId"]
    run(delivery)
    assert [d["Type"] for d in webhook.documents()] == ["SubscriptionConfirmation"]


def test_confirm_by_token_then_publish_delivers_a_signed_notification(sns, delivery, webhook, audit):
    arn, _ = subscribed(sns, delivery, webhook)
    assert arn.startswith(topic_arn() + ":") and len(arn) == len(topic_arn()) + 37
    assert call(sns, "ListSubscriptions")["Subscriptions"][0]["SubscriptionArn"] == arn
    attributes = call(sns, "GetTopicAttributes", {"TopicArn": topic_arn()})["Attributes"]
    assert (attributes["SubscriptionsConfirmed"], attributes["SubscriptionsPending"]) == ("1", "0")
    message_id = call(sns, "Publish", {"TopicArn": topic_arn(), "Subject": "ALARM: \"burst\" in US East",
                                       "Message": '{"AlarmName":"burst","NewStateValue":"ALARM"}'})["MessageId"]
    run(delivery)
    request = webhook.requests[-1]
    document = json.loads(request["body"])
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert {k: v for k, v in headers.items() if k.startswith("x-amz-sns-")} == {
        "x-amz-sns-message-type": "Notification", "x-amz-sns-message-id": message_id,
        "x-amz-sns-topic-arn": topic_arn(), "x-amz-sns-subscription-arn": arn}
    assert headers["content-type"] == "text/plain; charset=UTF-8"
    assert document == {
        "Type": "Notification", "MessageId": message_id, "TopicArn": topic_arn(),
        "Subject": "ALARM: \"burst\" in US East", "Message": '{"AlarmName":"burst","NewStateValue":"ALARM"}',
        "Timestamp": "2027-01-15T08:00:00.000Z", "SignatureVersion": "1", "Signature": document["Signature"],
        "SigningCertURL": f"{BASE}/SimpleNotificationService-shoal.pem",
        "UnsubscribeURL": f"{BASE}/?Action=Unsubscribe&SubscriptionArn={arn}"}
    assert list(document) == ["Type", "MessageId", "TopicArn", "Subject", "Message", "Timestamp",
                              "SignatureVersion", "Signature", "SigningCertURL", "UnsubscribeURL"]
    verify(sns, document)
    tampered = dict(document, Message="something else")
    with pytest.raises(Exception):
        verify(sns, tampered)
    assert audit.decisions == ["delivered", "delivered"] and audit.records[-1]["resource"] == arn


def test_a_notification_without_subject_leaves_it_out_of_body_and_signature(sns, delivery, webhook):
    subscribed(sns, delivery, webhook)
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "plain"})
    run(delivery)
    document = webhook.documents()[-1]
    assert "Subject" not in document and document["Message"] == "plain"
    verify(sns, document)


def test_confirm_by_the_subscribe_url_parameters(sns, delivery, webhook):
    call(sns, "CreateTopic", {"Name": "alarms"})
    call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "https", "Endpoint": "https://example.invalid/x"})
    call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url})
    run(delivery)
    (document,) = [d for d in webhook.documents()]
    url = urlsplit(document["SubscribeURL"])
    assert f"{url.scheme}://{url.netloc}" == BASE and url.path == "/"
    params = dict(parse_qsl(url.query))
    assert params.pop("Action") == "ConfirmSubscription"
    assert sns.unauthenticated("ConfirmSubscription", params)
    arn = call(sns, "ConfirmSubscription", params)["SubscriptionArn"]
    assert call(sns, "ConfirmSubscription", params) == {"SubscriptionArn": arn}  # idempotent
    listed = {s["Endpoint"]: s["SubscriptionArn"] for s in call(sns, "ListSubscriptions")["Subscriptions"]}
    assert listed == {webhook.url: arn, "https://example.invalid/x": "PendingConfirmation"}


def test_subscribe_again_is_idempotent_and_resends_a_pending_confirmation(sns, delivery, webhook):
    call(sns, "CreateTopic", {"Name": "alarms"})
    data = {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url}
    call(sns, "Subscribe", data)
    answer = call(sns, "Subscribe", dict(data, ReturnSubscriptionArn="true"))
    run(delivery)
    first, second = webhook.documents()
    assert first["Token"] == second["Token"] and first["MessageId"] != second["MessageId"]
    arn = call(sns, "ConfirmSubscription", {"TopicArn": topic_arn(), "Token": first["Token"]})["SubscriptionArn"]
    assert answer == {"SubscriptionArn": arn}
    assert call(sns, "Subscribe", data) == {"SubscriptionArn": arn}  # confirmed: the ARN, nothing sent
    run(delivery)
    assert len(webhook.requests) == 2 and len(call(sns, "ListSubscriptions")["Subscriptions"]) == 1
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: Attributes Reason: Subscription already exists with different attributes",
            "Subscribe", dict(data, Attributes={"RawMessageDelivery": "true"}), sns)


def test_raw_message_delivery_posts_the_message_alone(sns, delivery, webhook):
    arn, _ = subscribed(sns, delivery, webhook, attributes={"RawMessageDelivery": "true"})
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "just this"})
    run(delivery)
    request = webhook.requests[-1]
    assert request["body"] == "just this"
    assert request["headers"]["x-amz-sns-rawdelivery"] == "true"
    assert request["headers"]["x-amz-sns-subscription-arn"] == arn


def test_signature_version_2_signs_with_sha256(sns, delivery, webhook):
    subscribed(sns, delivery, webhook)
    call(sns, "SetTopicAttributes", {"TopicArn": topic_arn(), "AttributeName": "SignatureVersion",
                                     "AttributeValue": "2"})
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "v2"})
    run(delivery)
    document = webhook.documents()[-1]
    assert document["SignatureVersion"] == "2"
    verify(sns, document, hashes.SHA256)


def test_message_structure_json_sends_the_protocol_entry_or_the_default(sns, delivery, webhook):
    subscribed(sns, delivery, webhook)
    call(sns, "Publish", {"TopicArn": topic_arn(), "MessageStructure": "json",
                          "Message": json.dumps({"default": "for all", "http": "for http"})})
    call(sns, "Publish", {"TopicArn": topic_arn(), "MessageStructure": "json",
                          "Message": json.dumps({"default": "for all", "email": "for email"})})
    run(delivery)
    assert [d["Message"] for d in webhook.documents()[1:]] == ["for http", "for all"]


def test_message_attributes_travel_in_the_notification_unsigned(sns, delivery, webhook):
    subscribed(sns, delivery, webhook)
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "m", "MessageAttributes": {
        "severity": {"DataType": "String", "StringValue": "high"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}}})
    run(delivery)
    document = webhook.documents()[-1]
    assert document["MessageAttributes"] == {"severity": {"Type": "String", "Value": "high"},
                                             "blob": {"Type": "Binary", "Value": "AAE="}}
    verify(sns, document)


def test_the_signing_key_is_kept_in_the_data_directory(lmdb_engine, clock, tmp_path):
    pem = Sns(lmdb_engine, clock).certificate_pem()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert Sns(lmdb_engine, clock).certificate_pem() == pem
    other = LmdbEngine(tmp_path / "other", sync=False)
    try:
        assert Sns(other, clock).certificate_pem() != pem  # each data directory has its own key
    finally:
        other.close()


# ---------------------------------------------------------------- publishing inside a caller's transaction


def test_publish_in_the_callers_transaction_commits_or_aborts_with_it(sns, delivery, webhook, lmdb_engine):
    subscribed(sns, delivery, webhook)
    with pytest.raises(RuntimeError):
        with lmdb_engine.write() as txn:
            assert sns.publish(txn, REGION, topic_arn(), "rolled back", "s")
            raise RuntimeError("the alarm's change failed")
    assert pending_outbox(lmdb_engine) == []
    with lmdb_engine.write() as txn:
        message_id = sns.publish(txn, REGION, topic_arn(), "committed", "ALARM")
        assert sns.publish(txn, REGION, topic_arn("missing"), "x") is None
        assert sns.publish(txn, "eu-west-1", topic_arn(), "x") is None
    run(delivery)
    document = webhook.documents()[-1]
    assert (document["MessageId"], document["Message"], document["Subject"]) == (message_id, "committed", "ALARM")
    assert len(webhook.requests) == 2


# ---------------------------------------------------------------- retries


def test_retry_policy_phases():
    default = RetryPolicy()
    assert [default.delay(n) for n in range(1, 6)] == [20, 20, 20, None, None]
    custom = RetryPolicy.from_json(json.dumps({"healthyRetryPolicy": {
        "numRetries": 7, "numNoDelayRetries": 1, "minDelayTarget": 2, "numMinDelayRetries": 1,
        "maxDelayTarget": 10, "numMaxDelayRetries": 1, "backoffFunction": "linear"}}))
    assert [custom.delay(n) for n in range(1, 9)] == [0, 2, 4, 6, 8, 10, 10, None]
    topic = RetryPolicy.from_json(json.dumps({"http": {"defaultHealthyRetryPolicy": {"numRetries": 1}}}))
    assert (topic.delay(1), topic.delay(2)) == (20, None)
    with pytest.raises(ValueError):
        RetryPolicy.from_json(json.dumps({"healthyRetryPolicy": {"minDelayTarget": 30, "maxDelayTarget": 20}}))


def test_a_failing_endpoint_is_retried_with_back_off_then_delivered(sns, delivery, webhook, audit, clock,
                                                                   lmdb_engine):
    arn, _ = subscribed(sns, delivery, webhook)
    webhook.answers = [500, 503]
    message_id = call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "retry me"})["MessageId"]
    run(delivery)
    ((due, record),) = pending_outbox(lmdb_engine)
    assert due == T0 + 20 and record["attempts"] == 1
    clock.now += 19.9
    run(delivery)
    assert len(webhook.requests) == 2  # the confirmation and the first attempt: the retry is not due yet
    clock.now += 0.1
    run(delivery)
    ((due, record),) = pending_outbox(lmdb_engine)
    assert due == T0 + 40 and record["attempts"] == 2
    clock.now += 20
    run(delivery)
    assert pending_outbox(lmdb_engine) == []
    notifications = webhook.documents()[1:]
    assert [d["MessageId"] for d in notifications] == [message_id] * 3
    assert len({d["Timestamp"] for d in notifications}) == 1  # the same message each time
    assert [(r["decision"], r["reason"]) for r in audit.records[1:]] == [
        ("failed", "HTTP 500 Internal Server Error; retry 1 of 3 in 20 s"),
        ("failed", "HTTP 503 Service Unavailable; retry 2 of 3 in 20 s"),
        ("delivered", "HTTP 200 OK")]
    assert {r["resource"] for r in audit.records[1:]} == {arn}


def test_on_an_event_loop_the_threads_wake_up_records_the_outcome(sns, delivery, webhook, clock, lmdb_engine):
    subscribed(sns, delivery, webhook)
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "from the loop"})
    audit = Audit()
    job = Delivery(lmdb_engine, clock, audit, lease_s=60.0, timeout_s=2.0)

    async def serve() -> None:
        assert job() is False  # claims and hands over; the POST happens on the thread
        for _ in range(500):  # no further rounds: the thread's wake-up records the outcome
            await asyncio.sleep(0.01)
            if audit.records:
                return

    try:
        asyncio.run(serve())
    finally:
        job.close()
    assert audit.decisions == ["delivered"] and pending_outbox(lmdb_engine) == []
    assert webhook.documents()[-1]["Message"] == "from the loop"


def test_a_dead_endpoint_gives_up_after_the_policys_four_attempts(sns, delivery, webhook, audit, clock,
                                                                  lmdb_engine):
    arn, _ = subscribed(sns, delivery, webhook)
    webhook.close()  # nothing listens there any more
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "lost"})
    for _ in range(3):
        run(delivery)
        clock.now += 20
    run(delivery)
    assert pending_outbox(lmdb_engine) == []
    attempts = audit.records[1:]
    assert [r["decision"] for r in attempts] == ["failed", "failed", "failed", "gave up"]
    assert all(r["resource"] == arn and "ConnectionRefusedError" in r["reason"] for r in attempts)
    assert attempts[-1]["reason"].endswith("; no retry left after 4 attempts")
    clock.now += 3600
    run(delivery)
    assert len(audit.records) == 5


def test_a_4xx_answer_is_not_retried(sns, delivery, webhook, audit, clock, lmdb_engine):
    subscribed(sns, delivery, webhook)
    webhook.answers = [403]
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "refused"})
    run(delivery)
    assert pending_outbox(lmdb_engine) == []
    assert (audit.records[-1]["decision"], audit.records[-1]["reason"]) == \
        ("gave up", "HTTP 403 Forbidden: SNS does not retry a 4xx answer")


def test_a_claim_held_by_another_worker_waits_for_its_lease(sns, webhook, clock, lmdb_engine, audit):
    first = Delivery(lmdb_engine, clock, audit, lease_s=60.0, timeout_s=2.0)
    second = Delivery(lmdb_engine, clock, audit, lease_s=60.0, timeout_s=2.0)
    try:
        subscribed(sns, first, webhook)
        call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "once"})
        first()  # claims and POSTs, its outcome not yet recorded
        assert first.wait_idle()
        second()
        assert second.in_flight == 0  # the claim is first's
        clock.now += 61  # first stalls past its lease: second sends it again (at least once)
        run(second)
        first()  # too late: its outcome is dropped, not recorded twice
        assert [d["Message"] for d in webhook.documents()[1:]] == ["once", "once"]
        assert audit.decisions == ["delivered", "delivered"] and pending_outbox(lmdb_engine) == []
    finally:
        first.close()
        second.close()


def _deliver_in_child(path: str, clock_at: float, result, start) -> None:
    """A worker process: its own engine over the shared data directory, and
    delivery rounds until the outbox is empty; puts its audit decisions."""
    engine = LmdbEngine(path, sync=False)
    outcomes = []
    job = Delivery(engine, lambda: clock_at, lambda **r: outcomes.append(r["decision"]), lease_s=60.0,
                   timeout_s=5.0)
    try:
        start.wait(30)  # both workers begin together
        for _ in range(500):
            job()
            if job.in_flight:
                assert job.wait_idle()
                continue
            with engine.read() as txn:
                if not list(outbox(txn)):
                    break
        result.put(outcomes)
    except BaseException as exc:
        result.put(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        job.close()
        engine.close()


def test_two_worker_processes_over_one_data_directory_deliver_each_message_once(sns, delivery, webhook,
                                                                               lmdb_engine, tmp_path):
    subscribed(sns, delivery, webhook)
    delivery.close()
    ids = {call(sns, "Publish", {"TopicArn": topic_arn(), "Message": f"m{i}"})["MessageId"] for i in range(40)}
    context = multiprocessing.get_context("spawn")  # a forked child inherits the open environment
    result, start = context.Queue(), context.Barrier(2)
    workers = [context.Process(target=_deliver_in_child, args=(str(tmp_path / "db"), T0, result, start))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    outcomes = [result.get(timeout=60) for _ in workers]
    assert all(isinstance(o, list) for o in outcomes), outcomes
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    received = [d["MessageId"] for d in webhook.documents()[1:]]
    assert sorted(received) == sorted(ids)  # every message, none twice
    assert sum(len(o) for o in outcomes) == 40 and {d for o in outcomes for d in o} == {"delivered"}
    assert pending_outbox(lmdb_engine) == []


# ---------------------------------------------------------------- stopping deliveries


def test_unsubscribe_stops_deliveries_even_those_queued(sns, delivery, webhook, audit, lmdb_engine):
    arn, _ = subscribed(sns, delivery, webhook)
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "queued before"})
    assert sns.unauthenticated("Unsubscribe", {"SubscriptionArn": arn})
    assert call(sns, "Unsubscribe", {"SubscriptionArn": arn}) == {}
    assert call(sns, "Unsubscribe", {"SubscriptionArn": arn}) == {}  # idempotent
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "after"})
    run(delivery)
    assert len(webhook.requests) == 1  # the confirmation only
    assert (audit.records[-1]["decision"], audit.records[-1]["reason"]) == \
        ("gave up", "the subscription no longer exists")
    assert pending_outbox(lmdb_engine) == [] and call(sns, "ListSubscriptions") == {"Subscriptions": []}


def test_authenticate_on_unsubscribe_makes_unsubscribe_need_a_signature(sns, delivery, webhook):
    call(sns, "CreateTopic", {"Name": "alarms"})
    call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url})
    run(delivery)
    token = webhook.documents()[0]["Token"]
    arn = call(sns, "ConfirmSubscription", {"TopicArn": topic_arn(), "Token": token,
                                            "AuthenticateOnUnsubscribe": "true"})["SubscriptionArn"]
    assert not sns.unauthenticated("Unsubscribe", {"SubscriptionArn": arn})
    assert not sns.unauthenticated("Publish", {"TopicArn": topic_arn(), "Message": "m"})


def test_delete_topic_removes_its_subscriptions_and_stops_deliveries(sns, delivery, webhook, audit, lmdb_engine):
    arn, confirmation = subscribed(sns, delivery, webhook)
    subscribed(sns, delivery, webhook, name="other")
    call(sns, "Publish", {"TopicArn": topic_arn(), "Message": "queued before"})
    assert call(sns, "DeleteTopic", {"TopicArn": topic_arn()}) == {}
    assert call(sns, "DeleteTopic", {"TopicArn": topic_arn()}) == {}  # idempotent
    run(delivery)
    assert [d["Type"] for d in webhook.documents()] == ["SubscriptionConfirmation"] * 2
    assert audit.records[-1] == {"action": "sns:Deliver", "resource": arn, "decision": "gave up",
                                 "reason": "the subscription no longer exists"}
    assert [s["TopicArn"] for s in call(sns, "ListSubscriptions")["Subscriptions"]] == [topic_arn("other")]
    assert call(sns, "ListTopics") == {"Topics": [{"TopicArn": topic_arn("other")}]}
    refused(NotFound, "NotFound", 404, "Topic does not exist", "Publish",
            {"TopicArn": topic_arn(), "Message": "m"}, sns)
    refused(NotFound, "NotFound", 404, "Topic does not exist", "ListSubscriptionsByTopic",
            {"TopicArn": topic_arn()}, sns)
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Token", "ConfirmSubscription",
            {"TopicArn": topic_arn(), "Token": confirmation["Token"]}, sns)


# ---------------------------------------------------------------- paging


def test_list_topics_pages_by_100(sns):
    names = sorted(f"t{i:03d}" for i in range(250))
    for name in names:
        call(sns, "CreateTopic", {"Name": name})
    pages, token = [], None
    while True:
        page = call(sns, "ListTopics", {"NextToken": token} if token else {})
        pages.append([t["TopicArn"].rsplit(":", 1)[1] for t in page["Topics"]])
        token = page.get("NextToken")
        if token is None:
            break
    assert [len(p) for p in pages] == [100, 100, 50]
    assert sum(pages, []) == names
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: NextToken", "ListTopics",
            {"NextToken": "not a token!"}, sns)


def test_list_subscriptions_pages_by_100(sns):
    call(sns, "CreateTopic", {"Name": "a"})
    call(sns, "CreateTopic", {"Name": "b"})
    for i in range(120):
        call(sns, "Subscribe", {"TopicArn": topic_arn("a" if i % 2 else "b"), "Protocol": "https",
                                "Endpoint": f"https://example.invalid/{i}"})
    first = call(sns, "ListSubscriptions")
    second = call(sns, "ListSubscriptions", {"NextToken": first["NextToken"]})
    assert (len(first["Subscriptions"]), len(second["Subscriptions"]), "NextToken" in second) == (100, 20, False)
    endpoints = {s["Endpoint"] for s in first["Subscriptions"] + second["Subscriptions"]}
    assert endpoints == {f"https://example.invalid/{i}" for i in range(120)}
    by_topic = call(sns, "ListSubscriptionsByTopic", {"TopicArn": topic_arn("a")})
    assert len(by_topic["Subscriptions"]) == 60 and "NextToken" not in by_topic
    assert {s["TopicArn"] for s in by_topic["Subscriptions"]} == {topic_arn("a")}
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: NextToken", "ListSubscriptionsByTopic",
            {"TopicArn": topic_arn("a"), "NextToken": first["NextToken"]}, sns)  # a token of b's subscriptions


# ---------------------------------------------------------------- errors


def test_operations_known_and_served(sns):
    assert sns.known("CreatePlatformApplication") and not sns.known("CreateQueue")
    assert OPERATIONS == {"CreateTopic", "DeleteTopic", "ListTopics", "GetTopicAttributes", "SetTopicAttributes",
                          "Subscribe", "ConfirmSubscription", "Unsubscribe", "ListSubscriptions",
                          "ListSubscriptionsByTopic", "Publish"}
    refused(InvalidAction, "InvalidAction", 400, "Shoal does not implement the SNS operation PublishBatch yet",
            "PublishBatch", {}, sns)
    refused(InvalidAction, "InvalidAction", 400, "Could not find operation CreateQueue for version 2010-03-31",
            "CreateQueue", {}, sns)


def test_missing_required_parameters_are_validation_errors(sns):
    refused(ValidationError, "ValidationError", 400, "1 validation error detected: Value null at 'name' failed to "
            "satisfy constraint: Member must not be null", "CreateTopic", {}, sns)
    refused(ValidationError, "ValidationError", 400, "2 validation errors detected: Value null at 'topicArn' "
            "failed to satisfy constraint: Member must not be null; Value null at 'protocol' failed to satisfy "
            "constraint: Member must not be null", "Subscribe", {"Endpoint": "http://x"}, sns)


@pytest.mark.parametrize("data, message", [
    ({"Protocol": "email", "Endpoint": "ops@example.com"},
     "Invalid parameter: Amazon SNS does not support this protocol string: email"),
    ({"Protocol": "carrier-pigeon", "Endpoint": "http://x"},
     "Invalid parameter: Amazon SNS does not support this protocol string: carrier-pigeon"),
    ({"Protocol": "https", "Endpoint": "http://example.com/"},
     "Invalid parameter: Endpoint must match the specified protocol"),
    ({"Protocol": "http"}, "Invalid parameter: Endpoint must match the specified protocol"),
    ({"Protocol": "http", "Endpoint": "http://x", "Attributes": {"FilterPolicy": "{}"}},
     "Invalid parameter: Attributes Reason: Shoal does not support the subscription attribute FilterPolicy"),
    ({"Protocol": "http", "Endpoint": "http://x", "Attributes": {"Colour": "red"}},
     "Invalid parameter: Attributes Reason: AttributeName"),
    ({"Protocol": "http", "Endpoint": "http://x", "Attributes": {"RawMessageDelivery": "maybe"}},
     "Invalid parameter: Attributes Reason: RawMessageDelivery: Invalid value [maybe]. Must be true or false."),
])
def test_subscribe_refusals(sns, data, message):
    call(sns, "CreateTopic", {"Name": "alarms"})
    refused(InvalidParameter, "InvalidParameter", 400, message, "Subscribe", dict(data, TopicArn=topic_arn()), sns)


def test_subscribe_to_a_missing_topic(sns):
    refused(NotFound, "NotFound", 404, "Topic does not exist", "Subscribe",
            {"TopicArn": topic_arn("missing"), "Protocol": "http", "Endpoint": "http://x"}, sns)


@pytest.mark.parametrize("data, message", [
    ({"Message": "m", "Subject": ""}, "Invalid parameter: Subject"),
    ({"Message": "m", "Subject": "two\nlines"}, "Invalid parameter: Subject"),
    ({"Message": "m", "Subject": "x" * 100}, "Invalid parameter: Subject"),
    ({"Message": "m", "Subject": " leading space"}, "Invalid parameter: Subject"),
    ({"Message": ""}, "Invalid parameter: Empty message"),
    ({"Message": "x" * 262_145}, "Invalid parameter: Message too long"),
    ({"Message": "m", "TopicArn": None}, "Invalid parameter: TopicArn or TargetArn Reason: no value for required "
                                         "parameter"),
    ({"Message": "m", "TopicArn": "alarms"},
     "Invalid parameter: TopicArn Reason: An ARN must have at least 6 elements, not 1"),
    ({"Message": "m", "TopicArn": f"arn:aws:sns:eu-west-1:{ACCOUNT}:alarms"}, "Invalid parameter: TopicArn"),
    ({"Message": "m", "TopicArn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:alarms"}, "Invalid parameter: TopicArn"),
    ({"Message": "m", "TopicArn": f"arn:aws:sns:{REGION}:{ACCOUNT}:alarms:0d7c1a4e-93a4-4b43-9a2f-2d1c6a2d0a55"},
     "Invalid parameter: Topic Name"),
    ({"Message": "not json", "MessageStructure": "json"},
     "Invalid parameter: Message Structure - JSON message body failed to parse"),
    ({"Message": '{"http": "x"}', "MessageStructure": "json"},
     "Invalid parameter: Message Structure - No default entry in JSON message body"),
])
def test_publish_refusals(sns, data, message):
    call(sns, "CreateTopic", {"Name": "alarms"})
    data = {"TopicArn": topic_arn(), **data}
    refused(InvalidParameter, "InvalidParameter", 400, message, "Publish", data, sns)


def test_publish_by_target_arn_and_a_message_of_the_largest_size(sns):
    call(sns, "CreateTopic", {"Name": "alarms"})
    answer = call(sns, "Publish", {"TargetArn": topic_arn(), "Message": "é" * 131_072, "Subject": "Size: max!"})
    assert len(answer["MessageId"]) == 36


def test_confirm_and_unsubscribe_refusals(sns, delivery, webhook, clock):
    call(sns, "CreateTopic", {"Name": "alarms"})
    call(sns, "CreateTopic", {"Name": "other"})
    call(sns, "Subscribe", {"TopicArn": topic_arn(), "Protocol": "http", "Endpoint": webhook.url})
    run(delivery)
    token = webhook.documents()[0]["Token"]
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Token", "ConfirmSubscription",
            {"TopicArn": topic_arn(), "Token": "0" * 128}, sns)
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Topic", "ConfirmSubscription",
            {"TopicArn": topic_arn("other"), "Token": token}, sns)
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Topic", "ConfirmSubscription",
            {"TopicArn": "alarms", "Token": token}, sns)
    clock.now += 3 * 86400  # a confirmation link lasts three days
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Token", "ConfirmSubscription",
            {"TopicArn": topic_arn(), "Token": token}, sns)
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: SubscriptionArn Reason: An ARN must have at least 6 elements, not 2",
            "Unsubscribe", {"SubscriptionArn": "arn:x"}, sns)
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: SubscriptionId", "Unsubscribe",
            {"SubscriptionArn": topic_arn()}, sns)


def test_create_topic_attribute_refusals(sns):
    refused(InvalidParameter, "InvalidParameter", 400, "Invalid parameter: Attributes Reason: AttributeName",
            "CreateTopic", {"Name": "a", "Attributes": {"Colour": "red"}}, sns)
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: Attributes Reason: Shoal does not offer FIFO topics",
            "CreateTopic", {"Name": "a.fifo", "Attributes": {"FifoTopic": "true"}}, sns)
    refused(InvalidParameter, "InvalidParameter", 400,
            "Invalid parameter: Attributes Reason: DeliveryPolicy: numRetries must be between 0 and 100",
            "CreateTopic", {"Name": "a", "Attributes": {"DeliveryPolicy": json.dumps(
                {"http": {"defaultHealthyRetryPolicy": {"numRetries": 101}}})}}, sns)
    assert call(sns, "ListTopics") == {"Topics": []}
