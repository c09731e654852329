"""Importer of the authors' released table and its data-quality report, on the real table."""

from __future__ import annotations

import csv
import functools
import http.server
import io
import math
import socket
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from common.catalog import BENCHMARK_FAMILIES
from common.cli import run_command
from common.io import read_json
from common.schema import read_scores, to_wide, wide_column
from evaluation import cli_import
from evaluation.importer import COLUMN_MAP, ReleasedTableError, import_released

METADATA = ["model_name", "data_name", "lora", "epoch", "data_size", "lr_strategy"]


@pytest.fixture(scope="module")
def imported(released_table: Path):
    return import_released(released_table)


@pytest.fixture(scope="module")
def raw(released_table: Path) -> pd.DataFrame:
    # pandas 3 parses floats exactly (round trip, like Python float()), so cells compare with ==.
    return pd.read_csv(released_table)


def test_every_value_of_the_real_table_survives(imported, raw):
    wide = to_wide(imported.scores).set_index("model_id")
    ids = imported.table["model_id"].tolist()
    assert len(ids) == len(raw) == 1027 and len(set(ids)) == 1027
    compared = 0
    for column, triple in COLUMN_MAP.items():
        back = wide[wide_column(*triple)].reindex(ids).to_numpy() if wide_column(*triple) in wide else None
        for row, original in enumerate(raw[column]):
            got = back[row] if back is not None else math.nan
            if pd.isna(original):
                assert pd.isna(got), (row, column)
            else:
                assert got == original, (row, column, got, original)
                compared += 1
    assert compared == int(raw[list(COLUMN_MAP)].notna().to_numpy().sum()) == len(imported.scores) == 29612


def test_metadata_is_parsed(imported, raw):
    table = imported.table
    for (_, mine), (_, theirs) in zip(table.iterrows(), raw.iterrows(), strict=True):
        assert mine["base_model_name"] == theirs["model_name"] and mine["dataset"] == theirs["data_name"]
        assert mine["epoch"] == theirs["epoch"] and mine["data_size"] == theirs["data_size"]
        if theirs["data_name"] == "pretrain":
            assert (mine["method"], mine["lr_schedule"], mine["epoch"], mine["data_size"]) == (
                "base",
                "none",
                0,
                0,
            )
        else:
            assert mine["method"] == (
                "lora" if theirs["lora"] is True or theirs["lora"] == "True" else "full"
            )
            assert mine["lr_schedule"] == theirs["lr_strategy"]
    scores = imported.scores
    assert set(scores["benchmark"]) <= set(BENCHMARK_FAMILIES)
    assert set(scores["source"]) == {"released-table"}
    olmo = scores[scores["model_id"] == "OLMo-7B-hf/alpaca_cleaned/full/1000/cosine/epoch-10"]
    assert set(olmo["base_model"]) == {"allenai/OLMo-7B-hf"}
    assert (
        scores.loc[scores["model_id"] == "OLMo-7B-hf/w_o-lima/lora/9000/cosine/epoch-10", "dataset"].iloc[0]
        == "w/o-lima"
    )
    assert set(scores.loc[scores["benchmark"] == "mtbench", "metric"]) == {
        "total",
        "writing",
        "roleplay",
        "reasoning",
        "math",
        "coding",
        "extraction",
        "stem",
        "humanities",
    }


def test_import_of_the_real_table_is_fast(released_table):
    start = time.perf_counter()
    import_released(released_table)
    assert time.perf_counter() - start < 5.0


