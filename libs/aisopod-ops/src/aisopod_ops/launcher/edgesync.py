"""Keep Traefik's live files in step with the gateway config and the TLS certificate.

Traefik's file provider watches one directory. Besides the static `routes.yml`, this
writes `tls.yml` (the certificate to serve), `cors.yml` (the CORS middleware, from the
config's `cors` section), `edge-proof.yml` (the edge proof middleware, from the secret
it is given; edgeproof.py) and `redirect.yml` (only when HTTP→HTTPS is on), each replaced
atomically and only when its content changes, so Traefik reloads exactly when needed.

`EdgeSync.run` then follows two sources until cancelled:
- KV `config` (key `gateway`): a new `cors` section rewrites `cors.yml` at once;
- the certificate files: a replaced certificate (new mtime/size/inode, and a key that
  matches it) rewrites `tls.yml` with the new fingerprint, which makes Traefik re-read the
  certificate. The local CA's certificate is also renewed here before it expires.

The same class serves the local launcher (in-process, NATS admin user) and the
`edge-sync` process of compose/Kubernetes (`aisopod edge sync`, its own NATS user).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import nats
from nats.aio.client import Client as NATS
from nats.js.errors import BucketNotFoundError

from aisopod.natsurls import nats_servers
from aisopod.origins import DEFAULT_MAX_AGE_S, read_cors
from aisopod.state import bucket_name
from aisopod_ops.launcher import livefiles, tlsfiles

if TYPE_CHECKING:
    from aisopod.config.model import GatewayConfig

log = logging.getLogger("aisopod.edge")

ROUTES_FILE = "routes.yml"
CORS_FILE = "cors.yml"
TLS_FILE = "tls.yml"
REDIRECT_FILE = "redirect.yml"
EDGE_PROOF_FILE = "edge-proof.yml"
HEADER = "# Written by aisopod's edge sync; changes are overwritten.\n"
RENEW_CHECK_S = 3600.0
# KV `config`'s key of the gateway document (aisopod.config.store.CONFIG_KEY; that module
# loads pydantic and the whole config model, which this process does without).
CONFIG_KEY = "gateway"

Connect = Callable[[], Awaitable[NATS]]


@dataclass
class EdgeOptions:
    dynamic_dir: Path
    tls_dir: Path
    tls_cert: Path | None = None  # the user's certificate; else the local CA's
    tls_key: Path | None = None
    tls_names: list[str] = field(default_factory=list)
    redirect_https_port: int | None = None  # None: no HTTP→HTTPS redirect
    cert_poll_s: float = 1.0
    # False in Kubernetes: Traefik polls the CORS middleware over HTTP; TLS is a Secret.
    write_files: bool = True
    # The edge proof Traefik adds to every request to http-api and ws-gateway.
    edge_secret: str | None = None


def write_dynamic(path: Path, config: dict[str, Any], note: str = "") -> bool:
    """Replace `path` with `config` as YAML; False (and no write) when unchanged."""
    # Imported here: the launcher that supervises the stack rewrites a file only when the
    # live CORS origins or a certificate change (~1 MiB of RSS for the rest of its life).
    import yaml

    text = HEADER + (f"# {note}\n" if note else "") + yaml.safe_dump(config, sort_keys=True)
    if path.exists() and path.read_text() == text:
        return False
    tlsfiles.write_atomic(path, text.encode(), 0o600)
    return True


def _stamp(*paths: Path) -> tuple[tuple[int, int, int], ...] | None:
    try:
        return tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in (p.stat() for p in paths))
    except OSError:
        return None


@dataclass(frozen=True)
class PreparedEdge:
    """What `EdgeSync.prepare` settled, handed to the EdgeSync that follows the sources
    when another process prepared (the launcher prepares in a short-lived child)."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    origins: list[str] = field(default_factory=list)
    max_age_s: int = DEFAULT_MAX_AGE_S
    renewal_due_at: float | None = None  # local CA's certificate: when to reissue it

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> PreparedEdge:
        return cls(**json.loads(text))


