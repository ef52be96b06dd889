"""The inference face through Llama Stack's own client (``llama-stack-client``), which calls the
``/v1/openai/v1`` routes: its model list, a chat completion whole and streamed, embeddings."""

from __future__ import annotations

CHAT = "llama-cpp/SmolLM2-135M-Instruct"
EMBED = "onnx/all-MiniLM-L6-v2"
ASK = [{"role": "user", "content": "What is the capital of France?"}]


def test_models_list_reads_the_llama_stack_fields(llama):
    models = {model.identifier: model for model in llama.models.list()}
    assert models[CHAT].api_model_type == "llm" and models[CHAT].provider_id == "llama-cpp"
    assert models[EMBED].api_model_type == "embedding"
    assert models[EMBED].metadata["embedding_dimension"] == 384


def test_chat_completion_whole_and_streamed(llama):
    whole = llama.chat.completions.create(model=CHAT, messages=ASK, temperature=0, max_tokens=8)
    text = whole.choices[0].message.content
    assert text and whole.choices[0].finish_reason == "length"
    streamed = llama.chat.completions.create(
        model=CHAT, messages=ASK, temperature=0, max_tokens=8, stream=True
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices) == text


def test_embeddings(llama):
    embedded = llama.embeddings.create(model=EMBED, input=["a cat on a mat", "quarterly revenue"])
    assert [len(item.embedding) for item in embedded.data] == [384, 384]
    assert embedded.usage.prompt_tokens > 4
