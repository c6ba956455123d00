"""A HumanEval-style benchmark (the shipped demo_code) through POST /api/v1/benchmark:
each answer's last python block runs against the item's tests in the appliance's
sandboxes, so an item is right only when its tests pass there."""

from __future__ import annotations

import pytest

from tests.llm_servers import Seen

ANSWERS = {
    # Right, after a wrong draft: the last python block is the answer.
    "def add(a, b)": "A draft:\n```python\ndef add(a, b):\n    return a - b\n```\nFixed:\n```python\ndef add(a, b):\n"
    "    return a + b\n```",
    # Wrong: its tests fail in the sandbox.
    "def is_even(n)": "```python\ndef is_even(n):\n    return n % 2 == 1\n```",
    # Right, in a block without a language.
    "def reverse_words(text)": "```\ndef reverse_words(text):\n    return ' '.join(reversed(text.split()))\n```",
}


@pytest.fixture(scope="module")
def llm(runtime_images, llm):
    """The shared appliance, started once the runtime images the code runs in are there."""
    return llm


def code_script(seen: Seen) -> str:
    return next(answer for signature, answer in ANSWERS.items() if signature in seen.text)


def test_code_items_are_right_when_their_tests_pass_in_a_sandbox(llm, scripted):
    scripted.reset(code_script)
    with llm.admin() as admin:
        response = admin.post("/api/v1/benchmark", json={"dataset": "demo_code", "model": "model_chat", "cache": False})
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["correct"], body["total"]) == (2, 3) and body["accuracy"] == pytest.approx(2 / 3)
        items = admin.get(f"/api/v1/benchmark/{body['id']}/items").json()["items"]
    assert [item["correct"] for item in items] == [True, False, True]
    assert items[0]["extracted"] == "def add(a, b):\n    return a + b\n"
    assert items[1]["details"]["message"]
