"""How the pipeline reports a broken stage: by name, with the command and the way to resume."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.stages import Stage, StageFailed, run_stages


def test_a_failing_stage_is_named_and_later_stages_do_not_run(tmp_path, capsys) -> None:
    stages = [
        Stage("first", ("json.tool", str(tmp_path / "missing.json"))),
        Stage("second", ("json.tool", "-h")),
    ]
    with pytest.raises(StageFailed) as failure:
        run_stages(stages)
    assert failure.value.stage == "first"
    assert "stage 'first' failed" in str(failure.value) and "re-run the same command" in str(failure.value)
    assert "[2/2] second" not in capsys.readouterr().out


def test_pipeline_cli_names_the_failing_stage_and_its_cause(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "demo", "--root", str(tmp_path), "--grid", "nope", "--no-serve"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    assert "error: stage 'prepare data' failed" in result.stderr
    assert "nope" in result.stderr + result.stdout  # the grid error names the unknown recipe
