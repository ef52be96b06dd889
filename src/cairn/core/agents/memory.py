"""An agent session's memory: the turn ``documents`` of Llama Stack's Agents API, remembered in a vector
store of the session's own and retrieved before each turn's first inference step (a
``memory_retrieval`` step), as Llama Stack's agents did.

- The store: one per session, made on the first turn that brings documents (``memory_store_id``: made
  of the tenant and the session, so every turn and every server worker finds the same one without a
  row of its own; it sorts among the tenant's stores where the session began). It is an ordinary
  vector store of the tenant (named after the session, ``metadata`` naming the agent and the session),
  embedding with ``embedding_model``; it goes with its session and its agent (``forget``).
- A document's ``content`` is text (a string, a text item or a list of items: its text, images left
  out), or a URL (``{"uri"}``, or a string that starts with ``http://``, ``https://``, ``file://`` or
  ``data:``, as Llama Stack reads one): the id of one of the tenant's Cairn files (the face turns this
  server's ``/v1/files/{id}/content`` URLs into ids), or a ``data:`` URL. Any other URL is
  ``InvalidInput``: this server fetches nothing. A file or a ``data:`` URL is read as vector stores read
  files (``core.vectors.extract``: PDF, DOCX, HTML, …), at most ``max_document_bytes``; its name's
  extension, else the document's ``mime_type``, says how.
- Remembering checks and reads every document first (a bad one refuses the turn with nothing written),
  extracts and chunks their text in a worker thread as ingestion does (the store's model's tokenizer,
  the ``auto`` sizes), then inserts all the turn's chunks, at most ``MAX_CHUNKS``, as Llama Stack's
  vector-io does (``core.vectors.raw_chunks``): one document per file (the file id, or a hash of the
  text), the same document given again replacing its chunks.
- Retrieval: the ``MEMORY_CHUNKS`` chunks that best match the text of the turn's user messages, put
  between Llama Stack's header and footer (``inserted_context``), appended to the ``context`` of the
  turn's last user message: the model reads it after the message in this turn (and its resumes), not
  in later turns, which retrieve their own. A session without memory, or a turn without user text,
  retrieves nothing and has no such step.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..errors import Conflict, InvalidInput, NotFound
from ..inference.catalog import Model
from ..inference.router import InferenceRouter
from ..objects import ObjectEngine
from ..ports.inference import Json, ModelType
from ..records import AgentSessionRecord, VectorStoreRecord
from ..vectors.chunking import chunk_sizes, chunks
from ..vectors.extract import extract_text
from ..vectors.ingest import TokenizerFor, window
from ..vectors.raw_chunks import MAX_CHUNKS, RawChunk, RawChunks
from ..vectors.search import MAX_QUERY_CHARS
from ..vectors.stores import VectorStores
from .messages import as_text
from .steps import iso, new_id, step_complete, step_start

MEMORY_CHUNKS = 5  # Llama Stack's ``RAGQueryConfig.max_chunks``
URL_CONTENT = re.compile(r"^(https?://|file://|data:)")
FILE_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
HEADER = "Here are the retrieved documents for relevant context:\n=== START-RETRIEVED-CONTEXT ===\n"
FOOTER = "=== END-RETRIEVED-CONTEXT ===\n"


@dataclass(frozen=True)
class _Source:
    """A document as read: text already, or bytes to extract text from."""

    document_id: str
    name: str  # the file's name, or the document's place in the turn
    mime_type: str
    text: str = ""
    data: bytes | None = None


@dataclass(frozen=True)
class Recalled:
    """What a turn starts with: its input messages (the last user message with the retrieved context),
    its ``memory_retrieval`` step and the payloads that stream it, when it retrieved."""

    input_messages: list[Json]
    steps: list[Json]
    payloads: list[Json]


def memory_store_id(tenant: str, session: AgentSessionRecord) -> str:
    """``vs_`` + the session's start in milliseconds (12 hex digits) + 20 hex digits of a hash of the
    tenant and the session: a vector store id, which sorts where the session began."""
    digest = hashlib.sha256(f"{tenant}/{session.id}".encode()).hexdigest()[:20]
    return f"vs_{int(session.started_at * 1000):012x}{digest}"


class SessionMemory:
    def __init__(
        self,
        vector_stores: VectorStores,
        raw_chunks: RawChunks,
        objects: ObjectEngine,
        inference: InferenceRouter,
        tokenizer_for: TokenizerFor,
        *,
        embedding_model: str,
        max_document_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stores = vector_stores
        self._chunks = raw_chunks
        self._objects = objects
        self._inference = inference
        self._tokenizer_for = tokenizer_for
        self._embedding_model = embedding_model
        self._max_bytes = max_document_bytes
        self._clock = clock

    async def remember(self, tenant: str, session: AgentSessionRecord, documents: list[Json]) -> None:
        """Put the turn's ``documents`` into the session's memory; ``InvalidInput`` (or ``NotFound``
        for a file the tenant does not have) naming the document, before anything is written."""
        sources = [
            await self._source(tenant, document, f"documents[{at}]") for at, document in enumerate(documents)
        ]
        texts = await asyncio.to_thread(self._texts, sources)
        store = await self._stores.rows.get_store(tenant, memory_store_id(tenant, session))
        model_id = self._embedding_model if store is None else store.embedding_model
        model = await self._inference.catalog.get(model_id, ModelType.EMBEDDING, tenant=tenant)
        cut = await asyncio.to_thread(self._cut, sources, texts, model)
        if store is None:
            store = await self._made(tenant, session, model_id)
        await self._chunks.insert(tenant, store.id, cut)

    async def recall(
        self, tenant: str, session: AgentSessionRecord, turn_id: str, input_messages: list[Json]
    ) -> Recalled:
        """The turn's start: from the session's memory, the chunks that best match its user messages."""
        query = " ".join(as_text(m["content"]) for m in input_messages if m["role"] == "user").strip()
        store = await self._stores.rows.get_store(tenant, memory_store_id(tenant, session))
        if store is None or not query:
            return Recalled(input_messages, [], [])
        step_id, started = new_id(), self._clock()
        found = await self._chunks.query(tenant, store.id, query[:MAX_QUERY_CHARS], max_chunks=MEMORY_CHUNKS)
        picked = "".join(f"id:{chunk.metadata['document_id']}; content:{chunk.text}\n" for chunk in found)
        context = HEADER + picked + FOOTER if found else ""
        step = {
            "turn_id": turn_id,
            "step_id": step_id,
            "started_at": iso(started),
            "completed_at": iso(self._clock()),
            "step_type": "memory_retrieval",
            "vector_db_ids": store.id,  # a string, as Llama Stack's ``MemoryRetrievalStep`` has it
            "inserted_context": context,
        }
        payloads = [step_start("memory_retrieval", step_id), step_complete(step)]
        return Recalled(_with_context(input_messages, context), [step], payloads)

    async def forget(self, tenant: str, sessions: Iterable[AgentSessionRecord]) -> None:
        """The memory of these sessions, which are gone."""
        for session in sessions:
            with contextlib.suppress(NotFound):  # it never had documents, or was deleted
                await self._stores.delete(tenant, memory_store_id(tenant, session))

    # Reading

    async def _source(self, tenant: str, document: Json, param: str) -> _Source:
        content, mime_type = document["content"], document["mime_type"]
        uri = content["uri"] if isinstance(content, dict) and "uri" in content else None
        if isinstance(content, str) and URL_CONTENT.match(content):
            uri = content
        if uri is None:
            text = as_text(content)
            digest = hashlib.sha256(f"{mime_type}\0{text}".encode()).hexdigest()[:32]
            return _Source(f"doc-{digest}", param, mime_type, text=text)
        if uri.startswith("data:"):
            data, declared = _data_url(uri, f"{param}.content")
            self._bounded(len(data), param, param)
            digest = hashlib.sha256(data).hexdigest()[:32]
            return _Source(f"doc-{digest}", param, declared or mime_type, data=data)
        if not FILE_ID.fullmatch(uri):
            raise InvalidInput(
                "A document's URL names one of your Cairn files (its id, or this server's "
                "/v1/files/{id}/content URL) or is a data: URL; this server fetches no other URL.",
                param=f"{param}.content",
            )
        try:
            record = await self._objects.get(tenant, None, uri)
        except NotFound as exc:
            raise NotFound(exc.message, param=f"{param}.content") from None
        self._bounded(record.bytes, f"`{record.filename}`", param)
        data = b"".join([part async for part in self._objects.read(record)])
        return _Source(record.id, record.filename, mime_type, data=data)

    def _bounded(self, size: int, name: str, param: str) -> None:
        if size > self._max_bytes:
            raise InvalidInput(
                f"The document {name} has {size} bytes; a document has at most {self._max_bytes}.",
                param=f"{param}.content",
            )

    def _texts(self, sources: list[_Source]) -> list[str]:
        """Each document's text (in a worker thread: extraction is CPU work)."""
        texts, limit = [], self._max_bytes
        for at, source in enumerate(sources):
            text = source.text
            if source.data is not None:
                text = extract_text(source.data, source.name, source.mime_type, max_chars=limit).text
            if not text.strip():
                raise InvalidInput(
                    f"The document {source.name} has no text to remember.", param=f"documents[{at}].content"
                )
            texts.append(text)
        return texts

    def _cut(self, sources: list[_Source], texts: list[str], model: Model) -> list[RawChunk]:
        """The documents' chunks, cut as ingestion cuts a file for ``model`` (in a worker thread)."""
        tokenizer = self._tokenizer_for(model)
        max_tokens, overlap = chunk_sizes(None, window=window(model, tokenizer))
        cut: list[RawChunk] = []
        for source, text in zip(sources, texts, strict=True):
            metadata = {"document_id": source.document_id, "mime_type": source.mime_type}
            for chunk in chunks(text, tokenizer, max_tokens, overlap):
                if len(cut) == MAX_CHUNKS:
                    raise InvalidInput(
                        f"A turn's documents make at most {MAX_CHUNKS} chunks of {max_tokens} tokens; "
                        "give fewer or shorter documents.",
                        param="documents",
                    )
                cut.append(RawChunk(chunk.text, metadata))
        return cut

    # The store

    async def _made(self, tenant: str, session: AgentSessionRecord, model_id: str) -> VectorStoreRecord:
        """The session's store, made now, or by another turn of the session meanwhile."""
        store_id = memory_store_id(tenant, session)
        try:
            made = await self._stores.create(
                tenant,
                name=f"Memory of agent session {session.id}",
                metadata={"agent_id": session.agent_id, "session_id": session.id},
                embedding_model=model_id,
                store_id=store_id,
            )
        except Conflict:  # another turn of the session made it meanwhile
            made = await self._stores.get(tenant, store_id)
        return made.record


def _data_url(uri: str, param: str) -> tuple[bytes, str | None]:
    """The bytes of a ``data:`` URL and the MIME type it declares, if any."""
    header, comma, payload = uri.partition(",")
    if not comma:
        raise InvalidInput("A data: URL has a comma before its data.", param=param)
    kind, *parameters = header.removeprefix("data:").split(";")
    if "base64" not in parameters:
        return urllib.parse.unquote_to_bytes(payload), kind or None
    try:
        return base64.b64decode(payload, validate=True), kind or None
    except binascii.Error:
        raise InvalidInput("The data: URL's data is not base64.", param=param) from None


def _with_context(input_messages: list[Json], context: str) -> list[Json]:
    """The messages with ``context`` after that of the last user message (Llama Stack's place for
    retrieved context)."""
    if not context:
        return input_messages
    last = max(at for at, message in enumerate(input_messages) if message["role"] == "user")
    message = input_messages[last]
    joined = "\n\n".join(part for part in (as_text(message.get("context")), context) if part)
    return [*input_messages[:last], {**message, "context": joined}, *input_messages[last + 1 :]]
