"""The output layout: docs/ARCHITECTURE.md and ``OutputRoot`` agree, and the one checkpoint walk."""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

import pytest

from common.io import write_json
from common.layout import (
    DOCUMENTED_PATHS,
    OutputRoot,
    RunRecord,
    default_root,
    iter_checkpoints,
    model_id,
)

ARCHITECTURE = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"
# OutputRoot members that walk or read the root rather than name a path in it.
NOT_PATHS = {"path", "epoch_folders", "run_ids", "iter_checkpoints", "read_jobs", "record_jobs"}
SAMPLE_ARGS = {
    "run_id": "RUN",
    "request_id": "REQUEST",
    "epoch": 7,
    "base_model": "local/NAME",
    "checkpoint_id": "RUN/epoch-07",
    "model": "MODEL",
    "benchmark": "BENCH",
    "judge": "JUDGE",
}


def _documented_in_output_root_table() -> set[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## Output root", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {re.match(r"\| `([^`]+)`", row).group(1) for row in rows}


def _owned_paths(root: OutputRoot) -> dict[str, Path]:
    owned = {}
    for name, member in inspect.getmembers(OutputRoot):
        if name.startswith("_") or name in NOT_PATHS:
            continue
        if isinstance(member, property):
            owned[name] = getattr(root, name)
        elif callable(member):
            parameters = list(inspect.signature(member).parameters)[1:]
            owned[name] = getattr(root, name)(*(SAMPLE_ARGS[p] for p in parameters))
    return owned


def _rendered(pattern: str) -> str:
    for placeholder, value in (
        ("<run_id>", "RUN"),
        ("epoch-NN", "epoch-07"),
        ("<name>", "NAME"),
        ("<model>", "MODEL"),
        ("<benchmark>", "BENCH"),
        ("<judge>", "JUDGE"),
        ("<request_id>", "REQUEST"),
    ):
        pattern = pattern.replace(placeholder, value)
    return pattern


def test_architecture_documents_exactly_the_paths_output_root_owns(tmp_path: Path) -> None:
    assert _documented_in_output_root_table() == set(DOCUMENTED_PATHS)
    owned = _owned_paths(OutputRoot(tmp_path))
    assert set(owned) == set(DOCUMENTED_PATHS.values()), "every OutputRoot path is documented, and only those"
    for pattern, attribute in DOCUMENTED_PATHS.items():
        relative = owned[attribute].relative_to(tmp_path).as_posix()
        rendered = _rendered(pattern).rstrip("/")
        assert rendered == relative or rendered.startswith((relative + "/", relative + ".")), (
            f"{pattern} is documented as OutputRoot.{attribute}, which names {relative}"
        )


def _record(run_id: str, epoch: int, method: str = "full") -> dict:
    job = {
        "base_model": "local/tiny",
        "base_model_name": "tiny",
        "dataset": "demo_facts",
        "method": method,
        "data_size": 16,
        "lr_schedule": "cosine",
    }
    return {
        "job": job,
        "run_id": run_id,
        "epoch": epoch,
        "data_hash": "h",
        "data_path": "/x.parquet",
        "num_samples": 16,
        "seed": 0,
        "base_model_path": "/base",
        "versions": {},
        "metrics": {},
        "wall_time_s": 1.5,
        "added_later": "ignored by older readers",
    }


def test_iter_checkpoints_lists_complete_epochs_in_order(tmp_path: Path) -> None:
    root = OutputRoot(tmp_path)
    for run_id, epoch in [("b-run", 2), ("a-run", 10), ("a-run", 1)]:
        write_json(root.run_record(run_id, epoch), _record(run_id, epoch))
    root.epoch_dir("b-run", 3).mkdir()  # an export without run.json yet: not a checkpoint
    (root.run_dir("b-run") / ".epoch-04.partial").mkdir()  # a staging folder
    found = list(iter_checkpoints(tmp_path))
    assert [c.model_id for c in found] == ["a-run/epoch-01", "a-run/epoch-10", "b-run/epoch-02"]
    assert found[0].folder == root.epoch_dir("a-run", 1)
    assert root.epoch_folders("b-run") == [root.epoch_dir("b-run", 2), root.epoch_dir("b-run", 3)]
    identity = found[2].record.identity()
    assert identity["model_id"] == model_id("b-run", 2) == "b-run/epoch-02"
    assert identity["epoch"] == 2 and identity["method"] == "full" and identity["data_size"] == 16


def test_run_record_round_trips_and_tolerates_new_keys(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(_record("r", 3)))
    record = RunRecord.read(path)
    assert record.epoch == 3 and record.wall_time_s == 1.5 and record.model_id == "r/epoch-03"
    assert RunRecord.from_dict(record.to_dict()) == record
    with pytest.raises(TypeError):
        RunRecord.from_dict({"run_id": "r", "epoch": 1})  # the fields training always writes are required


def test_jobs_manifest_upserts_by_run_id(tmp_path: Path) -> None:
    root = OutputRoot(tmp_path)
    assert root.read_jobs() == []
    root.record_jobs([{"run_id": "a", "x": 1}, {"run_id": "b", "x": 2}])
    root.record_jobs([{"run_id": "a", "x": 3}, {"run_id": "c", "x": 4}])
    assert root.read_jobs() == [{"run_id": "a", "x": 3}, {"run_id": "b", "x": 2}, {"run_id": "c", "x": 4}]


def test_output_root_reads_as_its_path(tmp_path: Path) -> None:
    root = OutputRoot(tmp_path)
    assert str(root) == os.fspath(root) == str(tmp_path) and OutputRoot(root) == root
    assert root / "x" == tmp_path / "x"


def test_every_cli_defaults_to_the_same_root_naming() -> None:
    assert default_root() == Path("outputs/demo")
    assert default_root("configs/grids/paper.yaml") == default_root("paper") == Path("outputs/paper")
