"""The examples of the specification documents Cairn implements (issue 17), run against a real server.

Each example is copied here as its document has it (the documents are not in this repository), with the
document and section it came from. It runs literally where it is well-formed; where the document itself
is broken, the repair is applied in code next to it, with a comment saying what it repairs and why.

The documents, and what they hold to run:
- 000, upload sessions and buckets (Llama Stack's first Files API): curl and request-line examples, each
  on one line (the document lost its line breaks), and a Flask sketch of a server, which the same lost
  line breaks put inside a shell comment of the example before it: not a request to run;
- 001, Artifacts, and 004, Agents and Responses (Llama Stack's ``artifacts.py`` and ``agents.py``):
  protocols, routes without examples (docs/api.md maps them);
- 002, the OpenAI-compatible Files API (Llama Stack's ``files.md``): Python and curl examples, and three
  vector-store routes without example code, each sent as its request line says. The document comes as a
  rendered page: its gutter lines are blank lines here, and its code lost its indentation;
- 003, the workspace file API (``api_doc/files.md``): curl examples.

What every example gets, as its environment rather than as a repair: the document's server
(``https://localhost:8321``, ``http://localhost:8000``, ``http://localhost:8091``) is the test server, and
the files it sends exist in the working directory, as do the vector store and the file that 002's
vector-store routes name. The server is in open mode (no key was ever created), as ``./scripts/serve``
starts it: so the examples without a key run as written, and 003's ``Bearer <TOKEN>`` is sent as written
too (open mode does not read it).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from _support import assert_openai_error, wait_until

SERVERS = ("https://localhost:8321", "http://localhost:8000", "http://localhost:8091")

# 000, "Usage examples", "To start a file upload session:"
E000_START = r"""curl -X POST https://localhost:8321/v1/files \ -d '{ "key": "image123.jpg', "bucket": "images", "mime_type": "image/jpg", "size": 12345 }' # Returns { “id”: <session_id> “url”: “https://localhost:8321/v1/files/session:<session_id>”, "offset": 0, "size": 12345 }"""  # noqa: E501
# 000, "To upload file content to an existing session"
E000_APPEND = r"""curl -i -X POST "https://localhost:8321/v1/files/session:<session_id> \ --data-binary @<path_to_local_file> # Returns { "key": "image123.jpg", "bucket": "images", "mime_type": "image/jpg", "bytes": 12345, "created_at": 1737492240 } # Implementing on server side (Flask example for simplicity): @app.route('/uploads/{upload_id}', methods=['POST']) def upload_content_to_session(upload_id): try: # Get the binary file data from the request body file_data = request.data # Save the file to disk save_path = f"./uploads/{upload_id}" with open(save_path, 'wb') as f: f.write(file_data) return {__uploaded_file_json__}, 200 except Exception as e: return 500"""  # noqa: E501
# 000, "To read information about an existing upload session"
E000_OFFSET = r"""curl -i -X GET "https://localhost:8321/v1/files/session:<session_id> # Returns { “id”: <session_id> “url”: “https://localhost:8321/v1/files/session:<session_id>”, "offset": 1024, "size": 12345 }"""  # noqa: E501
# 000, "To list buckets"
E000_BUCKETS = r"""GET /files # Returns { "data": [ {"name": "bucket1"}, {"name": "bucket2"}, ] }"""
# 000, "To list all files in a bucket"
E000_LIST = r"""GET /files/{bucket} # Returns { "data": [ { "key": "shiba.jpg", "bucket": "dogs", "mime_type": "image/jpg", "bytes": 82334, "created_at": 1737492240, }, { "key": "persian_cat.jpg", "mime_type": "image/jpg", "bucket": "cats", "bytes": 39924, "created_at": 1727493440, }, ] }"""  # noqa: E501
# 000, "To get specific file info"
E000_GET = r"""GET /files/{bucket}/{key} { "key": "shiba.jpg", "bucket": "dogs", "mime_type": "image/jpg", "bytes": 82334, "created_at": 1737492240, }"""  # noqa: E501
# 000, "To delete specific file"
E000_DELETE = r"""DELETE /files/{bucket}/{key} { "key": "shiba.jpg", "bucket": "dogs", "mime_type": "image/jpg", "bytes": 82334, "created_at": 1737492240, }"""  # noqa: E501

