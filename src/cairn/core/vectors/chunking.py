"""A text cut into overlapping chunks of at most ``max_tokens`` tokens (OpenAI's ``static`` chunking
strategy; ``auto`` is 800 tokens with 400 of overlap), counted by the embedding model's tokenizer (D28).

Invariants of ``chunks``:
- A chunk's text is the exact substring ``text[start:end]``, from its first token's start to its last
  token's end: nothing is detokenized, so nothing is lost or rewritten (case, accents, spacing).
- ``tokens`` (at most ``max_tokens``) counts the tokenizer's tokens of the source that the chunk
  covers. Cut at a word boundary, a chunk tokenized on its own gives the same tokens (a word never
  straddles the cut); cut inside a word, its edge pieces may tokenize differently.
- Every token is in at least one chunk, chunks come in order, and each starts at most ``overlap``
  tokens before the previous one ends; what lies between two tokens outside every chunk is the
  tokenizer's white space. No tokens (an empty or blank text), no chunks.
- Cuts prefer word boundaries: a chunk's end moves back, and the next chunk's start forward, by at most
  an eighth of ``max_tokens`` to fall between two tokens that are apart (white space) or not both
  letters or digits at the seam. Where there is no such place (a very long word, Chinese or Japanese
  text without spaces) the cut falls between two subword tokens.

Pure and deterministic. Memory stays bounded on large texts: ``chunks`` is a generator and tokenizes
``SLICE_CHARS`` characters at a time (cut at the start of a white-space run, where no tokenizer
joins two tokens), keeping only the tokens of the chunk being cut.

``chunk_sizes`` validates a ``chunking_strategy`` parameter into ``(max_tokens, overlap)`` for a model
whose window holds ``window`` tokens of text: ``auto`` is ``min(800, window)`` tokens with half of that
as overlap (800/400 as OpenAI's, 254/127 for MiniLM's 256-token window less its two special tokens);
``static`` larger than the window is ``InvalidInput``, never silently shrunk.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput
from ..ports.tokens import TokenOffsets

AUTO_MAX_TOKENS = 800
MIN_CHUNK_TOKENS = 100
MAX_CHUNK_TOKENS = 4096
SLICE_CHARS = 8 * 1024


@dataclass(frozen=True)
class Chunk:
    index: int  # 0, 1, … in text order
    text: str
    start: int  # character offsets in the source: ``text == source[start:end]``
    end: int
    tokens: int


def chunks(
    text: str, tokenizer: TokenOffsets, max_tokens: int, overlap: int, *, slice_chars: int = SLICE_CHARS
) -> Iterator[Chunk]:
    """The chunks of ``text``; ``max_tokens`` and ``overlap`` as ``chunk_sizes`` returns them."""
    if max_tokens < 1 or not 0 <= 2 * overlap <= max_tokens or slice_chars < 1:
        raise ValueError("need max_tokens >= 1, 0 <= overlap <= max_tokens / 2 and slice_chars >= 1")
    spans = _Spans(text, tokenizer, slice_chars)
    slack = max_tokens // 8
    first, index = 0, 0
    while spans.reach(first + 1) > first:
        last = spans.reach(first + max_tokens + 1)  # one past, to know whether more follow
        more = last > first + max_tokens
        if more:
            last = spans.clean_cut(first + max_tokens, first + max_tokens - slack, step=-1)
        start, end = spans.start(first), spans.end(last - 1)
        yield Chunk(index, text[start:end], start, end, last - first)
        if not more:
            return
        following = last - overlap
        first = max(first + 1, spans.clean_cut(following, min(last, following + slack), step=1))
        spans.forget_before(first)
        index += 1


class _Spans:
    """The token offsets of a text, tokenized a slice at a time, kept from the chunk being cut on."""

    def __init__(self, text: str, tokenizer: TokenOffsets, slice_chars: int) -> None:
        self._text = text
        self._tokenizer = tokenizer
        self._slice_chars = slice_chars
        self._starts = array("q")
        self._ends = array("q")
        self._first = 0  # the index of the token at ``_starts[0]``
        self._tokenized = 0  # characters of the text tokenized so far

    def reach(self, count: int) -> int:
        """Tokenize until ``count`` tokens are known or the text ends; how many of them exist."""
        while self._first + len(self._starts) < count and self._tokenized < len(self._text):
            begin, stop = self._tokenized, self._slice_end()
            for start, end in self._tokenizer.offsets(self._text[begin:stop]):
                self._starts.append(begin + start)
                self._ends.append(begin + end)
            self._tokenized = stop
        return min(count, self._first + len(self._starts))

    def start(self, token: int) -> int:
        return self._starts[token - self._first]

    def end(self, token: int) -> int:
        return self._ends[token - self._first]

    def clean_cut(self, cut: int, bound: int, *, step: int) -> int:
        """The first cut from ``cut`` towards ``bound`` (both included) that falls between words;
        ``cut`` itself if none does. A cut ``k`` falls before token ``k``."""
        for candidate in range(cut, bound - step, step):
            if self._between_words(candidate):
                return candidate
        return cut

    def _between_words(self, cut: int) -> bool:
        before, after = self.end(cut - 1), self.start(cut)
        if after > before or before == 0 or after >= len(self._text):
            return True
        return after == before and not (self._text[before - 1].isalnum() and self._text[after].isalnum())

    def forget_before(self, token: int) -> None:
        drop = token - self._first
        if drop > len(self._starts) // 2:
            del self._starts[:drop]
            del self._ends[:drop]
            self._first = token

    def _slice_end(self) -> int:
        """Where the next slice ends: at the start of the last white-space run within ``slice_chars``
        characters, or at that many characters if the slice has no white space."""
        text, begin = self._text, self._tokenized
        limit = begin + self._slice_chars
        if limit >= len(text):
            return len(text)
        for at in range(limit, begin, -1):
            if text[at].isspace() and not text[at - 1].isspace():
                return at
        return limit


def chunk_sizes(strategy: Mapping[str, Any] | None, *, window: int) -> tuple[int, int]:
    """``(max_tokens, overlap)`` for the ``chunking_strategy`` parameter (absent: ``auto``), for a
    model that embeds at most ``window`` tokens of text (its window less its special tokens)."""
    if window < 1:
        raise ValueError("window must be at least one token")
    if strategy is None:
        strategy = {"type": "auto"}
    if not isinstance(strategy, Mapping):
        raise _invalid("chunking_strategy", "expected an object")
    kind = strategy.get("type")
    if kind == "auto":
        _only(strategy, {"type"}, "chunking_strategy")
        size = min(AUTO_MAX_TOKENS, window)
        return size, size // 2
    if kind != "static":
        raise _invalid("chunking_strategy.type", "expected 'auto' or 'static'")
    _only(strategy, {"type", "static"}, "chunking_strategy")
    static = strategy.get("static")
    if not isinstance(static, Mapping):
        raise _invalid("chunking_strategy.static", "expected an object")
    _only(static, {"max_chunk_size_tokens", "chunk_overlap_tokens"}, "chunking_strategy.static")
    size = _integer(static, "max_chunk_size_tokens")
    overlap = _integer(static, "chunk_overlap_tokens")
    if not MIN_CHUNK_TOKENS <= size <= MAX_CHUNK_TOKENS:
        raise _invalid(
            "chunking_strategy.static.max_chunk_size_tokens",
            f"expected a value between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {size}",
        )
    if size > window:
        raise _invalid(
            "chunking_strategy.static.max_chunk_size_tokens",
            f"{size} tokens do not fit the embedding model, which reads at most {window} tokens of "
            "text at once",
        )
    if not 0 <= 2 * overlap <= size:
        raise _invalid(
            "chunking_strategy.static.chunk_overlap_tokens",
            f"expected a value between 0 and half of max_chunk_size_tokens ({size // 2}), got {overlap}",
        )
    return size, overlap


def _only(value: Mapping[str, Any], known: set[str], param: str) -> None:
    unknown = sorted(set(value) - known)
    if unknown:
        raise InvalidInput(f"Unknown parameter: '{param}.{unknown[0]}'.", param=f"{param}.{unknown[0]}")


def _integer(static: Mapping[str, Any], name: str) -> int:
    value = static.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _invalid(f"chunking_strategy.static.{name}", "expected an integer")
    return value


def _invalid(param: str, reason: str) -> InvalidInput:
    return InvalidInput(f"Invalid '{param}': {reason}.", param=param)
