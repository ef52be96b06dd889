"""``cairn upload``: send a file to a Cairn server through tus, in chunks, with a progress bar; run again
after an interruption and it resumes where the server's offset says.

Where an upload stands is remembered per file (path, size, modification time, server and target) in
a small JSON file in the user's state directory; the server's offset, never the local record, decides
which bytes go next, so no acknowledged byte is sent twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import httpx

TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
READ_BYTES = 1 << 20
RETRIES = 5


class UploadFailed(Exception):
    pass


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped the upload. ``offset`` is the last offset the server confirmed: it keeps at least
    those bytes (and any that arrived after), so running the same upload again resumes there or later."""

    def __init__(self, offset: int, size: int) -> None:
        super().__init__(offset, size)
        self.offset, self.size = offset, size


@dataclass(frozen=True)
class Target:
    """Where the object goes: a bucket and key, or a Files API file with a purpose."""

    bucket: str | None = None
    key: str | None = None
    purpose: str | None = None

    def metadata(self, path: Path, mime_type: str | None) -> dict[str, str]:
        fields = {"filename": path.name}
        if mime_type:
            fields["filetype"] = mime_type
        if self.bucket is not None and self.key is not None:
            fields |= {"bucket": self.bucket, "key": self.key}
        elif self.purpose is not None:
            fields["purpose"] = self.purpose
        return fields


def state_file() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "cairn" / "uploads.json"


class ResumeState:
    """Upload URLs of unfinished uploads, by file fingerprint."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, fingerprint: str) -> str | None:
        return self._load().get(fingerprint)

    def put(self, fingerprint: str, url: str | None) -> None:
        data = self._load()
        if url is None:
            data.pop(fingerprint, None)
        else:
            data[fingerprint] = url
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(data, indent=1))
        partial.replace(self.path)


def fingerprint(server: str, target: Target, path: Path) -> str:
    stat = path.stat()
    identity = [
        server,
        target.bucket,
        target.key,
        target.purpose,
        str(path.resolve()),
        stat.st_size,
        stat.st_mtime_ns,
    ]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


class Progress:
    """A one-line bar on a terminal; a line per tenth of the way otherwise."""

    def __init__(self, total: int, out: TextIO = sys.stderr) -> None:
        self.total, self.out = total, out
        self.started = time.monotonic()
        self.first: int | None = None
        self.shown_tenth = -1
        self.mid_line = False  # a terminal bar without its newline yet

    def show(self, done: int) -> None:
        if self.first is None:
            self.first = done
        fraction = done / self.total if self.total else 1.0
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = (done - self.first) / elapsed / 1e6
        bar = "#" * int(fraction * 30)
        line = (
            f"[{bar:<30}] {fraction:6.1%} {done / 2**20:,.1f}/{self.total / 2**20:,.1f} MiB {rate:,.1f} MB/s"
        )
        if self.out.isatty():
            self.out.write(f"\r{line}")
            self.mid_line = done < self.total
            if not self.mid_line:
                self.out.write("\n")
        elif int(fraction * 10) > self.shown_tenth:
            self.shown_tenth = int(fraction * 10)
            self.out.write(line + "\n")
        self.out.flush()

    def end_line(self) -> None:
        """End a bar cut short, so that what is printed next starts on a line of its own."""
        if self.mid_line:
            self.out.write("\n")
            self.out.flush()
            self.mid_line = False


def _encode_metadata(fields: dict[str, str]) -> str:
    return ",".join(f"{name} {base64.b64encode(value.encode()).decode()}" for name, value in fields.items())


def _chunk(path: Path, offset: int, length: int, progress: Progress) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        sent = 0
        while sent < length and (data := f.read(min(READ_BYTES, length - sent))):
            sent += len(data)
            yield data
            progress.show(offset + sent)


def _check(response: httpx.Response, *expected: int) -> httpx.Response:
    if response.status_code not in expected:
        message = response.text.strip() or response.reason_phrase
        raise UploadFailed(f"{response.request.method} {response.url.path}: {response.status_code} {message}")
    return response


def upload(
    path: Path,
    *,
    server: str,
    target: Target,
    api_key: str | None = None,
    mime_type: str | None = None,
    chunk_bytes: int = 8 << 20,
    state: ResumeState | None = None,
    out: TextIO = sys.stderr,
) -> dict[str, str]:
    """Upload ``path``; returns the headers that say where the object is (``Upload-Offset`` and the
    tus response's object headers). Ctrl-C raises ``Interrupted``, which says how far the server got."""
    state = state or ResumeState(state_file())
    size = path.stat().st_size
    mark = fingerprint(server, target, path)
    headers = dict(TUS_HEADERS)
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    progress = Progress(size, out)
    offset = 0  # always an offset the server confirmed
    try:
        with httpx.Client(base_url=server, headers=headers, timeout=httpx.Timeout(60, connect=10)) as http:
            last = _status(http, state.get(mark))
            if last is None:
                last = _check(
                    http.post(
                        "/v1/tus/",
                        headers={
                            "Upload-Length": str(size),
                            "Upload-Metadata": _encode_metadata(target.metadata(path, mime_type)),
                        },
                    ),
                    201,
                )
                url = str(last.url.join(last.headers["location"]))
                state.put(mark, url)
                offset = 0
            else:
                url, offset = str(last.url), int(last.headers["upload-offset"])
                print(f"resuming at byte {offset:,} of {size:,}", file=out)
            progress.show(offset)
            failures = 0
            while offset < size:
                length = min(chunk_bytes, size - offset)
                try:
                    last = _check(
                        http.patch(
                            url,
                            content=_chunk(path, offset, length, progress),
                            headers={
                                "Upload-Offset": str(offset),
                                "Content-Type": "application/offset+octet-stream",
                                "Content-Length": str(length),
                            },
                        ),
                        204,
                    )
                    offset = int(last.headers["upload-offset"])
                    failures = 0
                except (httpx.TransportError, UploadFailed) as exc:
                    failures += 1
                    if failures > RETRIES:
                        raise UploadFailed(f"{exc}; run the same command again to resume") from exc
                    time.sleep(min(2**failures, 30))
                    status = _status(http, url)  # the server says which bytes it kept
                    if status is None:
                        raise UploadFailed("the server no longer knows this upload; start again") from exc
                    offset = int(status.headers["upload-offset"])
            state.put(mark, None)
    except KeyboardInterrupt:
        progress.end_line()
        raise Interrupted(offset, size) from None
    return dict(last.headers)


def _status(http: httpx.Client, url: str | None) -> httpx.Response | None:
    """The upload's HEAD answer if the server still has it."""
    if url is None:
        return None
    answer = http.head(url)
    return answer if answer.status_code == 200 else None