# 002, "Upload File", "Example:"
E002_UPLOAD = """
import requests

with open("data.jsonl", "rb") as f:
files = {"file": f}
data = {"purpose": "batch"}
response = requests.post(
"http://localhost:8000/v1/openai/v1/files", files=files, data=data
)
file_info = response.json()
"""
# 002, "List Files", "Example:"
E002_LIST = """
import requests

# List all files
response = requests.get("http://localhost:8000/v1/openai/v1/files")
files = response.json()

# List files with pagination
response = requests.get(
"http://localhost:8000/v1/openAi/v1/files",
params={"limit": 10, "after": "file-abc123"},
)
files = response.json()

# Filter by purpose
response = requests.get(
"http://localhost:8000/v1/openAi/v1/files", params={"purpose": "fine-tune"}
)
files = response.json()
"""
# 002, "Retrieve File", "Example:"
E002_RETRIEVE = """
import requests

file_id = "file-abc123"
response = requests.get(f"http://localhost:8000/v1/openAi/v1/files/{file_id}")
file_info = response.json()
"""
# 002, "Delete File", "Example:"
E002_DELETE = """
import requests

file_id = "file-abc123"
response = requests.delete(f"http://localhost:8000/v1/openAi/v1/files/{file_id}")
result = response.json()
"""
# 002, "Retrieve File Content", "Example:"
E002_CONTENT = """
import requests

file_id = "file-abc123"
response = requests.get(f"http://localhost:8000/v1/openAi/v1/files/{file_id}/content")

# Save content to file
with open("downloaded_file.jsonl", "wb") as f:
f.write(response.content)

# Or process content directly
content = response.content
"""
# 002, "Integration Examples", "With Python Client"
E002_CLIENT = """
from llama_stack import LlamaStackClient

client = LlamaStackClient("http://localhost:8000")

# Upload a file
with open("data.jsonl", "rb") as f:
file_info = await client.files.upload(file=f, purpose="fine-tune")

# List files
files = await client.files.list(purpose="fine-tune")

# Retrieve file content
content = await client.files.retrieve_content(file_info.id)
"""
# 002, "Integration Examples", "With cURL"
E002_CURL = r"""
# Upload file
curl -X POST http://localhost:8000/v1/openAi/v1/files \
-F "file=@data.jsonl" \
-F "purpose=fine-tune"

# List files
curl http://localhost:8000/v1/openAi/v1/files

# Download file content
curl http://localhost:8000/v1/openAi/v1/files/file-abc123/content \
-o downloaded_file.jsonl
"""
# 002, "Vector Store Integration", "Vector Store File Operations" (routes, no example code)
E002_VECTOR_STORE_FILES = """
**List Vector Store Files:**
- **GET** `/v1/openAi/v1/vector_stores/{vector_store_id}/files`

**Retrieve Vector Store File Content:**
- **GET** `/v1/openAi/v1/vector_stores/{vector_store_id}/files/{file_id}/content`

**Attach File to Vector Store:**
- **POST** `/v1/openAi/v1/vector_stores/{vector_store_id}/files`
"""

