"""The same Files API under the Llama Stack prefix (``/v1/openai/v1/files``) driven by
``llama-stack-client``, plus the discovery routes that client calls: providers, models, version, health."""

from __future__ import annotations

from collections.abc import Iterator

import llama_stack_client
import pytest
from _support import assert_openai_error


@pytest.fixture
def llama(server, tenant) -> Iterator[llama_stack_client.LlamaStackClient]:
    with llama_stack_client.LlamaStackClient(
        base_url=server.url, api_key=tenant.key, max_retries=0
    ) as client:
        yield client


def test_llama_files_create_list_retrieve_content_delete(llama):
    first = llama.files.create(file=("one.txt", b"first file"), purpose="assistants")
    second = llama.files.create(file=("two.txt", b"second file"), purpose="assistants")
    assert first.id.startswith("file-") and first.id != second.id
    assert (first.object, first.filename, first.bytes, first.purpose) == ("file", "one.txt", 10, "assistants")

    newer, older = sorted([first.id, second.id], reverse=True)  # ids sort by creation time
    listed = llama.files.list()
    assert listed.object == "list"
    assert [f.id for f in listed.data] == [newer, older]
    assert (listed.first_id, listed.last_id, listed.has_more) == (newer, older, False)
    asc = llama.files.list(order="asc", limit=1)
    assert [f.id for f in asc.data] == [older]
    assert asc.has_more is True
    assert [f.id for f in llama.files.list(order="asc", after=older).data] == [newer]
    assert [f.id for f in llama.files.list(purpose="assistants").data] == [newer, older]

    fetched = llama.files.retrieve(first.id)
    assert (fetched.id, fetched.filename, fetched.bytes, fetched.created_at) == (
        first.id,
        "one.txt",
        10,
        first.created_at,
    )
    assert llama.files.content(first.id) == "first file"

    deleted = llama.files.delete(first.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (first.id, True, "file")
    assert [f.id for f in llama.files.list().data] == [second.id], "only the deleted file is gone"
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.files.retrieve(first.id)
    with pytest.raises(llama_stack_client.NotFoundError):
        llama.files.delete(first.id)


def test_llama_and_openai_prefixes_share_one_store(llama, client):
    via_llama = llama.files.create(file=("shared.txt", b"shared"), purpose="assistants")
    assert client.get(f"/v1/files/{via_llama.id}").json()["filename"] == "shared.txt"
    assert client.get(f"/v1/files/{via_llama.id}/content").content == b"shared"
    via_openai = client.post(
        "/v1/files", data={"purpose": "assistants"}, files={"file": ("o.txt", b"o")}
    ).json()
    assert llama.files.retrieve(via_openai["id"]).filename == "o.txt"
    assert {f.id for f in llama.files.list().data} == {via_llama.id, via_openai["id"]}
    # errors under the Llama Stack prefix use the same envelope
    assert_openai_error(client.get("/v1/openai/v1/files/file-DoesNotExist123"), 404, code="not_found")
    assert_openai_error(client.get("/v1/openai/v1/files?limit=0"), 400, param="limit")


def test_llama_errors_raise_client_exceptions(llama, server):
    for call in (llama.files.retrieve, llama.files.content, llama.files.delete):
        with pytest.raises(llama_stack_client.NotFoundError) as raised:
            call("file-DoesNotExist123")
        assert raised.value.status_code == 404
    with llama_stack_client.LlamaStackClient(
        base_url=server.url, api_key="cairn-wrong-key", max_retries=0
    ) as bad:
        with pytest.raises(llama_stack_client.AuthenticationError):
            bad.files.list()
        with pytest.raises(llama_stack_client.AuthenticationError):
            bad.providers.list()


def test_llama_discovery_routes(llama, client):
    providers = llama.providers.list()
    files = [p for p in providers if p.api == "files"]
    assert len(files) == 1
    assert (files[0].provider_id, files[0].health) == ("cairn", {"status": "OK"})
    embedded = {"llama-cpp/SmolLM2-135M-Instruct", "onnx/all-MiniLM-L6-v2"}
    assert {model.identifier for model in llama.models.list()} == embedded
    assert {model["id"] for model in client.get("/v1/models").json()["data"]} == embedded
    inference = {p.provider_id: p.provider_type for p in providers if p.api == "inference"}
    assert inference == {"llama-cpp": "inline::llama-cpp", "onnx": "inline::onnx"}
    from cairn import __version__

    assert llama.inspect.version().version == __version__
    assert client.get("/v1/version").json() == {"version": __version__}
    assert llama.inspect.health().status == "OK"


def test_health_returns_ok_without_a_key(server):
    with server.client() as anonymous:
        response = anonymous.get("/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}
        deep = anonymous.get("/health", params={"deep": "1"})
        assert deep.status_code == 200
        assert deep.json() == {"status": "ok", "checks": {"metadata": "ok", "blobs": "ok"}}
