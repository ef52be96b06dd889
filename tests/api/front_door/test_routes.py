"""The route table and the OpenAPI document stay what the faces declare and the docs promise."""

import re
from pathlib import Path

from fastapi.routing import APIRoute

from cairn.api.errors import openai_error
from cairn.api.faces import Face
from cairn.app import FACES, create_app
from cairn.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def face_operations(face: Face, prefix: str) -> dict[str, set[str]]:
    operations: dict[str, set[str]] = {}
    for route in face.router.routes:
        if isinstance(route, APIRoute):
            operations.setdefault(prefix + route.path_format, set()).update(m.lower() for m in route.methods)
    return operations


def test_openapi_and_the_api_reference_list_every_route_of_every_face(tmp_path) -> None:
    """No route is hidden from /docs but those of a face that spells another's differently, and
    docs/api.md names each (a Llama Stack alias as its prefix)."""
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    declared: dict[str, set[str]] = {}  # two faces may share a path (POST and GET /v1/chat/completions)
    for face in FACES:
        for prefix in face.prefixes if face.in_openapi else ():
            for path, methods in face_operations(face, prefix).items():
                declared.setdefault(path, set()).update(methods)
    assert {path: set(ops) for path, ops in schema["paths"].items()} == declared
    reference = re.sub(r"\{[^}]*\}", "{}", (ROOT / "docs" / "api.md").read_text())
    for face in FACES:
        for path in face_operations(face, face.prefixes[0]):
            assert re.sub(r"\{[^}]*\}", "{}", path) in reference, path
    upload = schema["paths"]["/v1/files"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert upload["required"] == ["file", "purpose"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]


def test_openapi_documents_errors_as_the_openai_envelope_never_422(tmp_path) -> None:
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    openai_family = {
        path
        for face in FACES
        if face.render_error is openai_error
        for prefix in face.prefixes
        for path in face_operations(face, prefix)
    }
    envelope = "#/components/schemas/OpenAIError"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert "422" not in operation["responses"], (path, method)
            # /v1/tus answers plain text, as tus clients expect (test_tus.py checks its documentation);
            # /api/v1/files has the workspace envelope (test_workspace.py checks its documentation)
            if path in openai_family:
                for status in {"400", "401", "404"} & set(operation["responses"]):
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


def test_openapi_documents_429_on_exactly_the_limited_routes_in_their_family_format(tmp_path) -> None:
    """Charged: every route of a rate-limited face but those whose endpoint declares otherwise
    (``charged_as(None)``: the requests that continue an upload) and OPTIONS (tus discovery)."""
    schema = create_app(Settings(data_dir=tmp_path)).openapi()
    charged = {
        (path, method)
        for face in FACES
        if face.rate_limited
        for prefix in face.prefixes
        for route in face.router.routes
        if isinstance(route, APIRoute) and getattr(route.endpoint, "charged_as", True) is not None
        for path, method in ((prefix + route.path_format, m.lower()) for m in route.methods)
        if method != "options"
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            answers = operation["responses"]
            assert ("429" in answers) == ((path, method) in charged), (path, method)
            if "429" in answers:
                assert answers["429"]["content"] == answers["401"]["content"], (path, method)
                assert set(answers["429"]["headers"]) == {"Retry-After"}
    unlimited = create_app(Settings(data_dir=tmp_path, rate_limits=False)).openapi()
    assert not any("429" in op["responses"] for ops in unlimited["paths"].values() for op in ops.values())
