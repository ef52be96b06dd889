"""The guard check's reading of a model's answer (``core.safety``): the constrained JSON form and Llama
Guard's own, and what is neither; and the prompt it sends."""

from __future__ import annotations

import pytest

from cairn.core.errors import UpstreamFailed
from cairn.core.safety import REFUSAL, Verdict, prompt, read_answer, violation


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ('{"verdict": "safe"}', Verdict(unsafe=False)),
        (' {\n  "verdict": "unsafe", "categories": ["S1", "S10", "S1"]}', Verdict(True, ("S1", "S10"))),
        ('{"verdict": "unsafe", "categories": ["S99", "S2"]}', Verdict(True, ("S2",))),
        ("safe", Verdict(unsafe=False)),
        ("\nunsafe\nS9,S11\n", Verdict(True, ("S9", "S11"))),
        ("Unsafe\nS15", Verdict(True, ())),
    ],
)
def test_an_answer_reads_as_a_verdict(answer: str, verdict: Verdict) -> None:
    assert read_answer(answer) == verdict


@pytest.mark.parametrize("answer", ["", "maybe", '{"verdict": "unclear"}', '["safe"]', '{"categories": []}'])
def test_an_answer_that_is_neither_fails_the_check(answer: str) -> None:
    with pytest.raises(UpstreamFailed):
        read_answer(answer)


def test_a_violation_carries_the_categories_and_the_refusal() -> None:
    assert violation(Verdict(unsafe=False)) is None
    assert violation(Verdict(True, ("S1", "S9"))) == {
        "violation_level": "error",
        "user_message": REFUSAL,
        "metadata": {"violation_type": "S1,S9"},
    }


def test_the_prompt_asks_about_the_last_message_in_its_role() -> None:
    text = prompt([("user", "Hi"), ("assistant", "How can I help?")])
    assert "in 'Assistant' messages" in text and "ONLY THE LAST Assistant message" in text
    assert "User: Hi\n\nAssistant: How can I help?" in text
    assert "S1: Violent Crimes." in text and "S14: Code Interpreter Abuse." in text
