"""Searching a vector store (OpenAI's ``POST /v1/vector_stores/{id}/search`` with Llama Stack's
``search_mode`` and rankers): the queries checked, optionally rewritten, embedded with the store's own
model, matched by nearness, by keywords or both, fused, thresholded and paged.

Scores lie in [0, 1], so ``score_threshold`` means the same in every mode:
- vector: ``max(cos, 0)`` (a chunk pointing away from the query scores 0);
- keyword: ``s / (1 + s)`` of the index's keyword score ``s`` (BM25 on SQLite, ``ts_rank_cd`` on
  PostgreSQL): monotone, so the order is the index's, and independent of the other hits. English stop
  words are no keywords (``ports.vectors``): a query of them alone finds nothing by keywords, and a
  hybrid search of it ranks by nearness alone;
- hybrid, ``weighted`` (the default for ``auto`` and ``default-2024-11-15``):
  ``(w_e * vector + w_t * keyword) / (w_e + w_t)`` with ``hybrid_search``'s ``embedding_weight`` and
  ``text_weight`` (1 and 1 unless given), a chunk missing from one list scoring 0 there;
- hybrid, ``rrf``: ``sum(1 / (K + rank)) / (2 / (K + 1))`` over the two lists (ranks from 1, K = 60):
  reciprocal rank fusion divided by its largest possible value, so a chunk first in both scores 1.
Several queries are searched each and merged by the best score of each chunk. Ties break by file id
and chunk index, so the order is total and the same on every call.

Paging: a result page holds ``max_num_results`` hits; ``next_page`` is an opaque token holding the
next offset and a digest of the store, the queries and every option, so a token given with another
search is ``InvalidInput``. The first ``MAX_DEPTH`` results can be paged through, no further. Vector and
keyword searches read ``offset + limit + 1`` hits per query (a best-score merge of prefixes is a prefix
of the merge); a hybrid search reads a fixed ``MAX_DEPTH + 1`` candidates from each list, so a chunk's
fused score, and thus the order, does not depend on the page asked for.

``rewrite_query`` asks the chat model ``rewrite_model`` (temperature 0, a short bounded prompt, at most
``REWRITE_TOKENS`` tokens) to turn each query into search terms; ``search_query`` reports what was
searched. When that model is busy or unavailable the original query is searched and a warning logged:
a rewrite is an optimisation, never the reason a search fails. Other errors (the model unknown) are
raised, as a misconfiguration should be.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from ..errors import InvalidInput, NotFound, RateLimited, Unavailable
from ..inference.router import InferenceRouter
from ..objects import ObjectEngine
from ..ports.vector_stores import VectorStoreRows
from ..ports.vectors import ChunkHit, Filter, Scalar, VectorIndex
from ..records import VectorStoreRecord
from .filters import parse_filters

log = logging.getLogger(__name__)

MAX_QUERIES = 16
MAX_QUERY_CHARS = 4096
MAX_RESULTS = 50
DEFAULT_RESULTS = 10
MAX_DEPTH = 1000  # results reachable by paging
MAX_TOKEN_CHARS = 256
RRF_K = 60
REWRITE_TOKENS = 48
TOUCH_EVERY = 60  # seconds: a store searched more often is written at most this often

SearchMode = Literal["vector", "keyword", "hybrid"]
Ranker = Literal["weighted", "rrf"]
RANKERS: dict[str, Ranker] = {
    "auto": "weighted",
    "default-2024-11-15": "weighted",
    "weighted": "weighted",
    "rrf": "rrf",
}
REWRITE_PROMPT = (
    "Rewrite the user's question as a short search query for a document index: the key terms only, "
    "on one line, no explanation."
)


@dataclass(frozen=True)
class SearchHit:
    file_id: str
    filename: str
    score: float
    attributes: dict[str, Scalar]
    text: str
    metadata: dict[str, Any] | None = None  # the chunk's own (``ChunkHit.metadata``)


@dataclass(frozen=True)
class SearchPage:
    """OpenAI's ``vector_store.search_results.page``."""

    search_query: list[str]
    hits: list[SearchHit]
    has_more: bool
    next_page: str | None


@dataclass(frozen=True)
class _Options:
    queries: list[str]
    filters: Filter | None
    limit: int
    mode: SearchMode
    ranker: Ranker
    threshold: float
    weights: tuple[float, float]
    digest: str


