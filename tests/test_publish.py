"""Publishing the demo release to the local Hub server with the real huggingface_hub client over HTTP,
then using it the way people will: snapshot_download, transformers, peft, datasets, ModelCard."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import HfApi, ModelCard

from common.cli import run_command
from common.layout import OutputRoot
from common.paths import PROJECT_ROOT
from release import publish as publish_cli
from release.config import load_config
from release.inputs import load_inputs
from release.merge import merge_lora_checkpoints

FULL = "tiny-llama-demo_arithmetic-full-64-cosine"
LORA = "tiny-llama-demo_facts-lora-64-cosine"


def run_publish(root: Path, namespace: str, *extra: str) -> int:
    space = ["--set", f"space_dir={root.parent / 'src' / 'space'}"]
    argv = ["--root", str(root), "--namespace", namespace, "--no-progress", *space, *extra]
    return run_command("python -m release.publish", publish_cli, argv)


def copy_root(release_root: Path, tmp_path: Path) -> Path:
    """A private copy of the output root, and a frozen copy of the Space's source (space/, common/) next to
    it: the working tree's copy is edited by others while the tests run, and a publish after such an edit
    rightly commits to the Space, which made the zero-commit re-publish tests flaky."""
    root = tmp_path / "root"
    shutil.copytree(release_root, root, ignore=shutil.ignore_patterns(".release", "hub"))
    for package in ("space", "common"):
        shutil.copytree(
            PROJECT_ROOT / package,
            tmp_path / "src" / package,
            ignore=shutil.ignore_patterns("__pycache__", ".*"),
        )
    return root


def commit_counts(api: HfApi, namespace: str) -> dict[str, int]:
    counts = {}
    for repo_type, lister in (
        ("model", api.list_models),
        ("dataset", api.list_datasets),
        ("space", api.list_spaces),
    ):
        for info in lister(author=namespace):
            for branch in api.list_repo_refs(info.id, repo_type=repo_type).branches:
                commits = api.list_repo_commits(info.id, repo_type=repo_type, revision=branch.name)
                counts[f"{repo_type}:{info.id}@{branch.name}"] = len(commits)
    return counts


# The session Hub's token belongs to the user "localhub": the publisher's preflight lets it write
# only to that namespace (as the Hub would).
@pytest.fixture(scope="module")
def published(release_root: Path, local_hub, tmp_path_factory: pytest.TempPathFactory):
    os.environ["HF_TOKEN"] = local_hub.token
    root = copy_root(release_root, tmp_path_factory.mktemp("pub"))
    assert run_publish(root, "localhub") == 0
    yield root, HfApi(endpoint=local_hub.endpoint, token=local_hub.token)
    os.environ.pop("HF_TOKEN", None)


def test_models_load_at_main_and_epoch_branch(published, local_hub) -> None:
    from huggingface_hub import snapshot_download
    from transformers import AutoModelForCausalLM

    _root, api = published
    repo = f"localhub/{FULL}"
    assert {b.name for b in api.list_repo_refs(repo).branches} == {"main", "epoch-01", "epoch-02"}
    folder = Path(snapshot_download(repo, revision="main"))
    assert (folder / "model.safetensors").exists() and (folder / "README.md").exists()
    run = json.loads((folder / "run.json").read_text())
    assert run["epoch"] == 2 and "base_model_path" not in run  # local paths are not published
    main = AutoModelForCausalLM.from_pretrained(repo)
    first = AutoModelForCausalLM.from_pretrained(repo, revision="epoch-01")
    final = AutoModelForCausalLM.from_pretrained(repo, revision="epoch-02")
    weight = "model.embed_tokens.weight"
    assert main.state_dict()[weight].equal(final.state_dict()[weight])
    assert not main.state_dict()[weight].equal(first.state_dict()[weight])


def test_adapter_loads_through_peft(published) -> None:
    from peft import AutoPeftModelForCausalLM, PeftModel

    _root, api = published
    model = AutoPeftModelForCausalLM.from_pretrained(f"localhub/{LORA}", revision="epoch-01")
    assert isinstance(model, PeftModel)
    assert model.peft_config["default"].base_model_name_or_path == "localhub/tiny-llama"


def test_results_dataset_loads(published) -> None:
    import datasets

    board = datasets.load_dataset("localhub/massive-sft-results", "leaderboard", split="train")
    assert board.num_rows == 5
    row = next(r for r in board if r["method"] == "lora" and r["epoch"] == 1)
    assert (row["repo_id"], row["revision"]) == (f"localhub/{LORA}", "epoch-01")


def test_cards_metadata(published) -> None:
    expected = {FULL: ("finetune", "transformers"), LORA: ("adapter", "peft")}
    for name, (relation, library) in expected.items():
        for revision in ("main", "epoch-01"):
            card = (
                ModelCard.load(f"localhub/{name}")
                if revision == "main"
                else _card_at(f"localhub/{name}", revision)
            )
            data = card.data
            assert (data.base_model, data.base_model_relation, data.library_name) == (
                "localhub/tiny-llama",
                relation,
                library,
            )
            assert data.license == "apache-2.0" and data.pipeline_tag == "text-generation"
            assert data.datasets is None  # the demo sets have no Hub ids: none is invented
            values = {r.dataset_type: r.metric_value for r in data.eval_results}
            epoch = 2 if revision == "main" else 1
            assert values["demo_arithmetic"] == 10.0 + 5 * epoch
    base = ModelCard.load("localhub/tiny-llama")
    assert base.data.library_name == "transformers"


def _card_at(repo: str, revision: str) -> ModelCard:
    from huggingface_hub import hf_hub_download

    return ModelCard.load(hf_hub_download(repo, "README.md", revision=revision))


def test_space_and_collection(published, local_hub) -> None:
    _root, api = published
    files = set(api.list_repo_files("localhub/massive-sft-leaderboard", repo_type="space"))
    assert {"app.py", "space/app.py", "requirements.txt", "space_config.json", "README.md"} <= files
    config = json.loads(
        Path(
            api.hf_hub_download("localhub/massive-sft-leaderboard", "space_config.json", repo_type="space")
        ).read_text()
    )
    assert config["repo"] == "localhub/massive-sft-results" and config["endpoint"] == local_hub.endpoint
    # The session's Hub is shared: other tests' releases have collections of their own under this owner.
    title = load_config("demo", []).collection_title
    found = [
        {item.item_id for item in api.get_collection(collection.slug).items}
        for collection in api.list_collections(owner="localhub")
        if collection.title == title
    ]
    assert any(
        {f"localhub/{FULL}", f"localhub/{LORA}", "localhub/massive-sft-results"} <= items for items in found
    )


def test_republish_makes_zero_commits(published, capsys) -> None:
    root, api = published
    before = commit_counts(api, "localhub")
    assert run_publish(root, "localhub") == 0  # fast path: refs match the verified state
    (root / ".release" / "state.json").unlink()
    assert run_publish(root, "localhub") == 0  # full remote diff
    assert commit_counts(api, "localhub") == before
    report = json.loads((root / ".release" / "last_publish.json").read_text())
    assert report["commits"] == 0 and all(r["status"] == "skipped" for r in report["repos"])


def test_changed_card_updates_only_that_file(published, tmp_path) -> None:
    root, api = published
    before = commit_counts(api, "localhub")
    assert (
        run_publish(
            root,
            "localhub",
            "--set",
            "include.collection=false",
            "--set",
            "commit_prefix=second",
        )
        == 0
    )
    # the commit prefix is in no published file (the collection title is: the Space shows it)
    assert commit_counts(api, "localhub") == before


def test_dry_run_touches_nothing(release_root, local_hub, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    root = copy_root(release_root, tmp_path)
    assert run_publish(root, "dry-ns", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "create repo" in out and "create branch" in out and FULL in out
    plan = json.loads((root / ".release" / "plan.json").read_text())
    assert plan["dry_run"] and plan["commits"] == 0
    assert list(HfApi(endpoint=local_hub.endpoint).list_models(author="dry-ns")) == []


def _break_missing_weights(root: Path) -> None:
    next(root.glob("runs/*full*/epoch-01")).joinpath("model.safetensors").unlink()


def _break_run_json(root: Path) -> None:
    next(root.glob("runs/*lora*/epoch-02")).joinpath("run.json").unlink()


def _break_orphan_row(root: Path) -> None:
    shutil.rmtree(next(root.glob("runs/*lora*")))


@pytest.mark.parametrize(
    ("breaker", "args", "message"),
    [
        (_break_missing_weights, [], "has no weights"),
        (_break_run_json, [], "has no run.json"),
        (_break_orphan_row, [], "not in the release"),
        (None, ["--set", "repo_template={namespace}/{run_id}-{run_id}-{run_id}"], "longer than 96"),
        (None, ["--set", "repo_template={namespace}/{model}"], "unknown field"),
        (None, ["--namespace", "bad..ns"], "invalid repo id"),
    ],
)
def test_bad_input_fails_before_upload(
    release_root, local_hub, tmp_path, monkeypatch, capsys, breaker, args, message
) -> None:
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    root = copy_root(release_root, tmp_path)
    if breaker:
        breaker(root)
    namespace = "bad-input-ns"
    argv = ["--root", str(root), "--no-progress", "--namespace", namespace, *args]
    assert run_command("python -m release.publish", publish_cli, argv) == 2
    assert message in capsys.readouterr().err
    api = HfApi(endpoint=local_hub.endpoint)
    assert list(api.list_models(author=namespace)) == [] and list(api.list_datasets(author=namespace)) == []


def test_staging_mode_and_token_never_leaks(release_root, tmp_path) -> None:
    """No token, no endpoint: staged into <root>/hub. Then a known fake token against a local server:
    it appears nowhere in the output, the produced files, the cards or the Space."""
    from localhub import serve_in_background

    root = copy_root(release_root, tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_ENDPOINT", "HF_TOKEN")}
    env["HF_HOME"] = str(tmp_path / "hf-home")  # no stored login
    staged = subprocess.run(
        [
            sys.executable,
            "-m",
            "release",
            "publish",
            "--root",
            str(root),
            "--no-progress",
            "--set",
            "include.collection=false",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(publish_cli.__file__).parents[1],
    )
    assert staged.returncode == 0, staged.stderr[-2000:]
    assert "python -m localhub --root" in staged.stdout and "from_pretrained(" in staged.stdout
    assert (root / "hub").is_dir()

    secret = "hf_FAKEsecretTOKEN0123456789"
    with serve_in_background(tmp_path / "hub2", tokens={secret: "leaky"}) as hub:
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "release.publish",
                "--root",
                str(root),
                "--verbose",
                "--endpoint",
                hub.endpoint,
                "--namespace",
                "leaky",
            ],
            env={**env, "HF_TOKEN": secret},
            capture_output=True,
            text=True,
            timeout=300,
            cwd=Path(publish_cli.__file__).parents[1],
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert secret not in run.stdout + run.stderr
        for folder in (root, tmp_path / "hub2"):
            for path in folder.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path


def test_staging_drops_the_hubs_pacing() -> None:
    from release.config import load_config
    from release.publish import unpaced

    study = load_config("study")
    assert study.repo_creation_interval_s > 0 and study.budget.rate_per_s < 10  # paced for the real Hub
    staged = unpaced(study)
    assert staged.repo_creation_interval_s == 0 and staged.budget.rate_per_s >= 1e6
    assert staged.concurrency >= 8 and staged.namespace == study.namespace


def test_stage_flag_stages_locally_whatever_the_environment_says(release_root, tmp_path) -> None:
    root = copy_root(release_root, tmp_path)
    # A token and an endpoint that must not be used: nothing listens on port 9 (discard).
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_for_staging_0123456789"}
    staged = subprocess.run(
        [
            sys.executable,
            "-m",
            "release.publish",
            "--root",
            str(root),
            "--stage",
            "--no-progress",
            "--set",
            "include.collection=false",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(publish_cli.__file__).parents[1],
    )
    assert staged.returncode == 0, staged.stderr[-2000:]
    assert (root / "hub").is_dir() and "python -m localhub --root" in staged.stdout
    assert "hf_not_for_staging" not in staged.stdout + staged.stderr


def test_dry_run_never_merges_and_the_merge_step_feeds_the_plan(
    release_root, local_hub, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("HF_TOKEN", local_hub.token)
    root = copy_root(release_root, tmp_path)
    merged = ["--set", "include.merged_lora=true"]
    assert run_publish(root, "merge-ns", "--dry-run", *merged) == 2
    assert "a --dry-run never merges" in capsys.readouterr().err
    assert not (root / "merged").exists()  # planning wrote nothing
    config = load_config("demo", ["include.merged_lora=true"])
    inputs = load_inputs(root, config)
    built = merge_lora_checkpoints(inputs, config)
    adapters = [c for g in inputs.groups for c in g.checkpoints if c.is_adapter]
    assert built == [OutputRoot(root).merged_checkpoint_dir(c.model_id) for c in adapters] and len(built) == 2
    assert all((folder / "config.json").exists() for folder in built)
    assert merge_lora_checkpoints(inputs, config) == []  # already merged: nothing to do
    assert run_publish(root, "merge-ns", "--dry-run", *merged) == 0
    plan = json.loads((root / ".release" / "plan.json").read_text())
    lora = next(repo for repo in plan["repos"] if repo["repo_id"].endswith(LORA))
    added = [path for revision in lora["revisions"] for path in revision["add"]]
    assert "merged/config.json" in added
    assert list(HfApi(endpoint=local_hub.endpoint).list_models(author="merge-ns")) == []


def _stage(root: Path, *extra: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "release.publish", "--root", str(root), "--stage", "--no-progress", *extra],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )


def test_restaging_an_unchanged_release_makes_zero_commits(release_root, tmp_path) -> None:
    """The staging server's port changes with every run; nothing published may depend on it."""
    root = copy_root(release_root, tmp_path)
    space = ("--set", f"space_dir={tmp_path / 'src' / 'space'}")
    first = _stage(root, *space)
    assert first.returncode == 0, first.stderr[-2000:]
    (root / ".release" / "state.json").unlink()  # as on a fresh machine: compare with the Hub itself
    second = _stage(root, *space)
    assert second.returncode == 0, second.stderr[-2000:]
    report = json.loads((root / ".release" / "last_publish.json").read_text())
    assert report["commits"] == 0, [r["repo_id"] for r in report["repos"] if r["status"] != "skipped"]
    space_config = next(
        f
        for r in report["repos"]
        if r["kind"] == "space"
        for f in r["revisions"][0]["files"]
        if f["path"] == "space_config.json"
    )
    assert space_config  # still published, without the staging endpoint
    hub_text = b"".join(p.read_bytes() for p in (root / "hub").rglob("space_config.json*") if p.is_file())
    assert b"127.0.0.1" not in hub_text


def test_staging_under_hf_hub_offline_explains_itself(release_root, tmp_path) -> None:
    root = copy_root(release_root, tmp_path)
    staged = _stage(root, HF_HUB_OFFLINE="1")
    assert staged.returncode == 2 and "Traceback" not in staged.stderr
    assert staged.stderr.strip().count("\n") == 0 and "HF_HUB_OFFLINE=0" in staged.stderr
    assert not (root / "hub").exists()  # nothing half-written
