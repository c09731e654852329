"""Layer-wise weight change of a checkpoint against its base model, streamed tensor by tensor.

For every (layer, module): ``frobenius`` = ||W_ft - W_base||_F over the module's parameters (weight and
bias together), ``base_frobenius`` = ||W_base||_F, ``relative`` = frobenius / base_frobenius, ``n_params``.
Layers are the transformer blocks (``...layers.<i>...``); the token embeddings are layer -1 and the final
norm and ``lm_head`` are layer ``n_layers``; ``depth`` = layer / (n_layers - 1) for blocks, NaN otherwise.

Memory and speed: tensors are memory-mapped views from the safetensors files (``safe_open``; sharded
checkpoints via ``model.safetensors.index.json``), never copied whole. Each tensor pair is read once, in
chunks, and one pass gives both ||W_ft - W_base||^2 and ||W_base||^2 (float32 within a chunk, float64
across chunks). The ``compiled`` kernel fuses upcast, difference, squares and sums into one loop per chunk
(torch.compile), about the speed of a plain read; the ``eager`` kernel, for machines without a C++ compiler,
converts chunks into two reused 4 MB float32 buffers. Extra memory: at most 8 MB whatever the model size.
torch runs single-threaded meanwhile (restored afterwards): OpenMP barriers on shared cores cost far more
than they gain. LoRA adapters (PEFT folders) are never merged: the change of an adapted weight is
``scale * B @ A`` (scale = alpha / r, or alpha / sqrt(r) with rsLoRA) and its norm is computed from the
r x r Gram matrices, ||B A||_F^2 = trace((B^T B)(A A^T)); base weights LoRA does not touch have zero change."""

from __future__ import annotations

import functools
import json
import math
import os
import re
import threading
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from common.errors import InputError

LAYER_COLUMNS = ("layer", "depth", "module", "frobenius", "relative", "base_frobenius", "n_params")
EAGER_CHUNK = 1 << 20  # elements per eager chunk: 4 MB of float32 per scratch buffer
COMPILED_CHUNK = 1 << 22  # elements per fused call: nothing materialised, so only the call overhead bounds it
_LAYER_RE = re.compile(r"(?:^|\.)layers\.(\d+)\.(.+)$")
_PEFT_PREFIX = "base_model.model."


class LayerShapeError(InputError):
    """A checkpoint whose tensors do not match its base model's."""


class CheckpointError(InputError):
    """A folder that is neither a safetensors model nor a PEFT adapter."""


def locate(name: str, n_layers: int) -> tuple[int, str]:
    """(layer, module type) of a parameter name, e.g. ``model.layers.3.self_attn.q_proj.weight`` ->
    (3, "q_proj"); embeddings -> (-1, "embed_tokens"); ``lm_head.weight`` -> (n_layers, "lm_head")."""
    parts = name.split(".")
    module = parts[-2] if len(parts) > 1 else parts[0]
    match = _LAYER_RE.search(name)
    if match:
        return int(match.group(1)), module
    return (-1 if "embed" in name else n_layers), module


def depth_of(layer: int, n_layers: int) -> float:
    if not 0 <= layer < n_layers:
        return math.nan
    return layer / (n_layers - 1) if n_layers > 1 else 0.0


# ---------------------------------------------------------------- files


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.exists():
        raise CheckpointError(f"{folder} has no config.json: not a from_pretrained model folder")
    config = json.loads(path.read_text(encoding="utf-8"))
    config = config.get("text_config", config) if "num_hidden_layers" not in config else config
    if "num_hidden_layers" not in config:
        raise CheckpointError(f"{path} has no num_hidden_layers")
    return config


