"""Synthetic output roots with the real on-disk layout (docs/ARCHITECTURE.md), for the release tests
and benchmarks: real ``from_pretrained`` folders and PEFT adapters, ``run.json`` records built from real
``Job`` objects and a ``scores.parquet`` that follows ``common/schema.py``. Training is not run: the
weights of each epoch are the base weights plus a small seeded perturbation, which is all a release
needs (distinct, loadable checkpoints)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from common.io import sha256_file, write_json, write_parquet
from common.schema import conform
from training.spec import Job, LoraSettings

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def make_job(
    base_name: str,
    dataset: str,
    method: str,
    epochs: int = 2,
    data_size: int = 64,
    lr_schedule: str = "cosine",
    seed: int = 0,
) -> Job:
    lora = (
        LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj"))
        if method == "lora"
        else None
    )
    return Job(
        grid="release-test",
        base_model=f"local/{base_name}",
        base_model_name=base_name,
        dataset=dataset,
        data_size=data_size,
        method=method,
        epochs=epochs,
        lr_schedule=lr_schedule,
        learning_rate=1e-3,
        batch_size=8,
        checkpoint_epochs=tuple(range(1, epochs + 1)),
        seed=seed,
        lora=lora,
    )


def run_record(job: Job, epoch: int, base_folder: Path) -> dict[str, Any]:
    return {
        "job": job.to_record(),
        "run_id": job.run_id,
        "epoch": epoch,
        "data_hash": f"demo{epoch:02d}abc",
        "data_path": "/tmp/data.parquet",
        "num_samples": job.data_size,
        "seed": job.seed,
        "base_model_path": str(base_folder),
        "versions": {"transformers": "test"},
        "metrics": {"train_loss": 1.0 / epoch},
        "wall_time_s": 1.0,
    }


def _perturbed_model(base_folder: Path, seed: int) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 1e-3)
    return model


def write_checkpoint(job: Job, epoch: int, root: Path, base_folder: Path) -> Path:
    """``runs/<run_id>/epoch-NN/``: a full model or a PEFT adapter, tokenizer, run.json (written last)."""
    from transformers import AutoTokenizer

    folder = root / "runs" / job.run_id / f"epoch-{epoch:02d}"
    model = _perturbed_model(base_folder, seed=hash((job.run_id, epoch)) % 2**31)
    if job.lora is not None:
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=job.lora.r,
            lora_alpha=job.lora.alpha,
            lora_dropout=job.lora.dropout,
            target_modules=list(job.lora.target_modules),
            init_lora_weights=False,
        )
        model = get_peft_model(_perturbed_model(base_folder, 0), config)
        model.peft_config["default"].base_model_name_or_path = str(base_folder)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_folder).save_pretrained(folder)
    write_json(folder / "run.json", run_record(job, epoch, base_folder))
    return folder


def score_rows(
    model_id: str, job: Job | None, epoch: int, base_name: str, values: dict[str, float]
) -> list[dict]:
    identity = (
        {
            "run_id": job.run_id,
            "dataset": job.dataset,
            "method": job.method,
            "data_size": job.data_size,
            "lr_schedule": job.lr_schedule,
        }
        if job
        else {"run_id": None, "dataset": "pretrain", "method": "base", "data_size": 0, "lr_schedule": "none"}
    )
    return [
        {
            "model_id": model_id,
            "base_model": f"local/{base_name}",
            "base_model_name": base_name,
            "epoch": epoch,
            **identity,
            "benchmark": benchmark,
            "shots": 0,
            "metric": "acc",
            "value": value,
            "source": "lm-eval",
            "harness_version": "test",
            "evaluated_at": "2025-01-01T00:00:00Z",
            "flags": "",
        }
        for benchmark, value in values.items()
    ]


def build_root(root: Path, base_folder: Path, jobs: list[Job]) -> Path:
    """An output root with ``base_models/<name>``, every job's epochs, and scores for all of them."""
    base_name = jobs[0].base_model_name
    target = root / "base_models" / base_name
    if not target.exists():
        shutil.copytree(base_folder, target)
    rows = score_rows(base_name, None, 0, base_name, {"demo_arithmetic": 10.0, "demo_facts": 20.0})
    for job in jobs:
        for epoch in job.checkpoint_epochs:
            write_checkpoint(job, epoch, root, target)
            rows += score_rows(
                f"{job.run_id}/epoch-{epoch:02d}",
                job,
                epoch,
                base_name,
                {"demo_arithmetic": 10.0 + 5 * epoch, "demo_facts": 20.0 + epoch},
            )
    write_parquet(root / "scores.parquet", conform(pd.DataFrame(rows)))
    return root


def synthetic_repo_root(
    root: Path, base_folder: Path, n_runs: int, epochs: int = 3, weight_bytes: int = 4096
) -> Path:
    """Many cheap full-model runs for benchmarks: the base config and tokenizer, a small random
    ``model.safetensors`` per epoch (content differs per epoch), run.json. No scores."""
    import torch
    from safetensors.torch import save_file

    base_name = "bench-base"
    (root / "base_models").mkdir(parents=True, exist_ok=True)
    shutil.copytree(base_folder, root / "base_models" / base_name, dirs_exist_ok=True)
    for index in range(n_runs):
        job = make_job(base_name, f"bench_{index:04d}", "full", epochs=epochs)
        for epoch in range(1, epochs + 1):
            folder = root / "runs" / job.run_id / f"epoch-{epoch:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for name in ("config.json", *TOKENIZER_FILES):
                if (base_folder / name).exists():
                    shutil.copy2(base_folder / name, folder / name)
            generator = torch.Generator().manual_seed(index * 100 + epoch)
            save_file(
                {"w": torch.randn(weight_bytes // 4, generator=generator)}, str(folder / "model.safetensors")
            )
            write_json(folder / "run.json", run_record(job, epoch, root / "base_models" / base_name))
    return root


def tree_fingerprint(api: Any, repo_id: str, repo_type: str = "model") -> dict[str, dict[str, str]]:
    """branch -> {path: sha256 (LFS) or git blob id}: the content of every branch of a repo."""
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return {
        branch.name: {
            e.path: (e.lfs.sha256 if e.lfs else e.blob_id)
            for e in api.list_repo_tree(repo_id, repo_type=repo_type, revision=branch.name, recursive=True)
            if hasattr(e, "blob_id")
        }
        for branch in refs.branches
    }


__all__ = ["build_root", "make_job", "sha256_file", "synthetic_repo_root", "tree_fingerprint"]
