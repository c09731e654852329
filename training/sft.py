"""Build TRL's ``SFTTrainer`` for one job (used by ``training.trainer.train_job``).

Data is given to TRL in prompt/completion form (the rendered prompt and the rest of the rendered text), so
``completion_only_loss`` puts the loss on response tokens only; ``loss_on: all`` trains on everything."""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from common.io import read_json, write_json
from common.template import render_prompt
from training.demo_data import DEMO_DATASETS, demo_examples
from training.spec import Job

log = logging.getLogger(__name__)

HELD_OUT_SAMPLES = 64

# SFTConfig options the trainer sets itself, and the recipe field (or mechanism) that controls each:
# a recipe's ``sft:`` section may set any other SFTConfig field.
MANAGED_SFT_OPTIONS: dict[str, str] = {
    "output_dir": "the run folder",
    "num_train_epochs": "the block's epochs",
    "learning_rate": "the method's learning_rate",
    "lr_scheduler_type": "the block's lr_schedule",
    "warmup_steps": "the recipe's warmup_ratio",
    "weight_decay": "the recipe's weight_decay",
    "per_device_train_batch_size": "the method's batch_size",
    "per_device_eval_batch_size": "the method's batch_size",
    "gradient_accumulation_steps": "the method's batch_size",
    "seed": "the recipe's seed",
    "data_seed": "the recipe's seed",
    "max_length": "the recipe's max_length",
    "completion_only_loss": "the recipe's loss_on",
    "save_strategy": "the trainer (one checkpoint per epoch)",
    "save_total_limit": "the trainer (one checkpoint per epoch)",
    "eval_strategy": "the trainer (held-out loss per epoch)",
}


def sft_option_names() -> list[str]:
    """Every option of TRL's SFTConfig (TrainingArguments' included)."""
    from trl import SFTConfig  # lazy: importing TRL takes seconds, and only recipes with `sft:` need it

    return sorted(f.name for f in dataclasses.fields(SFTConfig) if f.init)


def check_sft_options(options: dict[str, Any]) -> str | None:
    """What is wrong with a recipe's ``sft:`` options (None: nothing): an unknown SFTConfig name, or
    one the trainer sets from another recipe field."""
    names = sft_option_names()
    for name in options:
        if name in MANAGED_SFT_OPTIONS:
            return f"{name!r} is set by {MANAGED_SFT_OPTIONS[name]}; set it there, not under sft:"
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (
                f"unknown SFTConfig option {name!r}{hint}; valid: the fields of trl.SFTConfig "
                '(python -c "import trl; help(trl.SFTConfig)")'
            )
    return None


