"""HTTPS with --tls-cert/--tls-key: boto3 over TLS, TLS 1.2 minimum."""

from __future__ import annotations

import datetime
import ssl
import socket
import warnings

import boto3
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.shoal_process import ShoalProcess


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = self_signed(tmp)
    server = ShoalProcess(tmp / "data", "--tls-cert", str(cert), "--tls-key", str(key)).start()
    yield server, cert
    server.stop()


def test_boto3_over_https(tls_server):
    server, cert = tls_server
    assert server.url.startswith("https://")
    ddb = boto3.client("dynamodb", endpoint_url=server.url.replace("127.0.0.1", "localhost"),
                       region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
                       verify=str(cert))
    ddb.create_table(TableName="secure_t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    ddb.put_item(TableName="secure_t", Item={"pk": {"S": "a"}})
    assert ddb.get_item(TableName="secure_t", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}

    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # the point is to offer a deprecated protocol
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            with old.wrap_socket(raw, server_hostname="localhost"):
                pass


def test_mismatched_tls_options_stop_startup(tmp_path):
    import subprocess
    import sys

    cert, _key = self_signed(tmp_path)
    out = subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                          "--tls-cert", str(cert)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--tls-cert and --tls-key must be given together" in out.stderr
