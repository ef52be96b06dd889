"""Helpers shared by the API tests: hand-built multipart bodies, a raw HTTP/1.1 connection for what
httpx will not send (truncated bodies, stalls, pipelined requests on one socket), a TCP proxy that
breaks connections on demand, `cairn serve` processes as a user starts them, and the data directory
views the cleanup tests inspect. Nothing here touches Cairn's code."""

from __future__ import annotations

import contextlib
import hashlib
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

CAIRN = [sys.executable, "-m", "cairn"]
BOUNDARY = b"cairn-test-boundary-7f3a"
MULTIPART = "multipart/form-data; boundary=" + BOUNDARY.decode()

Part = tuple[list[bytes], bytes]  # (header lines without CRLF, body)


def field_part(name: str, value: str | bytes) -> Part:
    data = value.encode() if isinstance(value, str) else value
    return [f'Content-Disposition: form-data; name="{name}"'.encode()], data


def file_part(
    data: bytes, filename: bytes | str = b"data.bin", *, name: str = "file", content_type: bytes | None = None
) -> Part:
    raw_name = filename.encode() if isinstance(filename, str) else filename
    headers = [b'Content-Disposition: form-data; name="' + name.encode() + b'"; filename="' + raw_name + b'"']
    if content_type is not None:
        headers.append(b"Content-Type: " + content_type)
    return headers, data


def multipart(*parts: Part, boundary: bytes = BOUNDARY, close: bool = True) -> bytes:
    """A multipart/form-data body from parts; ``close=False`` leaves out the closing boundary."""
    out = bytearray()
    for headers, body in parts:
        out += b"--" + boundary + b"\r\n"
        for line in headers:
            out += line + b"\r\n"
        out += b"\r\n" + body + b"\r\n"
    if close:
        out += b"--" + boundary + b"--\r\n"
    return bytes(out)


def upload_body(data: bytes, filename: bytes | str = b"data.bin", purpose: str = "assistants") -> bytes:
    return multipart(field_part("purpose", purpose), file_part(data, filename))


