"""`FakeUpstream`: start the fake from a test, in a background thread or as a subprocess.

Both modes talk to the server the same way, over HTTP (`/_requests`, `/_control`), so a
test behaves the same whichever it picks. Use the subprocess for benchmarks: it does not
share the test's GIL.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import orjson

from .config import DEFAULT_MODELS, FakeUpstreamConfig
from .server import FakeServer, loop_factory

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class FakeUpstream:
    """A running fake upstream.

    ```
    with FakeUpstream() as upstream:            # or: async with FakeUpstream() as upstream
        client = openai.OpenAI(base_url=upstream.base_url, api_key="x")
        upstream.program(status=503, times=1)   # next chat request fails once
        ...
        assert upstream.requests[-1]["model"] == "fake-small"
    ```
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        strict_models: bool = False,
        max_recorded: int = 1000,
        subprocess: bool = False,
        startup_timeout: float = 10.0,
    ) -> None:
        self.config = FakeUpstreamConfig(
            api_key=api_key, models=models, strict_models=strict_models, max_recorded=max_recorded
        )
        self._use_subprocess = subprocess
        self._startup_timeout = startup_timeout
        self._root_url: str | None = None
        self._control: httpx.Client | None = None
        # thread mode
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        # subprocess mode
        self._process: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    # lifecycle

    def start(self) -> FakeUpstream:
        if self._root_url is not None:
            return self
        if self._use_subprocess:
            self._start_process()
        else:
            self._start_thread()
        # No proxies from the environment: the fake is always on loopback.
        self._control = httpx.Client(base_url=self.root_url, trust_env=False, timeout=10.0)
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._thread is not None:
            if self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=10)
            self._thread = None
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self._root_url = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> FakeUpstream:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # where it listens

    @property
    def root_url(self) -> str:
        """`http://127.0.0.1:PORT`."""
        if self._root_url is None:
            raise RuntimeError("FakeUpstream is not started")
        return self._root_url

    @property
    def base_url(self) -> str:
        """The OpenAI `base_url`: `http://127.0.0.1:PORT/v1`."""
        return f"{self.root_url}/v1"

    @property
    def pid(self) -> int:
        """The serving process (this one in thread mode)."""
        return self._process.pid if self._process is not None else os.getpid()

    # recorded requests and programmed behaviours

    @property
    def requests(self) -> list[Any]:
        """Bodies of the chat requests received so far, oldest first."""
        return [entry["body"] for entry in self.request_log()]

    def request_log(self) -> list[dict[str, Any]]:
        """Recorded chat requests with `time`, `path`, `headers` (lower-case) and `body`."""
        return list(self._call("GET", "/_requests")["data"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/_requests")

    def program(
        self, *, times: int | None = None, match: str | None = None, **behaviour: Any
    ) -> None:
        """Add a rule: the next `times` chat requests (containing `match`) get `behaviour`.

        Keys are those of `[[fake:...]]`: status, retry_after, delay_ms, chunk_delay_ms,
        cut_after, drop, words, fail_times.
        """
        rule = {**behaviour, "times": times, "match": match}
        self._call("POST", "/_control", {k: v for k, v in rule.items() if v is not None})

    def reset(self) -> None:
        """Remove programmed rules and forget `fail_times` counts."""
        self._call("DELETE", "/_control")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._control is None:
            raise RuntimeError("FakeUpstream is not started")
        content = orjson.dumps(body) if body is not None else None
        response = self._control.request(method, path, content=content)
        response.raise_for_status()
        return response.json()

    # thread mode

    def _start_thread(self) -> None:
        self._ready.clear()
        self._thread = threading.Thread(target=self._thread_main, name="fake-upstream", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._startup_timeout):
            raise TimeoutError("fake upstream did not start in time")
        if self._startup_error is not None:
            raise RuntimeError("fake upstream failed to start") from self._startup_error

    def _thread_main(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            runner.run(self._serve_in_thread())

    async def _serve_in_thread(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            server = FakeServer(self.config)
            await server.start()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            raise
        try:
            self._root_url = server.root_url
            self._ready.set()
            await self._stop.wait()
        finally:
            await server.close()

    # subprocess mode

    def _start_process(self) -> None:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="fake-upstream-")
        ready = Path(self._tmpdir.name) / "ready.json"
        argv = [
            sys.executable,
            "-m",
            "aisopod_fake_upstream",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--max-recorded",
            str(self.config.max_recorded),
        ]
        for model in self.config.models:
            argv += ["--model", model]
        if self.config.strict_models:
            argv.append("--strict-models")
        env = dict(os.environ)
        # The key goes through the environment, not argv, so `ps` does not show it.
        env.pop("AISOPOD_FAKE_API_KEY", None)
        if self.config.api_key:
            env["AISOPOD_FAKE_API_KEY"] = self.config.api_key
        # Importable even when the package is only on this process's sys.path.
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(_PACKAGE_ROOT), env.get("PYTHONPATH")])
        )
        self._process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + self._startup_timeout
        while not ready.exists():
            if self._process.poll() is not None:
                raise RuntimeError(f"fake upstream exited with {self._process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("fake upstream did not start in time")
            time.sleep(0.01)
        url = orjson.loads(ready.read_bytes())["url"]
        self._root_url = url.removesuffix("/v1")
