"""`cairn upload` against a live server: the command as a user runs it, and the client it drives
interrupted part way and run again (it must resume at the server's offset, re-sending nothing)."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
from _support import TcpProxy

from cairn.upload_client import ResumeState, Target, UploadFailed, fingerprint, upload

MiB = 1 << 20
CAIRN_UPLOAD = [sys.executable, "-m", "cairn", "upload"]


def upload_env(url: str, key: str, tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CAIRN_URL": url, "CAIRN_API_KEY": key, "XDG_STATE_HOME": str(tmp_path)}


def cairn_upload(server, tenant, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = upload_env(server.url, tenant.key, tmp_path)
    return subprocess.run([*CAIRN_UPLOAD, *args], env=env, capture_output=True, text=True, timeout=120)


def percent(progress_line: str) -> float:
    """The share a progress line shows ("[####   ]  40.0% 6.4/16.0 MiB …"), or -1 for another line."""
    return float(progress_line.split("%")[0].split()[-1]) if "%" in progress_line else -1.0


def test_the_default_install_has_the_http_client_of_cairn_upload():
    """`cairn upload` comes with the server (./scripts/serve installs no extras), so what it imports
    must be a dependency of the default install, not of the test extra."""
    pyproject = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())
    names = {
        re.split(r"[\[<>=!~;\s]", spec, maxsplit=1)[0].lower()
        for spec in pyproject["project"]["dependencies"]
    }
    assert "httpx" in names


def test_upload_to_a_bucket_key_and_as_a_file(server, tenant, client, tmp_path):
    data = os.urandom(3 * MiB + 5)
    path = tmp_path / "model.bin"
    path.write_bytes(data)
    keyed = cairn_upload(
        server, tenant, tmp_path, str(path), "--bucket", "models", "--key", "v1/model.bin", "--chunk-mib", "1"
    )
    assert keyed.returncode == 0, keyed.stderr
    assert "100.0%" in keyed.stderr
    assert client.get("/v1/buckets/models/v1/model.bin").json()["bytes"] == len(data)
    file_id, url = keyed.stdout.split()
    assert httpx.get(url, headers=client.headers).content == data
    plain = cairn_upload(server, tenant, tmp_path, str(path), "--purpose", "assistants")
    assert plain.returncode == 0, plain.stderr
    file_id = plain.stdout.split()[0]
    retrieved = client.get(f"/v1/files/{file_id}").json()
    assert (retrieved["filename"], retrieved["purpose"], retrieved["bytes"]) == (
        "model.bin",
        "assistants",
        len(data),
    )
    assert ResumeState(tmp_path / "cairn" / "uploads.json").get("anything") is None


@pytest.mark.parametrize(
    "args",
    [
        ["--bucket", "b"],
        ["--key", "k"],
        ["--bucket", "b", "--key", "k", "--purpose", "batch"],
        ["--chunk-mib", "0"],
    ],
)
def test_contradictory_flags_are_refused(server, tenant, tmp_path, args):
    path = tmp_path / "f"
    path.write_bytes(b"x")
    refused = cairn_upload(server, tenant, tmp_path, str(path), *args)
    assert refused.returncode == 2 and refused.stderr.startswith("error:")


def test_a_missing_file_or_a_wrong_key_fails_clearly(server, tenant, tmp_path):
    missing = cairn_upload(server, tenant, tmp_path, str(tmp_path / "nope"))
    assert missing.returncode == 2 and "not a file" in missing.stderr
    path = tmp_path / "f"
    path.write_bytes(b"x")
    denied = subprocess.run(
        [*CAIRN_UPLOAD, str(path)],
        env=upload_env(server.url, "cairn-wrong", tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert denied.returncode == 1 and "401" in denied.stderr and "Traceback" not in denied.stderr


class SlowLink(TcpProxy):
    """A link that passes the client's bytes on at ``rate`` bytes a second (``None``: at full speed),
    so that an upload is still under way when the test interrupts it."""

    def __init__(self, target_url: str, rate: float | None) -> None:
        super().__init__(target_url)
        self.rate = rate

    def relay(self, data: bytes, from_client: bool) -> tuple[bytes, bool]:
        if from_client and self.rate:
            time.sleep(len(data) / self.rate)
        return data, True


def test_ctrl_c_says_where_it_stopped_and_the_same_command_resumes(server, tenant, client, tmp_path):
    data = os.urandom(16 * MiB + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    link = SlowLink(server.url, rate=4 * MiB)  # 4 s for the whole file: Ctrl-C lands mid-way, busy or not
    command = [*CAIRN_UPLOAD, str(path), "--bucket", "runs", "--key", "big.bin", "--chunk-mib", "1"]
    env = upload_env(link.url, tenant.key, tmp_path)
    try:
        proc = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=as_in_a_terminal,
        )
        assert proc.stderr is not None
        shown = []
        for line in proc.stderr:  # a progress line per tenth of the way (stderr is not a terminal)
            shown.append(line)
            if percent(line) >= 20:
                break
        assert 20 <= percent(shown[-1]) < 100, shown
        proc.send_signal(signal.SIGINT)
        stdout, rest = proc.communicate(timeout=60)
        stderr = "".join(shown) + rest
        assert proc.returncode == 130, stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
        assert stdout == ""
        last = stderr.strip().splitlines()[-1]
        stopped = re.fullmatch(
            r"Interrupted at byte ([\d,]+) of ([\d,]+)\. Run the same command again to resume\.", last
        )
        assert stopped, stderr
        at, size = (int(group.replace(",", "")) for group in stopped.groups())
        assert size == len(data) and 0 < at < size

        link.rate = None
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    finally:
        link.close()
    assert again.returncode == 0, again.stderr
    resumed = re.search(r"resuming at byte ([\d,]+) of ([\d,]+)", again.stderr)
    assert resumed, again.stderr
    assert at <= int(resumed.group(1).replace(",", "")) < size  # the server kept at least what it confirmed
    file_id, _ = again.stdout.split()
    assert client.get("/v1/buckets/runs/big.bin").json()["bytes"] == len(data)
    assert client.get(f"/v1/files/{file_id}/content").content == data
    assert ResumeState(tmp_path / "cairn" / "uploads.json")._load() == {}


def as_in_a_terminal() -> None:
    """Ctrl-C's default meaning for the child, whoever started the tests: a shell without job control
    starts background commands with SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Interrupt(io.StringIO):
    """A progress stream that stops the upload (as Ctrl-C would) once it has passed ``at`` bytes."""

    def __init__(self, at: float) -> None:
        super().__init__()
        self.at = at

    def write(self, text: str) -> int:
        if "%" in text and float(text.split("%")[0].split()[-1]) >= self.at:
            raise KeyboardInterrupt
        return super().write(text)


