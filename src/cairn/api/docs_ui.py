"""The API documentation pages: Swagger UI at ``/docs`` and ReDoc at ``/redoc``, with every script,
stylesheet and icon served by Cairn itself under ``/docs/static/<version>/``, so that they work on a
machine without internet (FastAPI's own pages load them from a CDN). The files come from the
``fastapi-offline`` package (docs/decisions.md D19); the version in their URL lets browsers keep them
for a year and still fetch the new ones after an upgrade."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = f"{DOCS_URL}/static/{version('fastapi-offline')}"
ASSETS_CACHE_CONTROL = "public, max-age=31536000, immutable"  # a new version is a new URL
_ASSETS = ("fastapi_offline", "static")  # swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon


class _VersionedAssets(StaticFiles):
    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = ASSETS_CACHE_CONTROL
        return response


def install_docs(app: FastAPI) -> None:
    """Serve ``/docs``, ``/redoc`` and their assets from Cairn (create the app with ``docs_url=None,
    redoc_url=None``)."""
    app.mount(ASSETS_URL, _VersionedAssets(packages=[_ASSETS]), name="docs-assets")
    app.add_route(DOCS_URL, _swagger_ui(app), include_in_schema=False)
    app.add_route(REDOC_URL, _redoc(app), include_in_schema=False)


def _root(scope: Scope) -> str:
    """The path prefix of a proxy that strips one (``--root-path``), as FastAPI's own pages use it."""
    return scope.get("root_path", "").rstrip("/")


def _swagger_ui(app: FastAPI) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request.scope)
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,  # API keys are bearer tokens: no OAuth2 flow to return from
            init_oauth=app.swagger_ui_init_oauth,
            # no badge that sends the schema to the online validator
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    return swagger_ui


def _redoc(app: FastAPI) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request.scope)
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    return redoc