# 003, "1) 上传文件", "curl 示例", "上传到根目录:"
E003_UPLOAD = r"""
curl -sS -X POST \
-H "Authorization: Bearer <TOKEN>" \
-F "file=@./hello.txt" \
http://localhost:8091/api/v1/files/upload
"""
# 003, "1) 上传文件", "curl 示例", "上传到子目录:"
E003_UPLOAD_TO_DIR = r"""
curl -sS -X POST \
-H "Authorization: Bearer <TOKEN>" \
-F "dir=inputs" \
-F "file=@./hello.txt" \
http://localhost:8091/api/v1/files/upload
"""
# 003, "2) 列出目录内容", "curl 示例"
E003_LIST = r"""
curl -sS \
-H "Authorization: Bearer <TOKEN>" \
"http://localhost:8091/api/v1/files?path=inputs"
"""
# 003, "3) 下载文件/目录", "curl 示例", "下载文件:"
E003_DOWNLOAD = r"""
curl -L -o out.txt \
-H "Authorization: Bearer <TOKEN>" \
"http://localhost:8091/api/v1/files/download?path=hello.txt"
"""
# 003, "3) 下载文件/目录", "curl 示例", "下载目录(zip):"
E003_DOWNLOAD_DIR = r"""
curl -L -o inputs.zip \
-H "Authorization: Bearer <TOKEN>" \
"http://localhost:8091/api/v1/files/download?path=inputs"
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cwd")


def repaired(example: str, *repairs: tuple[str, str]) -> str:
    for broken, fixed in repairs:
        assert example.count(broken) == 1, f"the example changed: {broken!r}"
        example = example.replace(broken, fixed)
    return example


def indent_block(example: str, header: str, lines: int) -> str:
    """The ``lines`` lines after the line ``header`` indented, as the block that ``header`` opens."""
    before, found, after = example.partition(header + "\n")
    assert found, f"the example changed: {header!r}"
    body = after.split("\n")
    return before + found + "\n".join(["    " + line for line in body[:lines]] + body[lines:])


def on_server(example: str, url: str, filled: dict[str, str] | None = None) -> str:
    """The example sent to the test server, with its placeholders filled."""
    for server in SERVERS:
        example = example.replace(server, url)
    for placeholder, value in (filled or {}).items():
        example = example.replace(placeholder, value)
    return example


def shell(script: str, cwd: Path) -> str:
    done = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def answer_of(curl_i_output: str) -> tuple[int, Any]:
    """The status and the JSON body of what ``curl -i`` printed (after an interim ``100 Continue``)."""
    head, _, body = curl_i_output.partition("\n\n")
    while head.split()[1] == "100":
        head, _, body = body.partition("\n\n")
    return int(head.split()[1]), json.loads(body)


def json_values(output: str) -> list[Any]:
    """The JSON documents that several commands printed one after another."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(output):
        value, at = decoder.raw_decode(output, at)
        values.append(value)
    return values


