"""MCP tool-call latency: in memory and over streamable HTTP on loopback. Prints a table, then one JSON document.
No assertions.

    python tests/benchmarks/mcp.py [--quick] [--json-only] [-n CALLS]

A Runtime (demo model) on a temporary SQLite database runs the three demo tasks until idle, so there are threads
with messages to read. Then, for each transport, one connected ``mcp.Client`` calls

* ``bzzz_lookup`` ``bzzz://:reviewer@*`` (every agent of a role, with their state and load), and
* ``bzzz_get`` of the longest thread with the default ``max_history`` (10 messages and the metadata),

N times each (after a warm-up), one call at a time, and we report the median and p95 wall time per call.
Transports: ``run_tool`` directly (the in-process agents' path: the floor, no MCP), MCP in memory
(``Client(build_server(rt))``), and MCP over HTTP (``HttpServer`` with the bearer token on 127.0.0.1, the
client in the same process and event loop as the server, so each figure includes both sides' work).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bzzz_console.app import make_runtime
from bzzz_console.config import Settings
from bzzz_console.demo.team import add_demo_tasks

WARMUP = 20
HERE = Path(__file__).resolve().parent
# Run as a script, this folder is sys.path[0] and this file's name would hide the mcp package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def percentile(values: Sequence[float], share: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(share * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def measure(call: Callable[[], Awaitable[Any]], n: int) -> dict[str, Any]:
    for _ in range(min(WARMUP, n)):
        await call()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "n": n,
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(percentile(samples, 0.95), 3),
        "min_ms": round(min(samples), 3),
        "max_ms": round(max(samples), 3),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run(root: Path, n: int) -> dict[str, Any]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    from bzzz_console.mcp.serve import HttpServer
    from bzzz_console.mcp.server import build_server
    from bzzz_console.runtime.tools.base import ToolContext
    from bzzz_console.runtime.tools.registry import run_tool
    from bzzz_console.security.tokens import TokenBook

    settings = Settings.model_validate(
        {
            "data_dir": str(root / "data"),
            "store": {"url": f"sqlite:///{root / 'bzzz.db'}"},
            "demo": {"latency_ms": 0, "seed": 7},
            "runtime": {"poll_interval_s": 0.05},
        }
    )
    out: dict[str, Any] = {}
    async with make_runtime(settings, force_demo=True) as rt:
        add_demo_tasks(rt.store)
        rt.capacity_changed()
        await asyncio.wait_for(rt.wait_idle(), 60)
        thread = max(rt.store.threads(), key=lambda t: t.message_count)
        calls = {
            "bzzz_lookup": {"semantic_address": "bzzz://:reviewer@*"},
            "bzzz_get": {"address": f"bzzz://*@*/threads/{thread.id}"},
        }
        out["thread_messages"] = thread.message_count

        async def over(client: Client) -> dict[str, Any]:
            figures = {}
            for name, arguments in calls.items():

                async def call(name: str = name, arguments: dict[str, Any] = arguments) -> None:
                    result = await client.call_tool(name, arguments)
                    if result.is_error:
                        raise RuntimeError(result.content)

                figures[name] = await measure(call, n)
            return figures

        direct = {}
        context = ToolContext(None, via="mcp")
        for name, arguments in calls.items():

            async def call_direct(name: str = name, arguments: dict[str, Any] = arguments) -> None:
                outcome = await run_tool(rt, context, name, arguments)
                if not outcome.ok:
                    raise RuntimeError(outcome.result)

            direct[name] = await measure(call_direct, n)
        out["run_tool"] = direct

        started = time.perf_counter()
        async with Client(build_server(rt)) as client:
            connect = (time.perf_counter() - started) * 1000
            out["memory"] = {"connect_ms": round(connect, 2), **await over(client)}

        tokens = TokenBook(settings.resolved_data_dir())
        token, _ = tokens.issue("operator", "benchmark")
        server = HttpServer(rt, free_port(), tokens, readonly=False)
        await server.start()
        try:
            started = time.perf_counter()
            async with (
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
                Client(streamable_http_client(server.url, http_client=http)) as client,
            ):
                connect = (time.perf_counter() - started) * 1000
                out["http"] = {"connect_ms": round(connect, 2), **await over(client)}
        finally:
            await server.stop()
    return out


def print_table(result: dict[str, Any]) -> None:
    header = f"{'transport':<12} {'tool':<12} {'median ms':>10} {'p95 ms':>10} {'min ms':>9} {'max ms':>9} {'n':>5}"
    print(f"bzzz-console MCP tool-call latency (bzzz_get: {result['thread_messages']}-message thread)")
    print(header)
    print("-" * len(header))
    for transport in ("run_tool", "memory", "http"):
        for tool in ("bzzz_lookup", "bzzz_get"):
            f = result[transport][tool]
            print(
                f"{transport:<12} {tool:<12} {f['median_ms']:>10.3f} {f['p95_ms']:>10.3f} "
                f"{f['min_ms']:>9.3f} {f['max_ms']:>9.3f} {f['n']:>5}"
            )
    print(
        f"connect: in memory {result['memory']['connect_ms']:.1f} ms, "
        f"over HTTP {result['http']['connect_ms']:.1f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bzzz-console MCP latency benchmark (print, never assert)")
    parser.add_argument("--quick", action="store_true", help="30 calls per figure, for a smoke run")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON document")
    parser.add_argument("-n", type=int, default=200, help="calls per tool and transport (default 200)")
    args = parser.parse_args(argv)
    n = 30 if args.quick else args.n
    logging.disable(logging.CRITICAL)  # mcp logs every failed call and uvicorn its start; not measured here
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bzzz-bench-mcp-") as tmp:
        figures = asyncio.run(run(Path(tmp), n))
    result = {
        "benchmark": "mcp",
        "quick": args.quick,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **figures,
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if not args.json_only:
        print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
