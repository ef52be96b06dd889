"""Vector store ingestion benchmark: chunks embedded per second through Cairn's ingestion (attach a text
file to a store, the job extracts, chunks, embeds and indexes it) against the embedding runtime called
directly on the same chunks, in the same run (the issue's target: at least 0.9x).

The text is the repository's own Markdown (README and docs), repeated to ``--kib``. SQLite in a temp
dir, the embedded MiniLM, one job worker; the direct run embeds the chunks the ingestion cut, in the
ingestion's batches of 64, through the runtime (no router, no rows, no index), after each run through Cairn.

Run by hand: .venv/bin/python bench/vector_ingest_bench.py [--kib 1024] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
from cairn.adapters.packaged_models import packaged_embedding_model  # noqa: E402
from cairn.adapters.tokenizer_hf import HuggingFaceTokenOffsets  # noqa: E402
from cairn.compose import composed  # noqa: E402
from cairn.core.ports.inference import EmbeddingRuntime  # noqa: E402
from cairn.core.records import VectorFileStatus  # noqa: E402
from cairn.core.vectors.chunking import chunks  # noqa: E402
from cairn.core.vectors.ingest import EMBED_BATCH  # noqa: E402
from cairn.settings import Settings  # noqa: E402


def corpus(kib: int) -> bytes:
    text = "\n\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    data = text.encode()
    return (data * (kib * 1024 // len(data) + 1))[: kib * 1024]


async def run(kib: int, runs: int) -> None:
    data = corpus(kib)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), rate_limits=False, job_workers=1)
        async with composed(settings) as built:
            services = built.services
            stores = services.vector_stores
            assert stores is not None
            built.services.jobs.start()

            async def body() -> AsyncIterator[bytes]:
                yield data

            record = await services.objects.commit(
                await services.objects.stage(body()),
                tenant="bench",
                bucket="files",
                filename="corpus.md",
                mime_type="text/markdown",
                purpose="assistants",
            )
            model = await services.inference.catalog.get("onnx/all-MiniLM-L6-v2", tenant="bench")
            runtime = services.inference.catalog.providers[model.provider_id]
            assert isinstance(runtime, EmbeddingRuntime)
            await runtime.embed(model.provider_model_id, ["warm up"])
            for _ in range(runs):
                store = await stores.create("bench")
                started = time.perf_counter()
                file = await stores.attach_file("bench", store.record.id, record.id)
                while file.status is VectorFileStatus.IN_PROGRESS:
                    await asyncio.sleep(0.05)
                    file = await stores.get_file("bench", store.record.id, record.id)
                through_cairn = time.perf_counter() - started
                assert file.status is VectorFileStatus.COMPLETED, file.last_error
                static = file.chunking_strategy["static"]
                packaged = packaged_embedding_model()
                assert packaged is not None
                tokenizer = HuggingFaceTokenOffsets(packaged.tokenizer)
                texts = [
                    c.text
                    for c in chunks(
                        data.decode(),
                        tokenizer,
                        static["max_chunk_size_tokens"],
                        static["chunk_overlap_tokens"],
                    )
                ]
                started = time.perf_counter()
                for at in range(0, len(texts), EMBED_BATCH):
                    await runtime.embed(model.provider_model_id, texts[at : at + EMBED_BATCH])
                direct = time.perf_counter() - started
                count = len(texts)
                print(
                    f"{kib} KiB, {count} chunks: through Cairn {count / through_cairn:.1f} chunks/s "
                    f"({through_cairn:.1f} s), runtime directly {count / direct:.1f} chunks/s "
                    f"({direct:.1f} s), ratio {direct / through_cairn:.3f}",
                    flush=True,
                )
                await stores.delete("bench", store.record.id)
            await built.services.jobs.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(run(args.kib, args.runs))


if __name__ == "__main__":
    sys.exit(main())