def python(example: str, cwd: Path) -> dict[str, Any]:
    """Run the example as a Python prompt would, top-level ``await`` included (``python -m asyncio``),
    and return the names it left."""
    namespace: dict[str, Any] = {}
    code = compile(example, "<example>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with contextlib.chdir(cwd):
        running = eval(code, namespace)
        if inspect.iscoroutine(running):
            asyncio.run(_until_closed(running, namespace))
    return namespace


async def _until_closed(running: Any, namespace: dict[str, Any]) -> None:
    """Await the example, then close the clients it left open, as the end of a prompt's session would
    (their connections belong to this event loop, which ends here)."""
    await running
    for value in namespace.values():
        if not isinstance(value, type) and inspect.iscoroutinefunction(getattr(value, "close", None)):
            await value.close()


def request_line(example: str, url: str, *, body: Any = None, **fill: str) -> httpx.Response:
    """Send the request the example's first words name (``GET /files/{bucket}``), with ``body`` as its
    JSON; 000's paths are under the API's ``/v1``, as its curl examples show (002's name it)."""
    method, path = example.split()[:2]
    if not path.startswith("/v1/"):
        path = "/v1" + path
    return httpx.request(method, url + path.format(**fill), json=body)


def request_lines(routes: str) -> dict[str, str]:
    """The request lines of a Markdown list of routes (``**Title:**`` over ``- **GET** `/path` ``), by
    title."""
    listed = re.findall(r"^\*\*(.+):\*\*\n- \*\*(\w+)\*\* `(\S+)`$", routes, flags=re.M)
    assert listed, "the routes changed"
    return {title: f"{method} {path}" for title, method, path in listed}


def test_000_upload_session_and_bucket_examples(module_server, workdir: Path) -> None:
    url = module_server.url
    image = os.urandom(12345)  # the size the example declares
    # sent in two appends (the document's file is <path_to_local_file>), so that reading the session
    # between them finds the offset the example shows (1024)
    (workdir / "first-1024.jpg").write_bytes(image[:1024])
    (workdir / "rest.jpg").write_bytes(image[1024:])

    start = repaired(
        E000_START,
        # the key's closing quote is a ' where a " belongs, so the JSON and the shell quote end early
        ("\"image123.jpg',", '"image123.jpg",'),
        # curl -d says x-www-form-urlencoded; a JSON body is JSON only when its type says so
        ("curl -X POST ", "curl -X POST -H 'Content-Type: application/json' "),
        # the line break after the continuation backslash was lost (a "\ " is an escaped space)
        (" \\ ", " \\\n"),
    )
    started = json.loads(shell(on_server(start, url), workdir))
    assert set(started) == {"id", "url", "offset", "size"}
    assert (started["offset"], started["size"]) == (0, 12345)
    session = {"<session_id>": started["id"]}

    append = repaired(
        E000_APPEND,
        # the URL's opening quote is never closed: it would run into the comment's quotes
        ("<session_id> \\ ", '<session_id>" \\ '),
        (" \\ ", " \\\n"),  # the lost line break, as above
    )
    status, body = answer_of(
        shell(on_server(append, url, {**session, "<path_to_local_file>": "first-1024.jpg"}), workdir)
    )
    assert (status, body) == (200, None)  # not complete yet

    offset = repaired(E000_OFFSET, ("<session_id> #", '<session_id>" #'))  # the unclosed quote, as above
    status, body = answer_of(shell(on_server(offset, url, session), workdir))
    assert status == 200
    assert (body["id"], body["offset"], body["size"]) == (started["id"], 1024, 12345)
    assert httpx.get(url + body["url"]).json() == body

    status, stored = answer_of(
        shell(on_server(append, url, {**session, "<path_to_local_file>": "rest.jpg"}), workdir)
    )
    assert status == 200
    expected = {"key": "image123.jpg", "bucket": "images", "mime_type": "image/jpg", "bytes": 12345}
    assert stored.items() >= expected.items() and isinstance(stored["created_at"], int)
    assert httpx.get(url + stored["url"]).content == image

    # /v1/files is OpenAI's list of files: the buckets are listed at /v1/buckets (docs/api.md)
    assert httpx.get(f"{url}/v1/files").json()["object"] == "list"
    buckets = request_line(repaired(E000_BUCKETS, ("GET /files", "GET /buckets")), url)
    assert {"name": "images"} in buckets.json()["data"]

    place = {"bucket": "images", "key": "image123.jpg"}
    assert request_line(E000_LIST, url, **place).json()["data"] == [stored]
    assert request_line(E000_GET, url, **place).json() == stored
    assert request_line(E000_DELETE, url, **place).json() == stored
    assert_openai_error(request_line(E000_GET, url, **place), 404, code="not_found")


def test_002_files_examples(module_server, workdir: Path) -> None:
    url = module_server.url
    data = b'{"prompt": "cairn", "completion": "stones"}\n{"prompt": "files", "completion": "kept"}\n'
    (workdir / "data.jsonl").write_bytes(data)

    # the document lost its indentation: the with-blocks get theirs back (through the request that reads f)
    uploaded = python(
        on_server(indent_block(E002_UPLOAD, 'with open("data.jsonl", "rb") as f:', 5), url), workdir
    )
    file_info = uploaded["file_info"]
    assert file_info["id"].startswith("file-")
    assert (file_info["object"], file_info["bytes"], file_info["filename"], file_info["purpose"]) == (
        "file",
        len(data),
        "data.jsonl",
        "batch",
    )
    the_file = {"file-abc123": file_info["id"]}  # the document's example id: a file it uploaded

    first, listed = json_values(shell(on_server(E002_CURL, url, the_file), workdir))
    assert (first["filename"], first["purpose"]) == ("data.jsonl", "fine-tune")
    assert {file_info["id"], first["id"]} <= {f["id"] for f in listed["data"]}
    assert (workdir / "downloaded_file.jsonl").read_bytes() == data

    files = python(on_server(E002_LIST, url, the_file), workdir)["files"]
    assert files["object"] == "list" and first["id"] in {f["id"] for f in files["data"]}
    assert {f["purpose"] for f in files["data"]} == {"fine-tune"}

    assert python(on_server(E002_RETRIEVE, url, the_file), workdir)["file_info"] == file_info

    (workdir / "downloaded_file.jsonl").unlink()
    content = indent_block(E002_CONTENT, 'with open("downloaded_file.jsonl", "wb") as f:', 1)  # as above
    assert python(on_server(content, url, the_file), workdir)["content"] == data
    assert (workdir / "downloaded_file.jsonl").read_bytes() == data

    client = repaired(
        indent_block(E002_CLIENT, 'with open("data.jsonl", "rb") as f:', 1),  # the indentation, as above
        # the client is the package llama_stack_client, and what takes `await` is its async client
        (
            "from llama_stack import LlamaStackClient",
            "from llama_stack_client import AsyncLlamaStackClient as LlamaStackClient",
        ),
        ('LlamaStackClient("http', 'LlamaStackClient(base_url="http'),  # its arguments are keywords
        ("client.files.upload(", "client.files.create("),  # the client's names for these calls
        ("client.files.retrieve_content(", "client.files.content("),
    )
    names = python(on_server(client, url), workdir)
    assert (names["file_info"].filename, names["file_info"].purpose) == ("data.jsonl", "fine-tune")
    assert names["file_info"].id in {f.id for f in names["files"].data}
    assert names["content"] == data.decode()

    result = python(on_server(E002_DELETE, url, the_file), workdir)["result"]
    assert result == {"id": file_info["id"], "object": "file", "deleted": True}
    assert_openai_error(httpx.get(f"{url}/v1/files/{file_info['id']}"), 404, code="not_found")


def test_002_vector_store_file_operations(module_server) -> None:
    """Attach a file, list a vector store's files and read one's content, at E002_VECTOR_STORE_FILES's
    routes (their openAi spelling included)."""
    url = module_server.url
    text = "A cairn is a pile of stones that marks a trail across open ground."
    with httpx.Client(base_url=url) as http:
        uploaded = http.post(
            "/v1/openai/v1/files", files={"file": ("cairn.txt", text)}, data={"purpose": "assistants"}
        )
        file_id = uploaded.json()["id"]
        store_id = http.post("/v1/openai/v1/vector_stores", json={"name": "trail"}).json()["id"]
    routes = request_lines(E002_VECTOR_STORE_FILES)
    store = {"vector_store_id": store_id}

    # the document shows no body: the attachment's is OpenAI's, the file's id
    attached = request_line(routes["Attach File to Vector Store"], url, body={"file_id": file_id}, **store)
    shown = attached.json()
    assert (shown["object"], shown["id"], shown["vector_store_id"], shown["status"]) == (
        "vector_store.file",
        file_id,
        store_id,
        "in_progress",
    )

    def files() -> list[dict[str, Any]]:
        listed = request_line(routes["List Vector Store Files"], url, **store).json()
        assert listed["object"] == "list"
        return listed["data"]  # type: ignore[no-any-return]

    assert wait_until(lambda: files()[0]["status"] != "in_progress", timeout=60, interval=0.1)
    [listed] = files()
    assert (listed["id"], listed["status"], listed["last_error"]) == (file_id, "completed", None)

    content = request_line(routes["Retrieve Vector Store File Content"], url, **store, file_id=file_id)
    assert content.json() == {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text}],
        "has_more": False,
        "next_page": None,
    }


