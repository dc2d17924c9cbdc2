"""TLS material for Traefik's `websecure` entrypoint.

Either the user's certificate (any PEM chain + key; referenced in place, never copied) or,
by default, a local CA generated once into `<tls_dir>/ca.{crt,key}` and a server
certificate it signs, covering `localhost`, `127.0.0.1`, `::1` and the configured host
names. Clients trust `ca.crt` (`httpx.get(url, verify="…/ca.crt")`, `curl --cacert`).

Files are replaced atomically (temp file + rename) so Traefik never reads half a key, and
keys are 0600. The server certificate is reissued when missing, within `RENEW_BEFORE` of
expiry, or when its names differ from the wanted ones; the CA is kept, so clients keep
trusting reissued certificates.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Their home is tlsfiles.py (no `cryptography`); re-exported for the callers of this module.
from aisopod_ops.launcher.tlsfiles import TlsFiles as TlsFiles
from aisopod_ops.launcher.tlsfiles import fingerprint as fingerprint
from aisopod_ops.launcher.tlsfiles import write_atomic as write_atomic

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CA_VALIDITY = dt.timedelta(days=3650)
# Browsers refuse leaf certificates valid for more than 398 days.
SERVER_VALIDITY = dt.timedelta(days=397)
RENEW_BEFORE = dt.timedelta(days=30)
_BACKDATE = dt.timedelta(minutes=5)  # tolerate small clock skew between hosts


def normalize_names(names: Iterable[str]) -> list[str]:
    """Loopback names plus `names`: lower-case DNS names and canonical IPs, no duplicates;
    wildcard bind addresses (`0.0.0.0`, `::`) are not names and are dropped."""
    out: list[str] = []
    for raw in (*LOOPBACK_NAMES, *names):
        name = raw.strip().lower().rstrip(".")
        if not name:
            continue
        try:
            address = ipaddress.ip_address(name.strip("[]"))
        except ValueError:
            pass
        else:
            if address.is_unspecified:
                continue
            name = str(address)
        if name not in out:
            out.append(name)
    return out


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def certificate_names(cert: x509.Certificate) -> set[str]:
    """The DNS names and IP addresses of a certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {n.lower() for n in san.get_values_for_type(x509.DNSName)}
    names |= {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    return names


def current_names(tls_dir: Path) -> set[str]:
    """The names the local CA's current server certificate covers (empty if none)."""
    path = tls_dir / SERVER_CERT
    if not path.exists():
        return set()
    return certificate_names(x509.load_pem_x509_certificate(path.read_bytes()))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    """Digital signatures, plus certificate and CRL signing for the CA only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca(tls_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path, key_path = tls_dir / CA_CERT, tls_dir / CA_KEY
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc > _now():
            return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aisopod gateway"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"aisopod local CA {os.urandom(4).hex()}"),
        ]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - _BACKDATE)
        .not_valid_after(_now() + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(signs_certificates=True), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def issue_server_certificate(tls_dir: Path, names: Iterable[str] = ()) -> TlsFiles:
    """A new server certificate (new key) signed by the local CA, created if needed."""
    ca_cert, ca_key = _load_ca(tls_dir)
    wanted = normalize_names(names)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, wanted[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - _BACKDATE)
        .not_valid_after(min(_now() + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(signs_certificates=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in wanted]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(tls_dir / SERVER_CERT, tls_dir / SERVER_KEY, tls_dir / CA_CERT)
    # Key first: a reader that sees the new certificate must find its key already there.
    write_atomic(files.key_file, _key_pem(key), 0o600)
    write_atomic(files.cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return files


def ensure_self_signed(tls_dir: Path, names: Iterable[str] = ()) -> TlsFiles:
    """The local CA's server certificate, reissued only when missing, expiring soon, not
    signed by the current CA, or covering other names than wanted."""
    wanted = set(normalize_names(names))
    files = TlsFiles(tls_dir / SERVER_CERT, tls_dir / SERVER_KEY, tls_dir / CA_CERT)
    ca_cert, _ = _load_ca(tls_dir)
    if files.cert_file.exists() and files.key_file.exists():
        cert = x509.load_pem_x509_certificate(files.cert_file.read_bytes())
        if (
            certificate_names(cert) == wanted
            and cert.issuer == ca_cert.subject
            and cert.not_valid_after_utc - _now() > RENEW_BEFORE
        ):
            return files
    return issue_server_certificate(tls_dir, names)


def renewal_due_at(cert_file: Path) -> float:
    """When `ensure_self_signed` will reissue this certificate for its age (Unix time):
    the edge sync loads this module again only then (tlsfiles.py)."""
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    return (cert.not_valid_after_utc - RENEW_BEFORE).timestamp()


def user_certificate(cert_file: Path, key_file: Path) -> TlsFiles:
    """The user's certificate, checked before Traefik gets it: both files parse and the
    key belongs to the (first) certificate."""
    cert_file, key_file = cert_file.resolve(), key_file.resolve()
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ValueError(f"TLS certificate {cert_file} / key {key_file}: {exc}") from exc
    if _spki(cert.public_key()) != _spki(key.public_key()):
        raise ValueError(f"TLS key {key_file} does not belong to the certificate {cert_file}")
    return TlsFiles(cert_file, key_file)
