"""TLS for ``shoal serve``: the server's SSL context, and self-signed certificates for local use.

``server_context(cert, key)`` loads a certificate (chain) and its key for
HTTPS, TLS 1.2 and newer, and words every way that can fail (a file missing,
not PEM, a key protected by a passphrase, a key of another certificate) as a
``TlsError`` whose message the CLI prints as it is.

``write_certificate(out_dir, hosts)`` makes a self-signed certificate naming
``hosts`` (DNS names and IP addresses) and writes ``cert.pem`` and ``key.pem``
(mode 0600); ``shoal tls make-cert`` and ``shoal serve --tls-self-signed``
use it.  A self-signed certificate is its own trust anchor: a client trusts
it by being given the certificate file (``AWS_CA_BUNDLE``, boto3's
``verify=``), which is all local development and tests need, without a
certificate authority.  ``self_signed_in(data_dir, hosts)`` keeps one in
``<data dir>/tls/`` and reuses it while it names the hosts and has more than
``RENEW_BEFORE`` left, so that clients configured once keep working across
restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from typing import TYPE_CHECKING

from shoal.storage.files import write_atomically

# cryptography is imported where a certificate is made or examined: every
# ``shoal`` command builds the ``tls`` parser, and a plain ``serve`` has no
# certificate at all.
if TYPE_CHECKING:
    from cryptography import x509

#: The names a local client reaches the default ``--host`` by.
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
CERT_NAME = "cert.pem"
KEY_NAME = "key.pem"
#: The directory of ``--tls-self-signed``'s certificate inside the data directory.
DATA_DIR_SUBDIR = "tls"
VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=30)


class TlsError(Exception):
    """A certificate or key cannot be used or written; the message is for the CLI."""


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """An SSL server context (TLS 1.2 and newer) for the PEM certificate chain
    ``cert_file`` and its private key ``key_file``."""
    cert_pem = _read(cert_file, "certificate")
    key_pem = _read(key_file, "private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        # A password callback, so that an encrypted key fails here instead of
        # prompting on the terminal.
        context.load_cert_chain(cert_file, key_file, password=lambda: b"")
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(_why_unusable(cert_file, cert_pem, key_file, key_pem) or
                       f"cannot use the TLS certificate {cert_file} and key {key_file} ({exc})") from None
    return context


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise TlsError(f"cannot read the TLS {what} file {path} ({exc.strerror})") from None


def _why_unusable(cert_file: str, cert_pem: bytes, key_file: str, key_pem: bytes) -> str | None:
    """Why OpenSSL refused a certificate and key, in words (it only says "PEM lib")."""
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        return f"the TLS certificate file {cert_file} holds no PEM certificate"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        return f"the TLS private key {key_file} is protected by a passphrase: give the key unencrypted"
    except (ValueError, UnsupportedAlgorithm):
        return f"the TLS private key file {key_file} holds no PEM private key"
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if (key.public_key().public_bytes(serialization.Encoding.DER, public)
            != certificate.public_key().public_bytes(serialization.Encoding.DER, public)):
        return f"the TLS private key {key_file} is not the key of the certificate {cert_file}"
    return None


def make_certificate(hosts, *, validity: datetime.timedelta = VALIDITY) -> tuple[bytes, bytes]:
    """A new self-signed server certificate naming ``hosts`` (DNS names or IP
    addresses), and its private key (ECDSA P-256), both PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    hosts = list(dict.fromkeys(hosts))
    if not hosts:
        raise TlsError("a certificate needs at least one host name")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0][:64]),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Shoal self-signed")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))  # clocks a little behind still accept it
        .not_valid_after(now + validity)
        .add_extension(x509.SubjectAlternativeName([_general_name(host) for host in hosts]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _general_name(host: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        return x509.DNSName(host.encode("idna").decode("ascii"))
    except UnicodeError:
        raise TlsError(f"{host!r} is neither a host name nor an IP address") from None


def write_certificate(out_dir, hosts) -> tuple[str, str]:
    """Make a self-signed certificate for ``hosts`` and write it to
    ``out_dir/cert.pem`` and its key to ``out_dir/key.pem`` (mode 0600),
    replacing both; returns their paths."""
    cert_pem, key_pem = make_certificate(hosts)
    out_dir = os.fspath(out_dir)
    cert_path, key_path = os.path.join(out_dir, CERT_NAME), os.path.join(out_dir, KEY_NAME)
    try:
        os.makedirs(out_dir, exist_ok=True)
        # The key first: a certificate is never left beside a key it does not match
        # for longer than the two renames.
        write_atomically(key_path, key_pem, 0o600)
        write_atomically(cert_path, cert_pem, 0o644)
    except OSError as exc:
        raise TlsError(f"cannot write the certificate to {out_dir} ({exc.strerror})") from None
    return cert_path, key_path


def self_signed_in(data_dir, hosts=LOCAL_HOSTS) -> tuple[str, str, bool]:
    """The self-signed certificate and key kept in ``<data_dir>/tls/``:
    reused when it names every one of ``hosts`` and is valid for more than
    ``RENEW_BEFORE``, otherwise made anew.  Returns (cert path, key path,
    whether it was made now)."""
    import fcntl

    directory = os.path.join(os.fspath(data_dir), DATA_DIR_SUBDIR)
    cert_path, key_path = os.path.join(directory, CERT_NAME), os.path.join(directory, KEY_NAME)
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise TlsError(f"cannot make the directory {directory} for the certificate ({exc.strerror})") from None
    try:
        # Two servers starting on one data directory must not each write half
        # of a pair (one's key beside the other's certificate).
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _reusable(cert_path, key_path, hosts):
            return cert_path, key_path, False
        return (*write_certificate(directory, hosts), True)
    finally:
        os.close(fd)  # releases the lock


def _reusable(cert_path: str, key_path: str, hosts) -> bool:
    try:
        with open(cert_path, "rb") as handle:
            cert_pem = handle.read()
        with open(key_path, "rb") as handle:
            key_pem = handle.read()
    except OSError:
        return False
    if _why_unusable(cert_path, cert_pem, key_path, key_pem) is not None:
        return False
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(cert_pem)
    if certificate.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc) < RENEW_BEFORE:
        return False
    return set(map(_name_text, map(_general_name, hosts))) <= set(certificate_hosts(certificate))


def certificate_hosts(certificate: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate names (its subject alternative names)."""
    from cryptography import x509

    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [_name_text(name) for name in names]


def _name_text(name: x509.GeneralName) -> str:
    return str(name.value)


# -- the ``shoal tls`` commands ----------------------------------------------


def add_tls_commands(commands) -> None:
    """Register ``shoal tls ...`` on the CLI's subcommand parser."""
    tls = commands.add_parser("tls", help="make certificates for serving HTTPS",
                              description="Make TLS certificates for shoal serve --tls-cert/--tls-key.")
    tls.set_defaults(handler=lambda args: (tls.print_help(), 2)[1])
    sub = tls.add_subparsers(dest="tls_command", metavar="TLS_COMMAND", help="one of:")
    make = sub.add_parser(
        "make-cert", help="write a self-signed certificate and its key",
        description="Write a new self-signed certificate (cert.pem) and its private key (key.pem, mode 0600) "
                    "for local use: serve with --tls-cert and --tls-key, and have clients trust the "
                    "certificate itself (AWS_CA_BUNDLE, or boto3's verify=).")
    make.add_argument("--out-dir", default=".", metavar="DIR",
                      help="the directory to write cert.pem and key.pem to, created if needed (default .)")
    make.add_argument("--host", dest="hosts", action="extend", nargs="+", metavar="NAME",
                      help="the host names and IP addresses the certificate is for, one or more, the option "
                           f"repeated or not (default {' '.join(LOCAL_HOSTS)})")
    make.add_argument("--force", action="store_true", help="replace cert.pem and key.pem if they exist")
    make.set_defaults(handler=_make_cert)


def _make_cert(args) -> int:
    import sys

    hosts = args.hosts or list(LOCAL_HOSTS)
    existing = [name for name in (CERT_NAME, KEY_NAME) if os.path.lexists(os.path.join(args.out_dir, name))]
    if existing and not args.force:
        print(f"shoal: {' and '.join(existing)} already exist in {args.out_dir}: choose another --out-dir, "
              "or add --force to replace them", file=sys.stderr)
        return 1
    try:
        cert, key = write_certificate(args.out_dir, hosts)
    except TlsError as exc:
        print(f"shoal: {exc}", file=sys.stderr)
        return 1
    cert, key = os.path.abspath(cert), os.path.abspath(key)
    print(f"wrote a self-signed certificate for {', '.join(hosts)} to {cert} and its key to {key}\n"
          f"serve with: shoal serve --tls-cert {cert} --tls-key {key}\n"
          f"trust it in clients with: AWS_CA_BUNDLE={cert}")
    return 0
