"""What both vector index adapters (``vectors_sqlite``, ``vectors_pg``) check and read the same way:
vectors (one length, finite numbers), attributes and chunk metadata (finite numbers, as JSON), a keyword
query's words (``\\w+``, deduplicated, at most ``MAX_QUERY_WORDS``; nothing else of the query reaches the
database's full-text syntax) and the kind a filter value compares as (a string, a number or a boolean).

English stop words (``STOP_WORDS``: Snowball's list, which PostgreSQL's ``english`` configuration uses)
are not keywords. Both indexes keep every word of a chunk (no stemming, no stop words), so a query of
"the of and" matched nearly every chunk on both backends: a page of noise, found by scoring most of the
store. Dropped from a query, stop words leave its other words to rank the chunks; a query of stop words
alone has no keywords and matches nothing on both backends, as with PostgreSQL's ``english``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..core.errors import InvalidInput
from ..core.ports.vectors import Scalar

MAX_QUERY_WORDS = 64
WORD = re.compile(r"\w+")
STOP_WORDS = frozenset({
    "i", "me", "my", "myself", "we", "our", "ours", "ourselves", "you", "your", "yours", "yourself",
    "yourselves", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it", "its", "itself",
    "they", "them", "their", "theirs", "themselves", "what", "which", "who", "whom", "this", "that",
    "these", "those", "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had",
    "having", "do", "does", "did", "doing", "a", "an", "the", "and", "but", "if", "or", "because", "as",
    "until", "while", "of", "at", "by", "for", "with", "about", "against", "between", "into", "through",
    "during", "before", "after", "above", "below", "to", "from", "up", "down", "in", "out", "on", "off",
    "over", "under", "again", "further", "then", "once", "here", "there", "when", "where", "why", "how",
    "all", "any", "both", "each", "few", "more", "most", "other", "some", "such", "no", "nor", "not",
    "only", "own", "same", "so", "than", "too", "very", "s", "t", "can", "will", "just", "don", "should",
    "now"
})  # fmt: skip


def vector_matrix(vectors: Sequence[Sequence[float]]) -> npt.NDArray[np.float32]:
    """The vectors as rows of float32; ``InvalidInput`` if their lengths differ or one is not finite."""
    if len({len(vector) for vector in vectors}) > 1:
        raise InvalidInput("The vectors have different numbers of dimensions.")
    matrix = np.asarray(vectors, dtype=np.float32).reshape(len(vectors), -1)
    if not np.isfinite(matrix).all():
        raise InvalidInput("A vector holds a value that is not a finite number.")
    return matrix


def check_dimension(expected: int, got: int) -> None:
    if got != expected:
        raise InvalidInput(f"Expected vectors of {expected} dimensions for this vector store, got {got}.")


def attributes_json(attributes: Mapping[str, Scalar]) -> str:
    return _json_object(attributes, "An attribute")


def metadata_json(metadata: Mapping[str, Any] | None) -> str | None:
    return None if metadata is None else _json_object(metadata, "A chunk's metadata")


def _json_object(values: Mapping[str, Any], what: str) -> str:
    try:
        return json.dumps(dict(values), allow_nan=False)
    except ValueError:
        raise InvalidInput(f"{what} holds a value that is not a finite number.") from None


def query_words(query: str) -> list[str]:
    """The query's keywords: its words but the stop words, each once, at most ``MAX_QUERY_WORDS``."""
    words = (word for word in WORD.findall(query) if word.lower() not in STOP_WORDS)
    return list(dict.fromkeys(words))[:MAX_QUERY_WORDS]


def value_kind(value: Scalar) -> type:
    """``bool``, ``str`` or ``float`` (for ints too): the values a filter value compares with."""
    return bool if isinstance(value, bool) else str if isinstance(value, str) else float


def by_kind(values: Iterable[Scalar]) -> dict[type, list[Scalar]]:
    grouped: dict[type, list[Scalar]] = {}
    for value in values:
        grouped.setdefault(value_kind(value), []).append(value)
    return grouped
