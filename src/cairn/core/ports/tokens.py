"""Token offsets: where an embedding model's tokenizer cuts a text, for ``core.vectors.chunking``.
Implemented by ``adapters.tokenizer_hf`` (Hugging Face ``tokenizers``, from a ``tokenizer.json``).

Synchronous and pure: the chunker calls it in the worker thread it runs in, on slices of a text cut at
white space, never on the event loop.
"""

from __future__ import annotations

from typing import Protocol


class TokenOffsets(Protocol):
    # How many tokens the model adds around every text it embeds ([CLS] and [SEP] for BERT's
    # WordPiece): a chunk may hold the model's window less these.
    special_tokens: int

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """The ``(start, end)`` character offsets in ``text`` of each of its tokens, in order, without
        the special tokens, with nothing truncated. Starts never decrease; a span may be empty, or share
        characters with its neighbour (a character split across byte-level tokens)."""
        ...