def settled_offset(client: httpx.Client, url: str) -> int:
    offsets = [-1]
    while True:
        time.sleep(0.3)
        offsets.append(int(client.head(url, headers={"Tus-Resumable": "1.0.0"}).headers["upload-offset"]))
        if offsets[-1] == offsets[-2]:
            return offsets[-1]


def test_an_interrupted_upload_resumes_where_the_server_says(server, tenant, client, tmp_path):
    data = os.urandom(12 * MiB + 321)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    state = ResumeState(tmp_path / "state.json")
    target = Target(bucket="runs", key="big.bin")
    with pytest.raises(KeyboardInterrupt):
        upload(
            path,
            server=server.url,
            target=target,
            api_key=tenant.key,
            chunk_bytes=2 * MiB,
            state=state,
            out=Interrupt(at=55.0),
        )
    (url,) = state._load().values()
    kept = settled_offset(client, url)  # the server keeps what arrived of the cut request, too
    assert 0 < kept < len(data)
    out = io.StringIO()
    headers = upload(
        path, server=server.url, target=target, api_key=tenant.key, chunk_bytes=2 * MiB, state=state, out=out
    )
    assert f"resuming at byte {kept:,} of {len(data):,}" in out.getvalue()
    assert client.get(f"/v1/files/{headers['cairn-file-id']}/content").content == data
    assert state._load() == {}


def test_a_changed_file_starts_a_new_upload(server, tenant, client, tmp_path):
    path = tmp_path / "doc.txt"
    path.write_bytes(b"first version")
    state = ResumeState(tmp_path / "state.json")
    target = Target(bucket="docs", key="doc.txt")
    with pytest.raises(KeyboardInterrupt):
        upload(path, server=server.url, target=target, api_key=tenant.key, state=state, out=Interrupt(at=0.0))
    path.write_bytes(b"second, longer version")
    out = io.StringIO()
    upload(path, server=server.url, target=target, api_key=tenant.key, state=state, out=out)
    assert "resuming" not in out.getvalue()
    assert client.get("/v1/buckets/docs/doc.txt").json()["bytes"] == len(b"second, longer version")


def test_an_upload_the_server_forgot_starts_again(server, tenant, client, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    state = ResumeState(tmp_path / "state.json")
    target = Target(bucket="b", key="f.bin")
    state.put(fingerprint(server.url, target, path), f"{server.url}/v1/tus/upload-{'0' * 32}")  # expired
    out = io.StringIO()
    upload(path, server=server.url, target=target, api_key=tenant.key, state=state, out=out)
    assert "resuming" not in out.getvalue()
    assert client.get("/v1/buckets/b/f.bin").json()["bytes"] == 3
    with pytest.raises(UploadFailed, match="401"):
        upload(path, server=server.url, target=target, api_key="cairn-wrong", state=state, out=io.StringIO())
