"""Traefik's live dynamic files (traefik.py renders the rest): the edge proof, CORS, TLS
and the HTTP→HTTPS redirect. The edge sync rewrites them while the stack runs, in the
launcher's supervising process, so this module imports nothing heavy (docs/deployment.md,
"The launcher's own memory")."""

from __future__ import annotations

from typing import Any

from aisopod.edgeproof import HEADER as EDGE_PROOF_HEADER
from aisopod_ops.launcher.tlsfiles import TlsFiles

RATELIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
EDGE_PROOF_MIDDLEWARE = "edge-proof"


def edge_proof_config(secret: str) -> dict[str, Any]:
    """The `edge-proof` middleware: sets the proof on the request, replacing any copy."""
    if not secret:
        raise ValueError("the edge proof needs a secret")
    headers = {"customRequestHeaders": {EDGE_PROOF_HEADER: secret}}
    return {"http": {"middlewares": {EDGE_PROOF_MIDDLEWARE: {"headers": headers}}}}


CORS_ALLOW_HEADERS = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Aisopod-Agent-Id",
    "X-Aisopod-Session-Key",
    "X-Aisopod-Token",
    # SDKs add their own headers (the OpenAI SDK's x-stainless-*); the wildcard covers
    # them for non-credentialed requests, which is all we serve (bearer tokens, no cookies).
    "*",
)
CORS_EXPOSE_HEADERS = (
    "Retry-After",
    "X-Request-Id",
    "WWW-Authenticate",
    "X-Aisopod-Ignored-Params",
    *RATELIMIT_HEADERS,
)


def cors_middleware(allowed_origins: list[str], max_age_s: int = 600) -> dict[str, Any]:
    """Traefik answers preflights itself (this middleware comes first), so they never
    need a credential; a disallowed origin gets no Access-Control-Allow-Origin."""
    return {
        "headers": {
            "accessControlAllowMethods": ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            "accessControlAllowHeaders": list(CORS_ALLOW_HEADERS),
            "accessControlAllowOriginList": list(allowed_origins),
            "accessControlExposeHeaders": list(CORS_EXPOSE_HEADERS),
            "accessControlMaxAge": max_age_s,
            "addVaryHeader": True,
        }
    }


def cors_config(allowed_origins: list[str], max_age_s: int = 600) -> dict[str, Any]:
    return {"http": {"middlewares": {"cors": cors_middleware(allowed_origins, max_age_s)}}}


def tls_config(files: TlsFiles) -> dict[str, Any]:
    """The certificate for every SNI, and as the default for clients that send none (an
    IP address); TLS 1.2 at least."""
    pair = {"certFile": str(files.cert_file), "keyFile": str(files.key_file)}
    return {
        "tls": {
            "certificates": [dict(pair)],
            "stores": {"default": {"defaultCertificate": dict(pair)}},
            "options": {"default": {"minVersion": "VersionTLS12"}},
        }
    }


def redirect_config(https_port: int) -> dict[str, Any]:
    """HTTP→HTTPS for everything on `web`: one router above every other one."""
    scheme: dict[str, Any] = {"scheme": "https", "permanent": True}
    if https_port != 443:
        scheme["port"] = str(https_port)
    return {
        "http": {
            "routers": {
                "redirect-https": {
                    "rule": "PathPrefix(`/`)",
                    "entryPoints": ["web"],
                    "middlewares": ["redirect-https"],
                    "service": "noop@internal",
                    "priority": 100_000,
                }
            },
            "middlewares": {"redirect-https": {"redirectScheme": scheme}},
        }
    }
