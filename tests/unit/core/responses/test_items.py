"""The Responses API's items, checked and normalised into the items Cairn stores."""

from __future__ import annotations

import re

import pytest

from cairn.core.errors import InvalidInput
from cairn.core.responses.items import MAX_ITEMS, MAX_TEXT, input_items

NEW_ID = r"[0-9a-f]{48}"


def one(raw: object) -> dict:
    [item] = input_items([raw])
    return item


def without_id(item: dict) -> dict:
    return {name: value for name, value in item.items() if name != "id"}


def test_a_string_is_one_user_message():
    [item] = input_items("Hello")
    assert re.fullmatch(f"msg_{NEW_ID}", item["id"])
    assert without_id(item) == {
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_text", "text": "Hello"}],
    }


@pytest.mark.parametrize(
    ("raw", "expected", "prefix"),
    [
        (
            {"role": "developer", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "input_text", "text": "Be brief."}]},
            "msg_",
        ),
        (
            {"type": "message", "role": "assistant", "content": "Hi."},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hi.", "annotations": [], "logprobs": []}],
            },
            "msg_",
        ),
        (
            {
                "role": "user",
                "status": "incomplete",
                "phase": None,
                "content": [
                    {"type": "input_text", "text": "Look", "prompt_cache_breakpoint": None},
                    {"type": "input_image", "image_url": "data:image/png;base64,AA==", "file_id": None},
                    {"type": "input_image", "file_id": "file-1", "detail": "low"},
                    {"type": "input_file", "file_data": "JVBERi0=", "filename": "a.pdf"},
                    {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                ],
            },
            {
                "role": "user",
                "status": "incomplete",
                "content": [
                    {"type": "input_text", "text": "Look"},
                    {"type": "input_image", "detail": "auto", "image_url": "data:image/png;base64,AA=="},
                    {"type": "input_image", "detail": "low", "file_id": "file-1"},
                    {"type": "input_file", "file_data": "JVBERi0=", "filename": "a.pdf"},
                    {"type": "input_file", "file_url": "https://example.com/a.pdf"},
                ],
            },
            "msg_",
        ),
        (
            {
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "See [1].", "annotations": [{"type": "file_path"}]},
                    {"type": "refusal", "refusal": "No."},
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "output_text",
                        "text": "See [1].",
                        "annotations": [{"type": "file_path"}],
                        "logprobs": [],
                    },
                    {"type": "refusal", "refusal": "No."},
                ],
            },
            "msg_",
        ),
        (
            {
                "type": "function_call",
                "call_id": "call_1",
                "name": "add",
                "arguments": '{"a":1}',
                "caller": None,
            },
            {"call_id": "call_1", "name": "add", "arguments": '{"a":1}', "status": "completed"},
            "fc_",
        ),
        (
            {"type": "function_call_output", "call_id": "call_1", "output": "2"},
            {"call_id": "call_1", "output": "2", "status": "completed"},
            "fco_",
        ),
        (
            {"type": "function_call_output", "call_id": "c", "output": [{"type": "input_text", "text": "2"}]},
            {"call_id": "c", "output": [{"type": "input_text", "text": "2"}], "status": "completed"},
            "fco_",
        ),
        (
            {"type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False},
            {"approval_request_id": "mcpr_1", "approve": False, "reason": None},
            "mcpa_",
        ),
        (
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "Thought."}], "status": None},
            {"summary": [{"type": "summary_text", "text": "Thought."}], "status": None},
            "rs_",
        ),
        (
            {"type": "mcp_call", "name": "t", "arguments": "{}", "server_label": "s", "output": "ok"},
            {"name": "t", "arguments": "{}", "server_label": "s", "output": "ok"},
            "mcp_",
        ),
    ],
)
def test_items_are_normalised_with_new_ids(raw, expected, prefix):
    item = one(raw)
    assert re.fullmatch(f"{prefix}{NEW_ID}", item["id"])
    expected = {"type": raw.get("type", "message"), **expected}
    if expected["type"] == "message":
        expected.setdefault("status", "completed")
    assert without_id(item) == expected