class VectorSearch:
    def __init__(
        self,
        rows: VectorStoreRows,
        index: VectorIndex,
        objects: ObjectEngine,
        inference: InferenceRouter,
        *,
        rewrite_model: str,
        clock: Callable[[], float],
    ) -> None:
        self._rows = rows
        self._index = index
        self._objects = objects
        self._inference = inference
        self._rewrite_model = rewrite_model
        self._clock = clock

    async def search(
        self,
        store: VectorStoreRecord,
        query: object,
        *,
        filters: object = None,
        max_num_results: object = DEFAULT_RESULTS,
        ranking_options: Mapping[str, Any] | None = None,
        rewrite_query: bool = False,
        search_mode: object = "vector",
        page: str | None = None,
    ) -> SearchPage:
        """One page of the store's chunks best matching ``query``; the store is the caller's, checked."""
        options = _options(
            store, query, filters, max_num_results, ranking_options, rewrite_query, search_mode
        )
        offset = _offset(page, options.digest)
        queries = options.queries
        if rewrite_query:
            queries = [await self._rewritten(q, store.tenant) for q in queries]
        ranked = await self._ranked(store, queries, options, offset)
        end = min(offset + options.limit, MAX_DEPTH)
        shown = ranked[offset:end]
        has_more = len(ranked) > end and end < MAX_DEPTH
        await self._touch(store)
        return SearchPage(
            search_query=queries,
            hits=await self._shown(store.tenant, shown),
            has_more=has_more,
            next_page=_token(end, options.digest) if has_more else None,
        )

    async def _ranked(
        self, store: VectorStoreRecord, queries: list[str], options: _Options, offset: int
    ) -> list[tuple[float, ChunkHit]]:
        depth = MAX_DEPTH + 1 if options.mode == "hybrid" else offset + options.limit + 1
        vectors: list[list[float]] = []
        if options.mode != "keyword":
            _, embedded = await self._inference.embed(store.embedding_model, queries, store.tenant)
            vectors = [list(v) for v in embedded.vectors]
        best: dict[tuple[str, int], tuple[float, ChunkHit]] = {}
        for at, text in enumerate(queries):
            near = keyed = []
            if options.mode != "keyword":
                near = await self._index.nearest(store.id, vectors[at], limit=depth, filters=options.filters)
            if options.mode != "vector":
                keyed = await self._index.keyword(store.id, text, limit=depth, filters=options.filters)
            for score, hit in _fused(near, keyed, options):
                key = (hit.file_id, hit.index)
                if score >= options.threshold and (key not in best or best[key][0] < score):
                    best[key] = (score, hit)
        return sorted(best.values(), key=lambda pair: (-pair[0], pair[1].file_id, pair[1].index))

    async def _rewritten(self, query: str, tenant: str) -> str:
        body = {
            "model": self._rewrite_model,
            "messages": [
                {"role": "system", "content": REWRITE_PROMPT},
                {"role": "user", "content": query},
            ],
            "temperature": 0,
            "max_tokens": REWRITE_TOKENS,
        }
        try:
            answer = await self._inference.chat(body, tenant)
        except (RateLimited, Unavailable) as exc:
            log.warning("query rewrite skipped, %s: %s", self._rewrite_model, exc)
            return query
        content = answer["choices"][0]["message"].get("content") or ""
        lines = [line.strip().strip("\"'") for line in content.splitlines() if line.strip()]
        return lines[0][:MAX_QUERY_CHARS] if lines and lines[0] else query

    async def _shown(self, tenant: str, ranked: list[tuple[float, ChunkHit]]) -> list[SearchHit]:
        names: dict[str, str | None] = {}
        for _, hit in ranked:
            if hit.file_id not in names:
                names[hit.file_id] = await self._name(tenant, hit)
        return [
            SearchHit(hit.file_id, name, score, dict(hit.attributes), hit.text, hit.metadata)
            for score, hit in ranked
            if (name := names[hit.file_id]) is not None
        ]

    async def _name(self, tenant: str, hit: ChunkHit) -> str | None:
        """The filename of the hit's object; for a chunk inserted through vector-io, which carries its
        own metadata and whose file is a document, not an object (``core.vectors.raw_chunks``), the
        document's id."""
        if hit.metadata is not None:
            return str(hit.metadata["document_id"])
        try:
            return (await self._objects.get(tenant, None, hit.file_id)).filename
        except NotFound:  # deleted since the search; its chunks are on their way out
            return None

    async def _touch(self, store: VectorStoreRecord) -> None:
        now = int(self._clock())
        if now - store.last_active_at >= TOUCH_EVERY:
            await self._rows.touch_store(store.tenant, store.id, now)


def _fused(near: list[ChunkHit], keyed: list[ChunkHit], options: _Options) -> list[tuple[float, ChunkHit]]:
    if options.mode == "vector":
        return [(max(hit.score, 0.0), hit) for hit in near]
    if options.mode == "keyword":
        return [(hit.score / (1 + hit.score), hit) for hit in keyed]
    hits = {(h.file_id, h.index): h for h in [*keyed, *near]}
    if options.ranker == "rrf":
        fused = dict.fromkeys(hits, 0.0)
        for listed in (near, keyed):
            for rank, hit in enumerate(listed, start=1):
                fused[(hit.file_id, hit.index)] += 1 / (RRF_K + rank)
        top = 2 / (RRF_K + 1)
        return [(fused[key] / top, hit) for key, hit in hits.items()]
    vector = {(h.file_id, h.index): max(h.score, 0.0) for h in near}
    text = {(h.file_id, h.index): h.score / (1 + h.score) for h in keyed}
    w_e, w_t = options.weights
    return [
        ((w_e * vector.get(key, 0.0) + w_t * text.get(key, 0.0)) / (w_e + w_t), hit)
        for key, hit in hits.items()
    ]