def tensor_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file holding it (sharded or single-file checkpoints)."""
    index = folder / "model.safetensors.index.json"
    if index.exists():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return {name: folder / file for name, file in weight_map.items()}
    single = folder / "model.safetensors"
    if not single.exists():
        raise CheckpointError(
            f"{folder} has neither model.safetensors nor model.safetensors.index.json "
            "(only safetensors checkpoints are supported)"
        )
    from safetensors import safe_open

    with safe_open(single, framework="pt") as handle:
        return dict.fromkeys(handle.keys(), single)


def resolve_folder(location: str | os.PathLike[str]) -> Path:
    """A local folder, or a Hugging Face id downloaded (config + safetensors only) to the HF cache."""
    path = Path(location)
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(str(location), allow_patterns=["*.json", "*.safetensors"]))


class TensorReader:
    """Opens each safetensors file once; reads one tensor at a time."""

    def __init__(self, files: dict[str, Path], stack: ExitStack):
        from safetensors import safe_open

        self.files = files
        self._handles = {p: stack.enter_context(safe_open(p, framework="pt")) for p in set(files.values())}

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handles[self.files[name]].get_slice(name).get_shape())

    def get(self, name: str):
        return self._handles[self.files[name]].get_tensor(name)


# ---------------------------------------------------------------- norms

KERNELS = ("auto", "compiled", "eager")


class _EagerKernel:
    """Chunked torch ops in two reused float32 buffers of ``EAGER_CHUNK`` elements. Converting and
    differencing a chunk in them allocates nothing: a fresh multi-MB temporary costs a page fault per 4 KB,
    more than the arithmetic on it. Four passes over each chunk, so it needs a thread per core to come close
    to the compiled kernel on one."""

    workers = min(4, os.cpu_count() or 1)  # tensors at once: these ops release the GIL, one per core helps

    @classmethod
    def for_thread(cls) -> _EagerKernel:
        return cls()  # each thread its own buffers

    def __init__(self) -> None:
        import torch

        self.base = torch.empty(EAGER_CHUNK, dtype=torch.float32)
        self.diff = torch.empty(EAGER_CHUNK, dtype=torch.float32)

    def _as_float32(self, chunk):
        import torch

        if chunk.dtype == torch.float32:
            return chunk  # a read-only mmap view is fine
        out = self.base[: chunk.numel()]
        out.copy_(chunk)
        return out

    def pair(self, finetuned, base) -> tuple[float, float]:
        change = norm = 0.0
        for ft_chunk, base_chunk in zip(
            _chunks(finetuned, EAGER_CHUNK), _chunks(base, EAGER_CHUNK), strict=True
        ):
            b = self._as_float32(base_chunk)
            d = self.diff[: b.numel()]
            d.copy_(ft_chunk)  # upcast then subtract: exact for bf16/fp16 inputs
            d.sub_(b)
            change += _sq(d)
            norm += _sq(b)
        return change, norm

    def single(self, base) -> float:
        return sum(_sq(self._as_float32(chunk)) for chunk in _chunks(base, EAGER_CHUNK))


class _CompiledKernel:
    """The same sums as one fused loop per chunk, generated by ``torch.compile`` (inductor's C++ backend):
    each element is loaded once, upcast, subtracted, squared and summed in registers, so the analysis runs at
    about the speed of a plain read. Needs a C++ compiler; the first call compiles (seconds, then cached)."""

    workers = 1  # one fused pass already runs at memory speed: a second thread only contends for bandwidth

    @classmethod
    def for_thread(cls) -> _CompiledKernel:
        return _compiled_kernel()  # stateless: one compiled instance serves every thread

    def __init__(self) -> None:
        import torch

        self._pair = torch.compile(_pair_sums, dynamic=True, fullgraph=True)
        self._single = torch.compile(_square_sum, dynamic=True, fullgraph=True)

    def pair(self, finetuned, base) -> tuple[float, float]:
        change = norm = 0.0
        for ft_chunk, base_chunk in zip(
            _chunks(finetuned, COMPILED_CHUNK), _chunks(base, COMPILED_CHUNK), strict=True
        ):
            chunk_change, chunk_norm = self._pair(ft_chunk, base_chunk)
            change += float(chunk_change)
            norm += float(chunk_norm)
        return change, norm

    def single(self, base) -> float:
        return sum(float(self._single(chunk)) for chunk in _chunks(base, COMPILED_CHUNK))


def _pair_sums(finetuned, base):
    b = base.float()
    d = finetuned.float() - b
    return (d * d).sum(), (b * b).sum()


def _square_sum(base):
    b = base.float()
    return (b * b).sum()


def _chunks(tensor, size: int):
    # float32 sums within a chunk, float64 across chunks: relative error ~1e-7 whatever the tensor size
    flat = tensor.reshape(-1)
    return (flat[start : start + size] for start in range(0, max(flat.numel(), 1), size))


def _sq(values) -> float:
    # numpy's BLAS sdot: a several times faster single pass than torch.dot / vector_norm on CPU here.
    array = values.numpy()
    return float(array.dot(array))


@functools.cache
def _compiled_kernel() -> _CompiledKernel:
    import torch

    kernel = _CompiledKernel()
    probe = torch.zeros(2, dtype=torch.float32)
    with _torch_single_threaded():  # inductor sizes its OpenMP loops by the thread count at compile time
        kernel.pair(probe, probe)  # compile now, in one thread, so a missing compiler shows here
    return kernel


@functools.cache
def resolve_kernel(kernel: str) -> str:
    """``compiled`` or ``eager``. ``auto`` is ``compiled`` when this machine can build it (inductor needs a C++
    compiler), else ``eager`` with one warning naming the cause; ``compiled`` fails with a clear error."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {', '.join(KERNELS)}")
    if kernel == "eager":
        return kernel
    try:
        _compiled_kernel()
    except Exception as error:  # inductor raises many types (missing compiler, headers, OpenMP)
        cause = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:200]}"
        if kernel == "compiled":
            raise RuntimeError(
                f"torch.compile could not build the fused layer kernel ({cause}); install a C++ "
                "compiler (e.g. apt-get install g++) or use --kernel eager"
            ) from error
        warnings.warn(
            f"layer analysis: torch.compile is unavailable here ({cause}); using the eager kernel, "
            "slower and busier (--kernel eager silences this)",
            stacklevel=2,
        )
        return "eager"
    return "compiled"