def test_client_ids_are_kept_and_references_are_left_to_resolve():
    items = input_items(
        [
            {"id": "msg_mine", "role": "user", "content": "x"},
            {"type": "item_reference", "id": "fc_abc"},
            {"id": "rs_123"},
            {"type": "file_search_call", "id": "fs_1", "queries": ["q"], "status": "completed"},
        ]
    )
    assert [item["id"] for item in items] == ["msg_mine", "fc_abc", "rs_123", "fs_1"]
    assert items[1:3] == [
        {"type": "item_reference", "id": "fc_abc"},
        {"type": "item_reference", "id": "rs_123"},
    ]
    assert items[3] == {"type": "file_search_call", "id": "fs_1", "queries": ["q"], "status": "completed"}


@pytest.mark.parametrize(
    ("value", "param"),
    [
        (42, "input"),
        ("x" * (MAX_TEXT + 1), "input"),
        ([{"role": "user", "content": "x"}] * (MAX_ITEMS + 1), "input"),
        (["hello"], "input[0]"),
        ([{"content": "no role"}], "input[0].type"),
        ([{"type": "computer_call", "id": "c"}], "input[0].type"),
        ([{"role": "tool", "content": "x"}], "input[0].role"),
        ([{"role": "user", "content": None}], "input[0].content"),
        ([{"role": "user", "content": [{"type": "output_text", "text": "x"}]}], "input[0].content[0].type"),
        (
            [{"role": "assistant", "content": [{"type": "input_text", "text": "x"}]}],
            "input[0].content[0].type",
        ),
        ([{"role": "user", "content": ["x"]}], "input[0].content[0]"),
        ([{"role": "user", "content": [{"type": "input_text", "text": 1}]}], "input[0].content[0].text"),
        ([{"role": "user", "content": [{"type": "input_image"}]}], "input[0].content[0].image_url"),
        (
            [{"role": "user", "content": [{"type": "input_image", "file_id": "f", "detail": "max"}]}],
            "input[0].content[0].detail",
        ),
        (
            [{"role": "user", "content": [{"type": "input_file", "file_data": "AA=="}]}],
            "input[0].content[0].filename",
        ),
        (
            [{"role": "user", "content": [{"type": "input_file", "filename": "a"}]}],
            "input[0].content[0].file_id",
        ),
        ([{"role": "user", "content": "x", "id": "has space"}], "input[0].id"),
        ([{"role": "user", "content": "x", "id": "m" * 257}], "input[0].id"),
        ([{"role": "user", "content": "x", "status": "done"}], "input[0].status"),
        ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
        ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}], "input[0].arguments"),
        ([{"type": "function_call_output", "call_id": "c", "output": 2}], "input[0].output"),
        (
            [
                {
                    "type": "function_call_output",
                    "call_id": "c",
                    "output": [{"type": "refusal", "refusal": "x"}],
                }
            ],
            "input[0].output[0].type",
        ),
        (
            [{"type": "mcp_approval_response", "approval_request_id": "r", "approve": "yes"}],
            "input[0].approve",
        ),
        ([{"type": "item_reference"}], "input[0].id"),
        ([{"type": "mcp_list_tools", "server_label": "s"}], "input[0].tools"),
        (
            [{"role": "assistant", "content": [{"type": "output_text", "text": "x", "annotations": "none"}]}],
            "input[0].content[0].annotations",
        ),
    ],
)
def test_anything_else_names_its_path(value, param):
    with pytest.raises(InvalidInput) as caught:
        input_items(value)
    assert caught.value.param == param


def test_the_parameter_names_the_path():
    with pytest.raises(InvalidInput) as caught:
        input_items([{"role": "user", "content": "x"}, {"type": "nope"}], param="items")
    assert caught.value.param == "items[1].type"
