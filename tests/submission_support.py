"""Test data for submissions on the local Hub: tiny models uploaded as model repos, a results dataset
whose leaderboard holds the tiny base model, and readers of the requests dataset."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pandas as pd
from huggingface_hub import HfApi

from common.io import write_parquet
from common.schema import conform
from common.submissions import Request, RequestsRepo
from evaluation.suites import load_suite

BASE_NAME = "tiny-llama"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def api_of(hub) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=hub.token)


def upload_model(hub, folder: Path, name: str, namespace: str = "alice") -> str:
    """A public model repo holding ``folder``; returns its id."""
    api = api_of(hub)
    repo_id = f"{namespace}/{unique(name)}"
    api.create_repo(repo_id)
    api.upload_folder(folder_path=folder, repo_id=repo_id)
    return repo_id


def lora_adapter(base: Path, out: Path) -> Path:
    """A LoRA adapter of the tiny base model, saved as peft saves it (base_model_name_or_path: the base)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    if not (out / "adapter_config.json").exists():
        model = AutoModelForCausalLM.from_pretrained(base)
        peft_model = get_peft_model(
            model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        )
        peft_model.save_pretrained(out)
    return out


def broken_copy(model: Path, out: Path, damage: str) -> Path:
    """A copy of ``model`` with damaged weights (``garbage``), pickled weights only (``pickle``), a
    non-causal config (``encoder``) or custom code (``custom-code``)."""
    import json

    shutil.copytree(model, out, dirs_exist_ok=True)
    config = json.loads((out / "config.json").read_text())
    if damage == "garbage":
        (out / "model.safetensors").write_bytes(b"\xff" * 64)
    elif damage == "pickle":
        (out / "model.safetensors").rename(out / "pytorch_model.bin")
    elif damage == "encoder":
        config["architectures"] = ["BertModel"]
    elif damage == "custom-code":
        config["auto_map"] = {"AutoModelForCausalLM": "modeling.MyModel"}
    (out / "config.json").write_text(json.dumps(config))
    return out


def publish_results(hub, base_repo: str, work: Path) -> str:
    """A results dataset (built by the release stage) whose leaderboard has the tiny base model, scored
    on the demo suite's benchmarks; returns its repo id."""
    from release.results_dataset import build_results_dataset

    rows = [
        {
            "model_id": BASE_NAME,
            "run_id": None,
            "base_model": base_repo,
            "base_model_name": BASE_NAME,
            "dataset": "pretrain",
            "method": "base",
            "data_size": 0,
            "epoch": 0,
            "lr_schedule": "none",
            "benchmark": entry.benchmark,
            "shots": entry.shots,
            "metric": entry.metric,
            "value": 10.0,
            "source": "lm-eval",
            "harness_version": "test",
            "evaluated_at": "2026-01-01T00:00:00+00:00",
        }
        for entry in load_suite("demo").lm_entries
    ]
    write_parquet(work / "root" / "scores.parquet", conform(pd.DataFrame(rows)))
    folder = build_results_dataset(work / "root", work / "results")
    api = api_of(hub)
    repo_id = f"massive-sft/{unique('results')}"
    api.create_repo(repo_id, repo_type="dataset")
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    return repo_id


def requests_of(hub, repo_id: str) -> tuple[str | None, list[Request]]:
    """(head commit, requests) of the requests dataset, read with the hub's token."""
    return RequestsRepo(repo_id, hub.endpoint, token=hub.token).read()


def request_files(hub, repo_id: str) -> dict[str, str]:
    """Every file of the requests dataset with its text (what a reader of the dataset sees)."""
    from huggingface_hub import hf_hub_download

    api = api_of(hub)
    files = [f for f in api.list_repo_files(repo_id, repo_type="dataset") if f.startswith("requests/")]
    return {
        name: Path(
            hf_hub_download(repo_id, name, repo_type="dataset", endpoint=hub.endpoint, token=hub.token)
        ).read_text()
        for name in files
    }
