"""Test certificates made on the fly: a CA, a server certificate for localhost/127.0.0.1, and
client certificates, written as PEM files (what AWS IoT hands out, and what mosquitto reads).

Uses the `cryptography` package (test extra); nothing here talks to AWS.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one certificate: the certificate and its private key."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """A CA with one server certificate and one client certificate."""

    ca: Path
    server: CertFiles
    client: CertFiles


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # As AWS recommends for a device's private key: readable by its owner only.
    os.chmod(path, 0o600)


def _issue(
    subject: str,
    issuer_name: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if server:
        names: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def make_pki(directory: Path, client_name: str = "pyiot-test-client") -> Pki:
    """Write ca.pem, server.pem/server.key, client.pem/client.key into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _issue("pyiot test CA", _name("pyiot test CA"), ca_key, ca_key, ca=True)
    _write_cert(ca_cert, directory / "ca.pem")
    files = {}
    for role, subject in (("server", "localhost"), ("client", client_name)):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(subject, ca_cert.subject, ca_key, key, server=role == "server")
        _write_cert(cert, directory / f"{role}.pem")
        _write_key(key, directory / f"{role}.key")
        files[role] = CertFiles(directory / f"{role}.pem", directory / f"{role}.key")
    return Pki(directory / "ca.pem", files["server"], files["client"])
