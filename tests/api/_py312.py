"""Clients that need Python 3.12 (``llama-stack-client`` 0.3 and 0.7): an environment of their own,
made once per module with that client installed, and a script run in it against the real server.
Skipped where no Python 3.12 is installed (and failed where CAIRN_TEST_REQUIRE_PY312 is set)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest


def python312() -> str | None:
    """A Python 3.12 that runs: this one, one on PATH, or one of pyenv's (whose shim may not run it)."""
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = [
        sys.executable,
        shutil.which("python3.12"),
        *sorted(pyenv.glob("versions/3.12*/bin/python3.12")),
    ]
    for candidate in filter(None, candidates):
        check = [str(candidate), "-c", "import sys; assert sys.version_info[:2] == (3, 12)"]
        if subprocess.run(check, capture_output=True).returncode == 0:
            return str(candidate)
    return None


# What llama-stack-client imports (0.3 and 0.7 alike): its other dependencies (pandas and numpy, the
# larger half of the install, with click, tqdm, pyaml, prompt-toolkit) serve only its command line.
CLIENT_IMPORTS = (
    "httpx",
    "pydantic",
    "anyio",
    "distro",
    "sniffio",
    "typing-extensions",
    "rich",
    "fire",
    "termcolor",
    "requests",
)


def client_environment(tmp_path_factory: pytest.TempPathFactory, client: str) -> Path:
    """The python of a new Python 3.12 environment with ``client`` (a pinned llama-stack-client) and what
    it imports, installed by this interpreter's pip (the environment has none of its own)."""
    interpreter = python312()
    if interpreter is None:
        if os.environ.get("CAIRN_TEST_REQUIRE_PY312"):
            pytest.fail("CAIRN_TEST_REQUIRE_PY312 is set and there is no python3.12")
        pytest.skip(f"{client} needs Python 3.12, and there is none here")
    venv = tmp_path_factory.mktemp("py312") / "venv"
    subprocess.run([interpreter, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [
        sys.executable,
        "-m",
        "pip",
        "--python",
        str(python),
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    subprocess.run([*pip, *CLIENT_IMPORTS], check=True, timeout=600)
    subprocess.run([*pip, "--no-deps", client], check=True, timeout=600)
    return python


def run_script(python: Path, script: str, *args: str) -> Any:
    """Run ``script`` with ``args``; what it printed last, as JSON."""
    ran = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    return json.loads(ran.stdout.strip().splitlines()[-1])
