"""The TLS file paths Traefik serves and the small helpers the edge sync needs while it
follows them, without `cryptography` (tls.py issues and checks certificates): the
launcher's supervising process stays lean (docs/deployment.md, "The launcher's own
memory") and loads tls.py only when a certificate is replaced or due for renewal."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"


@dataclass(frozen=True)
class TlsFiles:
    """What Traefik serves: a PEM chain and its key; `ca_file` only for the local CA."""

    cert_file: Path
    key_file: Path
    ca_file: Path | None = None


def fingerprint(cert_file: Path) -> str:
    """sha256 of the DER of the first certificate in a PEM file (what a client sees); the
    DER is the base64 between the PEM armour lines."""
    data = cert_file.read_bytes()
    start = data.find(_PEM_BEGIN)
    end = data.find(_PEM_END, start + 1)
    if start < 0 or end < 0:
        raise ValueError(f"{cert_file}: no PEM certificate")
    try:
        der = base64.b64decode(b"".join(data[start + len(_PEM_BEGIN) : end].split()), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"{cert_file}: the PEM certificate is not base64: {exc}") from exc
    return hashlib.sha256(der).hexdigest()


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` in one rename, created with `mode` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
