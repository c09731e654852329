"""Every CLI answers bad input the same way: one line on stderr naming the problem (and the fix), exit
code 2, no traceback (unless --debug). Run as users run them: ``python -m <stage> <subcommand>``.
Also the shared configuration layer: --config files, --set overrides, typed conversion, precedence."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from common.cli import parse_options, run_command
from common.config import build, resolve, setting
from common.errors import ConfigError, InputError, MassiveSFTError, UsageError

REPO = Path(__file__).resolve().parents[1]

COMMANDS = [
    ("training", "plan"),
    ("training", "prepare"),
    ("training", "run"),
    ("evaluation", "run"),
    ("evaluation", "perplexity"),
    ("evaluation", "import-released"),
    ("analysis", "report"),
    ("analysis", "layers"),
    ("analysis", "map"),
    ("analysis", "predict"),
    ("release", "publish"),
    ("release", "localhub"),
    ("release.publish",),
    ("localhub",),
    ("space",),
    ("pipeline", "demo"),
    ("pipeline", "study"),
]
CASES = ("bad flag", "unknown config key", "invalid YAML", "bad --set")
# Every command gets a bad flag and a bad config file; the other cases go through the same shared code,
# so a few commands of different stages check them (each run is mostly interpreter start-up).
RUNS = [(command, case) for command in COMMANDS for case in CASES[:2]] + [
    (command, case)
    for command in (("training", "run"), ("release", "publish"), ("space",))
    for case in CASES[2:]
]


def _argv(case: str, folder: Path) -> list[str]:
    if case == "bad flag":
        return ["--no-such-flag"]
    if case == "unknown config key":
        path = folder / "unknown.yaml"
        path.write_text("no_such_setting: 1\n")
        return ["--config", str(path)]
    if case == "invalid YAML":
        path = folder / "broken.yaml"
        path.write_text("root: [unclosed\n")
        return ["--config", str(path)]
    return ["--set", "no_such_setting=1"]


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, subprocess.CompletedProcess]:
    """Every (command, case) run once, a few at a time (each is mostly Python start-up and imports)."""
    folder = tmp_path_factory.mktemp("cli-errors")
    runs = {(command, case): _argv(case, folder) for command, case in RUNS}

    def run(item):
        (command, _case), argv = item
        return subprocess.run(
            [sys.executable, "-m", *command, *argv],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(runs, pool.map(run, runs.items()), strict=True))


@pytest.mark.parametrize(("command", "case"), RUNS, ids=[f"{' '.join(c)}: {case}" for c, case in RUNS])
def test_every_cli_answers_bad_input_with_one_line_and_exit_2(answers, command, case):
    result = answers[(command, case)]
    assert result.returncode == 2, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    expected = {
        "bad flag": "--no-such-flag",
        "unknown config key": "no_such_setting",
        "invalid YAML": "not valid YAML",
        "bad --set": "no_such_setting",
    }[case]
    assert expected in lines[0]
    if case != "bad flag" and case != "invalid YAML":
        assert "valid keys:" in lines[0]  # names what would have been accepted


def test_debug_shows_the_traceback():
    command = [sys.executable, "-m", "training", "plan", "--grid", "no-such-grid"]
    quiet = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=REPO)
    loud = subprocess.run([*command, "--debug"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr
    assert "no-such-grid" in quiet.stderr and "allowed: demo, paper" in quiet.stderr
    assert loud.returncode != 0 and "Traceback" in loud.stderr and "GridError" in loud.stderr


# ---------------------------------------------------------------- the configuration layer


@dataclass(frozen=True)
class Retry:
    attempts: int = setting(3, "tries")
    delay_s: float = setting(0.5, "seconds between tries")


@dataclass(frozen=True)
class Inner:
    name: str = setting("x", "a name")
    retry: Retry = setting(default_factory=Retry, help="retries")
    ids: dict[str, str] = setting(default_factory=dict, help="name -> id")


@dataclass(frozen=True)
class Options:
    root: Path = setting(None, "where", required=True)
    count: int = setting(1, "how many")
    mode: Literal["fast", "slow"] = setting("fast", "how")
    limit: int | None = setting(None, "at most")
    tags: tuple[str, ...] = setting((), "tags", repeat=True)
    dry_run: bool = setting(False, "pretend")
    inner: Inner = setting(default_factory=Inner, inline=True)


class Command:
    """A command module's shape, for parse_options."""

    __name__ = "test-command"
    __doc__ = "a test command"
    Options = Options


def test_flags_override_set_which_overrides_the_config_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("root: /data\ncount: 5\nmode: slow\nname: from-file\nretry: {attempts: 9}\n")
    options = parse_options(
        Command, ["--config", str(config), "--set", "count=6", "--set", "retry.delay_s=2"]
    )
    assert options == Options(
        root=Path("/data"), count=6, mode="slow", inner=Inner(name="from-file", retry=Retry(9, 2.0))
    )
    options = parse_options(Command, ["--config", str(config), "--set", "count=6", "--count", "7"])
    assert options.count == 7 and isinstance(options.count, int)
    options = parse_options(
        Command, ["--root", "r", "--tags", "a", "--tags", "b", "--dry-run", "--limit", "null", "--name", "n"]
    )
    assert (options.tags, options.dry_run, options.limit, options.inner.name) == (("a", "b"), True, None, "n")
    assert parse_options(Command, ["--root", "r", "--set", "ids.lima=GAIR/lima"]).inner.ids == {
        "lima": "GAIR/lima"
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "count=many"], "count: 'many' is not an integer"),
        (["--set", "mode=medium"], "is not one of fast, slow"),
        (["--set", "retry.attemps=2"], "unknown key 'attemps' in section 'retry' (did you mean 'attempts'?)"),
        (["--set", "nme=y"], "did you mean 'name'?"),
        (["--set", "count"], "expected KEY=VALUE"),
        (["--set", "name.x=1"], "name is text, not a section"),
        (["--set", "dry_run=perhaps"], "is not true or false"),
        (["--count", "2.5"], "--count: '2.5' is not an integer"),
        (["--mode", "medium"], "invalid choice"),
    ],
)
def test_bad_settings_are_usage_errors_naming_the_key(argv, message):
    with pytest.raises(UsageError) as error:
        parse_options(Command, ["--root", "r", *argv])
    assert message in str(error.value)


