"""The built-in tool groups (Llama Stack's ``toolgroups`` that every tenant has), and the tools Cairn runs
for them; the groups a tenant registers (MCP servers) are ``core.agents.registry``'s.

One built-in group is served: ``builtin::rag``, whose one tool ``knowledge_search`` searches the vector
stores the group's ``args`` name (``vector_db_ids``: ``vs_…`` stores of the Vector Stores API) and
answers as Llama Stack's RAG tool does (the chunks found, between a header and a footer, then a reminder
of the query). An agent names a group (``builtin::rag``), one of its tools
(``builtin::rag/knowledge_search``), or either with ``args`` (``{"name": …, "args": {…}}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, NotFound
from ..ports.inference import Json
from ..vectors.stores import VectorStores
from .loop import ServerTool, ToolOutput

RAG = "builtin::rag"
KNOWLEDGE_SEARCH = "knowledge_search"
PROVIDER = "rag-runtime"
MAX_STORES = 16
MAX_CHUNKS = 50
DEFAULT_CHUNKS = 5  # Llama Stack's ``RAGQueryConfig.max_chunks``
SEARCH_MODES = ("vector", "keyword", "hybrid")
MAX_QUERY_CHARS = 256


@dataclass(frozen=True)
class ToolParameter:
    name: str
    parameter_type: str
    description: str
    required: bool = True
    max_length: int | None = None  # of a string: bounds what the model may write

    def schema(self) -> Json:
        schema: Json = {"type": self.parameter_type, "description": self.description}
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        return schema


@dataclass(frozen=True)
class ToolSpec:
    """A tool as Llama Stack lists it (``GET /v1/tools``)."""

    name: str
    description: str
    parameters: tuple[ToolParameter, ...]

    def definition(self) -> Json:
        """As the model sees it: a chat-completions function."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": {
                    "type": "object",
                    "properties": {p.name: p.schema() for p in self.parameters},
                    "required": [p.name for p in self.parameters if p.required],
                },
            },
        }


GROUPS: dict[str, tuple[ToolSpec, ...]] = {
    RAG: (
        ToolSpec(
            KNOWLEDGE_SEARCH,
            "Search for information in a database.",
            (
                ToolParameter(
                    "query",
                    "string",
                    "The query to search for. Can be a natural language sentence or keywords.",
                    max_length=MAX_QUERY_CHARS,
                ),
            ),
        ),
    ),
}
"""Every built-in group, with its tools."""


def group_of(name: str) -> str:
    """The group a toolgroup name or a ``group/tool`` name names."""
    return name.split("/", 1)[0]


async def knowledge_search(args: Json, vector_stores: VectorStores, tenant: str, param: str) -> ServerTool:
    """The ``knowledge_search`` tool over the vector stores ``args`` name, checked: ``InvalidInput``
    naming ``param`` for arguments it cannot honour or a store the tenant does not have."""
    spec = GROUPS[RAG][0]
    unknown = set(args) - {"vector_db_ids", "query_config"}
    if unknown:
        raise InvalidInput(f"`{RAG}` takes no argument `{sorted(unknown)[0]}`.", param=param)
    store_ids = args.get("vector_db_ids")
    if (
        not isinstance(store_ids, list)
        or not 1 <= len(store_ids) <= MAX_STORES
        or not all(isinstance(store_id, str) for store_id in store_ids)
    ):
        raise InvalidInput(
            f"`{RAG}` needs args.vector_db_ids: 1 to {MAX_STORES} vector store ids.",
            param=f"{param}.vector_db_ids",
        )
    for store_id in store_ids:
        try:
            await vector_stores.get(tenant, store_id)
        except NotFound:
            raise InvalidInput(
                f"No vector store '{store_id[:80]}'.", param=f"{param}.vector_db_ids"
            ) from None
    limit, mode = _query_config(args.get("query_config") or {}, f"{param}.query_config")

    async def run(arguments: Json) -> ToolOutput:
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolOutput("", error=f"{KNOWLEDGE_SEARCH} needs a query.")
        hits: list[Any] = []
        for store_id in store_ids:
            page = await vector_stores.search(
                tenant, store_id, query, max_num_results=limit, search_mode=mode
            )
            hits += page.hits
        hits = sorted(hits, key=lambda hit: -hit.score)[:limit]
        return ToolOutput(
            _results(query, hits),
            details={
                "document_ids": [hit.file_id for hit in hits],
                "chunks": [hit.text for hit in hits],
                "scores": [hit.score for hit in hits],
            },
        )

    return ServerTool(spec.name, spec.definition(), run)


def _query_config(config: Json, param: str) -> tuple[int, str]:
    unknown = set(config) - {"max_chunks", "mode"}
    if unknown:
        raise InvalidInput(f"query_config.{sorted(unknown)[0]} is not supported here.", param=param)
    limit = config.get("max_chunks", DEFAULT_CHUNKS)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_CHUNKS:
        raise InvalidInput(f"max_chunks must be 1 to {MAX_CHUNKS}.", param=f"{param}.max_chunks")
    mode = config.get("mode") or "vector"
    if mode not in SEARCH_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(SEARCH_MODES)}.", param=f"{param}.mode")
    return limit, mode


def _results(query: str, hits: Sequence[Any]) -> str:
    parts = [f"knowledge_search tool found {len(hits)} chunks:\nBEGIN of knowledge_search tool results.\n"]
    for index, hit in enumerate(hits, start=1):
        metadata = {"document_id": hit.file_id, "filename": hit.filename}
        parts.append(f"Result {index}\nContent: {hit.text}\nMetadata: {metadata}\n")
    parts.append("END of knowledge_search tool results.\n")
    parts.append(
        f'The above results were retrieved to help answer the user\'s query: "{query}". '
        "Use them as supporting information only in answering this query.\n"
    )
    return "".join(parts)
