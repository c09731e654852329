"""Layer-wise weight change: streamed computation against a naive full-model reference."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis import cli_layers
from analysis.layers import LayerShapeError, depth_of, layer_changes, locate
from common.cli import run_command
from common.io import write_json
from common.layout import RunRecord


def test_locate_and_depth():
    assert locate("model.layers.3.self_attn.q_proj.weight", 4) == (3, "q_proj")
    assert locate("model.layers.0.mlp.down_proj.weight", 4) == (0, "down_proj")
    assert locate("model.layers.1.input_layernorm.weight", 4) == (1, "input_layernorm")
    assert locate("model.layers.2.self_attn.k_proj.bias", 4) == (2, "k_proj")
    assert locate("model.embed_tokens.weight", 4) == (-1, "embed_tokens")
    assert locate("model.norm.weight", 4) == (4, "norm")
    assert locate("lm_head.weight", 4) == (4, "lm_head")
    assert [depth_of(i, 4) for i in range(4)] == [0.0, 1 / 3, 2 / 3, 1.0]
    assert math.isnan(depth_of(-1, 4)) and math.isnan(depth_of(4, 4))


def _finetuned(base: Path, out: Path, max_shard_size: str | None = None) -> Path:
    """The base with a different, layer-dependent perturbation per parameter (some left untouched)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, (name, param) in enumerate(model.named_parameters()):
            if "k_proj" in name:
                continue  # zero change must come out as exactly zero
            param.add_(torch.randn(param.shape, generator=generator) * 0.01 * (1 + n % 5))
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(out, **kwargs)
    return out


