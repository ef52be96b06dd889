"""Remote-provider benchmark: what Cairn adds when it routes to an OpenAI-compatible server, against
calling that server directly, in the same run.

The upstream is a `cairn serve` with its embedded models (llama.cpp's SmolLM2-135M-Instruct and the ONNX
all-MiniLM-L6-v2); the router is a second `cairn serve` with no models of its own and the upstream as a
``remote::openai`` provider. Both run in open mode on loopback with the access log and rate limits off.
The two paths take turns, one request or batch at a time, in alternating order. Measures:

  1. time to first token of ``--ttft-runs`` one-token streamed requests each way (the prompt is in
     llama.cpp's cache after the warm-up): the p50 of the router's added time, and the median of the
     paired differences (each routed request minus the direct one next to it);
  2. generated tokens/s of one streamed chat completion of ``--max-tokens`` tokens (``ignore_eos``),
     routed over direct, median of ``--runs``;
  3. embeddings/s in batches of 64 short texts, routed over direct.

Run by hand: .venv/bin/python bench/remote_bench.py [--ttft-runs 60] [--runs 3] [--threads 1]
Targets: added time to first token <= 2 ms p50; tokens/s and embeddings/s >= 0.95x direct.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _harness import QUIET, Server
from inference_bench import cairn_chat, cairn_embed, loadavg, med, pct, short_texts, table, verdict

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
PROVIDER = "upstream"
TARGETS = {"ttft_added_ms": 2.0, "tok_ratio": 0.95, "embed_ratio": 0.95}


def router_settings(upstream: str) -> dict[str, str]:
    provider = {
        "id": PROVIDER,
        "type": "remote::openai",
        "base_url": upstream + "/v1",
        "timeout": 120,
        "models": [{"id": CHAT}, {"id": EMBED, "type": "embedding", "dimension": 384}],
    }
    return {**QUIET, "CAIRN_EMBEDDED_MODELS": "false", "CAIRN_PROVIDERS": json.dumps([provider])}


async def first_token_ms(client: httpx.AsyncClient, model: str) -> float:
    return (await cairn_chat(client, model, 1)).ttft * 1000


async def bench(args: argparse.Namespace, work: Path) -> int:
    upstream = Server(work / "upstream", work / "upstream.log", {**QUIET, "CAIRN_THREADS": str(args.threads)})
    upstream.start()
    router = Server(work / "router", work / "router.log", router_settings(upstream.url))
    try:
        router.start()
        load_start = loadavg()
        async with (
            httpx.AsyncClient(base_url=upstream.url, timeout=300) as direct,
            httpx.AsyncClient(base_url=router.url, timeout=300) as routed,
        ):
            paths = {"direct": (direct, ""), "routed": (routed, PROVIDER + "/")}
            for client, prefix in paths.values():  # load the models and fill the prompt cache
                await cairn_chat(client, prefix + CHAT, 4)
                await cairn_embed(client, prefix + EMBED, short_texts(64), 1, "float")

            ttft: dict[str, list[float]] = {"direct": [], "routed": []}
            for run in range(args.ttft_runs):
                for name in ("direct", "routed") if run % 2 else ("routed", "direct"):
                    client, prefix = paths[name]
                    ttft[name].append(await first_token_ms(client, prefix + CHAT))

            tok_s: dict[str, list[float]] = {"direct": [], "routed": []}
            embed_s: dict[str, list[float]] = {"direct": [], "routed": []}
            for run in range(args.runs):
                for name in ("direct", "routed") if run % 2 else ("routed", "direct"):
                    client, prefix = paths[name]
                    tok_s[name].append((await cairn_chat(client, prefix + CHAT, args.max_tokens)).tok_s)
                    embed_s[name].append(
                        await cairn_embed(
                            client, prefix + EMBED, short_texts(64), args.embed_batches, "float"
                        )
                    )
    finally:
        router.stop()
        upstream.stop()

    paired = [r - d for r, d in zip(ttft["routed"], ttft["direct"], strict=True)]
    added = med(ttft["routed"]) - med(ttft["direct"])
    minima = min(ttft["routed"]) - min(ttft["direct"])
    tok_ratio = med(tok_s["routed"]) / med(tok_s["direct"])
    embed_ratio = med(embed_s["routed"]) / med(embed_s["direct"])
    rows = [
        [
            "time to first token (ms)",
            f"p50 {med(ttft['direct']):.1f} p99 {pct(ttft['direct'], 99):.1f}",
            f"p50 {med(ttft['routed']):.1f} p99 {pct(ttft['routed'], 99):.1f}",
            f"+{added:.2f} ms p50 (paired median {med(paired):+.2f}, minima {minima:+.2f})",
            verdict(added <= TARGETS["ttft_added_ms"]),
        ],
        [
            f"tokens/s, {args.max_tokens} tokens",
            " ".join(f"{v:.1f}" for v in tok_s["direct"]),
            " ".join(f"{v:.1f}" for v in tok_s["routed"]),
            f"{tok_ratio:.2f}x",
            verdict(tok_ratio >= TARGETS["tok_ratio"]),
        ],
        [
            "embeddings/s, batches of 64",
            " ".join(f"{v:.0f}" for v in embed_s["direct"]),
            " ".join(f"{v:.0f}" for v in embed_s["routed"]),
            f"{embed_ratio:.2f}x",
            verdict(embed_ratio >= TARGETS["embed_ratio"]),
        ],
    ]
    print(table(["measure", "direct (upstream)", "routed (through Cairn)", "Cairn adds", "target"], rows))
    print(f"load average: {load_start} at the start, {loadavg()} at the end")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ttft-runs", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--embed-batches", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp and onnxruntime threads upstream")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cairn-remote-bench-") as work:
        started = time.monotonic()
        code = asyncio.run(bench(args, Path(work)))
        print(f"{time.monotonic() - started:.0f} s")
        return code


if __name__ == "__main__":
    sys.exit(main())
