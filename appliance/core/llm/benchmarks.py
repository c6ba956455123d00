"""Benchmarks: what POST /api/v1/benchmark asks and answers (llm-eval-api.md), how an item
is put to a model, how its answer is judged (core/llm/answers.py), and the transcript
kept of each item. Code items are judged by running them (services, in a sandbox)."""

from __future__ import annotations

import random
from datetime import datetime

import msgspec

from appliance.core.llm.answers import extract_choice, extract_code, extract_number, numbers_equal, text_equal
from appliance.core.llm.calls import ChatMessage, Parameters
from appliance.core.llm.datasets import LETTERS, DatasetItem, Kind


class BenchmarkRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/benchmark: the document's dataset, provider, model and sample_size,
    and what the appliance adds."""

    dataset: str | None = None
    provider: str | None = None  # when given, the model's entry must be of this provider
    model: str | None = None  # a model registry entry (id, name or the provider's model name)
    sample_size: int | None = None  # default: every item
    seed: int = 0  # which items a sample takes: the same seed, the same items (paired results)
    parameters: Parameters | None = None
    concurrency: int = 8
    cache: bool = True
    # False: answer at once (202) with the result's id and experiment_id, status running.
    wait: bool = True


class BenchmarkResult(msgspec.Struct, kw_only=True):
    """The document's benchmark response, and the appliance's additions."""

    id: int
    dataset: str
    provider: str
    model: str
    score: float
    accuracy: float
    total_time_ms: int
    total_tokens: int
    experiment_id: str
    run_id: str
    status: str  # running, completed, failed
    correct: int
    total: int
    errors: int = 0  # items whose model call failed (counted wrong)
    error: str | None = None
    owner: str = ""
    created_at: datetime | None = None
    finished_at: datetime | None = None


class ItemTranscript(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One item as it went: what was asked, what came back, what was taken from it."""

    item_id: str
    messages: list[ChatMessage]
    response: str | None = None
    extracted: str | None = None
    expected: str
    correct: bool
    latency_ms: float = 0.0
    tokens: int = 0
    cached: bool = False
    error: str | None = None
    details: dict[str, str] | None = None


MC_INSTRUCTION = (
    "Answer the following multiple choice question. Think it through if you need to, then end with a line "
    "'Answer: X' where X is the letter of the one correct choice."
)
NUMBER_INSTRUCTION = (
    "Solve the following problem. Work it out step by step, then end with a line '#### N' where N is the final "
    "number alone."
)
TEXT_INSTRUCTION = "Answer the following question. End with a line 'Answer: ' followed by the answer alone."
CODE_INSTRUCTION = (
    "Complete the following Python function. Reply with the whole function (its imports included) in one "
    "```python code block."
)


def messages_for(item: DatasetItem) -> list[ChatMessage]:
    if item.kind is Kind.MULTIPLE_CHOICE:
        choices = "\n".join(f"{LETTERS[i]}. {choice}" for i, choice in enumerate(item.choices or []))
        text = f"{MC_INSTRUCTION}\n\nQuestion: {item.question}\n{choices}"
    elif item.kind is Kind.NUMBER:
        text = f"{NUMBER_INSTRUCTION}\n\n{item.question}"
    elif item.kind is Kind.CODE:
        text = f"{CODE_INSTRUCTION}\n\n```python\n{item.question}```"
    else:
        text = f"{TEXT_INSTRUCTION}\n\nQuestion: {item.question}"
    return [ChatMessage(role="user", content=text)]


def judge(item: DatasetItem, response: str) -> tuple[bool, str | None]:
    """Whether the response answers the item right, and what was taken from it (not for
    code, which is run)."""
    if item.kind is Kind.MULTIPLE_CHOICE:
        letter = extract_choice(response, item.choices or [])
        return letter == item.answer, letter
    if item.kind is Kind.NUMBER:
        number = extract_number(response)
        return numbers_equal(number, item.answer), number
    if item.kind is Kind.CODE:
        return False, extract_code(response)
    final = response.rsplit("Answer:", 1)[-1].strip() if "Answer:" in response else response.strip()
    return text_equal(final, item.answer), final


def answer_correct(item: DatasetItem, answer: str | None) -> bool:
    """Whether an answer already extracted (an ensemble's vote) is the item's."""
    if answer is None:
        return False
    if item.kind is Kind.NUMBER:
        return numbers_equal(answer, item.answer)
    if item.kind is Kind.TEXT:
        return text_equal(answer, item.answer)
    return answer == item.answer


def sample_positions(count: int, sample_size: int | None, seed: int) -> list[int]:
    """Which items a run asks, in dataset order: all, or `sample_size` of them drawn with
    `seed` (the same seed and size draw the same items, so results pair up)."""
    if sample_size is None or sample_size >= count:
        return list(range(count))
    return sorted(random.Random(seed).sample(range(count), sample_size))
