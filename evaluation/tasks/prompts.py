"""Prompt and scoring functions for our lm-eval task configs (referenced from the YAML files as
``!function evaluation.tasks.prompts.<name>``).

Every prompt is the paper's training template (``common.template``) without its trailing space:
``###Question: {instruction}\\n###Answer:``; lm-eval appends the target after a single space
(``target_delimiter``), so few-shot examples read exactly like training samples."""

from __future__ import annotations

import re
import string

from common.template import render_prompt
from evaluation.sandbox import check_program, run_program

LETTERS = ("A", "B", "C", "D")


def paper_prompt(instruction: str) -> str:
    return render_prompt(instruction).rstrip()


def _lettered(question: str, options: list[str]) -> str:
    lines = [question.strip()] + [
        f"{letter}. {option}" for letter, option in zip(LETTERS, options, strict=False)
    ]
    return "\n".join(lines)


def exact_match_strip(doc: dict, results: list[str]) -> dict[str, int]:
    """Demo generation tasks: the greedy answer must equal the reference after stripping whitespace."""
    return {"exact_match": int(results[0].strip() == str(doc["response"]).strip())}


# ---------------------------------------------------------------- code: HumanEval, MBPP

_FENCE = re.compile(r"```(?:python|py)?\n(.*?)(?:```|$)", re.DOTALL)


def extract_code(completion: str) -> str:
    """The code in a completion: the first fenced block when there is one, else the text itself."""
    match = _FENCE.search(completion)
    return match.group(1) if match else completion


def humaneval_text(doc: dict) -> str:
    return paper_prompt(f"Complete the following Python function.\n{doc['prompt']}")


def humaneval_program(doc: dict, completion: str) -> str:
    """A completion that restates the function is run on its own (after the prompt's imports);
    a bare body continues the prompt, as in the original HumanEval protocol."""
    code = extract_code(completion)
    if f"def {doc['entry_point']}" in code:
        imports = "\n".join(
            line for line in doc["prompt"].splitlines() if line.startswith(("import ", "from "))
        )
        return check_program(imports + "\n", code, doc["test"], doc["entry_point"])
    return check_program(doc["prompt"], code, doc["test"], doc["entry_point"])


def humaneval_process_results(doc: dict, results: list[str]) -> dict[str, int]:
    return {"pass@1": int(run_program(humaneval_program(doc, results[0])).passed)}


def mbpp_text(doc: dict) -> str:
    tests = "\n".join(doc["test_list"])
    return paper_prompt(f"{doc['prompt']}\nYour code should pass these tests:\n{tests}")


def mbpp_target(doc: dict) -> str:
    return doc["code"]


def mbpp_process_results(doc: dict, results: list[str]) -> dict[str, int]:
    header = "\n".join(doc.get("test_imports") or [])
    program = check_program(header + "\n", extract_code(results[0]), "\n".join(doc["test_list"]), None)
    return {"pass@1": int(run_program(program).passed)}


# ---------------------------------------------------------------- math: GSM8K, MATH


def gsm8k_text(doc: dict) -> str:
    return paper_prompt(doc["question"])


def math_text(doc: dict) -> str:
    return paper_prompt(doc["problem"])


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), the MATH answer convention."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, begin = 0, start + len("\\boxed{")
    for index in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth < 0:
            return text[begin:index]
    return None


def _normalize_math(answer: str) -> str:
    answer = answer.strip().strip("$").replace(" ", "").replace("\\!", "")
    answer = re.sub(r"\\text\{(.*?)\}", r"\1", answer)
    return answer.replace("dfrac", "frac").replace("tfrac", "frac").rstrip(".")


def math_process_results(doc: dict, results: list[str]) -> dict[str, int]:
    predicted = last_boxed(results[0])
    if predicted is None:  # no box: take the last line's content
        lines = results[0].strip().splitlines()
        predicted = lines[-1] if lines else ""
    return {"exact_match": int(_normalize_math(predicted) == _normalize_math(doc["answer"]))}


# ---------------------------------------------------------------- knowledge: NQ, BoolQ, MMLU-like, TruthfulQA


def nq_text(doc: dict) -> str:
    return paper_prompt(doc["question"].strip().capitalize() + "?")


def nq_target(doc: dict) -> str:
    return doc["answer"][0]


def _normalize_answer(text: str) -> str:
    text = "".join(c for c in text.lower() if c not in string.punctuation)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def nq_process_results(doc: dict, results: list[str]) -> dict[str, int]:
    predicted = _normalize_answer(results[0].strip().split("\n")[0])
    return {"exact_match": int(any(predicted == _normalize_answer(a) for a in doc["answer"]))}


def boolq_text(doc: dict) -> str:
    return paper_prompt(f"{doc['passage']}\nQuestion: {doc['question']}?")


def mmlu_text(doc: dict) -> str:
    return paper_prompt(_lettered(doc["question"], doc["choices"]))


def cmmlu_text(doc: dict) -> str:
    return paper_prompt(_lettered(doc["Question"], [doc[letter] for letter in LETTERS]))


def cmmlu_target(doc: dict) -> int:
    return LETTERS.index(doc["Answer"].strip())


def _field(doc: dict, *names: str):
    for name in names:
        if name in doc:
            return doc[name]
    raise KeyError(f"none of the fields {names} in document with fields {sorted(doc)}")


def jmmlu_text(doc: dict) -> str:
    # JMMLU is distributed as per-subject CSV files; accept both MMLU- and CMMLU-style field names.
    question = _field(doc, "question", "Question")
    options = [_field(doc, letter, f"choice{index}") for index, letter in enumerate(LETTERS)]
    return paper_prompt(_lettered(question, options))


def jmmlu_target(doc: dict) -> int:
    return LETTERS.index(str(_field(doc, "answer", "Answer")).strip())


def truthfulqa_text(doc: dict) -> str:
    return paper_prompt(doc["question"])


def truthfulqa_choices(doc: dict) -> list[str]:
    return doc["mc1_targets"]["choices"]


# ---------------------------------------------------------------- reasoning and long context


def _clean_hellaswag(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag_text(doc: dict) -> str:
    context = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
    return paper_prompt(_clean_hellaswag(f"{doc['activity_label']}: {context}"))


def hellaswag_choices(doc: dict) -> list[str]:
    return [_clean_hellaswag(ending) for ending in doc["endings"]]


def hellaswag_target(doc: dict) -> int:
    return int(doc["label"])


def longbench_text(doc: dict) -> str:
    options = [doc[f"choice_{letter}"] for letter in LETTERS]
    return paper_prompt(f"{doc['context']}\n\n" + _lettered(doc["question"], options))


def longbench_target(doc: dict) -> int:
    return LETTERS.index(doc["answer"].strip())
