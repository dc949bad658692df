"""Tool calls written as text and thinking blocks, in the forms real local servers and small models produce."""

from __future__ import annotations

import json

import pytest

from bzzz_console.runtime.llm.text_calls import calls_in_text, split_thinking

KNOWN = {"bzzz_post", "bzzz_get", "bzzz_lookup", "request_human"}
ARGS = {"target_address": "bzzz://reviewer@proj", "message_type": "agree", "content": {"text": "LGTM"}}
CALL = {"name": "bzzz_post", "arguments": ARGS}

FORMS = {
    "bare JSON object": json.dumps(CALL),
    "parameters instead of arguments (Llama 3.1 JSON tool calling)": json.dumps(
        {"name": "bzzz_post", "parameters": ARGS}
    ),
    "arguments as a JSON string (the Chat Completions shape)": json.dumps(
        {"name": "bzzz_post", "arguments": json.dumps(ARGS)}
    ),
    "OpenAI-like function wrapper": json.dumps({"type": "function", "function": CALL}),
    "fenced json": "Here is my vote:\n```json\n" + json.dumps(CALL, indent=2) + "\n```",
    "fenced without a language": "```\n" + json.dumps(CALL) + "\n```",
    "Hermes / Qwen <tool_call> tags": "<tool_call>\n" + json.dumps(CALL) + "\n</tool_call>",
    "unterminated <tool_call> (cut at the end)": "<tool_call>\n" + json.dumps(CALL),
    "Llama 3.1 <|python_tag|>": "<|python_tag|>" + json.dumps({"name": "bzzz_post", "parameters": ARGS}),
    "Llama 3.1 <function=…>": "<function=bzzz_post>" + json.dumps(ARGS) + "</function>",
    "Mistral [TOOL_CALLS]": "[TOOL_CALLS] " + json.dumps([CALL]),
    "prose then the object": "I agree with the proposal. " + json.dumps(CALL),
    "a list of calls": json.dumps([CALL]),
}


@pytest.mark.parametrize("form", list(FORMS))
def test_a_tool_call_written_as_text_is_read(form: str) -> None:
    found = calls_in_text(FORMS[form], KNOWN)
    assert found is not None, form
    [call] = found.calls
    assert call.name == "bzzz_post" and call.id == "text-1"
    assert json.loads(call.arguments) == ARGS
    assert found.form


def test_several_tagged_calls_keep_their_order_and_the_prose_around_them() -> None:
    get = {"name": "bzzz_get", "arguments": {"address": "bzzz://*@proj/threads/t-1"}}
    text = f"Let me look first.\n<tool_call>{json.dumps(get)}</tool_call>\n<tool_call>{json.dumps(CALL)}</tool_call>"
    found = calls_in_text(text, KNOWN)
    assert found is not None
    assert [c.name for c in found.calls] == ["bzzz_get", "bzzz_post"]
    assert [c.id for c in found.calls] == ["text-1", "text-2"]
    assert found.rest == "Let me look first."


@pytest.mark.parametrize(
    "text",
    [
        "I agree with the proposal.",
        json.dumps({"name": "rm_rf", "arguments": {}}),  # not a tool the agent was offered
        json.dumps({"verdict": "agree", "reason": "fine"}),  # JSON, but no call
        "```python\nprint('hi')\n```",
        "<tool_call>not json</tool_call>",
        "",
        "{" * 5000,  # deeply broken JSON is not a crash
    ],
)
def test_text_without_a_call_to_a_known_tool_is_left_alone(text: str) -> None:
    assert calls_in_text(text, KNOWN) is None


@pytest.mark.parametrize(
    ("text", "visible", "thinking"),
    [
        ("<think>The user wants X.</think>\nI agree.", "I agree.", "<think>The user wants X.</think>"),
        ("<THINK>a</THINK>b<think>c</think>d", "bd", "<THINK>a</THINK>\n<think>c</think>"),
        # the chat template already consumed the opening tag (DeepSeek-R1 distills on Ollama do this)
        ("so the answer is yes\n</think>\n\nYes.", "Yes.", "so the answer is yes"),
        # cut while still thinking: nothing of it is shown as the answer
        ("Sure.<think>still going and then the limit", "Sure.", "<think>still going and then the limit"),
        ("No thinking here.", "No thinking here.", ""),
        (None, "", ""),
    ],
)
def test_thinking_is_split_from_what_is_posted(text: str | None, visible: str, thinking: str) -> None:
    assert split_thinking(text) == (visible, thinking)
