"""HTTPS with --tls-cert/--tls-key or --tls-self-signed: boto3 over TLS, TLS 1.2 minimum; shoal tls make-cert."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import sys
import warnings

import boto3
import botocore.config
import botocore.exceptions
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shoal.tls import LOCAL_HOSTS, certificate_hosts
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
    cert, _key = self_signed(tmp_path)
    out = subprocess.run([sys.executable, "-m", "shoal", "serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                          "--tls-cert", str(cert)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "--tls-cert and --tls-key must be given together" in out.stderr


# -- shoal serve --tls-self-signed, and shoal tls make-cert ---------------------

def _shoal(*args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    return subprocess.run([sys.executable, "-m", "shoal", *args], capture_output=True, text=True, timeout=30,
                          env=env, cwd=cwd)


def _client(url, verify):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", verify=verify,
                        config=botocore.config.Config(retries={"max_attempts": 1}))


def _printed_certificate(banner: str) -> str:
    line = next(line for line in banner.splitlines() if "Self-signed TLS certificate" in line)
    path = line.split("AWS_CA_BUNDLE=", 1)[1].rstrip(")")
    assert os.path.isabs(path) and f": {path} " in line
    return path


def test_self_signed_server_answers_boto3_that_trusts_the_printed_certificate(tmp_path):
    data = tmp_path / "data"
    server = ShoalProcess(data, "--tls-self-signed").start()
    try:
        assert server.url.startswith("https://127.0.0.1:")
        cert = _printed_certificate(server.banner)
        assert cert == str(data / "tls" / "cert.pem")
        assert os.stat(data / "tls" / "key.pem").st_mode & 0o777 == 0o600
        for host in ("127.0.0.1", "localhost"):
            ddb = _client(server.url.replace("127.0.0.1", host), verify=cert)
            ddb.list_tables()
        ddb.create_table(TableName="self_signed_t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                         BillingMode="PAY_PER_REQUEST")
        ddb.put_item(TableName="self_signed_t", Item={"pk": {"S": "a"}})

        # Without the certificate, verification fails; plain HTTP gets no answer.
        with pytest.raises(botocore.exceptions.SSLError):
            _client(server.url, verify=True).list_tables()
        with pytest.raises((botocore.exceptions.ConnectionClosedError,
                            botocore.exceptions.EndpointConnectionError)):
            _client(server.url.replace("https://", "http://"), verify=cert).list_tables()
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert b"HTTP/1.1" not in raw.recv(4096)  # a TLS alert or nothing, then closed
        assert ddb.get_item(TableName="self_signed_t", Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    finally:
        assert server.stop() == 0

    # Started again, it serves the same certificate, so clients need no change.
    before = (data / "tls" / "cert.pem").read_bytes()
    server = ShoalProcess(data, "--tls-self-signed").start()
    try:
        assert _printed_certificate(server.banner) == cert
        assert (data / "tls" / "cert.pem").read_bytes() == before
        _client(server.url, verify=cert).get_item(TableName="self_signed_t", Key={"pk": {"S": "a"}})
    finally:
        assert server.stop() == 0


def test_self_signed_with_a_certificate_is_refused(tmp_path):
    cert, key = self_signed(tmp_path)
    for extra in (["--tls-cert", str(cert), "--tls-key", str(key)], ["--tls-cert", str(cert)]):
        out = _shoal("serve", "--port", "0", "--data-dir", str(tmp_path / "d"), "--tls-self-signed", *extra)
        assert out.returncode == 2
        assert out.stderr.startswith("shoal: --tls-self-signed makes its own certificate: give either it or "
                                     "--tls-cert and --tls-key, not both")
    assert not (tmp_path / "d").exists()


def _handshake(server_side: ssl.SSLContext, client_side: ssl.SSLContext, name: str) -> None:
    """A TLS handshake over a socket pair, the client verifying the server as ``name``."""
    import threading

    client_end, server_end = socket.socketpair()

    def serve() -> None:
        try:
            with server_side.wrap_socket(server_end, server_side=True):
                pass
        except (ssl.SSLError, OSError):
            pass  # the client refused the certificate

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_side.wrap_socket(client_end, server_hostname=name):
            pass
    finally:
        client_end.close()
        thread.join(10)


def test_make_cert_writes_files_that_ssl_loads_for_the_hosts_asked(tmp_path):
    out = _shoal("tls", "make-cert", "--out-dir", str(tmp_path / "certs"), "--host", "db.local", "10.1.2.3",
                 "--host", "::1")
    assert out.returncode == 0, out.stderr
    cert, key = tmp_path / "certs" / "cert.pem", tmp_path / "certs" / "key.pem"
    assert f"AWS_CA_BUNDLE={cert}" in out.stdout and f"--tls-cert {cert} --tls-key {key}" in out.stdout
    assert os.stat(key).st_mode & 0o777 == 0o600
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(cert, key)
    client_side = ssl.create_default_context(cafile=str(cert))
    for name in ("db.local", "10.1.2.3", "::1"):
        _handshake(server_side, client_side, name)
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _handshake(server_side, client_side, "localhost")
    assert certificate_hosts(x509.load_pem_x509_certificate(cert.read_bytes())) == ["db.local", "10.1.2.3", "::1"]

    again = _shoal("tls", "make-cert", "--out-dir", str(tmp_path / "certs"))
    assert again.returncode == 1 and "already exist" in again.stderr and "--force" in again.stderr
    assert _shoal("tls", "make-cert", "--out-dir", str(tmp_path / "certs"), "--force").returncode == 0
    replaced = x509.load_pem_x509_certificate(cert.read_bytes())
    assert certificate_hosts(replaced) == list(LOCAL_HOSTS)


def test_make_cert_defaults_to_the_current_directory(tmp_path):
    assert _shoal("tls", "make-cert", cwd=tmp_path).returncode == 0
    assert (tmp_path / "cert.pem").exists() and (tmp_path / "key.pem").exists()


def test_unusable_tls_files_stop_startup_with_one_line(tmp_path):
    cert, key = self_signed(tmp_path)
    (tmp_path / "other").mkdir()
    _other_cert, other_key = self_signed(tmp_path / "other")
    junk = tmp_path / "junk.pem"
    junk.write_text("junk\n")
    locked_key = tmp_path / "locked.pem"
    locked_key.write_bytes(serialization.load_pem_private_key(key.read_bytes(), None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    cases = [
        (tmp_path / "missing.pem", key, "cannot read the TLS certificate file"),
        (cert, tmp_path / "missing.pem", "cannot read the TLS private key file"),
        (junk, key, "holds no PEM certificate"),
        (cert, junk, "holds no PEM private key"),
        (cert, other_key, "is not the key of the certificate"),
        (cert, locked_key, "is protected by a passphrase"),
    ]
    for cert_file, key_file, words in cases:
        out = _shoal("serve", "--port", "0", "--data-dir", str(tmp_path / "d"),
                     "--tls-cert", str(cert_file), "--tls-key", str(key_file))
        assert out.returncode == 1, out.stderr
        assert out.stderr.startswith("shoal: ") and words in out.stderr and out.stderr.count("\n") == 1
        assert "Traceback" not in out.stderr
