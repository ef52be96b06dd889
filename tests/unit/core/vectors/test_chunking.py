"""Chunking a text by tokens: exact substrings, bounded counts, the overlap, coverage, word boundaries,
slicing, and the ``chunking_strategy`` parameter. A small subword tokenizer stands in for a model's:
letters and digits in pieces of at most three, any other visible character alone (as WordPiece does
with punctuation), white space between tokens."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest

from cairn.core.errors import InvalidInput
from cairn.core.vectors.chunking import Chunk, chunk_sizes, chunks


class Subwords:
    special_tokens = 0
    PIECE = re.compile(r"\w{1,3}|[^\w\s]")

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [match.span() for match in self.PIECE.finditer(text)]


TOKENS = Subwords()
PROSE = (
    "Cairn stores files for agents; each upload is checked, hashed and kept. Vector stores cut a file's "
    "text into chunks, embed every chunk and search them by meaning: the closest chunks answer a query. "
)


def checked(text: str, max_tokens: int, overlap: int, **options: Any) -> list[Chunk]:
    """The chunks, after checking every invariant the module promises."""
    found = list(chunks(text, TOKENS, max_tokens, overlap, **options))
    spans = TOKENS.offsets(text)
    covered = [False] * len(spans)
    previous: Chunk | None = None
    for index, chunk in enumerate(found):
        inside = [i for i, (start, end) in enumerate(spans) if chunk.start <= start and end <= chunk.end]
        assert chunk.index == index
        assert chunk.text == text[chunk.start : chunk.end]
        assert (chunk.start, chunk.end) == (spans[inside[0]][0], spans[inside[-1]][1])
        assert chunk.tokens == len(inside) <= max_tokens
        if previous is not None:
            assert previous.start < chunk.start <= previous.end or not overlap
            shared = sum(1 for start, end in spans if chunk.start <= start and end <= previous.end)
            assert shared <= overlap
        for i in inside:
            covered[i] = True
        previous = chunk
    assert all(covered)
    return found


def test_chunks_are_exact_substrings_within_the_bound_overlapping_and_covering_the_text() -> None:
    text = PROSE * 12
    found = checked(text, 40, 20)
    assert len(found) > 10
    assert found[0].start == 0 and found[-1].end == len(text.rstrip())


def test_without_overlap_chunks_follow_one_another() -> None:
    found = checked(PROSE * 5, 30, 0)
    for before, after in itertools.pairwise(found):
        assert before.end <= after.start


def test_cuts_fall_between_words_when_a_boundary_is_near() -> None:
    words = ("unbelievable overlapping tokenizers " * 60).strip()  # every word is several tokens
    found = checked(words, 50, 10)
    for chunk in found:
        assert chunk.start == 0 or words[chunk.start - 1] == " "
        assert chunk.end == len(words) or words[chunk.end] == " "
        assert chunk.tokens >= 50 - 50 // 8 or chunk is found[-1]  # moved back by an eighth at most


def test_a_word_longer_than_a_chunk_is_cut_between_its_pieces() -> None:
    text = "x" * 300 + " tail"
    found = checked(text, 20, 5)
    assert found[0].text == "x" * 60 and found[0].tokens == 20


def test_unicode_offsets_are_characters_cjk_and_emoji_included() -> None:
    text = "文字列を検索します。" * 30 + " 😀👍🏽 naïve café Ωmega " * 20
    found = checked(text, 25, 12)
    assert "".join(chunk.text for chunk in found).count("😀") >= 20


def test_an_empty_or_blank_text_has_no_chunks() -> None:
    assert list(chunks("", TOKENS, 100, 50)) == []
    assert list(chunks(" \n\t  ", TOKENS, 100, 50)) == []


def test_a_text_within_one_chunk_is_one_chunk() -> None:
    assert checked("  short text.  ", 100, 50) == [Chunk(0, "short text.", 2, 13, 5)]


def test_tokenizing_in_slices_gives_the_same_chunks_as_in_one_go() -> None:
    text = (PROSE * 30).replace(" ", "  \n", 7)
    whole = checked(text, 60, 30, slice_chars=10**9)
    assert checked(text, 60, 30, slice_chars=11) == whole


def test_a_slice_without_white_space_is_cut_where_it_ends() -> None:
    found = list(chunks("x" * 50, TOKENS, 10, 0, slice_chars=7))  # 3, 3 and 1 per slice: 22
    assert "".join(chunk.text for chunk in found) == "x" * 50
    assert [chunk.tokens for chunk in found] == [10, 10, 2]


def test_sizes_outside_the_strategy_rules_are_a_programming_error() -> None:
    for max_tokens, overlap in ((0, 0), (10, 6), (10, -1)):
        with pytest.raises(ValueError):
            next(chunks(PROSE, TOKENS, max_tokens, overlap))


def test_auto_is_800_with_400_of_overlap_or_the_model_window_and_half_of_it() -> None:
    assert chunk_sizes(None, window=8192) == (800, 400)
    assert chunk_sizes({"type": "auto"}, window=800) == (800, 400)
    assert chunk_sizes({"type": "auto"}, window=254) == (254, 127)


def test_static_sizes_are_taken_as_given() -> None:
    strategy = {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 100}}
    assert chunk_sizes(strategy, window=254) == (200, 100)
    strategy["static"] = {"max_chunk_size_tokens": 4096, "chunk_overlap_tokens": 0}
    assert chunk_sizes(strategy, window=8192) == (4096, 0)


@pytest.mark.parametrize(
    ("strategy", "param", "says"),
    [
        ("auto", "chunking_strategy", "expected an object"),
        ({"type": "semantic"}, "chunking_strategy.type", "'auto' or 'static'"),
        ({}, "chunking_strategy.type", "'auto' or 'static'"),
        ({"type": "auto", "static": {}}, "chunking_strategy.static", "Unknown parameter"),
        ({"type": "static"}, "chunking_strategy.static", "expected an object"),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 200}},
            "chunking_strategy.static.chunk_overlap_tokens",
            "expected an integer",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": "200", "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
            "expected an integer",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": True, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
            "expected an integer",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 99, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
            "between 100 and 4096",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 4097, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
            "between 100 and 4096",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 300, "chunk_overlap_tokens": 0}},
            "chunking_strategy.static.max_chunk_size_tokens",
            "reads at most 254 tokens",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 201, "chunk_overlap_tokens": 101}},
            "chunking_strategy.static.chunk_overlap_tokens",
            "half of max_chunk_size_tokens (100)",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": -1}},
            "chunking_strategy.static.chunk_overlap_tokens",
            "between 0 and half",
        ),
        (
            {"type": "static", "static": {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 0, "x": 1}},
            "chunking_strategy.static.x",
            "Unknown parameter",
        ),
    ],
)
def test_an_invalid_strategy_names_the_parameter(strategy: Any, param: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        chunk_sizes(strategy, window=254)
    assert caught.value.param == param
    assert says in caught.value.message
