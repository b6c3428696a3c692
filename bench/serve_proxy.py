"""B6, proxy overhead: requests through `assay serve` to an upstream OpenAI-compatible server,
against the same requests sent to the upstream directly.

The upstream is the `echo` model served over HTTP by a second `assay serve`. The proxy
declares it in models.yaml and logs and prices every call, as it would for any upstream.

1. Latency: 500 sequential requests each way, alternating. Added latency is the
   difference of the percentiles. Targets: p50 at most 3 ms, p99 at most 15 ms.
2. Throughput at concurrency 32: 500 requests each way. Target: at least 0.9x direct,
   judged with the upstream answering after 200 ms (the echo model's `delay` option), as
   a model server takes time to answer. Also shown: 50 ms and instant upstreams, where
   the client, the proxy and the upstream compete for this machine's two cores, so the
   proxy's own CPU time shows up as lost throughput.

    .venv/bin/python bench/serve_proxy.py [--requests 500]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import httpx

from _common import report, start_assay_serve

DELAYS = (0.2, 0.05, 0.0)


def body(model: str, i: int, delay: float = 0.0) -> dict:
    extra = {"delay": delay} if delay else {}
    return {"model": model, "messages": [{"role": "user", "content": f"ping {i}"}], **extra}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def throughput(url: str, model: str, n: int, delay: float) -> float:
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        todo = iter(range(n))

        async def worker() -> None:
            for i in todo:
                (
                    await client.post("/v1/chat/completions", json=body(model, i, delay))
                ).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(32)))
        return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        up_home, proxy_home = Path(tmp) / "upstream", Path(tmp) / "proxy"
        up_home.mkdir()
        proxy_home.mkdir()
        upstream, up_url = start_assay_serve(up_home)
        (proxy_home / "models.yaml").write_text(
            f"- alias: up-echo\n  base_url: {up_url}/v1\n  model: echo\n"
            f"- alias: up-echo-50ms\n  base_url: {up_url}/v1\n  model: echo\n"
            "  extra_body: {delay: 0.05}\n"
            f"- alias: up-echo-200ms\n  base_url: {up_url}/v1\n  model: echo\n"
            "  extra_body: {delay: 0.2}\n"
        )
        proxy, proxy_url = start_assay_serve(proxy_home)
        try:
            with httpx.Client(timeout=60) as client:
                for i in range(20):  # warm both paths
                    client.post(f"{up_url}/v1/chat/completions", json=body("echo", i))
                    client.post(f"{proxy_url}/v1/chat/completions", json=body("up-echo", i))
                direct, via = [], []
                for i in range(n):
                    for url, model, out in ((up_url, "echo", direct), (proxy_url, "up-echo", via))[
                        :: 1 if i % 2 else -1
                    ]:
                        start_t = time.perf_counter()
                        client.post(
                            f"{url}/v1/chat/completions", json=body(model, i)
                        ).raise_for_status()
                        out.append((time.perf_counter() - start_t) * 1000)
            rates = {}
            for delay in DELAYS:
                # the proxied alias adds the delay itself, through extra_body
                via_model = f"up-echo-{int(delay * 1000)}ms" if delay else "up-echo"
                rates[delay] = (
                    asyncio.run(throughput(up_url, "echo", n, delay)),
                    asyncio.run(throughput(proxy_url, via_model, n, 0.0)),
                )
            rows = sqlite_count(proxy_home / "logs.db")
        finally:
            for proc in (proxy, upstream):
                proc.terminate()
                proc.wait(30)
    p50 = percentile(via, 0.5) - percentile(direct, 0.5)
    p99 = percentile(via, 0.99) - percentile(direct, 0.99)
    lines = [
        (
            f"throughput c=32, {'instant' if d == 0 else f'{d * 1000:.0f} ms'} upstream",
            f"direct {rates[d][0]:.0f}/s, via {rates[d][1]:.0f}/s, "
            f"ratio {rates[d][1] / rates[d][0]:.2f}" + ("  (target >= 0.9)" if d == 0.2 else ""),
        )
        for d in DELAYS
    ]
    ratio = rates[0.2][1] / rates[0.2][0]
    report(
        f"B6 proxy overhead: {n} requests, upstream = echo over HTTP (a second assay serve)",
        [
            (
                "direct latency p50 / p99",
                f"{percentile(direct, 0.5):.2f} / {percentile(direct, 0.99):.2f} ms",
            ),
            (
                "via assay serve p50 / p99",
                f"{percentile(via, 0.5):.2f} / {percentile(via, 0.99):.2f} ms",
            ),
            ("added p50", f"{p50:.2f} ms  (target <= 3 ms)"),
            ("added p99", f"{p99:.2f} ms  (target <= 15 ms)"),
            *lines,
            ("rows logged by the proxy", str(rows)),
            ("verdict", "PASS" if p50 <= 3 and p99 <= 15 and ratio >= 0.9 else "FAIL"),
        ],
    )


def sqlite_count(path: Path) -> int:
    import sqlite3

    return int(sqlite3.connect(path).execute("SELECT COUNT(*) FROM responses").fetchone()[0])


if __name__ == "__main__":
    main()