def use_bf16() -> bool:
    """bf16 only where the GPU supports it; on CPU TRL must run in fp32."""
    import torch

    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def batch_plan(job: Job, world_size: int) -> tuple[int, int]:
    """(per-device micro batch, gradient accumulation steps) reaching the job's global batch size."""
    micro = job.resources.micro_batch_size or max(1, job.batch_size // world_size)
    accumulation = max(1, job.batch_size // (micro * world_size))
    if micro * world_size * accumulation != job.batch_size:
        log.warning(
            "%s: batch %d is not micro %d x %d devices x accumulation; using %d",
            job.run_id,
            job.batch_size,
            micro,
            world_size,
            micro * world_size * accumulation,
        )
    return micro, accumulation


def prompt_completion_rows(frame) -> dict[str, list[str]]:
    """Split rendered samples at the end of their prompt (the template may add text after the response)."""
    bad = [row.id for row in frame.itertuples() if not row.text.startswith(row.prompt)]
    if bad:
        raise ValueError(
            f"prepared rows {bad[:5]} have a text that does not start with their prompt; "
            "re-run `python -m training prepare`"
        )
    return {
        "prompt": list(frame["prompt"]),
        "completion": [
            text[len(prompt) :] for text, prompt in zip(frame["text"], frame["prompt"], strict=True)
        ],
    }


def held_out_rows(job: Job) -> dict[str, list[str]] | None:
    """A held-out set for per-epoch eval loss: the demo datasets' test split (paper template only)."""

    if job.dataset not in DEMO_DATASETS or job.template != "paper":
        return None
    examples = demo_examples(job.dataset, "test", HELD_OUT_SAMPLES)
    return {
        "prompt": [render_prompt(e["instruction"]) for e in examples],
        "completion": [e["response"] for e in examples],
    }


def sft_config(job: Job, output_dir: Path, has_eval: bool):
    from trl import SFTConfig

    # DeepSpeed comes from `accelerate launch --deepspeed_config_file` (training/executors.py), not from here.
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    micro, accumulation = batch_plan(job, world_size)
    bf16 = use_bf16()
    schedule = {"cosine": "cosine", "constant": "constant_with_warmup"}[job.lr_schedule]
    return SFTConfig(
        output_dir=str(output_dir),
        num_train_epochs=job.epochs,
        learning_rate=job.learning_rate,
        lr_scheduler_type=schedule,
        warmup_steps=job.warmup_ratio,
        weight_decay=job.weight_decay,
        per_device_train_batch_size=micro,
        per_device_eval_batch_size=micro,
        gradient_accumulation_steps=accumulation,
        seed=job.seed,
        data_seed=job.seed,
        bf16=bf16,
        fp16=False,
        max_length=job.max_length,
        completion_only_loss=job.loss_on == "response",
        save_strategy="epoch",
        save_total_limit=1,
        logging_strategy="epoch",
        eval_strategy="epoch" if has_eval else "no",
        report_to="none",
        dataloader_num_workers=0,
        dataset_num_proc=None,
        **(job.sft or {}),
    )


def lora_config(job: Job):
    from peft import LoraConfig

    settings = job.lora
    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )


def _wall_time_callback(start_offset: float):
    from transformers import TrainerCallback

    class WallTime(TrainerCallback):
        """Stores cumulative training wall time in each checkpoint, so resumed runs report the total."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.monotonic()

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                elapsed = start_offset + time.monotonic() - self.start
                write_json(checkpoint / "massive_sft_wall_time.json", {"wall_time_s": round(elapsed, 3)})

    return WallTime()


def _export_callback(context: Any, on_checkpoint: Callable[[Any, Path], Any]):
    from transformers import TrainerCallback

    class ExportEpoch(TrainerCallback):
        """Exports a kept epoch as soon as its checkpoint is complete, and logs progress."""

        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                on_checkpoint(context, Path(args.output_dir) / f"checkpoint-{state.global_step}")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs and ("loss" in logs or "eval_loss" in logs):
                shown = {
                    k: round(v, 4) for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate")
                }
                log.info(
                    "%s: epoch %.0f/%d %s", context.job.run_id, state.epoch or 0, context.job.epochs, shown
                )

    return ExportEpoch()


def build_trainer(
    job: Job, context: Any, tokenizer: Any, resume: Path | None, on_checkpoint: Callable[[Any, Path], Any]
):
    """An ``SFTTrainer`` for ``job`` writing checkpoints under ``<run>/trainer``."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTTrainer

    set_seed(job.seed)  # before the model is built: LoRA adapters are initialised from this seed
    frame = pd.read_parquet(context.data_path)
    train = Dataset.from_dict(prompt_completion_rows(frame))
    held_out = held_out_rows(job)
    model = AutoModelForCausalLM.from_pretrained(
        context.base_model_path, dtype=torch.bfloat16 if use_bf16() else torch.float32
    )
    wall_offset = 0.0
    if resume is not None and (resume / "massive_sft_wall_time.json").exists():
        wall_offset = read_json(resume / "massive_sft_wall_time.json")["wall_time_s"]
    return SFTTrainer(
        model=model,
        args=sft_config(job, context.trainer_dir, held_out is not None),
        train_dataset=train,
        eval_dataset=Dataset.from_dict(held_out) if held_out else None,
        processing_class=tokenizer,
        peft_config=lora_config(job) if job.method == "lora" else None,
        callbacks=[_wall_time_callback(wall_offset), _export_callback(context, on_checkpoint)],
    )
