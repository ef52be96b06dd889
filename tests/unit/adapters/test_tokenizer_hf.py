"""Token offsets from the packaged all-MiniLM-L6-v2 ``tokenizer.json`` (WordPiece): character offsets
into the original text, special tokens left out, nothing truncated, and chunks cut at word boundaries
that count the same when the embedding model tokenizes them alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from tokenizers import Tokenizer

from cairn.adapters.packaged_models import packaged_embedding_model
from cairn.adapters.tokenizer_hf import HuggingFaceTokenOffsets
from cairn.core.errors import Unavailable
from cairn.core.ports.tokens import TokenOffsets
from cairn.core.vectors.chunking import chunk_sizes, chunks

CONTEXT_LENGTH = 256  # the embedded model's window, special tokens included (adapters.embed_onnx)


@pytest.fixture(scope="module")
def tokenizer_path() -> Path:
    model = packaged_embedding_model()
    assert model is not None, "the embedded models are installed by requirements/embedded-models.txt"
    return model.tokenizer


@pytest.fixture(scope="module")
def tokens(tokenizer_path: Path) -> HuggingFaceTokenOffsets:
    return HuggingFaceTokenOffsets(tokenizer_path)


def test_offsets_are_characters_of_the_original_text(tokens: TokenOffsets) -> None:
    text = "Héllo, WORLD! unaffable 中文 😀 naïve"
    pieces = [text[start:end] for start, end in tokens.offsets(text)]
    assert pieces == ["Héllo", ",", "WORLD", "!", "una", "ffa", "ble", "中", "文", "😀", "naïve"]


def test_two_special_tokens_and_no_truncation(tokens: TokenOffsets) -> None:
    assert tokens.special_tokens == 2
    assert len(tokens.offsets("word " * 2000)) == 2000
    assert tokens.offsets("") == [] and tokens.offsets("  \n ") == []


def test_chunks_within_the_window_count_the_same_when_tokenized_alone(
    tokens: TokenOffsets, tokenizer_path: Path
) -> None:
    text = ("Vector stores split every uploaded document into overlapping passages; 文字 😀. " * 80).strip()
    window = CONTEXT_LENGTH - tokens.special_tokens
    max_tokens, overlap = chunk_sizes({"type": "auto"}, window=window)
    assert (max_tokens, overlap) == (254, 127)
    found = list(chunks(text, tokens, max_tokens, overlap, slice_chars=1000))
    model = Tokenizer.from_file(str(tokenizer_path))
    model.no_truncation()
    assert len(found) > 4
    for chunk in found:
        assert chunk.text == text[chunk.start : chunk.end]
        assert len(model.encode(chunk.text).ids) == chunk.tokens + tokens.special_tokens <= CONTEXT_LENGTH
    assert found == list(chunks(text, tokens, max_tokens, overlap, slice_chars=10**9))


def test_a_file_that_is_no_tokenizer_is_unavailable(tmp_path: Path) -> None:
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{}")
    with pytest.raises(Unavailable):
        HuggingFaceTokenOffsets(broken)