class EdgeSync:
    def __init__(self, options: EdgeOptions) -> None:
        self.options = options
        self.files: tlsfiles.TlsFiles | None = None
        self.origins: list[str] = []
        self.max_age_s = DEFAULT_MAX_AGE_S
        # What cors.yml holds when this process (or the one it adopted) wrote it: the same
        # again is not rendered (the launcher then never loads the YAML writer while idle).
        self._cors_written: tuple[list[str], int] | None = None
        self.config_applied = asyncio.Event()
        self._cert_stamp: tuple[tuple[int, int, int], ...] | None = None
        self._renew_checked_at = 0.0
        self._renewal_due_at: float | None = None

    @property
    def dynamic_dir(self) -> Path:
        return self.options.dynamic_dir

    # -- the files ------------------------------------------------------------------------
    def prepare(self, config: GatewayConfig | None = None) -> tlsfiles.TlsFiles | None:
        """Write every live file before Traefik starts (CORS from `config`, e.g. the seed;
        the live document replaces it as soon as NATS answers)."""
        if config is None:
            origins, max_age_s = [], DEFAULT_MAX_AGE_S
        else:
            origins, max_age_s = list(config.cors.allowed_origins), config.cors.max_age_s
        if not self.options.write_files:
            self.apply_cors(origins, max_age_s)
            return None
        self.dynamic_dir.mkdir(parents=True, exist_ok=True)
        if self.options.edge_secret:
            write_dynamic(self.dynamic_dir / EDGE_PROOF_FILE, self.edge_proof_document())
        else:
            # Without it the edge routes stay down (their middleware is missing), which is
            # what the services would answer anyway: they refuse unproven requests.
            log.error("no edge secret (AISOPOD_EDGE_SECRET_FILE): the edge routes stay down")
        self.files = self._certificate()
        self._write_tls(self.files)
        self.apply_cors(origins, max_age_s)
        if self.options.redirect_https_port is not None:
            redirect = livefiles.redirect_config(self.options.redirect_https_port)
            write_dynamic(self.dynamic_dir / REDIRECT_FILE, redirect)
        else:
            (self.dynamic_dir / REDIRECT_FILE).unlink(missing_ok=True)
        return self.files

    def prepared(self) -> PreparedEdge:
        files = self.files
        return PreparedEdge(
            cert_file=str(files.cert_file) if files else None,
            key_file=str(files.key_file) if files else None,
            ca_file=str(files.ca_file) if files and files.ca_file else None,
            origins=list(self.origins),
            max_age_s=self.max_age_s,
            renewal_due_at=self._renewal_due_at,
        )

    def adopt(self, prepared: PreparedEdge) -> None:
        """Take over what another process's `prepare` wrote, without writing again."""
        if prepared.cert_file and prepared.key_file:
            ca = Path(prepared.ca_file) if prepared.ca_file else None
            self.files = tlsfiles.TlsFiles(Path(prepared.cert_file), Path(prepared.key_file), ca)
            self._cert_stamp = _stamp(self.files.cert_file, self.files.key_file)
        self.origins, self.max_age_s = list(prepared.origins), prepared.max_age_s
        if self.options.write_files:
            self._cors_written = (list(self.origins), self.max_age_s)
        self._renewal_due_at = prepared.renewal_due_at
        self._renew_checked_at = time.monotonic()

    def _certificate(self) -> tlsfiles.TlsFiles:
        from aisopod_ops.launcher import tls  # `cryptography`: only when issuing or checking

        opts = self.options
        if opts.tls_cert is not None or opts.tls_key is not None:
            if opts.tls_cert is None or opts.tls_key is None:
                raise ValueError("a TLS certificate needs both its certificate and key file")
            return tls.user_certificate(opts.tls_cert, opts.tls_key)
        self._renew_checked_at = time.monotonic()
        files = tls.ensure_self_signed(opts.tls_dir, opts.tls_names)
        self._renewal_due_at = tls.renewal_due_at(files.cert_file)
        return files

    def _write_tls(self, files: tlsfiles.TlsFiles) -> None:
        # The fingerprint in the file is what changes when only the certificate did.
        note = f"certificate sha256 {tlsfiles.fingerprint(files.cert_file)}"
        self._cert_stamp = _stamp(files.cert_file, files.key_file)
        if write_dynamic(self.dynamic_dir / TLS_FILE, livefiles.tls_config(files), note):
            log.info("serving TLS certificate %s", note.split()[-1][:16])

    def apply_config(self, config: GatewayConfig) -> bool:
        """Rewrite cors.yml for `config`; True when it changed."""
        return self.apply_cors(list(config.cors.allowed_origins), config.cors.max_age_s)

    def apply_cors(self, origins: list[str], max_age_s: int) -> bool:
        """Rewrite cors.yml for these origins (normalized) and max age; True when it
        changed."""
        changed = (self.origins, self.max_age_s) != (origins, max_age_s)
        self.origins = list(origins)
        self.max_age_s = max_age_s
        if self.options.write_files and self._cors_written != (self.origins, max_age_s):
            changed = write_dynamic(self.dynamic_dir / CORS_FILE, self.cors_document())
            self._cors_written = (list(self.origins), max_age_s)
        elif self.options.write_files:
            changed = False
        if changed:
            log.info("CORS allowed origins: %s", self.origins or "none")
        return changed

    def cors_document(self) -> dict[str, Any]:
        """The CORS middleware as a dynamic configuration (file or HTTP provider)."""
        return livefiles.cors_config(self.origins, self.max_age_s)

    def edge_proof_document(self) -> dict[str, Any]:
        """The `edge-proof` middleware (empty without a secret: its routes stay down)."""
        if not self.options.edge_secret:
            return {}
        return livefiles.edge_proof_config(self.options.edge_secret)

    def _renewal_due(self) -> bool:
        """The local CA's certificate wants reissuing: checked hourly, against the expiry
        read when it was issued, so `cryptography` loads only when it is time."""
        if self.options.tls_cert is not None:
            return False
        if time.monotonic() - self._renew_checked_at <= RENEW_CHECK_S:
            return False
        self._renew_checked_at = time.monotonic()
        due = self._renewal_due_at
        files = self.files
        missing = files is None or _stamp(files.cert_file, files.key_file) is None
        return due is None or time.time() >= due or missing

    def check_certificate(self) -> bool:
        """Pick up a replaced certificate; True when tls.yml was rewritten."""
        if self.files is None:
            return False
        if self._renewal_due():
            from aisopod_ops.launcher import tls

            renewed = tls.ensure_self_signed(self.options.tls_dir, self.options.tls_names)
            self._renewal_due_at = tls.renewal_due_at(renewed.cert_file)
        stamp = _stamp(self.files.cert_file, self.files.key_file)
        if stamp is None or stamp == self._cert_stamp:
            return False
        from aisopod_ops.launcher import tls  # a replaced certificate: check it fully

        try:
            tls.user_certificate(self.files.cert_file, self.files.key_file)
        except ValueError as exc:
            # Mid-rotation (new certificate, old key): try again on the next poll.
            log.info("certificate files not consistent yet: %s", exc)
            return False
        self._write_tls(self.files)
        return True

    # -- following the sources ------------------------------------------------------------
    async def run(self, connect: Connect, prefix: str = "aisopod") -> None:
        """Follow KV `config` and the certificate files until cancelled."""
        await asyncio.gather(self._watch_config(connect, prefix), self._watch_certificate())

    async def _watch_certificate(self) -> None:
        while True:
            await asyncio.sleep(self.options.cert_poll_s)
            try:
                self.check_certificate()
            except Exception:
                log.exception("certificate check failed")

    async def _watch_config(self, connect: Connect, prefix: str) -> None:
        nc: NATS | None = None
        last_error = ""
        try:
            while True:
                try:
                    if nc is None or nc.is_closed:
                        nc = await connect()
                    kv = await nc.jetstream().key_value(bucket_name(prefix, "config"))
                    watcher = await kv.watch(CONFIG_KEY)
                    async for entry in watcher:
                        if entry is None or entry.value is None or entry.operation is not None:
                            continue
                        self._apply_document(entry.value)
                        last_error = ""
                except asyncio.CancelledError:
                    raise
                except BucketNotFoundError:
                    await asyncio.sleep(0.2)  # the services provision it as they start
                except Exception as exc:  # NATS not up yet or restarting
                    # Said once per distinct cause, not twice a second while it lasts.
                    if str(exc) != last_error:
                        log.warning("config watch: %s; retrying", exc or type(exc).__name__)
                        last_error = str(exc)
                    await asyncio.sleep(0.5)
        finally:
            if nc is not None and not nc.is_closed:
                await nc.close()

    def _apply_document(self, data: bytes) -> None:
        # Only the `cors` section, read without the config model (aisopod/origins.py): the
        # service that stored the document validated all of it.
        try:
            origins, max_age_s = read_cors(json.loads(data))
        except ValueError:  # json's decode errors are ValueErrors too
            log.error("stored configuration is invalid; keeping the previous CORS origins")
            return
        self.apply_cors(origins, max_age_s)
        self.config_applied.set()


def nats_connector(url: str, user: str | None, password: str | None) -> Connect:
    async def on_error(exc: Exception) -> None:
        # NATS not up yet or restarting: the watch loop retries; no traceback per attempt.
        log.debug("nats: %s", exc)

    async def connect() -> NATS:
        return await nats.connect(
            nats_servers(url),
            user=user,
            password=password,
            name="aisopod-edge-sync",
            error_cb=on_error,
            connect_timeout=2,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
        )

    return connect
