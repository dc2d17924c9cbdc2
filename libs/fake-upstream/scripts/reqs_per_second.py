"""Non-stream chat completions per second against a running fake upstream.

    python scripts/reqs_per_second.py URL [--concurrency 64] [--seconds 3] [--client httpx|raw]

`httpx` is the usual choice (64 concurrent clients of one AsyncClient); it is the
bottleneck long before the server. `raw` writes the same request on keep-alive sockets
and reads the response with no HTTP library, to see what the server itself sustains.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from urllib.parse import urlsplit

import httpx
import orjson

BODY = orjson.dumps({"model": "fake-small", "messages": [{"role": "user", "content": "hi there"}]})


async def run_httpx(url: str, concurrency: int, seconds: float) -> int:
    headers = {"content-type": "application/json"}
    # One client per worker, made before the clock starts (each builds an SSL context,
    # which is slow): a single shared pool slows down sharply with many connections.
    clients = [httpx.AsyncClient(base_url=url, trust_env=False) for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds

    async def worker(client: httpx.AsyncClient) -> int:
        done = 0
        while time.perf_counter() < deadline:
            response = await client.post("/chat/completions", content=BODY, headers=headers)
            assert response.status_code == 200
            done += 1
        await client.aclose()
        return done

    return sum(await asyncio.gather(*(worker(client) for client in clients)))


async def run_raw(url: str, concurrency: int, seconds: float) -> int:
    parts = urlsplit(url)
    request = (
        f"POST {parts.path}/chat/completions HTTP/1.1\r\nhost: {parts.netloc}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(BODY)}\r\n\r\n"
    ).encode() + BODY
    deadline = time.perf_counter() + seconds

    async def worker() -> int:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        done = 0
        while time.perf_counter() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            done += 1
        writer.close()
        return done

    return sum(await asyncio.gather(*(worker() for _ in range(concurrency))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url", help="base URL ending in /v1")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--client", choices=["httpx", "raw"], default="httpx")
    args = parser.parse_args()
    run = run_httpx if args.client == "httpx" else run_raw
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    done = asyncio.run(run(args.url, args.concurrency, args.seconds))
    rate = done / args.seconds
    label = f"{args.client} c={args.concurrency}"
    print(f"{label}: {done} requests in {args.seconds} s = {rate:,.0f} req/s")


if __name__ == "__main__":
    main()