def test_quality_findings_on_the_real_table(imported):
    f = imported.findings
    missing = f["missing"]["per_column"]
    assert missing["LongBench-v2-0shot"] == 994 and missing["nq-1shot"] == 0
    # Mistral-7B-v0.1 LoRA rows (10 datasets + 10 epochs of "all") lack the whole first block.
    block = next(g for g in f["missing"]["patterns"] if "mbpp_4shot" in g["columns"])
    assert block["n_rows"] == 20 and block["base_models"] == {"Mistral-7B-v0.1": 20}
    assert missing["alpaca_eval_v2-total"] == 4  # Gemma2-9B all/lora epochs 1-4
    assert [s["column"] for s in f["sparse_columns"]] == ["LongBench-v2-0shot"]
    assert f["sparse_columns"][0]["filled"] == 33 and f["sparse_columns"][0]["distinct_values"] == [
        0.0,
        12.72,
    ]
    assert [s["column"] for s in f["scale_suspect"]] == ["Truthful_QA-0shot"]
    assert f["scale_suspect"][0]["max"] == 0.18
    assert f["out_of_range"] == [] and f["duplicate_metadata"] == [] and f["mtbench_inconsistent"] == []
    # Two different base models with one score vector: a copy-paste in the released table.
    assert f["duplicate_score_vectors"] == [
        {"model_ids": ["Mistral-7B-v0.1", "Chinese-Mistral-7B-v0.1"], "n_models": 2}
    ]


def test_shared_scores_between_different_models(imported):
    pairs = {tuple(sorted(p["model_ids"])): p for p in imported.findings["shared_scores"]}
    assert len(pairs) == 33
    llmjp_olmo = pairs[("LLM-jp-3-7B", "OLMo-7B-hf")]  # two different base models, one 0-shot block
    assert llmjp_olmo["n_equal"] == 12 and "mmlu-0shot" in llmjp_olmo["columns"]
    # Constant-schedule runs whose 0-shot block equals the cosine epoch-10 run of the same data.
    constant = [
        p
        for p in pairs.values()
        if any("/constant/" in m for m in p["model_ids"])
        and any("/cosine/epoch-10" in m for m in p["model_ids"])
    ]
    assert len(constant) == 28
    assert (
        "OLMo-7B-hf/code_alpaca/full/1000/constant/epoch-10",
        "OLMo-7B-hf/code_alpaca/full/1000/cosine/epoch-10",
    ) in pairs


def test_design_and_base_rows(imported):
    design, base = imported.findings["design"], imported.findings["base_rows"]
    assert base["fine_tuned_without_pretrain_row"] == [] and base["catalog_models_absent"] == [
        "Swallow-Mistral-7B"
    ]
    assert design["off_design"] == [] and design["expected_rows"] == 1082
    assert sorted(design["missing_explained"].values()) == [11, 41]
    assert [
        (g["model"], g["dataset"], g["lr_schedule"], g["epoch"]) for g in design["missing_unexplained"]
    ] == [(m, "lima", "constant", 10) for m in ("LLM-jp-3-7B", "OLMo-7B-hf", "Qwen2.5-7B")]


def test_flags_are_attached_to_rows(imported):
    s = imported.scores.set_index(["model_id", "benchmark", "shots", "metric"])["flags"]
    assert s[("Chinese-Mistral-7B-v0.1", "gsm8k", 4, "exact_match")] == "shared_scores;duplicate_scores"
    assert s[("LLM-jp-3-7B", "mmlu", 0, "acc")] == "shared_scores"
    assert s[("LLM-jp-3-7B", "mmlu", 5, "acc")] == "format_failure"
    assert s[("Yi-1.5-9B", "boolq", 5, "acc")] == ""
    assert s[("Meta-Llama-3-8B", "gsm8k", 4, "exact_match")] == ""
    assert "scale_suspect" in s[("Meta-Llama-3-8B", "truthfulqa", 0, "acc")]
    assert (s.xs("longbench_v2", level="benchmark").str.contains("sparse_column")).all()
    assert (s != "").sum() < len(s) / 10  # flags single out rows, they do not mark everything


def test_base_rows_failing_the_answer_format_are_flagged(imported, released_table):
    csv_table = pd.read_csv(released_table)
    base = csv_table[csv_table["data_name"] == "pretrain"].set_index("model_name")
    # computed here from the CSV: few-shot under a tenth of a zero-shot score of at least 10 points
    expected = {
        (name, few)
        for few, zero in (
            ("BoolQ-5shot", "BoolQ-0shot"),
            ("mmlu-5shot", "mmlu-0shot"),
            ("nq-1shot", "nq-0shot"),
        )
        for name in base.index
        if base.loc[name, zero] >= 10 and base.loc[name, few] < 0.1 * base.loc[name, zero]
    }
    found = {(f["model_id"], f["column"]) for f in imported.findings["format_failure"]}
    assert expected <= found and len(expected) == 13
    assert sum(column == "BoolQ-5shot" for _, column in found) == 10  # every base model but Yi-1.5-9B
    assert ("Yi-1.5-9B", "BoolQ-5shot") not in found
    # only base rows: a fine-tuned model that learned the format is no failure
    assert all("/" not in model for model, _ in found)
    assert "fail the answer format" in " ".join(imported.findings["summary"])


