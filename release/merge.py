"""Merging LoRA adapters into their base (``include.merged_lora``): an explicit step that runs before
planning, never during it and never under ``--dry-run``. Merged folders live in the output root
(``merged/<run_id>/epoch-NN/``), so a later plan only reads them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from common.layout import OutputRoot
from release.config import ReleaseConfig
from release.inputs import Checkpoint, ModelGroup, ReleaseInputError, ReleaseInputs


def merged_dir(inputs: ReleaseInputs, checkpoint: Checkpoint) -> Path:
    return OutputRoot(inputs.root).merged_checkpoint_dir(checkpoint.model_id)


def adapters_to_merge(inputs: ReleaseInputs, config: ReleaseConfig) -> list[tuple[ModelGroup, Checkpoint]]:
    if not config.include.merged_lora:
        return []
    return [(g, c) for g in inputs.groups for c in g.checkpoints if c.folder is not None and c.is_adapter]


def merge_adapter(checkpoint: Checkpoint, base: str, target: Path) -> Path:
    """Merge one adapter into its base (peft ``merge_and_unload``) into ``target``, atomically."""
    # heavy optional dependencies, only needed when merged weights are released
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), str(checkpoint.folder))
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    merged.merge_and_unload().save_pretrained(staging)
    os.replace(staging, target)
    return target


def merge_lora_checkpoints(inputs: ReleaseInputs, config: ReleaseConfig) -> list[Path]:
    """Build every missing merged folder the release needs; returns the folders built now."""
    built = []
    for group, checkpoint in adapters_to_merge(inputs, config):
        target = merged_dir(inputs, checkpoint)
        if not (target / "config.json").exists():
            base = checkpoint.record.get("base_model_path") or group.base_repo
            built.append(merge_adapter(checkpoint, base, target))
    return built


def require_merged(inputs: ReleaseInputs, checkpoint: Checkpoint) -> Path:
    """The merged folder of ``checkpoint``, which the merge step must already have built."""
    target = merged_dir(inputs, checkpoint)
    if not (target / "config.json").exists():
        raise ReleaseInputError(
            f"include.merged_lora needs the merged weights of {checkpoint.model_id} in {target}: run "
            "`python -m release publish` without --dry-run (it merges before planning) or call "
            "release.merge.merge_lora_checkpoints; a --dry-run never merges"
        )
    return target
