"""Message signatures: SNS's SignatureVersion 1 (SHA1withRSA, the default) and 2 (SHA256withRSA).

Receivers verify what SNS POSTs by rebuilding a canonical string from the
message's fields and checking the signature against the certificate at
``SigningCertURL``.  The string is each signed field's name and value on lines
of their own (``Name\\nvalue\\n``), in this order:

* Notification: Message, MessageId, Subject (only when the message has one),
  Timestamp, TopicArn, Type;
* SubscriptionConfirmation and UnsubscribeConfirmation: Message, MessageId,
  SubscribeURL, Timestamp, Token, TopicArn, Type.

The key is a 2048-bit RSA key with a self-signed certificate, made once and
kept in storage (``sns/signing``), so every worker process and every restart
signs with the same key and a receiver that pinned the certificate keeps
trusting it.  Shoal serves the certificate (``Sns.certificate_pem``); it is
not Amazon's, so receivers that insist on an ``sns.<region>.amazonaws.com``
certificate URL must be told to trust Shoal's.
"""

from __future__ import annotations

import base64
import datetime

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from shoal.sns.store import SIGNING_KEY

SIGNATURE_VERSION = "1"
CERTIFICATE_PATH = "/SimpleNotificationService-shoal.pem"

_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}


def string_to_sign(document: dict) -> bytes:
    """The canonical string of a message document, as SNS signs it."""
    lines = []
    for name in _SIGNED_FIELDS[document["Type"]]:
        if name in document:  # only Subject is ever absent
            lines.append(f"{name}\n{document[name]}\n")
    return "".join(lines).encode("utf-8")


def new_key_pair(now: float) -> dict:
    """A fresh RSA key and a self-signed certificate for it, as PEM text."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoal"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "sns.shoal.local")])
    start = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) - datetime.timedelta(days=1)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(start)
                   .not_valid_after(start + datetime.timedelta(days=3650))
                   .sign(key, hashes.SHA256()))
    return {
        "key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()).decode(),
        "certificate": certificate.public_bytes(serialization.Encoding.PEM).decode(),
    }


class Signer:
    """Signs with the key in storage; the parsed key is cached per process
    and re-parsed only when the stored one differs (another process made the
    first key while this one was making its own, or a restore replaced it)."""

    def __init__(self) -> None:
        self._pem: str | None = None
        self._key = None

    def key_pair(self, txn, now: float) -> dict:
        """The stored key pair, made and stored in ``txn`` (a write
        transaction) if there is none yet."""
        raw = txn.get("meta", SIGNING_KEY)
        if raw is not None:
            return orjson.loads(bytes(raw))
        pair = new_key_pair(now)
        txn.put("meta", SIGNING_KEY, orjson.dumps(pair))
        return pair

    def sign(self, txn, document: dict, now: float, version: str = SIGNATURE_VERSION) -> str:
        """The base64 signature of ``document``'s canonical string: SHA1withRSA
        for SignatureVersion 1, SHA256withRSA for 2 (a topic attribute)."""
        pem = self.key_pair(txn, now)["key"]
        if pem != self._pem:
            self._key = serialization.load_pem_private_key(pem.encode(), password=None)
            self._pem = pem
        digest = hashes.SHA256() if version == "2" else hashes.SHA1()
        signature = self._key.sign(string_to_sign(document), padding.PKCS1v15(), digest)
        return base64.b64encode(signature).decode()
