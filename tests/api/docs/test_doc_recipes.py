"""What the documents tell a new user to run, run as written: docs/deploy.md's one-machine recipe (its
shell block, with only the data directory and port swapped for a test's), the README's advice for
keeping the files uploaded in open mode, and its vector store, Responses and Agents tours (their Python
blocks, with only the server's URL swapped). If a document changes, these fail until they agree again."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
from _support import upload, wait_until

ROOT = Path(__file__).resolve().parents[3]
CAIRN = [sys.executable, "-m", "cairn"]
DOCUMENTED_URL = "http://127.0.0.1:8321"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def code_block(document: Path, heading: str, language: str = "bash") -> str:
    """The first ```language block under the line ``heading`` (``## One machine``)."""
    text = document.read_text()
    start = text.index(f"\n{heading}\n")
    block = re.search(rf"```{language}\n(.*?)```", text[start:], re.S)
    assert block, f"no {language} block under '{heading}' in {document.name}"
    return block.group(1)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any CAIRN_* setting of the machine running the tests."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}, **extra}


def test_the_one_machine_recipe_serves_with_its_key_and_refuses_without(tmp_path: Path) -> None:
    recipe = code_block(ROOT / "docs" / "deploy.md", "## One machine")
    for placeholder in ("/srv/cairn", "--port 8321", "--host 0.0.0.0", ".venv/bin/cairn keys create"):
        assert placeholder in recipe, f"the recipe changed: update this test's substitutions ({placeholder})"
    data_dir, port = tmp_path / "srv-cairn", free_port()
    script = recipe.replace("/srv/cairn", str(data_dir)).replace("--port 8321", f"--port {port}")
    # `.venv/bin/cairn` relative to where the user stands: here, a stand-in for the installed command
    shim = tmp_path / ".venv" / "bin" / "cairn"
    shim.parent.mkdir(parents=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m cairn "$@"\n')
    shim.chmod(0o755)

    log = tmp_path / "recipe.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            ["bash", "-euc", script],
            cwd=tmp_path,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
            start_new_session=True,  # its own process group: bash, the server and its workers
        )
    try:
        assert proc.stdout is not None
        printed = []
        for line in proc.stdout:  # `cairn keys create` prints the key on a line of its own
            printed.append(line)
            if line.startswith("cairn-"):
                break
        assert printed and printed[-1].startswith("cairn-"), "".join(printed) + log.read_text()
        key = printed[-1].strip()

        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            assert proc.poll() is None, log.read_text()  # e.g. it refused to listen on 0.0.0.0
            with contextlib.suppress(httpx.TransportError):
                return httpx.get(f"{url}/health", timeout=1).status_code == 200
            return False

        assert wait_until(answers, timeout=60, interval=0.1), log.read_text()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as keyed:
            created = upload(keyed, b"deployed", "hello.txt")
            assert keyed.get(f"/v1/files/{created['id']}/content").content == b"deployed"
        assert httpx.get(f"{url}/v1/files").status_code == 401
        assert (data_dir / "cairn.db").is_file()  # the key and the files are in the recipe's data directory
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, as in a terminal
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        proc.stdout.close()


def test_a_first_key_for_tenant_default_keeps_the_files_of_open_mode(make_server, backend) -> None:
    live = make_server(keyed=False)  # open mode, as after ./scripts/serve
    with live.client() as anonymous:
        created = upload(anonymous, b"made in open mode", "notes.txt")
    made = subprocess.run(  # what the README says to run
        [*CAIRN, "keys", "create", "--tenant", "default"],
        env=clean_env(
            CAIRN_DATA_DIR=str(live.settings.storage.data_dir), CAIRN_DATABASE_URL=backend.database_url
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    other = live.new_tenant("acme")
    with live.client() as anonymous:  # open mode ends within a second of the first key
        assert wait_until(lambda: anonymous.get("/v1/files").status_code == 401, timeout=5)
    with live.client() as keeper, live.client(other) as stranger:
        keeper.headers["Authorization"] = f"Bearer {key}"
        assert [f["id"] for f in keeper.get("/v1/files").json()["data"]] == [created["id"]]
        assert keeper.get(f"/v1/files/{created['id']}/content").content == b"made in open mode"
        assert stranger.get("/v1/files").json()["data"] == []  # any other tenant: the files are not there


def test_the_readme_vector_store_tour_finds_by_meaning_and_attributes(module_server, tmp_path: Path) -> None:
    tour = code_block(ROOT / "README.md", "### Vector stores", "python")
    assert DOCUMENTED_URL in tour, "the tour changed: update this test's substitution"
    names: dict[str, Any] = {}
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(tour.replace(DOCUMENTED_URL, module_server.url), names)  # in open mode, as the tour is
    names["client"].close()
    lines = printed.getvalue().splitlines()
    assert lines[:2] == ["leave.md completed", "deploys.md completed"]
    assert [hit.filename for hit in names["hits"].data] == ["leave.md"]  # the filter keeps the rest out
    assert lines[3].startswith("Everyone gets 25 days of paid leave")
    assert lines[4] == "deploys.md"


def test_the_readme_responses_tour_streams_calls_and_remembers(module_server, tmp_path: Path) -> None:
    """On the embedded SmolLM2 at temperature 0, as the tour runs it."""
    tour = code_block(ROOT / "README.md", "### Responses", "python")
    assert DOCUMENTED_URL in tour, "the tour changed: update this test's substitution"
    names: dict[str, Any] = {}
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(tour.replace(DOCUMENTED_URL, module_server.url), names)
    names["client"].close()
    last = names["event"]  # the stream's last event
    assert last.type == "response.completed"
    streamed = last.response.output_text
    assert streamed and printed.getvalue().startswith(streamed + "\n")  # the deltas add up to the answer
    lines = printed.getvalue()[len(streamed) + 1 :].splitlines()
    assert lines[0] == 'get_weather {"city": "Paris"}'  # the forced call, constrained to the tool's schema
    assert names["answered"].previous_response_id == names["asked"].id
    assert "24" in lines[1]  # the chain brought the tool's output to the model
    assert "pineapple" in lines[2].lower()  # the second response read the first one's items
    assert lines[3] == "['user', 'assistant', 'user', 'assistant']"


def test_the_readme_agents_tour_pauses_for_its_tool_and_resumes(module_server, tmp_path: Path) -> None:
    """On the embedded SmolLM2, greedy, through Llama Stack's ``Agent`` helper, as the tour runs it."""
    tour = code_block(ROOT / "README.md", "### Agents", "python")
    assert DOCUMENTED_URL in tour, "the tour changed: update this test's substitution"
    names: dict[str, Any] = {}
    with contextlib.chdir(tmp_path), contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(tour.replace(DOCUMENTED_URL, module_server.url), names)
    names["client"].close()
    assert printed.getvalue().splitlines() == [
        "inference tool_execution inference ",
        '"Sunny, 24 °C in Paris"',  # the forced call's argument, constrained to the tool's schema
        "True",
    ]