def test_003_workspace_examples(module_server, workdir: Path) -> None:
    url = module_server.url
    hello = "hello, workspace"
    (workdir / "hello.txt").write_text(hello)

    uploaded = json.loads(shell(on_server(E003_UPLOAD, url), workdir))
    assert uploaded.items() >= {"success": True, "path": "hello.txt", "filename": "hello.txt"}.items()
    assert uploaded["size"] == len(hello)
    in_dir = json.loads(shell(on_server(E003_UPLOAD_TO_DIR, url), workdir))
    assert (in_dir["success"], in_dir["path"], in_dir["sha256"]) == (
        True,
        "inputs/hello.txt",
        uploaded["sha256"],
    )

    listed = json.loads(shell(on_server(E003_LIST, url), workdir))
    assert (listed["success"], listed["base"]) == (True, "inputs")
    [item] = listed["items"]
    assert (
        item.items()
        >= {"name": "hello.txt", "is_dir": False, "size": len(hello), "path": "inputs/hello.txt"}.items()
    )

    shell(on_server(E003_DOWNLOAD, url), workdir)
    assert (workdir / "out.txt").read_text() == hello
    shell(on_server(E003_DOWNLOAD_DIR, url), workdir)
    with zipfile.ZipFile(io.BytesIO((workdir / "inputs.zip").read_bytes())) as archive:
        # "zip 内的路径目前是相对 project/ 的(因此通常会包含 user_upload/ 前缀)"
        assert archive.read("user_upload/inputs/hello.txt").decode() == hello


