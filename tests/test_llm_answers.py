"""The answer extraction rules (core/llm/answers.py) on outputs written to trip them."""

from __future__ import annotations

import pytest

from appliance.core.llm.answers import extract_choice, extract_code, extract_number, numbers_equal, text_equal

FOUR = ["red", "green", "blue", "yellow"]


@pytest.mark.parametrize(
    ("output", "letter"),
    [
        ("A is wrong, the answer is C", "C"),
        ("C", "C"),
        ("(b)", "B"),
        ("Answer: D", "D"),
        ("The answer is (B). A and C are distractors.", "B"),
        ("Let me think. Option A says red, option B says green.\nB is right.\n\nFinal answer: **D**", "D"),
        ("A good first step is to rule out B.\nSo it must be\nC.", "C"),
        ("I think it is A. Wait, no: looking again, it's B", "B"),
        ("**A** looks tempting but the answer is C", "C"),
        ("The colour is yellow.", "D"),
        ("#### B", "B"),
        ("The correct option is c)", "C"),
    ],
)
def test_the_final_letter_is_the_answer(output, letter):
    assert extract_choice(output, FOUR) == letter


def test_no_letter_at_all_is_no_answer():
    assert extract_choice("I do not know.", FOUR) is None


def test_letters_beyond_the_choices_do_not_count():
    assert extract_choice("E is not one of them; the answer is B", ["x", "y"]) == "B"


@pytest.mark.parametrize(
    ("output", "number"),
    [
        ("5 apples plus 7 apples makes 12 apples.", "12"),
        ("She pays $1,234.50 in total.", "1234.5"),
        ("First 3*4=12, then 12-20 = -8. The answer is -8.", "-8"),
        ("Natalia sold 48/2 = 24 clips in May.\n#### 72", "72"),
        ("The answer is 1,000,000, since 10 * 100,000 = 1,000,000", "1000000"),
        ("It costs $ 18.", "18"),
        ("The answer is 42. (I checked by adding 40 and 2.)", "42"),
        ("Total: 3.50 dollars", "3.5"),
        ("-7", "-7"),
    ],
)
def test_the_last_number_is_the_answer(output, number):
    assert extract_number(output) == number


def test_no_number_is_no_answer():
    assert extract_number("no idea") is None


def test_numbers_compare_as_numbers():
    assert numbers_equal("72", "72.0") and numbers_equal("-8", "-8")
    assert not numbers_equal("7", "72") and not numbers_equal(None, "1")


def test_the_last_python_block_is_the_code():
    output = (
        "Here is a first try:\n```\nprint('draft')\n```\nAnd the final one:\n```python\ndef add(a, b):\n"
        "    return a + b\n```\nAnd a shell line:\n```bash\npython add.py\n```"
    )
    assert extract_code(output) == "def add(a, b):\n    return a + b\n"


def test_code_without_fences_is_the_whole_text():
    assert extract_code("def f():\n    return 1\n") == "def f():\n    return 1"


def test_an_unclosed_fence_still_gives_its_code():
    assert extract_code("```python\ndef f():\n    return 2\n") == "def f():\n    return 2\n"


def test_texts_compare_without_case_or_final_stop():
    assert text_equal("Paris.", "paris") and text_equal("The capital is Paris", "Paris")
    assert not text_equal("Lyon", "Paris")
