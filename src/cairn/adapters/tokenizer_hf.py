"""Token offsets (``core.ports.tokens.TokenOffsets``) from a Hugging Face ``tokenizer.json``, read by the
``tokenizers`` library: the same tokenizer the embedding model's runtime uses (``adapters.embed_onnx``),
so a chunk counted here is counted the same there.

Truncation and padding that the file may configure are turned off: the chunker needs every token.
Offsets are the library's character offsets into the text (it maps its byte offsets back for Python),
special tokens left out; ``special_tokens`` is how many the file's post-processor adds to one text.
The library releases the GIL while it encodes, so concurrent chunkers in worker threads do not queue
on it. A file that cannot be loaded is ``Unavailable`` (naming no path: it goes to the log).
"""

from __future__ import annotations

import logging
from pathlib import Path

from tokenizers import Tokenizer

from ..core.errors import Unavailable

log = logging.getLogger("cairn.inference")


class HuggingFaceTokenOffsets:
    def __init__(self, tokenizer_path: Path) -> None:
        try:
            tokenizer = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises bare Exceptions
            log.error("tokenizer_hf.load_failed path=%s error=%s", tokenizer_path, exc)
            raise Unavailable("The tokenizer cannot be loaded; see the server log.") from exc
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.special_tokens = (
            tokenizer.post_processor.num_special_tokens_to_add(False) if tokenizer.post_processor else 0
        )

    def offsets(self, text: str) -> list[tuple[int, int]]:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        return encoding.offsets