def _rows(released_table: Path, n: int = 40) -> list[list[str]]:
    """Header + the first ``n`` data rows + every pretrain row, as CSV cells."""
    rows = list(csv.reader(released_table.read_text(encoding="utf-8").splitlines()))
    return rows[:1] + rows[1 : n + 1] + [r for r in rows[n + 1 :] if r[2] == "pretrain"]


def _write(tmp_path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path = tmp_path / "table.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _run_cli(csv_source: str, root: Path) -> int:
    return run_command(
        "python -m evaluation import-released", cli_import, ["--csv", csv_source, "--root", str(root)]
    )


def _set(rows, row, column, value):
    rows[row + 1][rows[0].index(column)] = value
    return rows


BAD_INPUTS = {
    "renamed column": (
        lambda r: [[*r[0][:5], "gsm8k-8shot", *r[0][6:]], *r[1:]],
        ["gsm8k-8shot", "gsm8k-4shot"],
    ),
    "missing column": (lambda r: [row[:-1] for row in r], ["cmmlu-0shot", "missing"]),
    "non-numeric score": (lambda r: _set(r, 3, "mmlu-5shot", "n/a"), ["row 3", "'mmlu-5shot'", "'n/a'"]),
    "unknown model": (lambda r: _set(r, 5, "model_name", "GPT-5"), ["row 5", "'model_name'", "GPT-5"]),
    "unknown dataset": (lambda r: _set(r, 7, "data_name", "dolly"), ["row 7", "'data_name'", "dolly"]),
    "bad lora": (lambda r: _set(r, 2, "lora", "maybe"), ["row 2", "'lora'"]),
    "bad epoch": (lambda r: _set(r, 4, "epoch", "1.5"), ["row 4", "'epoch'"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_names_row_and_column_and_writes_nothing(case, released_table, tmp_path, capsys):
    corrupt, expected = BAD_INPUTS[case]
    path = _write(tmp_path, corrupt(_rows(released_table)))
    with pytest.raises(ReleasedTableError) as error:
        import_released(path)
    for fragment in expected:
        assert fragment in str(error.value)
    root = tmp_path / "out"
    assert _run_cli(str(path), root) == 2
    assert not root.exists() or list(root.iterdir()) == []
    assert expected[0] in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_url_names_the_url(tmp_path):
    url = f"http://127.0.0.1:{_free_port()}/evaluation_result.csv"
    with pytest.raises(ReleasedTableError, match=url.replace(".", r"\.")):
        import_released(url)
    assert _run_cli(url, tmp_path / "out") == 2 and not (tmp_path / "out").exists()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ReleasedTableError, match="not found at .*nope.csv"):
        import_released(tmp_path / "nope.csv")


def test_import_from_url_and_cli_outputs(released_table, tmp_path, capsys):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(released_table.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{released_table.name}"
        root = tmp_path / "study"
        assert _run_cli(url, root) == 0
        assert _run_cli(url, root) == 0  # idempotent: rows replaced, never duplicated
    finally:
        server.shutdown()
    scores = read_scores(root / "scores.parquet")
    assert len(scores) == 29612 and scores["model_id"].nunique() == 1027
    quality = read_json(root / "quality.json")
    assert quality["sha256"] == "de156c07817e2c8c2702d5475add0f759c11cd839367ad656ccfd2640a494c73"
    assert quality["source"] == url
    printed = capsys.readouterr().out
    assert "Identical score vectors: Mistral-7B-v0.1, Chinese-Mistral-7B-v0.1" in printed
    assert "Almost empty column LongBench-v2-0shot" in printed


def test_duplicates_and_out_of_range_are_flagged(released_table, tmp_path):
    rows = _rows(released_table, n=10)
    rows.append(["9999", *rows[1][1:]])  # the same model twice
    _set(rows, 2, "mtbench-total", "11.5")
    _set(rows, 3, "gsm8k-4shot", "-1")
    result = import_released(_write(tmp_path, rows))
    f = result.findings
    first = result.table["model_id"].iloc[0]
    assert f["duplicate_metadata"] == sorted([first, f"{first}#2"])
    assert [first, f"{first}#2"] in [g["model_ids"] for g in f["duplicate_score_vectors"]]
    assert {(o["row"], o["column"]) for o in f["out_of_range"]} == {
        ("2", "mtbench-total"),
        ("3", "gsm8k-4shot"),
    }
    flags = result.scores.set_index(["model_id", "benchmark", "shots", "metric"])["flags"]
    assert "duplicate_metadata" in flags[(f"{first}#2", "nq", 1, "exact_match")]
    third = result.table["model_id"].iloc[2]
    assert "out_of_range" in flags[(third, "mtbench", 0, "total")]


# ---------------------------------------------------------------- damaged inputs (one line, exit 2)


def _cli(csv_path: Path, root: Path, capsys, *extra: str) -> tuple[int, str]:
    argv = ["--csv", str(csv_path), "--root", str(root), *extra]
    code = run_command("python -m evaluation import-released", cli_import, argv)
    return code, capsys.readouterr().err


def test_binary_file_is_refused_in_one_line(tmp_path, capsys):
    path = tmp_path / "table.csv"
    path.write_bytes(bytes(range(256)) * 8)
    code, err = _cli(path, tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1 and "not a UTF-8 text CSV" in err
    path.write_bytes(b",model_name\x00\x00\n")
    code, err = _cli(path, tmp_path / "out", capsys)
    assert code == 2 and "NUL bytes" in err and not (tmp_path / "out").exists()


def test_a_byte_order_mark_is_accepted_and_the_release_recognised(released_table, tmp_path, capsys):
    path = tmp_path / "saved-by-a-spreadsheet.csv"
    path.write_bytes(b"\xef\xbb\xbf" + released_table.read_bytes())
    result = import_released(path)
    assert result.scores["model_id"].nunique() == 1027 and result.warnings == []
    assert import_released(released_table).warnings == []


def test_a_table_cut_at_a_cell_boundary_is_refused(released_table, tmp_path, capsys):
    text = released_table.read_text(encoding="utf-8")
    cut = text[: text.index("\n", len(text) // 2) + 1]  # whole rows...
    cut += text[len(cut) :].split("\n", 1)[0].rsplit(",", 5)[0]  # ...and a row without its last cells
    path = tmp_path / "partial.csv"
    path.write_text(cut, encoding="utf-8")
    code, err = _cli(path, tmp_path / "out", capsys)
    assert code == 2 and err.count("\n") == 1
    assert "does not end with a line break" in err and "--allow-truncated" in err and "cells" in err
    assert not (tmp_path / "out").exists()
    code, err = _cli(path, tmp_path / "out", capsys, "--allow-truncated")
    assert code == 0 and "incomplete last row was dropped" in err
    rows = cut.count("\n") - 1
    assert f"{rows} rows where the released table has 1027" in err
    assert read_scores(tmp_path / "out" / "scores.parquet")["model_id"].nunique() == rows


def test_a_number_cut_short_is_named(released_table, tmp_path, capsys):
    lines = released_table.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines[3:], 3) if len(line.rstrip().rsplit(",", 1)[1]) > 10)
    last = lines[index].rstrip("\n")
    path = tmp_path / "partial.csv"
    path.write_text("".join(lines[:index]) + last[:-6], encoding="utf-8")  # 20.61955223880597 -> 20.6195522
    code, err = _cli(path, tmp_path / "out", capsys)
    assert (
        code == 2 and "fewer decimals than the column's" in err and repr(last[:-6].rsplit(",", 1)[1]) in err
    )


def test_a_table_cut_at_a_row_boundary_is_imported_with_a_warning(released_table, tmp_path, capsys):
    lines = released_table.read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "partial.csv"
    path.write_text("".join(lines[:700]), encoding="utf-8")
    code, err = _cli(path, tmp_path / "out", capsys)
    assert code == 0
    assert "699 rows where the released table has 1027" in err and "SHA-256 differs" in err