def _options(
    store: VectorStoreRecord,
    query: object,
    filters: object,
    max_num_results: object,
    ranking_options: Mapping[str, Any] | None,
    rewrite_query: bool,
    search_mode: object,
) -> _Options:
    queries = _queries(query)
    if not isinstance(max_num_results, int) or isinstance(max_num_results, bool):
        raise InvalidInput("max_num_results must be an integer.", param="max_num_results")
    if not 1 <= max_num_results <= MAX_RESULTS:
        raise InvalidInput(f"max_num_results must be between 1 and {MAX_RESULTS}.", param="max_num_results")
    if search_mode not in ("vector", "keyword", "hybrid"):
        raise InvalidInput("search_mode is 'vector', 'keyword' or 'hybrid'.", param="search_mode")
    ranking = dict(ranking_options or {})
    unknown = set(ranking) - {"ranker", "score_threshold", "hybrid_search"}
    if unknown:
        raise InvalidInput(f"Unknown ranking option '{sorted(unknown)[0][:64]}'.", param="ranking_options")
    ranker_name = ranking.get("ranker", "auto")
    if not isinstance(ranker_name, str) or ranker_name not in RANKERS:
        raise InvalidInput(f"ranker is one of {', '.join(RANKERS)}.", param="ranking_options.ranker")
    threshold = _number(ranking.get("score_threshold", 0.0), "ranking_options.score_threshold")
    if not 0 <= threshold <= 1:
        raise InvalidInput(
            "score_threshold must be between 0 and 1.", param="ranking_options.score_threshold"
        )
    weights = _weights(ranking.get("hybrid_search"))
    parsed = parse_filters(filters)
    digest = hashlib.sha256(
        json.dumps(
            [store.id, queries, filters, search_mode, ranker_name, threshold, weights, bool(rewrite_query)],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:32]
    return _Options(
        queries,
        parsed,
        max_num_results,
        search_mode,
        RANKERS[ranker_name],
        threshold,
        weights,
        digest,
    )


def _queries(query: object) -> list[str]:
    listed = [query] if isinstance(query, str) else query
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_QUERIES:
        raise InvalidInput(f"query is a string or a list of 1 to {MAX_QUERIES} strings.", param="query")
    for text in listed:
        if not isinstance(text, str) or not text.strip() or len(text) > MAX_QUERY_CHARS:
            raise InvalidInput(
                f"Each query is a non-empty string of at most {MAX_QUERY_CHARS} characters.", param="query"
            )
    return cast(list[str], listed)


def _number(value: object, param: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise InvalidInput(f"{param.rsplit('.', 1)[-1]} must be a number.", param=param)
    return float(value)


def _weights(hybrid: object) -> tuple[float, float]:
    param = "ranking_options.hybrid_search"
    if hybrid is None:
        return (1.0, 1.0)
    if not isinstance(hybrid, Mapping) or set(hybrid) - {"embedding_weight", "text_weight"}:
        raise InvalidInput("hybrid_search is {'embedding_weight': w, 'text_weight': w}.", param=param)
    w_e = _number(hybrid.get("embedding_weight", 1.0), f"{param}.embedding_weight")
    w_t = _number(hybrid.get("text_weight", 1.0), f"{param}.text_weight")
    if w_e < 0 or w_t < 0 or w_e + w_t == 0:
        raise InvalidInput("The hybrid weights are non-negative and not both 0.", param=param)
    return (w_e, w_t)


def _token(offset: int, digest: str) -> str:
    raw = json.dumps({"o": offset, "d": digest}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _offset(page: str | None, digest: str) -> int:
    if page is None:
        return 0
    try:
        if len(page) > MAX_TOKEN_CHARS:
            raise ValueError
        decoded = json.loads(base64.urlsafe_b64decode(page + "=" * (-len(page) % 4)))
        offset, given = decoded["o"], decoded["d"]
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise InvalidInput("page is not a token this search returned.", param="page") from None
    if given != digest or not isinstance(offset, int) or offset < 0:
        raise InvalidInput(
            "page is a token of another search: give the same query and options.", param="page"
        )
    if offset >= MAX_DEPTH:
        raise InvalidInput(f"Only the first {MAX_DEPTH} results can be paged through.", param="page")
    return offset
