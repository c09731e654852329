"""The paper's prompt format, used for training and for evaluation (also of base models):

###Question: {instruction}
###Answer: {response}
"""

from __future__ import annotations

QUESTION_PREFIX = "###Question: "
ANSWER_PREFIX = "###Answer: "


def render_prompt(instruction: str) -> str:
    """The prompt part: everything the model sees before it must answer."""
    return f"{QUESTION_PREFIX}{instruction}\n{ANSWER_PREFIX}"


def render_sample(instruction: str, response: str) -> str:
    return render_prompt(instruction) + response
