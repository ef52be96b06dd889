"""Llama Stack's provider data: the JSON object its client sends in ``X-LlamaStack-Provider-Data``
(``LlamaStackClient(provider_data=…)``, or a call's ``extra_headers``) with settings for the providers a
request reaches. Cairn reads one key, ``mcp_headers`` (headers by MCP server URL,
``core.agents.mcp_tools.McpHeaders``), and leaves the others, as each of Llama Stack's providers reads
only its own. What is malformed is a 400 that never repeats it: it carries credentials. Its size is the
server's to bound, as every header's (``cairn.server``: a header line over 8 KiB is a 431)."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Depends, Header

from ..core.agents.mcp_tools import NO_HEADERS, McpHeaders
from ..core.errors import InvalidInput

PROVIDER_DATA = "X-LlamaStack-Provider-Data"


async def mcp_headers(
    provider_data: Annotated[
        str | None,
        Header(
            alias=PROVIDER_DATA,
            description='A JSON object; its `mcp_headers` (`{"<MCP server URL>": {"<header>": "<value>"}}`) '
            "go to the server of each URL, for this request only.",
        ),
    ] = None,
) -> McpHeaders:
    if provider_data is None:
        return NO_HEADERS
    try:
        data = orjson.loads(provider_data)
    except orjson.JSONDecodeError:  # nested past orjson's limit too
        raise InvalidInput(f"{PROVIDER_DATA} is not valid JSON.", param=PROVIDER_DATA) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{PROVIDER_DATA} must be a JSON object.", param=PROVIDER_DATA)
    return McpHeaders.checked(data.get("mcp_headers"), f"{PROVIDER_DATA}.mcp_headers")


McpHeadersDep = Annotated[McpHeaders, Depends(mcp_headers)]
