"""Data preparation: each paper loader on local files shaped like its Hub repo (read through the real
``datasets.load_dataset``), seeded subsampling, all / w/o-X mixtures, the parquet cache and templates."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from common.catalog import PAPER_DATASETS
from common.cli import run_command
from common.template import render_prompt, render_sample
from training import cli_prepare
from training.data import COLUMNS, prepare_dataset, read_prepared
from training.loaders import DataError, merge_input, sample_examples

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "hub_rows"
# Folders are loaded as Hub-like repos (split names from file names), files through their builder.
SOURCES = {
    "alpaca_cleaned": FIXTURES / "alpaca-cleaned",
    "lima": FIXTURES / "lima",
    "ultrachat": FIXTURES / "ultrachat_200k",
    "code_alpaca": FIXTURES / "CodeAlpaca-20k" / "code_alpaca_20k.json",
    "magicoder": FIXTURES / "Magicoder-Evol-Instruct-110K",
    "openmath": FIXTURES / "OpenMathInstruct-1" / "correct_solutions" / "train.jsonl",
    "math": FIXTURES / "MathInstruct",
    "flan2021": FIXTURES / "flan2021_submix_original",  # one key for the three FLAN splits
}
# Usable rows per fixture after preprocessing.
USABLE = {
    "alpaca_cleaned": 5,
    "lima": 4,
    "ultrachat": 3,
    "code_alpaca": 3,
    "magicoder": 2,
    "openmath": 2,
    "math": 2,
    "flan_knowledge": 3,
    "flan_reasoning": 6,
    "flan_comprehension": 2,
}


def _by_instruction(dataset: str) -> dict[str, object]:
    examples = sample_examples(dataset, USABLE[dataset], seed=0, sources=SOURCES)
    return {e.instruction: e for e in examples}


def test_every_paper_dataset_loads_its_fixture():
    for dataset in PAPER_DATASETS:
        examples = sample_examples(dataset, USABLE[dataset], seed=0, sources=SOURCES)
        assert len(examples) == USABLE[dataset]
        assert all(e.instruction and e.response for e in examples)
        with pytest.raises(DataError, match="usable rows"):
            sample_examples(dataset, USABLE[dataset] + 1, seed=0, sources=SOURCES)


def test_alpaca_input_is_merged_into_the_instruction():
    rows = _by_instruction("alpaca_cleaned")
    assert rows["Add the two numbers.\n\n3 and 4"].response == "The sum is 7."
    assert "What colour is a clear sky?" in rows  # whitespace-only input: instruction alone
    assert "What is the capital of France?" in rows
    assert not any("no answer" in instruction for instruction in rows)  # empty output dropped
    assert merge_input("Do it.", "  data ") == "Do it.\n\ndata"
    code = _by_instruction("code_alpaca")
    assert code["Fix the bug in this code.\n\nprint('hi'"].response == "print('hi')"


def test_lima_first_turn_only_and_source_kept():
    rows = _by_instruction("lima")
    assert rows["Write a haiku about rain."].response == "Soft rain on the roof\nwhispers"
    assert rows["How do I boil an egg?"].source == "wikihow"
    assert "A test prompt without an answer." not in rows  # the test split is not read
    with pytest.raises(DataError, match="at most 1000"):
        sample_examples("lima", 20000, sources=SOURCES)


def test_ultrachat_first_user_turn_and_first_reply_from_train_sft():
    rows = _by_instruction("ultrachat")
    assert set(rows) == {"Tell me about owls.", "Summarise the plot of Hamlet.", "List three fruits."}
    assert rows["Tell me about owls."].response == "Owls are nocturnal birds of prey."
    assert rows["List three fruits."].response == "Apple, pear, plum."


def test_code_and_math_field_mapping():
    assert _by_instruction("magicoder")["Explain recursion."].response.startswith("A function calling")
    openmath = _by_instruction("openmath")
    assert set(openmath) == {"What is 12 times 3?", "Solve x+2=5."}  # the is_correct=False row is gone
    assert openmath["What is 12 times 3?"].source == "gsm8k"
    assert "\\boxed{36}" in openmath["What is 12 times 3?"].response
    math = _by_instruction("math")
    assert math["Ann has 5 apples and gets 3 more. How many?"].source == "data/CoT/gsm_rft.json"


def test_flan_split_by_task_zero_shot_no_options_and_none_dropped():
    knowledge = _by_instruction("flan_knowledge")
    assert {e.source for e in knowledge.values()} == {"boolq", "nq_open", "triviaqa_rc"}
    assert all(e.response.strip().lower() != "none" for e in knowledge.values())
    assert not any("must be ignored" in i for i in knowledge)  # few-shot and with-options templates
    reasoning = _by_instruction("flan_reasoning")
    assert {e.source for e in reasoning.values()} == {
        "arc_easy",
        "arc_challenge",
        "hellaswag",
        "winogrande",
        "piqa",
    }
    comprehension = _by_instruction("flan_comprehension")
    assert {e.response for e in comprehension.values()} == {"in Ohio", "The Nile"}  # "none"/"NONE" dropped
    everything = {**knowledge, **reasoning, **comprehension}
    assert "An MNLI row of another task." not in everything


@pytest.fixture()
def big_alpaca(tmp_path: Path) -> Path:
    rows = [
        {"instruction": f"Question number {i}?", "input": "", "output": f"Answer {i}."} for i in range(100)
    ]
    path = tmp_path / "alpaca" / "alpaca_data_cleaned.json"
    path.parent.mkdir()
    path.write_text(json.dumps(rows))
    return path.parent


def test_subsampling_is_seeded_exact_and_nested(big_alpaca):
    sources = {"alpaca_cleaned": big_alpaca}
    first = sample_examples("alpaca_cleaned", 20, seed=0, sources=sources)
    again = sample_examples("alpaca_cleaned", 20, seed=0, sources=sources)
    other = sample_examples("alpaca_cleaned", 20, seed=1, sources=sources)
    smaller = sample_examples("alpaca_cleaned", 10, seed=0, sources=sources)
    assert len(first) == 20 and len({e.index for e in first}) == 20
    assert first == again
    assert [e.index for e in other] != [e.index for e in first]
    assert smaller == first[:10]  # the 1k subset is inside the 20k one of the same seed
    assert [e.index for e in first] != sorted(e.index for e in first)  # shuffled, not the first rows


def test_prepared_file_layout_hash_and_columns(tmp_path, big_alpaca):
    data = prepare_dataset("alpaca_cleaned", 10, tmp_path, seed=0, sources={"alpaca_cleaned": big_alpaca})
    assert data.path == tmp_path / "data" / f"alpaca_cleaned__10__{data.data_hash}.parquet"
    frame = read_prepared(data.path)
    assert list(frame.columns) == list(COLUMNS) and len(frame) == data.num_samples == 10
    row = frame.iloc[0]
    assert row["prompt"] == render_prompt(row["instruction"])
    assert row["text"] == render_sample(row["instruction"], row["response"])
    assert row["id"].startswith("alpaca_cleaned-") and row["source"] == "alpaca_cleaned"
    other_root = prepare_dataset(
        "alpaca_cleaned", 10, tmp_path / "b", seed=0, sources={"alpaca_cleaned": big_alpaca}
    )
    assert other_root.data_hash == data.data_hash  # a content hash: same rows, same hash
    reseeded = prepare_dataset("alpaca_cleaned", 10, tmp_path, seed=1, sources={"alpaca_cleaned": big_alpaca})
    assert reseeded.data_hash != data.data_hash and reseeded.path != data.path


def test_cache_is_reused_without_reading_the_source(tmp_path, big_alpaca):
    source = tmp_path / "copy"
    shutil.copytree(big_alpaca, source)
    first = prepare_dataset("alpaca_cleaned", 10, tmp_path / "root", sources={"alpaca_cleaned": source})
    shutil.rmtree(source)  # a reload would now fail
    assert prepare_dataset("alpaca_cleaned", 10, tmp_path / "root") == first
    with pytest.raises(DataError, match="alpaca_cleaned"):
        prepare_dataset("alpaca_cleaned", 10, tmp_path / "root", sources={"alpaca_cleaned": source})


def test_cache_rebuilds_when_an_explicit_source_changes(tmp_path, big_alpaca):
    sources = {"alpaca_cleaned": big_alpaca}
    first = prepare_dataset("alpaca_cleaned", 10, tmp_path, sources=sources)
    file = big_alpaca / "alpaca_data_cleaned.json"
    rows = json.loads(file.read_text())
    file.write_text(json.dumps([{**r, "output": r["output"].upper()} for r in rows]))
    second = prepare_dataset("alpaca_cleaned", 10, tmp_path, sources=sources)
    assert second.data_hash != first.data_hash
    assert read_prepared(second.path)["response"].str.isupper().all()


def test_all_and_leave_one_out_are_built_from_the_member_subsets(tmp_path):
    size = 2  # every fixture has at least two usable rows: all = 10 x 2
    everything = read_prepared(prepare_dataset("all", 10 * size, tmp_path, sources=SOURCES).path)
    assert len(everything) == 20 and everything["id"].is_unique
    assert everything.groupby("dataset").size().to_dict() == {name: size for name in PAPER_DATASETS}
    for name in ("lima", "flan_reasoning"):
        member = read_prepared(prepare_dataset(name, size, tmp_path, sources=SOURCES).path)
        assert set(member["id"]) == set(everything.loc[everything["dataset"] == name, "id"])
    without = prepare_dataset("w/o-lima", 9 * size, tmp_path, sources=SOURCES)
    assert without.path.name.startswith("w-o-lima__18__")
    rows = read_prepared(without.path)
    assert set(rows["id"]) == set(everything.loc[everything["dataset"] != "lima", "id"])
    with pytest.raises(DataError, match="multiple of 10"):
        prepare_dataset("all", 25, tmp_path, sources=SOURCES)


def test_demo_datasets_go_through_the_same_function(tmp_path):
    data = prepare_dataset("demo_facts", 50, tmp_path)
    frame = read_prepared(data.path)
    assert len(frame) == 50 and set(frame["source"]) == {"demo_facts"}
    assert frame["text"].str.startswith("###Question: What is the capital of").all()


CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def test_chat_template_rendering(tmp_path):
    from training.tiny import build_tokenizer

    tokenizer = build_tokenizer()  # the tiny models' real fast tokenizer, given a chat template
    tokenizer.chat_template = CHAT_TEMPLATE
    chat = prepare_dataset("demo_arithmetic", 20, tmp_path, template="chat", tokenizer=tokenizer)
    paper = prepare_dataset("demo_arithmetic", 20, tmp_path, template="paper")
    assert chat.data_hash != paper.data_hash
    row = read_prepared(chat.path).iloc[0]
    assert row["prompt"] == f"<|user|>{row['instruction']}</s><|assistant|>"
    assert row["text"] == f"{row['prompt']}{row['response']}</s>"
    tokenizer.chat_template = CHAT_TEMPLATE.replace("</s>", "<end>")  # another template: another file
    assert prepare_dataset("demo_arithmetic", 20, tmp_path, template="chat", tokenizer=tokenizer) != chat
    with pytest.raises(DataError, match="tokenizer"):
        prepare_dataset("demo_arithmetic", 20, tmp_path, template="chat")


def test_bad_inputs_are_clear(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'alpaca'"):
        prepare_dataset("alpaca", 10, tmp_path)
    with pytest.raises(DataError, match="unknown template"):
        prepare_dataset("demo_facts", 10, tmp_path, template="alpaca")
    not_prepared = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(not_prepared)
    with pytest.raises(DataError, match="missing"):
        read_prepared(not_prepared)


def test_prepare_cli_with_local_sources(tmp_path, capsys):
    recipe = tmp_path / "mini.yaml"
    recipe.write_text("""
