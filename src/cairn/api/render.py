"""Fast JSON rendering shared by the faces."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlencode

import orjson
from starlette.responses import Response

from ..core.objects import KeyListing
from ..core.records import ObjectRecord


def json_response(
    content: Any, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(content), status_code=status_code, headers=headers, media_type="application/json"
    )


def cursor_page(data: list[dict[str, Any]], has_more: bool) -> Response:
    """OpenAI's cursor page: ``{object: "list", data, first_id, last_id, has_more}``."""
    return json_response(
        {
            "object": "list",
            "data": data,
            "first_id": data[0].get("id") if data else None,
            "last_id": data[-1].get("id") if data else None,
            "has_more": has_more,
        }
    )


def key_listing_response(
    listing: KeyListing,
    render: Callable[[ObjectRecord], dict[str, Any]],
    *,
    path: str,
    start_index: int,
    limit: int,
    prefix: str,
    delimiter: str,
) -> Response:
    """``{data, prefixes, has_more, url}`` where ``url`` is the next page, or null on the last one."""
    next_url = None
    if listing.has_more:
        query = {"start_index": start_index + limit, "limit": limit, "prefix": prefix, "delimiter": delimiter}
        next_url = f"{path}?{urlencode(query)}"
    return json_response(
        {
            "data": [render(record) for record in listing.objects],
            "prefixes": listing.prefixes,
            "has_more": listing.has_more,
            "url": next_url,
        }
    )