def upload(
    client: httpx.Client, data: bytes, filename: str = "data.bin", purpose: str = "assistants", **fields: str
) -> dict[str, Any]:
    """Upload through httpx's own multipart encoder; returns the file object."""
    response = client.post("/v1/files", data={"purpose": purpose, **fields}, files={"file": (filename, data)})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_openai_error(
    response: httpx.Response, status: int, *, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """The response is ``status`` with exactly the OpenAI envelope and no traceback in it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    assert_no_traceback(response.text)
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error  # type: ignore[no-any-return]


def assert_no_traceback(text: str) -> None:
    for marker in ("Traceback", 'File "', "site-packages", "most recent call"):
        assert marker not in text, text


def staging_files(data_dir: Path) -> list[Path]:
    staging = data_dir / "staging"
    return sorted(staging.iterdir()) if staging.exists() else []


def blob_files(data_dir: Path) -> list[Path]:
    blobs = data_dir / "blobs"
    return sorted(p for p in blobs.rglob("*") if p.is_file()) if blobs.exists() else []


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return values[-1] if values else None


@dataclass
class RawConnection:
    """One TCP connection speaking HTTP/1.1 by hand. Reads exactly one response at a time and keeps
    whatever follows, so several requests can share the socket and a server close is visible."""

    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)

    @classmethod
    def open(cls, url: str, timeout: float = 10.0) -> RawConnection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def request(
        self,
        method: str,
        target: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_length: int | None = None,
    ) -> None:
        """Send a request; ``content_length`` may differ from ``len(body)`` (to send part of a body)."""
        length = len(body) if content_length is None else content_length
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers)]
        if method not in ("GET", "HEAD", "DELETE") or body or content_length is not None:
            lines.append(f"Content-Length: {length}")
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self._fill()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        index = self.buffer.index(b"\r\n")
        return self._take(index + 2)[:-2]

    def response(self, *, head: bool = False) -> RawResponse:
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        index = self.buffer.index(b"\r\n\r\n")
        head_block = self._take(index + 4)[:-4].decode("latin-1").split("\r\n")
        _, status, *reason = head_block[0].split(" ", 2)
        headers = []
        for line in head_block[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        result = RawResponse(int(status), reason[0] if reason else "", headers, b"")
        if head or result.status in (204, 304) or result.status < 200:
            return result
        length = result.header("content-length")
        if length is not None:
            result.body = self._take(int(length))
        elif (result.header("transfer-encoding") or "").lower() == "chunked":
            body = bytearray()
            while size := int(self._line().split(b";")[0], 16):
                body += self._take(size)
                self._take(2)
            while self._line():
                pass
            result.body = bytes(body)
        else:
            while True:
                try:
                    self._fill()
                except ConnectionError:
                    break
            result.body = bytes(self.buffer)
            self.buffer.clear()
        return result

    def server_closed(self, wait: float = 0.5) -> bool:
        """True if the server has closed (or reset) the connection within ``wait`` seconds."""
        self.sock.settimeout(wait)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(10.0)
        if chunk:
            self.buffer += chunk
            return False
        return True


class TcpProxy:
    """A TCP proxy on 127.0.0.1 to the host and port of ``target_url``, which a test controls:
    ``refuse()`` turns new connections away, as a server that is down does; ``cut()`` breaks every open
    one, as a restart does to its clients; ``restore()`` lets new connections through again. ``url`` is
    ``target_url`` through the proxy. Subclasses watch or break the traffic in ``relay``."""

    def __init__(self, target_url: str) -> None:
        target = urlsplit(target_url)
        assert target.hostname and target.port, target_url
        self._target = (target.hostname, target.port)
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._refusal: Callable[[socket.socket], None] | None = None
        self._listener = socket.create_server(("127.0.0.1", 0))
        user, at, _ = target.netloc.rpartition("@")
        port = self._listener.getsockname()[1]
        self.url = urlunsplit(target._replace(netloc=f"{user}{at}127.0.0.1:{port}"))
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse(self, answer: Callable[[socket.socket], None] | None = None) -> None:
        """Reset each new connection at once, or hand it to ``answer`` (in a thread of its own)."""
        self._refusal = answer or _reset

    def restore(self) -> None:
        self._refusal = None

    def cut(self) -> None:
        with self._lock:
            broken, self._open = self._open, set()
        for sock in broken:
            _hang_up(sock)

    def close(self) -> None:
        self._listener.close()
        self.cut()

    def relay(self, data: bytes, from_client: bool) -> tuple[bytes, bool]:
        """What of ``data`` to pass on, and whether the connection goes on after it."""
        return data, True

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            if (refusal := self._refusal) is not None:
                threading.Thread(target=refusal, args=(downstream,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self._target)
            except OSError:
                _reset(downstream)
                continue
            with self._lock:
                self._open |= {downstream, upstream}
            for source, sink, from_client in ((downstream, upstream, True), (upstream, downstream, False)):
                threading.Thread(target=self._pump, args=(source, sink, from_client), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                passed, going_on = self.relay(data, from_client)
                sink.sendall(passed)
                if not going_on:
                    return
        except OSError:
            pass
        finally:
            with self._lock:
                self._open -= {source, sink}
            for sock in (source, sink):
                _hang_up(sock)


def _hang_up(sock: socket.socket) -> None:
    """End the connection now: a bare close() would leave it open while another thread reads it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def auth(key: str) -> tuple[str, str]:
    return ("Authorization", f"Bearer {key}")


def create_many(
    url: str, key: str, count: int, *, purpose: str = "assistants", connections: int = 8, batch: int = 25
) -> list[str]:
    """Upload ``count`` tiny files as fast as the server takes them: several connections, each with
    pipelined batches of requests. Returns the new ids (in no particular order)."""
    import json
    import threading

    ids: list[str] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def request(i: int) -> bytes:
        body = upload_body(b"%d" % i, f"f{i}.txt", purpose)
        head = (
            f"POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: {MULTIPART}\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def worker(numbers: list[int]) -> None:
        try:
            with RawConnection.open(url) as conn:
                for start in range(0, len(numbers), batch):
                    chunk = numbers[start : start + batch]
                    conn.send(b"".join(request(i) for i in chunk))
                    for _ in chunk:
                        response = conn.response()
                        assert response.status == 200, response.body
                        with lock:
                            ids.append(json.loads(response.body)["id"])
        except BaseException as exc:  # surfaced in the calling thread
            failures.append(exc)

    threads = [
        threading.Thread(target=worker, args=(list(range(n, count, connections)),))
        for n in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return ids


async def backdate_session(database_url: str, session_id: str) -> None:
    """Make a session's expiry lie in the past, as if its lifetime had run out (the periodic sweep
    is an hour away in these servers, so only the read-time check can refuse it)."""
    statement = "UPDATE upload_sessions SET expires_at = 1 WHERE id = "
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.split(":///", 1)[1]) as db:
            assert db.execute(statement + "?", (session_id,)).rowcount == 1
        return
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.execute(statement + "$1", session_id) == "UPDATE 1"
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # type: ignore[no-any-return]


class ServeProcesses:
    """`cairn serve` processes with the environment ``env``, their stderr appended to ``log``;
    ``stop_all`` interrupts the ones still running, as Ctrl-C does."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, port: int | None = None) -> tuple[str, subprocess.Popen[bytes]]:
        """Start one on ``port`` (a free one by default) and return its URL once /health answers."""
        url = f"http://127.0.0.1:{port or free_port()}"
        with self.log.open("ab") as sink:
            command = [*CAIRN, "serve", "--port", url.rsplit(":", 1)[1], *args]
            proc = subprocess.Popen(command, env=self.env, stderr=sink)
        self.procs.append(proc)

        def ready() -> bool:
            assert proc.poll() is None, self.log.read_text()
            try:
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        assert wait_until(ready, timeout=60, interval=0.1), self.log.read_text()
        return url, proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=30)
