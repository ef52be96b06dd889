"""Search finds the document that answers: ten short documents on unrelated topics, attached as one
batch through the ``openai`` client, and for each a question asked in other words than its text, whose
answer must be the best hit, in vector mode and in hybrid mode, on the embedded MiniLM model."""

from __future__ import annotations

import io
from collections.abc import Iterator

import openai
import pytest

CORPUS = {
    "sourdough.txt": "A sourdough starter is flour and water fermented by wild yeast and lactic bacteria. "
    "Feed it every day, keep it somewhere warm, and use it instead of baker's yeast to leaven a loaf.",
    "volcanoes.txt": "Deep underground, rock melts into magma. Gas dissolved in the magma builds up "
    "pressure until it forces its way up through the crust and erupts as lava and ash.",
    "chess.txt": "Castling is the only move in which two pieces move at once: the king steps two squares "
    "towards a rook, and the rook jumps over to the square beside it.",
    "honeybees.txt": "Honeybees carry pollen from blossom to blossom while they gather nectar. Orchards of "
    "apples, almonds and cherries depend on them to set their fruit.",
    "tides.txt": "The moon's gravity pulls the oceans into two bulges on opposite sides of the Earth. As the "
    "planet turns through them, coasts see high water and low water about twice a day.",
    "bicycle.txt": "To mend a punctured inner tube, lever the tyre off the rim, find the hole by pumping "
    "the tube and listening for air, roughen the rubber, then glue a patch over it.",
    "vaccines.txt": "A vaccine shows the immune system a harmless piece or a weakened form of a germ. The "
    "body makes antibodies and memory cells, so a later infection is fought off quickly.",
    "jazz.txt": "Jazz grew up in New Orleans around 1900, out of blues, ragtime and brass band music. "
    "Its players improvise over the chord changes of a tune.",
    "photosynthesis.txt": "In their leaves, plants capture sunlight with chlorophyll and use its energy "
    "to turn carbon dioxide and water into glucose, releasing oxygen.",
    "compound_interest.txt": "With compound interest, the interest a deposit earns is added to it, and "
    "next year earns interest too: money saved at 5% a year doubles in about fourteen years.",
}
QUESTIONS = {
    "How do I keep the culture for my homemade bread alive?": "sourdough.txt",
    "What makes molten rock burst out of a mountain?": "volcanoes.txt",
    "Which chess move lets the king swap places with a rook?": "chess.txt",
    "Why do fruit farmers need insects?": "honeybees.txt",
    "Why does the sea come in and go out every day?": "tides.txt",
    "My bike has a flat, how do I repair it?": "bicycle.txt",
    "How does a jab protect you from getting sick?": "vaccines.txt",
    "Where did improvised music with swing come from?": "jazz.txt",
    "How do green plants make food from light?": "photosynthesis.txt",
    "How fast do savings grow if I leave the earnings in the account?": "compound_interest.txt",
}
MODES = ("vector", "hybrid")
CASES = [(question, answer, mode) for question, answer in QUESTIONS.items() for mode in MODES]


@pytest.fixture(scope="module")
def oai(model_server, model_tenant) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=model_server.url + "/v1", api_key=model_tenant.key, max_retries=0, timeout=120
    ) as client:
        yield client


@pytest.fixture(scope="module")
def store_id(oai: openai.OpenAI) -> str:
    store = oai.vector_stores.create(name="relevance")
    batch = oai.vector_stores.file_batches.upload_and_poll(
        store.id,
        files=[(name, io.BytesIO(text.encode())) for name, text in CORPUS.items()],
        poll_interval_ms=50,
    )
    assert batch.file_counts.completed == len(CORPUS), batch.file_counts
    return store.id


@pytest.mark.parametrize(("question", "answer", "mode"), CASES)
def test_the_document_that_answers_is_the_best_hit(
    oai: openai.OpenAI, store_id: str, mode: str, question: str, answer: str
) -> None:
    page = oai.vector_stores.search(store_id, query=question, extra_body={"search_mode": mode})
    ranking = [(hit.filename, round(hit.score, 3)) for hit in page.data]
    assert ranking[0][0] == answer, ranking
