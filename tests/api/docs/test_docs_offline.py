"""/docs and /redoc work on a machine without internet: every script, stylesheet and icon their pages
load is served by Cairn itself, and the schema they show lists the routes clients really call."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

# What each page needs to come alive: the file that defines what its inline script or markup uses
PAGES = {
    "/docs": {"swagger-ui-bundle.js": "SwaggerUIBundle", "swagger-ui.css": ".swagger-ui"},
    "/redoc": {"redoc.standalone.js": "spec-url"},
}
CONTENT_TYPES = {
    ".js": {"text/javascript", "application/javascript"},
    ".css": {"text/css"},
    ".png": {"image/png"},
}


class _References(HTMLParser):
    """The URLs a browser fetches to show a page: script sources and linked stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        url = named.get("src") if tag == "script" else named.get("href") if tag == "link" else None
        if url:
            self.urls.append(url)


@pytest.mark.parametrize("page", PAGES)
def test_docs_page_loads_only_what_cairn_serves(server, page) -> None:
    with server.client() as http:  # the docs need no key, even on a keyed server
        response = http.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "http://" not in response.text and "https://" not in response.text
        parser = _References()
        parser.feed(response.text)
        names = {url.rsplit("/", 1)[-1]: url for url in parser.urls}
        assert set(PAGES[page]) <= set(names), parser.urls
        for name, url in names.items():
            assert url.startswith("/") and not url.startswith("//"), url
            asset = http.get(url)
            assert asset.status_code == 200, url
            media_type = asset.headers["content-type"].split(";")[0]
            assert media_type in CONTENT_TYPES[name[name.rindex(".") :]], (url, media_type)
            assert "max-age=31536000" in asset.headers["cache-control"], url
            assert PAGES[page].get(name, "").encode() in asset.content, url
        assert http.get("/openapi.json").status_code == 200


def test_schema_lists_the_llama_stack_alias_and_tus_without_slash(server) -> None:
    with server.client() as http:
        schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    for alias in (
        "/v1/openai/v1/files",
        "/v1/openai/v1/files/{file_id}",
        "/v1/openai/v1/files/{file_id}/content",
    ):
        original = alias.removeprefix("/v1/openai")
        assert set(paths[alias]) == set(paths[original]), alias
        for method, operation in paths[alias].items():
            assert operation["responses"].keys() == paths[original][method]["responses"].keys(), alias
    assert set(paths["/v1/tus"]) == set(paths["/v1/tus/"]) == {"options", "post"}
    assert paths["/v1/tus"]["post"]["responses"] == paths["/v1/tus/"]["post"]["responses"]
    operation_ids = [
        operation["operationId"] for operations in paths.values() for operation in operations.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