methods: {full: {learning_rate: 1.0e-3, batch_size: 4}}
models: [{name: tiny-llama, build: {architecture: llama}}]
blocks:
  - {name: b, datasets: [lima, flan_knowledge, demo_strings], data_sizes: [3], epochs: 1}
""")
    args = ["--grid", str(recipe), "--root", str(tmp_path / "out")]
    sources = ["--source", f"lima={SOURCES['lima']}", "--source", f"flan2021={SOURCES['flan2021']}"]
    assert run_command("python -m training prepare", cli_prepare, [*args, *sources]) == 0
    out = capsys.readouterr()
    assert "3 training set(s) ready" in out.out and "preparing datasets" in out.err  # tqdm progress
    assert sorted(p.name.split("__")[0] for p in (tmp_path / "out" / "data").glob("*.parquet")) == [
        "demo_strings",
        "flan_knowledge",
        "lima",
    ]
    assert run_command("python -m training prepare", cli_prepare, [*args, "--source", "lima"]) == 2
    assert "expected DATASET=PATH" in capsys.readouterr().err
    # An unknown source name is an error naming the valid ones, not silently ignored.
    assert run_command("python -m training prepare", cli_prepare, [*args, "--source", "nosuch=/x"]) == 2
    err = capsys.readouterr().err
    assert "unknown source 'nosuch'" in err and "flan2021" in err and "lima" in err
    assert len(err.strip().splitlines()) == 1