def _lora_sq(a, b, scale: float) -> float:
    """||scale * B @ A||_F^2 without forming B @ A."""
    a64, b64 = a.double(), b.double()
    return float(scale**2 * ((b64.T @ b64) * (a64 @ a64.T)).sum())


@dataclass
class _Accumulator:
    n_layers: int
    rows: dict[tuple[int, str], list[float]]

    def add(self, name: str, change_sq: float, base_sq: float, n_params: int) -> None:
        entry = self.rows.setdefault(locate(name, self.n_layers), [0.0, 0.0, 0])
        entry[0] += change_sq
        entry[1] += base_sq
        entry[2] += n_params

    def frame(self) -> pd.DataFrame:
        records = []
        for (layer, module), (change_sq, base_sq, n_params) in sorted(self.rows.items()):
            frob, base = math.sqrt(change_sq), math.sqrt(base_sq)
            records.append(
                {
                    "layer": layer,
                    "depth": depth_of(layer, self.n_layers),
                    "module": module,
                    "frobenius": frob,
                    "relative": frob / base if base > 0 else math.nan,
                    "base_frobenius": base,
                    "n_params": int(n_params),
                }
            )
        return pd.DataFrame(records, columns=list(LAYER_COLUMNS))


def _check_shape(name: str, got: tuple[int, ...], want: tuple[int, ...], checkpoint: Path) -> None:
    if got != want:
        raise LayerShapeError(
            f"{checkpoint}: tensor {name!r} has shape {list(got)} in the checkpoint but "
            f"{list(want)} in the base model; the checkpoint was not fine-tuned from this base"
        )


Kernel = type[_EagerKernel] | type[_CompiledKernel]


def _full_changes(checkpoint: Path, base: Path, progress: bool, kernel_type: Kernel) -> pd.DataFrame:
    ft_files, base_files = tensor_files(checkpoint), tensor_files(base)
    missing = sorted(set(ft_files) - set(base_files))
    if missing:
        raise LayerShapeError(f"{checkpoint}: tensors {missing[:5]} are not in the base model {base}")
    acc = _Accumulator(int(_config(base)["num_hidden_layers"]), {})
    with ExitStack() as stack:
        ft, bs = TensorReader(ft_files, stack), TensorReader(base_files, stack)
        names = sorted(ft_files)
        for name in names:  # header-only check, before any work: a mismatch fails fast
            _check_shape(name, ft.shape(name), bs.shape(name), checkpoint)

        local = threading.local()

        def sums(name: str) -> tuple[float, float]:
            if not hasattr(local, "kernel"):
                local.kernel = kernel_type.for_thread()
            return local.kernel.pair(ft.get(name), bs.get(name))

        # Reading, converting and summing release the GIL: one tensor per core keeps every core busy.
        with ThreadPoolExecutor(max_workers=kernel_type.workers) as pool:
            for name, result in zip(
                names, pool.map(sums, _progress(names, progress, checkpoint)), strict=True
            ):
                acc.add(name, *result, math.prod(bs.shape(name)))
    return acc.frame()


# ---------------------------------------------------------------- LoRA


def is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").exists()


