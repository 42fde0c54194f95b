"""The MCP `search` tool over stdio (`tessera mcp`) and over HTTP (the gateway's /mcp), next to the same search
through the client SDK, one client at a time, on the SciFact corpus of an isolated mesh.

Every query text is new (a trailing count of '?' keeps its words), so no cache answers. The three sides take turns,
query by query, so none of them always runs first. Last line: JSON with p50/p99 per side and the ratio of each
MCP transport's p50 to the SDK's.

    make bench-mcp          # 1000 documents, 200 queries per side
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, corpus_args, percentile, scifact_mesh

from shared.client import Client
from shared.runtime import secrets
from shared.runtime.config import Settings, settings_env

QUERIES = 200


@contextlib.asynccontextmanager
async def sessions(settings: Settings) -> AsyncIterator[tuple[ClientSession, ClientSession]]:
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", **settings_env(settings)}
    params = StdioServerParameters(command=sys.executable, args=["-m", "shared.cli", "mcp"], env=env, cwd=str(ROOT))
    url = f"http://127.0.0.1:{settings.gateway.port}/mcp/"
    async with stdio_client(params) as (read, write), ClientSession(read, write) as stdio, \
            httpx2.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {secrets.ensure(settings, secrets.ADMIN_KEY)}"}) as http, \
            streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1]) as over_http:
        await stdio.initialize()
        await over_http.initialize()
        yield stdio, over_http


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    start = time.perf_counter()
    await call()
    return (time.perf_counter() - start) * 1000


async def run(settings: Settings, queries: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, list[float]] = {"stdio": [], "http": [], "sdk": []}
    async with sessions(settings) as (stdio, over_http), Client(settings) as client:
        async def tool(session: ClientSession, q: str) -> None:
            result = await session.call_tool("search", {"query": q, "project": "bench", "limit": 10})
            if result.is_error:
                raise SystemExit(f"bench: the search tool failed: {result.content}")

        for q in queries[:10]:  # warm-up: connections, the embedding model's first batches
            await tool(stdio, q)
            await tool(over_http, q)
            await client.search(q, project="bench", bypass_cache=True)
        order = ("stdio", "http", "sdk")
        for i in range(QUERIES):
            base = queries[i % len(queries)] + " " + "?" * (i // len(queries) + 2)
            for k in range(3):
                side = order[(i + k) % 3]
                q = base + "!" * (k + 1)  # each side gets its own new text
                if side == "stdio":
                    out[side].append(await timed(lambda q=q: tool(stdio, q)))
                elif side == "http":
                    out[side].append(await timed(lambda q=q: tool(over_http, q)))
                else:
                    out[side].append(await timed(lambda q=q: client.search(q, project="bench", bypass_cache=True)))
    return {side: {"p50_ms": round(percentile(v, 0.5), 2), "p99_ms": round(percentile(v, 0.99), 2), "n": len(v)} for side, v in out.items()}


def main() -> None:
    _, corpus, queries = corpus_args(__doc__.splitlines()[0], default_limit=1000)
    with scifact_mesh(corpus) as settings:
        result = asyncio.run(run(settings, list(queries.values())))
    for side, r in result.items():
        print(f"{side:6s} p50 {r['p50_ms']:7.1f} ms  p99 {r['p99_ms']:7.1f} ms  ({r['n']} searches)")
    sdk = max(result["sdk"]["p50_ms"], 1e-9)
    print(json.dumps({**result, "docs": len(corpus), "stdio_p50_ms": result["stdio"]["p50_ms"], "http_p50_ms": result["http"]["p50_ms"],
                      "stdio_over_sdk_p50": round(result["stdio"]["p50_ms"] / sdk, 2),
                      "http_over_sdk_p50": round(result["http"]["p50_ms"] / sdk, 2)}))


if __name__ == "__main__":
    main()
