"""Workspace benchmark: a folder downloaded as a streamed zip against one file of the same size, same
run, same server; a folder listing of 10,000 entries; the server's RSS throughout.

Starts `cairn serve` (random port, fresh data directory in a temp dir, access log and rate limits off,
open mode), uploads a folder of mixed file sizes (default 1 GiB in 81 files, 256 MiB down to 1 MiB, in
subfolders) and one file of the same total size through `POST /api/v1/files/upload`, then alternates:
  - single: `curl -o /dev/null …/download?path=single/one.bin`;
  - zip: `curl -o /dev/null …/download?path=folder` (checks bytes received == Content-Length);
and prints MB/s medians, the zip/single ratio and the server's peak RSS growth over both. Then it
lists a folder of 10,000 entries (one real upload, the rest of the rows bulk-inserted into cairn.db as
copies of it with fresh ids and keys), alone and again with a sibling subfolder of 100,000 files, and
prints the p50/p99 of `GET /api/v1/files?path=…` (whole listing in one response).

Run by hand: .venv/bin/python bench/workspace_bench.py [--mib 1024] [--runs 3] [--quick]
Targets (issue: workspaces): zip >= 0.8x single; RSS growth <= 32 MiB; listing p50 < 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _harness import RssPeak, start_cairn

MiB = 1 << 20
# (MiB, count) at the default 1 GiB; --mib scales the sizes
MIX = [(256, 1), (128, 1), (64, 7), (16, 8), (1, 64)]


def met(ok: bool) -> str:
    return "MET:" if ok else "NOT MET:"


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        for offset in range(0, size, MiB):
            f.write(os.urandom(min(MiB, size - offset)))


def upload(url: str, path: Path, folder: str) -> None:
    subprocess.run(
        [
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "-F",
            f"file=@{path}",
            "-F",
            f"dir={folder}",
            f"{url}/api/v1/files/upload",
        ],
        check=True,
    )


def download(url: str, path: str) -> tuple[float, int, int]:
    """MB/s, bytes received, Content-Length."""
    done = subprocess.run(
        [
            "curl",
            "-sf",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "\n%{size_download} %{time_total}",
            "-G",
            "--data-urlencode",
            f"path={path}",
            f"{url}/api/v1/files/download",
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    *head, last = done.stdout.strip().splitlines()
    size, seconds = last.split()
    length = next(int(line.split(":")[1]) for line in head if line.lower().startswith("content-length:"))
    return int(size) / float(seconds) / 1e6, int(size), length


def bulk_insert(db: Path, template_key: str, keys: list[str]) -> None:
    """Copies of one real row under new keys and fresh ids (the listing reads rows, never blobs)."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = dict(conn.execute("SELECT * FROM objects WHERE key = ?", (template_key,)).fetchone())
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        now_ms = int(time.time() * 1000)
        rows = []
        for i, key in enumerate(keys):
            row.update(
                id=f"file-{now_ms + i:012x}{secrets.token_hex(10)}", key=key, filename=key.rsplit("/", 1)[-1]
            )
            rows.append(tuple(row.values()))
        conn.executemany(f"INSERT INTO objects ({columns}) VALUES ({marks})", rows)


def list_latency(url: str, path: str, runs: int) -> tuple[float, float, int]:
    """p50 and p99 in ms, and the number of items."""
    times = []
    with httpx.Client(base_url=url, timeout=60) as http:
        count = len(http.get("/api/v1/files", params={"path": path}).json()["items"])  # warm up
        for _ in range(runs):
            started = time.perf_counter()
            response = http.get("/api/v1/files", params={"path": path})
            response.raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))], count


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024, help="folder size and single file size")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--entries", type=int, default=10_000, help="entries in the listed folder")
    parser.add_argument("--subfolder", type=int, default=100_000, help="files in the sibling subfolder")
    parser.add_argument("--quick", action="store_true", help="64 MiB, 1,000 entries, 10,000 in the subfolder")
    args = parser.parse_args()
    if args.quick:
        args.mib, args.entries, args.subfolder = 64, 1_000, 10_000
    work = Path(tempfile.mkdtemp(prefix="cairn-workspace-bench.", dir=tempfile.gettempdir()))
    server, url = start_cairn(work / "data")
    try:
        scale = args.mib / 1024
        files = 0
        for mib, count in MIX:
            for i in range(count):
                size = max(1, int(mib * MiB * scale))
                path = work / "payload" / f"{mib}MiB" / f"part-{i:03d}.bin"
                write_random(path, size)
                upload(url, path, f"folder/{mib}MiB")
                path.unlink()
                files += 1
        single = work / "payload" / "one.bin"
        write_random(single, args.mib * MiB)
        upload(url, single, "single")
        single.unlink()
        sizes = ", ".join(f"{m}" for m, _ in MIX)
        print(f"folder: {files} files, {args.mib} MiB in all (sizes {sizes} MiB x {scale:g})")
        print(f"single: one {args.mib} MiB file; {args.runs} runs each, alternating")

        rss = RssPeak(server.pid)
        base = rss.rss()
        rss.start()
        speeds: dict[str, list[float]] = {"single": [], "zip": []}
        for _ in range(args.runs):
            speeds["single"].append(download(url, "single/one.bin")[0])
            speed, received, length = download(url, "folder")
            assert received == length, (received, length)
            speeds["zip"].append(speed)
        rss.stop.set()
        rss.join()
        single_mbs, zip_mbs = statistics.median(speeds["single"]), statistics.median(speeds["zip"])
        for way, figures in speeds.items():
            print(
                f"{way:6s} {statistics.median(figures):7.0f} MB/s  ({', '.join(f'{x:.0f}' for x in figures)})"
            )
        ratio = zip_mbs / single_mbs
        growth = (rss.peak - base) / MiB
        print(f"zip / single: {ratio:.2f}x ({met(ratio >= 0.8)} >= 0.8x)")
        print(f"server RSS growth during the downloads: {growth:.1f} MiB ({met(growth <= 32)} <= 32 MiB)")

        template = work / "payload" / "f000000.txt"
        write_random(template, 100)
        upload(url, template, "list")
        db = work / "data" / "cairn.db"
        bulk_insert(db, "list/f000000.txt", [f"list/f{i:06d}.txt" for i in range(1, args.entries)])
        p50, p99, count = list_latency(url, "list", 30)
        print(f"list {count} entries: p50 {p50:.1f} ms, p99 {p99:.1f} ms ({met(p50 < 50)} p50 < 50 ms)")
        bulk_insert(db, "list/f000000.txt", [f"list/big/f{i:07d}.txt" for i in range(args.subfolder)])
        p50, p99, count = list_latency(url, "list", 30)
        print(f"list {count} entries, one of them a subfolder of {args.subfolder} files: ", end="")
        print(f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        print(
            json.dumps(
                {"zip_mbs": zip_mbs, "single_mbs": single_mbs, "ratio": ratio, "rss_growth_mib": growth}
            )
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
