"""The ``file_search`` tool of the Responses API: the model asks with queries, Cairn searches the
request's vector stores (``core.vectors``) and the model reads the best chunks, each under its file's
citation marker (``core.responses.citations``); the response shows the call as a ``file_search_call``
item, which keeps its results (shown when ``include`` asks for ``file_search_call.results``), and the
answer cites the files it used."""

from __future__ import annotations

from ..agents.loop import ServerTool, ToolCall, ToolOutput
from ..errors import InvalidInput
from ..ports.inference import Json
from ..vectors.stores import VectorStores
from .citations import Source, marker
from .render import ToolFace

NAME = "file_search"
MAX_STORES = 16
MAX_QUERY_CHARS = 256
CITE = (  # the example's id is no file's: a model that copies it cites nothing
    "Each passage above follows its file's marker. After a sentence that uses a passage, write that "
    "marker, as in: The sky is blue <|file-example|>."
)
DEFINITION = {
    "type": "function",
    "function": {
        "name": NAME,
        "description": "Search the user's files for passages relevant to the question.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {
                    "type": "string",
                    "maxLength": MAX_QUERY_CHARS,
                    "description": "What to search for.",
                }
            },
            "required": ["query"],
        },
    },
}


def file_search_tool(spec: Json, vector_stores: VectorStores, tenant: str) -> ServerTool:
    """The tool for one request's ``{"type": "file_search", "vector_store_ids": [...], ...}``."""
    store_ids = spec.get("vector_store_ids")
    if not isinstance(store_ids, list) or not 1 <= len(store_ids) <= MAX_STORES:
        raise InvalidInput(
            f"file_search needs vector_store_ids: 1 to {MAX_STORES} ids.", param="tools.vector_store_ids"
        )
    limit = spec.get("max_num_results", 10)

    async def run(arguments: Json) -> ToolOutput:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolOutput("", error="file_search needs a query.")
        hits: list[Json] = []
        for store_id in store_ids:
            page = await vector_stores.search(
                tenant,
                store_id,
                query,
                filters=spec.get("filters"),
                max_num_results=limit,
                ranking_options=spec.get("ranking_options"),
            )
            hits += [
                {
                    "file_id": hit.file_id,
                    "filename": hit.filename,
                    "score": hit.score,
                    "attributes": hit.attributes,
                    "text": hit.text,
                }
                for hit in page.hits
            ]
        hits = sorted(hits, key=lambda hit: -hit["score"])[:limit]
        if not hits:
            return ToolOutput("No results.", details=hits)
        passages = [f"{marker(hit['file_id'])} [{hit['filename']}]\n{hit['text']}" for hit in hits]
        return ToolOutput("\n\n".join([*passages, CITE]), details=hits)

    return ServerTool(NAME, DEFINITION, run)


def file_search_face() -> ToolFace:
    def fields(call: ToolCall) -> Json:
        try:
            query = call.parsed().get("query")
        except ValueError:
            query = None
        return {"queries": [query] if isinstance(query, str) else [], "results": None}

    def result(call: ToolCall, output: ToolOutput) -> Json:
        return {"results": output.details}

    def sources(output: ToolOutput) -> list[Source]:
        return [Source(hit["file_id"], hit["filename"], hit["text"]) for hit in output.details or ()]

    return ToolFace("file_search_call", "fs_", fields, result, progress=("searching",), sources=sources)
