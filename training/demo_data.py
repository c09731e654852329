"""Small synthetic instruction sets that a tiny model can learn within minutes on a CPU, so that
fine-tuning visibly changes benchmark scores. Each has a training split and a disjoint test split;
test items carry four answer choices for multiple-choice evaluation."""

from __future__ import annotations

import random
from collections.abc import Callable

DEMO_DATASETS: tuple[str, ...] = ("demo_arithmetic", "demo_strings", "demo_facts")

_WORDS = (
    "cat",
    "dog",
    "sun",
    "map",
    "pen",
    "cup",
    "hat",
    "box",
    "key",
    "bus",
    "jam",
    "owl",
    "fig",
    "ink",
    "log",
    "net",
    "oak",
    "pig",
    "rug",
    "van",
    "web",
    "yak",
    "zip",
    "bee",
)
_COUNTRIES = (
    "Avalor",
    "Brenn",
    "Cortia",
    "Dunmar",
    "Elsin",
    "Farrow",
    "Galt",
    "Hestia",
    "Ivren",
    "Jorum",
    "Kestra",
    "Lumen",
    "Morrow",
    "Norvik",
    "Ostra",
    "Pell",
)
_CITIES = (
    "Amber",
    "Birch",
    "Cobalt",
    "Delta",
    "Ember",
    "Flint",
    "Garnet",
    "Harbor",
    "Iris",
    "Jade",
    "Kiln",
    "Lark",
    "Maple",
    "Nectar",
    "Onyx",
    "Pine",
)


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    a, b = rng.randint(0, 9), rng.randint(0, 9)
    return f"What is {a} plus {b}?", str(a + b)


def _strings(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(_WORDS)
    if rng.random() < 0.5:
        return f"Reverse the word {word}.", word[::-1]
    return f"Write the word {word} in capitals.", word.upper()


def _fact_table(seed: int = 0) -> dict[str, str]:
    cities = list(_CITIES)
    random.Random(seed).shuffle(cities)
    return dict(zip(_COUNTRIES, cities, strict=True))


def _facts(rng: random.Random) -> tuple[str, str]:
    country, city = rng.choice(sorted(_fact_table().items()))
    return f"What is the capital of {country}?", city


_GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "demo_arithmetic": _arithmetic,
    "demo_strings": _strings,
    "demo_facts": _facts,
}


def _all_items(name: str) -> list[tuple[str, str]]:
    """Every distinct (instruction, response) the generator can produce, in a fixed order."""
    rng = random.Random(1234)
    seen: dict[str, str] = {}
    for _ in range(5000):
        instruction, response = _GENERATORS[name](rng)
        seen.setdefault(instruction, response)
    return sorted(seen.items())


def demo_examples(name: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` examples of demo dataset ``name`` from ``split`` ("train" or "test").

    Arithmetic and strings hold out a disjoint quarter of their items for test; facts can only be
    tested on the facts that were taught, so its test split asks the same questions."""
    if name not in _GENERATORS:
        raise ValueError(f"unknown demo dataset {name!r}; choose one of {list(DEMO_DATASETS)}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    items = _all_items(name)
    if name != "demo_facts":
        shuffled = items[:]
        random.Random(99).shuffle(shuffled)
        cut = len(shuffled) // 4
        items = shuffled[cut:] if split == "train" else shuffled[:cut]
    rng = random.Random(f"{name}-{split}-{seed}")
    answers = sorted({response for _, response in _all_items(name)})
    examples = []
    for index in range(n):
        instruction, response = items[index % len(items)] if split == "test" else rng.choice(items)
        distractors = rng.sample([a for a in answers if a != response], 3)
        choices = distractors + [response]
        rng.shuffle(choices)
        examples.append(
            {
                "id": f"{name}-{split}-{index}",
                "instruction": instruction,
                "response": response,
                "choices": choices,
                "answer_index": choices.index(response),
            }
        )
    return examples