def test_a_first_segment_under_v1_files_is_a_file_id_or_a_bucket(module_server) -> None:
    """What lets the two documents share /v1/files: a file id starts with 'file-', a bucket name never."""
    with module_server.client() as http:
        created = http.post(
            "/v1/files", files={"file": ("a.txt", b"a")}, data={"purpose": "assistants"}
        ).json()
        assert http.get(f"/v1/files/{created['id']}").json() == created
        assert http.get(f"/v1/files/files/{created['id']}").json()["bytes"] == 1  # the bucket 'files'
        assert_openai_error(http.get("/v1/files/file-nope"), 404, code="not_found", param="file_id")
        assert_openai_error(http.delete("/v1/files/nope"), 404, code="not_found", param="file_id")
        assert_openai_error(http.get("/v1/files/not.a.bucket"), 404, code="not_found", param="file_id")
        session = {"bucket": "file-x", "key": "k", "mime_type": "text/plain", "size": 1}
        assert_openai_error(http.post("/v1/buckets", json=session), 400, param="bucket")
        assert_openai_error(http.post("/v1/files", json=session), 400, param="bucket")
        # only /v1/files takes the document's session start: the Llama Stack alias is OpenAI's alone
        alias = http.post("/v1/openai/v1/files", json={**session, "bucket": "b"})
        assert_openai_error(alias, 400, param="Content-Type")


def test_the_llama_stack_prefix_takes_its_openai_segment_in_any_case(module_server) -> None:
    with module_server.client() as http:
        created = http.post(
            "/v1/OPENAI/v1/files", files={"file": ("b.txt", b"b")}, data={"purpose": "assistants"}
        ).json()
        for spelling in ("openai", "openAi", "OpenAI"):
            assert http.get(f"/v1/{spelling}/v1/files/{created['id']}/content").content == b"b"
        assert_openai_error(http.get("/V1/openai/v1/files"), 404, code="not_found")  # only that segment
        assert_openai_error(http.get("/v1/openai/V1/files"), 404, code="not_found")
        paths = http.get("/openapi.json").json()["paths"]
    assert "/v1/openai/v1/files" in paths
    assert all(path.startswith("/v1/openai/v1/") for path in paths if path.lower().startswith("/v1/openai/"))
