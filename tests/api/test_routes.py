"""The route table and the OpenAPI document stay what the docs promise."""

from cairn.app import create_app
from cairn.settings import Settings

PUBLIC_PATHS = {
    "/health": {"get"},
    "/v1/health": {"get"},
    "/v1/version": {"get"},
    "/v1/providers": {"get"},
    "/v1/models": {"get"},
    "/v1/files": {"get", "post"},
    "/v1/files/{file_id}": {"get", "delete"},
    "/v1/files/{file_id}/content": {"get", "head"},
    "/v1/uploads": {"post"},
    "/v1/uploads/{upload_id}/parts": {"post"},
    "/v1/uploads/{upload_id}/complete": {"post"},
    "/v1/uploads/{upload_id}/cancel": {"post"},
    "/v1/artifacts": {"get", "post"},
    "/v1/artifacts/sessions/{upload_id}": {"get", "post", "delete"},
    "/v1/artifacts/bulk": {"post"},
    "/v1/artifacts/{key}": {"get", "delete"},
    "/v1/buckets": {"get", "post"},
    "/v1/buckets/session:{upload_id}": {"get", "post"},
    "/v1/buckets/{bucket}": {"get"},
    "/v1/buckets/{bucket}/{key}": {"get", "delete"},
    "/api/v1/files": {"get"},
    "/api/v1/files/upload": {"post"},
    "/api/v1/files/download": {"get", "head"},
    "/v1/tus/": {"options", "post"},
    "/v1/tus/{upload_id}": {"head", "patch", "delete", "post"},
    "/v1/tus": {"options", "post"},
    "/v1/openai/v1/files": {"get", "post"},
    "/v1/openai/v1/files/{file_id}": {"get", "delete"},
    "/v1/openai/v1/files/{file_id}/content": {"get", "head"},
}


def test_openapi_lists_exactly_the_public_routes(tmp_path) -> None:
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    assert {path: set(ops) for path, ops in schema["paths"].items()} == PUBLIC_PATHS
    upload = schema["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file", "purpose"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_openapi_documents_errors_as_the_openai_envelope_never_422(tmp_path) -> None:
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    envelope = "#/components/schemas/OpenAIError"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (path, method)
            # /v1/tus answers plain text, as tus clients expect (test_tus.py checks its documentation);
            # /api/v1/files has the workspace envelope (test_workspace.py checks its documentation)
            if path.startswith(("/v1/files", "/v1/uploads", "/v1/artifacts", "/v1/buckets")):
                for status in ("400", "401", "404"):
                    content = operation["responses"][status]["content"]["application/json"]
                    assert content["schema"]["$ref"] == envelope, (path, method, status)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_llama_stack_alias_serves_the_files_routes(client) -> None:
    created = client.post(
        "/v1/openai/v1/files", files={"file": ("a.txt", b"alias")}, data={"purpose": "assistants"}
    ).json()
    assert client.get(f"/v1/files/{created['id']}").json() == created
    assert client.get("/v1/openai/v1/files").json()["data"] == [created]
    assert client.get(f"/v1/openai/v1/files/{created['id']}/content").content == b"alias"
    assert client.head(f"/v1/openai/v1/files/{created['id']}/content").headers["content-length"] == "5"
    assert client.delete(f"/v1/openai/v1/files/{created['id']}").json()["deleted"] is True


NEVER_CHARGED = {  # system routes, tus discovery, and the requests that continue an upload already charged
    ("/health", "get"),
    ("/v1/health", "get"),
    ("/v1/version", "get"),
    ("/v1/providers", "get"),
    ("/v1/models", "get"),
    ("/v1/uploads/{upload_id}/parts", "post"),
    ("/v1/uploads/{upload_id}/complete", "post"),
    ("/v1/artifacts/sessions/{upload_id}", "post"),
    ("/v1/buckets/session:{upload_id}", "post"),
    ("/v1/tus/", "options"),
    ("/v1/tus", "options"),
    ("/v1/tus/{upload_id}", "patch"),
}


def test_openapi_documents_429_on_exactly_the_limited_routes_in_their_family_format(tmp_path) -> None:
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert ("429" in answers) == ((path, method) not in NEVER_CHARGED), (path, method)
            if "429" in answers:
                assert answers["429"]["content"] == answers["401"]["content"], (path, method)
                assert set(answers["429"]["headers"]) == {"Retry-After"}
    unlimited = create_app(Settings(data_dir=tmp_path, rate_limits=False)).openapi()
    assert not any("429" in op["responses"] for ops in unlimited["paths"].values() for op in ops.values())
