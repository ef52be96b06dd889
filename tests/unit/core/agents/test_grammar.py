"""A grammar ``response_format``: the rules Llama Stack's ``bnf`` holds, checked (``api.agent_requests``),
and the GBNF text every inference step of the agent is constrained by (``core.agents.config``)."""

from __future__ import annotations

import pytest
from _agent_configs import config
from pydantic import ValidationError

from cairn.api.agent_requests import MAX_GRAMMAR_CHARS, MAX_GRAMMAR_RULES, GrammarFormat
from cairn.core.agents.config import sampling

YES_NO = {"root": 'answer "."?', "answer": '"yes" | "no"'}


def test_the_rules_become_one_gbnf_line_each_in_their_order():
    checked = GrammarFormat(type="grammar", bnf=YES_NO).model_dump()
    chosen = sampling(config(response_format=checked))
    assert chosen["grammar"] == 'root ::= answer "."?\nanswer ::= "yes" | "no"'
    assert "response_format" not in chosen and chosen["temperature"] == 0.0


@pytest.mark.parametrize(
    ("bnf", "reason"),
    [
        ({}, "root"),
        ({"answer": '"yes"'}, "root"),
        ({"root": '"yes"', "my_rule": '"no"'}, "pattern"),
        ({"root": '"yes"', "a ::= b": '"no"'}, "pattern"),
        ({"root": ""}, "at least 1"),
        ({"root": 3}, "string"),
        ({"root": '"y"', **{f"r{i}": '"x"' for i in range(MAX_GRAMMAR_RULES)}}, f"{MAX_GRAMMAR_RULES} items"),
        ({"root": '"y"' * (MAX_GRAMMAR_CHARS // 3 + 1)}, f"at most {MAX_GRAMMAR_CHARS} characters"),
    ],
)
def test_a_grammar_without_root_or_out_of_bounds_is_refused(bnf: dict, reason: str):
    with pytest.raises(ValidationError, match=reason):
        GrammarFormat(type="grammar", bnf=bnf)
