"""Resumable uploads against a single streamed upload, same run, same server.

Starts `cairn serve` on a random port with a fresh data directory beside the repo's filesystem, then
uploads one file (default 1 GiB) several ways, each several times, and prints MB/s medians, the ratio of
each way to the single streamed upload, and the server's RSS growth:
  - single: one streamed multipart POST /v1/files (curl -F);
  - session: POST /v1/artifacts, then the bytes in 8 MiB appends with Upload-Offset (one keep-alive
    httpx connection, chunks read from disk as they go);
  - resumed: the same, but the connection is cut once mid-upload, the offset is read back, and the
    upload resumes from it (counts re-sent bytes: must be 0 beyond the cut chunk's unacknowledged part);
  - parts: the OpenAI Uploads API, 64 MiB parts sent 4 at a time, then complete (which joins them);
  - tus: tus 1.0 creation, then 8 MiB PATCHes.
Run by hand: .venv/bin/python bench/uploads_bench.py [--mib 1024] [--runs 3] [--ways single,parts]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from _harness import RssPeak, start_cairn

CHUNK = 8 << 20
PART = 64 << 20
PARALLEL_PARTS = 4
WAYS = ("single", "session", "resumed", "parts", "tus")


def single(url: str, path: Path) -> None:
    subprocess.run(
        ["curl", "-sf", "-o", "/dev/null", "-F", "purpose=batch", "-F", f"file=@{path}", f"{url}/v1/files"],
        check=True,
    )


def session(url: str, path: Path, *, cut_at: int | None = None) -> int:
    """Returns the bytes sent beyond the file size (re-sent after a cut)."""
    size = path.stat().st_size
    with httpx.Client(base_url=url, timeout=120) as http:
        created = http.post(
            "/v1/artifacts",
            json={"key": f"bench/{time.time_ns()}", "mime_type": "application/x", "size": size},
        ).json()
        sent, offset = 0, 0
        with path.open("rb") as f:
            while offset < size:
                f.seek(offset)
                chunk = f.read(CHUNK)
                if cut_at is not None and offset <= cut_at < offset + len(chunk):
                    cut_at = None
                    half = len(chunk) // 2
                    raw = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])))
                    raw.sendall(
                        f"POST {created['uri']} HTTP/1.1\r\nHost: x\r\nUpload-Offset: {offset}\r\n"
                        f"Content-Length: {len(chunk)}\r\n\r\n".encode()
                        + chunk[:half]
                    )
                    time.sleep(0.2)
                    raw.close()
                    sent += half
                    time.sleep(0.3)
                    offset = http.get(created["uri"]).json()["offset"]
                    continue
                response = http.post(created["uri"], content=chunk, headers={"Upload-Offset": str(offset)})
                response.raise_for_status()
                sent += len(chunk)
                offset = int(response.headers["upload-offset"])
    return sent - size


def split_parts(path: Path) -> list[Path]:
    """The payload cut into 64 MiB part files, made once before the runs (the client's own preparation)."""
    pieces = []
    with path.open("rb") as f:
        while data := f.read(PART):
            piece = path.with_name(f"{path.name}.part{len(pieces):04d}")
            piece.write_bytes(data)
            pieces.append(piece)
    return pieces


def parts(url: str, path: Path, pieces: list[Path]) -> None:
    """curl per part (httpx's multipart encoder, not the server, caps out near 25 MB/s here)."""
    size = path.stat().st_size
    with httpx.Client(base_url=url, timeout=300) as http:
        upload = http.post(
            "/v1/uploads",
            json={"bytes": size, "filename": path.name, "mime_type": "application/x", "purpose": "batch"},
        ).json()

        def send(piece: Path) -> str:
            answer = subprocess.run(
                ["curl", "-sf", "-F", f"data=@{piece}", f"{url}/v1/uploads/{upload['id']}/parts"],
                check=True,
                capture_output=True,
            )
            return json.loads(answer.stdout)["id"]  # type: ignore[no-any-return]

        with ThreadPoolExecutor(PARALLEL_PARTS) as pool:
            part_ids = list(pool.map(send, pieces))
        http.post(f"/v1/uploads/{upload['id']}/complete", json={"part_ids": part_ids}).raise_for_status()


def tus(url: str, path: Path) -> None:
    size = path.stat().st_size
    headers = {"Tus-Resumable": "1.0.0"}
    with httpx.Client(base_url=url, timeout=120, headers=headers) as http:
        created = http.post("/v1/tus/", headers={"Upload-Length": str(size)})
        created.raise_for_status()
        location, offset = created.headers["location"], 0
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                response = http.patch(
                    location,
                    content=chunk,
                    headers={"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"},
                )
                response.raise_for_status()
                offset = int(response.headers["upload-offset"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ways", default=",".join(WAYS), help=f"comma-separated, from {', '.join(WAYS)}")
    args = parser.parse_args()
    ways = ["single", *(w for w in args.ways.split(",") if w in WAYS and w != "single")]
    work = Path(tempfile.mkdtemp(prefix="cairn-uploads-bench.", dir=tempfile.gettempdir()))
    server, url = start_cairn(work / "data")
    try:
        path = work / "payload.bin"
        with path.open("wb") as f:
            for _ in range(args.mib):
                f.write(os.urandom(1 << 20))
        size = path.stat().st_size
        print(
            f"payload {args.mib} MiB of random bytes, appends of 8 MiB, parts of 64 MiB x{PARALLEL_PARTS}, "
            f"{args.runs} runs of each way"
        )
        pieces = split_parts(path) if "parts" in ways else []
        rss = RssPeak(server.pid)
        base = rss.rss()
        rss.start()
        results: dict[str, list[float]] = {way: [] for way in ways}
        resent = []
        for run in range(args.runs):
            # the order rotates: the disk's write-back debt grows through a run and must not always
            # fall on the same ways
            for way in ways[run % len(ways) :] + ways[: run % len(ways)]:
                started = time.perf_counter()
                if way == "resumed":
                    resent.append(session(url, path, cut_at=size // 2))
                elif way == "parts":
                    parts(url, path, pieces)
                else:
                    {"single": single, "session": session, "tus": tus}[way](url, path)
                results[way].append(size / (time.perf_counter() - started) / 1e6)
        rss.stop.set()
        rss.join()
        single_median = statistics.median(results["single"])
        for way, figures in results.items():
            median = statistics.median(figures)
            runs = ", ".join(f"{x:.0f}" for x in figures)
            print(f"{way:8s} {median:7.0f} MB/s  ({runs})  ratio to single {median / single_median:.2f}x")
        print(f"server RSS growth over all runs: {(rss.peak - base) / 2**20:.1f} MiB")
        if resent:
            print(f"bytes sent twice per resumed upload (cut mid-append, resumed from the offset): {resent}")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
