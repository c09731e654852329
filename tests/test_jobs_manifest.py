"""Training's jobs.jsonl: the jobs and their resolved base models, which evaluation reads instead of
the grid."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.layout import OutputRoot
from common.selection import SelectionError
from evaluation.runner import EvaluationError, discover_models
from tests.release_fixtures import make_job, write_checkpoint
from training.grid import filter_jobs, load_grid
from training.manifest import record_jobs


def test_evaluation_takes_base_models_from_the_recorded_jobs(tmp_path: Path) -> None:
    jobs = filter_jobs(load_grid("demo"), "base_model_name=tiny-llama")
    records = record_jobs(jobs, tmp_path)
    layout = OutputRoot(tmp_path)
    assert [r["run_id"] for r in layout.read_jobs()] == [job.run_id for job in jobs]
    built = Path(records[0]["base_model_path"])
    assert built == layout.base_model_dir("local/tiny-llama").resolve() and (built / "config.json").exists()
    # No run has finished yet: the base model still comes from the manifest, loadable where it was built.
    (base,) = discover_models(tmp_path, grid="demo")
    assert (base.model_id, base.path, base.identity["method"]) == ("tiny-llama", str(built), "base")
    assert discover_models(tmp_path, only="method=lora")[0].model_id == "tiny-llama"
    assert discover_models(tmp_path, only="base_model_name=other") == []
    with pytest.raises(EvaluationError, match="records no job of grid 'paper'"):
        discover_models(tmp_path, grid="paper")
    with pytest.raises(SelectionError, match="did you mean 'method'"):
        discover_models(tmp_path, only="methd=lora")


def test_checkpoints_are_listed_after_their_base_without_a_manifest(tmp_path: Path, tiny_llama) -> None:
    job = make_job("tiny-llama", "demo_facts", "lora")
    write_checkpoint(job, 1, tmp_path, tiny_llama)
    models = discover_models(tmp_path)
    assert [m.model_id for m in models] == ["tiny-llama", f"{job.run_id}/epoch-01"]
    assert models[1].is_adapter and models[1].base_path == str(tiny_llama)
    assert models[0].path == str(tiny_llama)  # the base model path recorded in run.json