def _pattern_value(patterns: dict[str, Any], module: str, default: Any) -> Any:
    # PEFT's rule (peft.utils.other.get_pattern_key): a key matches a module name suffix.
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _adapter_deltas(folder: Path) -> tuple[dict[str, tuple[str, str, float]], dict[str, str], Path]:
    """base tensor name -> (lora_A name, lora_B name, scale); base name -> full replacement tensor name."""
    config = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    if config.get("peft_type", "LORA") != "LORA" or config.get("use_dora"):
        raise CheckpointError(
            f"{folder}: only plain LoRA adapters are supported (peft_type "
            f"{config.get('peft_type')!r}, use_dora={config.get('use_dora')})"
        )
    path = folder / "adapter_model.safetensors"
    if not path.exists():
        raise CheckpointError(f"{folder} has adapter_config.json but no adapter_model.safetensors")
    from safetensors import safe_open

    with safe_open(path, framework="pt") as handle:
        names = list(handle.keys())
    lora, replaced = {}, {}
    for name in names:
        bare = name.removeprefix(_PEFT_PREFIX)
        if ".lora_A." in bare:
            module = bare.split(".lora_A.")[0]
            r = _pattern_value(config.get("rank_pattern") or {}, module, config["r"])
            alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config["lora_alpha"])
            scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
            lora[f"{module}.weight"] = (name, name.replace(".lora_A.", ".lora_B."), scale)
        elif ".lora_B." not in bare:
            replaced[bare.replace(".modules_to_save.default", "")] = name  # modules_to_save: full copies
    return lora, replaced, path


def _lora_changes(adapter: Path, base: Path, progress: bool, kernel_type: Kernel) -> pd.DataFrame:
    lora, replaced, path = _adapter_deltas(adapter)
    base_files = tensor_files(base)
    unknown = sorted((set(lora) | set(replaced)) - set(base_files))
    if unknown:
        raise LayerShapeError(f"{adapter}: adapted tensors {unknown[:5]} are not in the base model {base}")
    acc = _Accumulator(int(_config(base)["num_hidden_layers"]), {})
    with ExitStack() as stack:
        bs, ad = (
            TensorReader(base_files, stack),
            TensorReader(
                dict.fromkeys([*replaced.values(), *(n for a, b, _ in lora.values() for n in (a, b))], path),
                stack,
            ),
        )
        for name, (a_name, b_name, _) in lora.items():
            _check_shape(name, (ad.shape(b_name)[0], ad.shape(a_name)[1]), bs.shape(name)[:2], adapter)
        for name, replacement in replaced.items():
            _check_shape(name, ad.shape(replacement), bs.shape(name), adapter)
        kernel = kernel_type.for_thread()
        for name in _progress(sorted(base_files), progress, adapter):
            n_params = math.prod(bs.shape(name))
            if name in replaced:
                acc.add(name, *kernel.pair(ad.get(replaced[name]), bs.get(name)), n_params)
                continue
            a_name, b_name, scale = lora.get(name, ("", "", 0.0))
            change = _lora_sq(ad.get(a_name), ad.get(b_name), scale) if name in lora else 0.0
            acc.add(name, change, kernel.single(bs.get(name)), n_params)
    return acc.frame()


@contextmanager
def _torch_single_threaded() -> Iterator[None]:
    # Each chunk is cache-sized: intra-op OpenMP threads only add barriers, and those stall badly (measured
    # 5-10x slower) when other processes share the cores.
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _progress(names: list[str], enabled: bool, folder: Path) -> Iterator[str]:
    if not enabled:
        return iter(names)

    return iter(tqdm(names, desc=f"layers {folder.name}", unit="tensor", leave=False))


def layer_changes(
    checkpoint: str | os.PathLike[str],
    base: str | os.PathLike[str],
    progress: bool = False,
    kernel: str = "auto",
) -> pd.DataFrame:
    """Per (layer, module) weight change of ``checkpoint`` (a full model folder or a PEFT LoRA adapter
    folder) against ``base`` (a model folder or a Hugging Face id). Columns: ``LAYER_COLUMNS``. ``kernel``:
    one of ``KERNELS`` (same numbers to ~1e-6; ``compiled`` is faster on one thread)."""
    checkpoint, base = Path(checkpoint), resolve_folder(base)
    with _torch_single_threaded():
        kernel_type = _CompiledKernel if resolve_kernel(kernel) == "compiled" else _EagerKernel
        changes = _lora_changes if is_adapter(checkpoint) else _full_changes
        return changes(checkpoint, base, progress, kernel_type)
