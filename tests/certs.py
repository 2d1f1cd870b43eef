"""Certificates made for a test: a private CA and the leaf certificates it signs (EC P-256,
valid from a day ago for two days)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Issuer = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: Issuer | None = None,
    *,
    san: x509.GeneralName | None = None,
) -> x509.Certificate:
    """A self-signed CA certificate (no ``issuer``), or a leaf signed by ``issuer`` for the
    name ``san`` (default: the DNS name ``subject``)."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer_cert, signer_key = issuer if issuer else (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is None:
        usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
        builder = builder.add_extension(usage, critical=True)
    else:
        names = x509.SubjectAlternativeName([san or x509.DNSName(subject)])
        builder = builder.add_extension(names, critical=False)
    return builder.sign(signer_key, hashes.SHA256())


def write_pem(
    folder: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    """``<stem>.pem`` (the certificate) and ``<stem>.key`` (its key, PKCS#8) in ``folder``."""
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