def _reference(finetuned_model, base_model) -> dict[tuple[int, str], tuple[float, float]]:
    """Naive: both full models in memory, per-parameter differences, float64."""
    n_layers = base_model.config.num_hidden_layers
    base_params = dict(base_model.named_parameters())
    sums: dict[tuple[int, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for name, param in finetuned_model.named_parameters():
        base = base_params[name].detach().double()
        key = locate(name, n_layers)
        sums[key][0] += float(((param.detach().double() - base) ** 2).sum())
        sums[key][1] += float((base**2).sum())
    return {k: (math.sqrt(c), math.sqrt(c) / math.sqrt(b)) for k, (c, b) in sums.items()}


def _compare(frame: pd.DataFrame, reference: dict) -> None:
    got = {(r.layer, r.module): (r.frobenius, r.relative) for r in frame.itertuples()}
    assert set(got) == set(reference)
    for key, (frob, rel) in reference.items():
        assert got[key][0] == pytest.approx(frob, rel=1e-5, abs=1e-5), key
        assert got[key][1] == pytest.approx(rel, rel=1e-5, abs=1e-5), key


def _load(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
@pytest.mark.parametrize("sharded", [False, True])
def test_full_checkpoint_matches_naive_reference(tiny_llama, tmp_path, sharded, kernel):
    checkpoint = _finetuned(tiny_llama, tmp_path / "ft", "40KB" if sharded else None)
    assert (checkpoint / "model.safetensors.index.json").exists() == sharded
    frame = layer_changes(checkpoint, tiny_llama, kernel=kernel)
    _compare(frame, _reference(_load(checkpoint), _load(tiny_llama)))
    assert (frame.loc[frame["module"] == "k_proj", "frobenius"] == 0).all()
    assert (frame.loc[frame["module"] == "q_proj", "frobenius"] > 0).all()
    blocks = frame[frame["layer"].between(0, 1)]
    assert sorted(set(blocks["depth"])) == [0.0, 1.0]
    assert frame.loc[frame["layer"] == -1, "module"].tolist() == ["embed_tokens"]
    assert frame.loc[frame["layer"] == 2, "module"].tolist() == ["lm_head", "norm"]
    assert frame["n_params"].sum() == sum(p.numel() for p in _load(tiny_llama).parameters())


@pytest.mark.parametrize("kernel", ["compiled", "eager"])
def test_bf16_checkpoints_match_naive_reference(tiny_llama, tmp_path, kernel):
    """Released checkpoints are bf16: both kernels upcast before subtracting, as the float64 reference does."""
    base = _load(tiny_llama).to(torch.bfloat16)
    base.save_pretrained(tmp_path / "base-bf16")
    _finetuned(tmp_path / "base-bf16", tmp_path / "ft-f32")
    _load(tmp_path / "ft-f32").to(torch.bfloat16).save_pretrained(tmp_path / "ft-bf16")
    frame = layer_changes(tmp_path / "ft-bf16", tmp_path / "base-bf16", kernel=kernel)
    _compare(frame, _reference(_load(tmp_path / "ft-bf16"), _load(tmp_path / "base-bf16")))


def _adapter(base: Path, out: Path, use_rslora: bool = False) -> Path:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    config = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
        use_rslora=use_rslora,
        rank_pattern={"down_proj": 2},
    )
    model = get_peft_model(_load(base), config)
    model.save_pretrained(out)
    return out


@pytest.mark.parametrize(("use_rslora", "kernel"), [(False, "compiled"), (True, "eager")])
def test_lora_adapter_matches_merge_and_unload(tiny_llama, tmp_path, use_rslora, kernel):
    from peft import PeftModel

    adapter = _adapter(tiny_llama, tmp_path / "adapter", use_rslora)
    assert (adapter / "adapter_model.safetensors").exists() and not (adapter / "model.safetensors").exists()
    frame = layer_changes(adapter, tiny_llama, kernel=kernel)
    merged = PeftModel.from_pretrained(_load(tiny_llama), adapter).merge_and_unload()
    _compare(frame, _reference(merged, _load(tiny_llama)))
    changed = set(frame.loc[frame["frobenius"] > 0, "module"])
    assert changed == {"q_proj", "v_proj", "down_proj"}
    assert (frame.loc[frame["module"] == "embed_tokens", "relative"] == 0).all()


def test_shape_mismatch_names_tensor_and_shapes(tiny_llama, tmp_path):
    from training.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "wide", hidden_size=32)
    with pytest.raises(
        LayerShapeError,
        match=r"'lm_head.weight' has shape \[\d+, 32\] in the checkpoint but "
        r"\[\d+, 64\] in the base model",
    ):
        layer_changes(other, tiny_llama)


def _run(root: Path, name: str, checkpoint: Path, base: Path) -> None:
    folder = root / "runs" / name / "epoch-01"
    shutil.copytree(checkpoint, folder)
    record = RunRecord(
        job={"base_model": "local/tiny-llama"},
        run_id=name,
        epoch=1,
        data_hash="h",
        data_path="data.parquet",
        num_samples=1,
        seed=0,
        base_model_path=str(base),
    )
    write_json(folder / "run.json", record.to_dict())


def _cli(root: Path, *options: str) -> int:
    return run_command("python -m analysis layers", cli_layers, ["--root", str(root), *options])


def test_cli_writes_resumes_and_skips_mismatched(tiny_llama, tmp_path, capsys):
    from training.tiny import build_tiny_model

    root = tmp_path / "root"
    _run(root, "full-run", _finetuned(tiny_llama, tmp_path / "ft"), tiny_llama)
    _run(root, "lora-run", _adapter(tiny_llama, tmp_path / "adapter"), tiny_llama)
    _run(root, "bad-run", build_tiny_model(tmp_path / "wide", hidden_size=32), tiny_llama)
    assert _cli(root) == 0
    captured = capsys.readouterr()
    assert "warning: skipping bad-run/epoch-01" in captured.err and "has shape" in captured.err
    assert "2 checkpoint(s) analysed, 0 already done, 1 skipped" in captured.out
    table = pd.read_parquet(root / "layers.parquet")
    assert sorted(set(table["model_id"])) == ["full-run/epoch-01", "lora-run/epoch-01"]
    assert set(table["base_model"]) == {"local/tiny-llama"} and set(table["run_id"]) == {
        "full-run",
        "lora-run",
    }
    assert {
        "model_id",
        "run_id",
        "base_model",
        "layer",
        "depth",
        "module",
        "frobenius",
        "relative",
        "n_params",
    } <= set(table.columns)
    assert _cli(root) == 0
    assert "0 checkpoint(s) analysed, 2 already done, 1 skipped" in capsys.readouterr().out
    assert len(pd.read_parquet(root / "layers.parquet")) == len(table)


def test_without_a_compiler_auto_falls_back_and_compiled_fails_clearly(tiny_llama, tmp_path):
    """A machine without a C++ compiler (CXX names none, empty inductor cache): ``auto`` warns and gives the
    eager numbers, ``compiled`` stops with the fix and writes nothing."""
    root = tmp_path / "root"
    _run(root, "full-run", _finetuned(tiny_llama, tmp_path / "ft"), tiny_llama)
    env = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-compiler"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache"),
    }

    def cli(kernel: str, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "analysis",
                "layers",
                "--root",
                str(root),
                "--out",
                str(out),
                "--kernel",
                kernel,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    failed = cli("compiled", tmp_path / "compiled.parquet")
    assert failed.returncode == 2, failed.stderr
    assert "could not build the fused layer kernel" in failed.stderr and "--kernel eager" in failed.stderr
    assert not (tmp_path / "compiled.parquet").exists()
    fallback = cli("auto", tmp_path / "auto.parquet")
    assert fallback.returncode == 0, fallback.stderr
    assert (
        "torch.compile is unavailable here" in fallback.stderr and "using the eager kernel" in fallback.stderr
    )
    assert _cli(root, "--out", str(tmp_path / "eager.parquet"), "--kernel", "eager") == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "auto.parquet"), pd.read_parquet(tmp_path / "eager.parquet")
    )