def test_required_settings_and_config_files(tmp_path):
    with pytest.raises(ConfigError, match="missing --root"):
        parse_options(Command, [])
    config = tmp_path / "c.yaml"
    config.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        resolve(Options, config)
    config.write_text("root: r\ncount: [1]\n")
    with pytest.raises(ConfigError, match=r"config file .*c.yaml: count: \[1\] is not an integer"):
        resolve(Options, config)
    with pytest.raises(ConfigError, match="not found"):
        resolve(Options, tmp_path / "missing.yaml")
    assert build(Options, {"root": "r", "dry-run": "yes"}).dry_run is True  # dashes read as underscores


def test_every_project_error_has_the_common_base():
    from analysis.common import MissingInputError
    from analysis.layers import CheckpointError, LayerShapeError
    from common.schema import SchemaError
    from evaluation.importer import ReleasedTableError
    from evaluation.perplexity import PerplexityError
    from evaluation.runner import EvaluationError
    from evaluation.suites import SuiteError
    from localhub.faults import FaultConfigError
    from localhub.storage import HubError
    from pipeline.stages import StageFailed
    from release.config import ReleaseConfigError
    from release.hub import SecretSafeError
    from release.inputs import ReleaseInputError
    from space.data import ResultsNotFoundError
    from training.base_models import BaseModelError
    from training.grid import GridError
    from training.loaders import DataError
    from training.trainer import RunConflictError

    errors = [
        MissingInputError,
        CheckpointError,
        LayerShapeError,
        SchemaError,
        ReleasedTableError,
        PerplexityError,
        EvaluationError,
        SuiteError,
        FaultConfigError,
        HubError,
        StageFailed,
        ReleaseConfigError,
        SecretSafeError,
        ReleaseInputError,
        ResultsNotFoundError,
        BaseModelError,
        GridError,
        DataError,
        RunConflictError,
    ]
    assert all(issubclass(error, MassiveSFTError) for error in errors)
    assert issubclass(ResultsNotFoundError, FileNotFoundError) and issubclass(DataError, ValueError)


def _command(error: Exception):
    """A command module whose main raises ``error``."""

    @dataclass(frozen=True)
    class FailingOptions:
        path: Path = setting(Path("x"), "a file")

    def main(_options: FailingOptions) -> int:
        raise error

    return type("Failing", (), {"__doc__": "fails", "Options": FailingOptions, "main": staticmethod(main)})


def test_unexpected_errors_are_one_line_too(capsys):
    broken = _command(KeyError("oops"))
    assert run_command("broken", broken, []) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected KeyError" in err and "--debug" in err
    with pytest.raises(KeyError):
        run_command("broken", broken, ["--debug"])


def test_input_errors_exit_2_with_their_message(capsys):
    damaged = _command(InputError("in.csv is damaged;\n  rebuild it"))
    assert run_command("damaged", damaged, ["--path", "in.csv"]) == 2
    assert capsys.readouterr().err == "error: in.csv is damaged; rebuild it\n"


def test_release_names_are_never_silently_rewritten():
    from release.config import ReleaseConfigError, load_config

    with pytest.raises(ReleaseConfigError, match="exactly one '/'"):
        load_config("demo", ["results_dataset=a/b/c"])
    with pytest.raises(ReleaseConfigError, match="contains"):
        load_config("demo", ["space={namespace}/my space"])
    with pytest.raises(ReleaseConfigError, match="contains"):
        load_config("demo", ["repo_template={namespace}/a--{run_id}"])
    config = load_config("demo", ["results_dataset={namespace}/results-v2", "retry.max_attempts=3"])
    assert config.results_repo() == "massive-sft-demo/results-v2" and config.retry.max_attempts == 3


@pytest.mark.parametrize("pipeline", ["demo", "study"])
def test_the_pipeline_passes_every_stage_valid_options(pipeline):
    """Each stage command the pipeline runs parses with that stage's own options (no run needed)."""
    import importlib

    from pipeline import demo, study

    module = {"demo": demo, "study": study}[pipeline]
    stages = (demo.demo_stages if pipeline == "demo" else study.study_stages)(parse_options(module, []))
    commands = {
        **{
            (stage, name): path
            for stage in ("training", "evaluation", "analysis")
            for name, (path, _) in importlib.import_module(f"{stage}.__main__").COMMANDS.items()
        },
        ("release.publish",): "release.publish",
    }
    for stage in stages:
        key = stage.args[:2] if stage.args[0] != "release.publish" else stage.args[:1]
        command = importlib.import_module(commands[key])
        options = parse_options(command, list(stage.args[len(key) :]))
        assert options is not None, stage


def test_training_commands_agree_on_the_default_grid():
    from evaluation import cli_perplexity
    from training import cli_plan, cli_prepare, cli_run

    grids = {module.__name__: parse_options(module, []).grid for module in (cli_plan, cli_prepare, cli_run)}
    grids["perplexity"] = parse_options(cli_perplexity, []).grid
    assert set(grids.values()) == {"demo"}, grids
