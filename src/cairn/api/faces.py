"""A face is one API family as the app mounts it. Each face module declares its ``FACE`` next to its
routes; ``cairn.app`` mounts the list of faces and derives everything else from the declarations:

- where it is mounted (``prefixes``: the Files API also under Llama Stack's ``/v1/openai/v1``);
- its error envelope: the ``render_error`` of its routes' class (``FrontDoorRoute``: OpenAI's), which
  the error handlers find on the route that took the request (a path no route takes gets the family of
  the face whose mount it lies under);
- whether its routes are rate limited, and each route's class of charge (``ratelimit.charged_as`` on
  the endpoint; by default by method);
- what browsers may send and read across origins (request and response headers beyond CORS's safe ones);
- whether the OpenAPI lists its routes: not for a face that spells another face's routes differently
  (the OpenAPI lists each operation once, where it canonically lives; docs/api.md names both).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import APIRouter

from .errors import ErrorRenderer


@dataclass(frozen=True)
class Face:
    router: APIRouter
    prefixes: tuple[str, ...] = ("",)
    rate_limited: bool = True
    cors_request_headers: tuple[str, ...] = ()
    cors_response_headers: tuple[str, ...] = ()
    in_openapi: bool = True

    @property
    def render_error(self) -> ErrorRenderer:
        return self.router.route_class.render_error  # type: ignore[attr-defined]

    @property
    def methods(self) -> set[str]:
        return {method for route in self.router.routes for method in getattr(route, "methods", ())}

    @property
    def mounts(self) -> list[str]:
        """The paths under which its routes live."""
        return [prefix + self.router.prefix for prefix in self.prefixes]


def error_families(faces: Iterable[Face]) -> dict[str, ErrorRenderer]:
    """Mount path → error renderer, for the paths that no route takes; the longest mount first, so that
    a path finds the face it lies deepest under."""
    mounts = [(mount, face.render_error) for face in faces for mount in face.mounts if mount]
    return dict(sorted(mounts, key=lambda mount: len(mount[0]), reverse=True))


def cors_headers(faces: Iterable[Face]) -> tuple[list[str], list[str]]:
    """Every request header and every response header some face lets browsers use, each once."""
    faces = list(faces)
    sent = dict.fromkeys(header for face in faces for header in face.cors_request_headers)
    read = dict.fromkeys(header for face in faces for header in face.cors_response_headers)
    return list(sent), list(read)
