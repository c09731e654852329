"""Grid recipes (YAML under ``configs/grids/``) expanded into training jobs.

A recipe has global ``defaults``, ``methods`` (hyperparameters per fine-tuning method), ``models`` (base
models with their cluster resources) and ``blocks``: each block is a cross product of models x datasets x
data sizes x methods x epoch counts with one schedule and one rule for which epochs to keep. Every
mistake is reported as a ``GridError`` naming the field, the bad value and what is allowed, before any
job runs. docs/training-grid.md describes the format."""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from common.catalog import BASE_MODELS_BY_NAME
from common.config import setting
from common.errors import ConfigError
from common.paths import configs_dir
from common.selection import SelectionError, matches, parse_filter
from jobs.resources import Resources
from training.loaders import DataError, composite, known_datasets, max_size, member_size
from training.sft import check_sft_options
from training.spec import LOSS_ON, LR_SCHEDULES, METHODS, TEMPLATES, Job, LoraSettings


class GridError(ConfigError):
    """A recipe (or a filter) that cannot be expanded. Carries the field, the value and the allowed values."""

    def __init__(
        self, grid: str, field: str, message: str, value: Any = None, allowed: Iterable[Any] | None = None
    ):
        self.grid, self.field, self.value = grid, field, value
        self.allowed = [str(a) for a in allowed] if allowed is not None else None
        text = (f"grid {grid!r}: " if grid else "") + f"{field}: {message}"
        if self.allowed is not None:
            text += f"; allowed: {', '.join(self.allowed)}"
            close = difflib.get_close_matches(str(value), self.allowed, n=1)
            if close:
                text += f" (did you mean {close[0]!r}?)"
        super().__init__(text)


# Fields a recipe may set at each level; anything else is a typo and is rejected.
JOB_DEFAULT_FIELDS = ("seed", "max_length", "warmup_ratio", "weight_decay", "template", "loss_on", "sft")
TOP_FIELDS = ("name", "description", "defaults", "methods", "models", "resources", "blocks")
METHOD_FIELDS = ("learning_rate", "batch_size", "lora", *JOB_DEFAULT_FIELDS)
MODEL_FIELDS = ("name", "hf_id", "build", "gguf", "resources")
BLOCK_FIELDS = (
    "name",
    "description",
    "models",
    "datasets",
    "data_sizes",
    "methods",
    "lr_schedule",
    "epochs",
    "keep",
    "resources",
    "overrides",
)
DATASET_ENTRY_FIELDS = ("name", "data_sizes")
LORA_FIELDS = tuple(f.name for f in fields(LoraSettings))
RESOURCE_FIELDS = tuple(f.name for f in fields(Resources))
BUILD_FIELDS = ("architecture", "hidden_size", "num_layers", "vocab_size", "seed")
GGUF_FIELDS = ("package", "file", "path")
KEEP_WORDS = ("last", "all")


@dataclass(frozen=True)
class _Context:
    """Where we are in the recipe, for error messages."""

    grid: str
    where: str = ""

    def at(self, name: str | int) -> _Context:
        part = f"[{name}]" if isinstance(name, int) else (f".{name}" if self.where else name)
        return _Context(self.grid, self.where + part)

    def error(self, message: str, value: Any = None, allowed: Iterable[Any] | None = None) -> GridError:
        return GridError(self.grid, self.where or "<recipe>", message, value, allowed)


def _mapping(ctx: _Context, value: Any, allowed_fields: Sequence[str]) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.error(f"expected a mapping, got {type(value).__name__} {value!r}")
    for key in value:
        if key not in allowed_fields:
            raise ctx.at(str(key)).error(f"unknown field {key!r}", key, allowed_fields)
    return value


def _as_list(ctx: _Context, value: Any) -> list[Any]:
    items = value if isinstance(value, list) else [value]
    if not items or any(item is None for item in items):
        raise ctx.error(f"expected a value or a non-empty list, got {value!r}")
    return items


def _positive_int(ctx: _Context, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ctx.error(f"expected a positive integer, got {value!r}")
    return value


def _choice(ctx: _Context, value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ctx.error(f"unknown {what} {value!r}", value, allowed)
    return value


# ---------------------------------------------------------------- recipe parts


def _job_defaults(ctx: _Context, raw: dict[str, Any]) -> dict[str, Any]:
    if "template" in raw:
        _choice(ctx.at("template"), raw["template"], TEMPLATES, "template")
    if "loss_on" in raw:
        _choice(ctx.at("loss_on"), raw["loss_on"], LOSS_ON, "loss_on")
    if "sft" in raw:
        _sft(ctx.at("sft"), raw["sft"])
    return {k: raw[k] for k in JOB_DEFAULT_FIELDS if k in raw}


def _sft(ctx: _Context, raw: Any) -> None:
    """An ``sft:`` section: further TRL SFTConfig options, passed through to the trainer as they are."""
    if not isinstance(raw, dict) or not raw:
        raise ctx.error(f"expected a mapping of TRL SFTConfig options, got {raw!r}")
    problem = check_sft_options(raw)
    if problem:
        raise ctx.error(problem)


def _merged_settings(*levels: dict[str, Any]) -> dict[str, Any]:
    """Recipe defaults < method < block overrides; ``sft:`` sections merge option by option."""
    settings: dict[str, Any] = {}
    for level in levels:
        settings.update(level)
    sft = {name: value for level in levels for name, value in (level.get("sft") or {}).items()}
    settings["sft"] = sft or None
    return settings


def _lora(ctx: _Context, raw: Any) -> LoraSettings:
    settings = dict(_mapping(ctx, raw, LORA_FIELDS))
    if "target_modules" in settings:
        settings["target_modules"] = tuple(_as_list(ctx.at("target_modules"), settings["target_modules"]))
    return LoraSettings(**settings)


def _methods(ctx: _Context, raw: Any) -> dict[str, dict[str, Any]]:
    methods = _mapping(ctx, raw, METHODS)
    if not methods:
        raise ctx.error("a recipe needs at least one method", None, METHODS)
    resolved = {}
    for name, settings in methods.items():
        here = ctx.at(name)
        settings = _mapping(here, settings, METHOD_FIELDS)
        for required in ("learning_rate", "batch_size"):
            if required not in settings:
                raise here.error(f"missing {required!r}")
        if name == "full" and "lora" in settings:
            raise here.at("lora").error(
                "LoRA settings on a full fine-tuning method; move them under a 'lora' method",
                "full",
                ["lora"],
            )
        if not isinstance(settings["learning_rate"], (int, float)) or settings["learning_rate"] <= 0:
            raise here.at("learning_rate").error(
                f"expected a positive number, got {settings['learning_rate']!r}"
            )
        resolved[name] = {
            **_job_defaults(here, settings),
            "learning_rate": float(settings["learning_rate"]),
            "batch_size": _positive_int(here.at("batch_size"), settings["batch_size"]),
            "lora": _lora(here.at("lora"), settings.get("lora")) if name == "lora" else None,
        }
    return resolved


def _resources(ctx: _Context, raw: Any, base: Resources | None = None) -> Resources:
    settings = _mapping(ctx, raw, RESOURCE_FIELDS)
    merged = {**((base or Resources()).__dict__), **settings}
    return Resources(**merged)


@dataclass(frozen=True)
class _Model:
    name: str
    hf_id: str
    build: dict[str, Any] | None
    gguf: dict[str, Any] | None
    resources: Resources


def _model(ctx: _Context, raw: Any, default_resources: Resources) -> _Model:
    if isinstance(raw, str):
        raw = {"name": raw}
    settings = _mapping(ctx, raw, MODEL_FIELDS)
    name = settings.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.at("name").error("every model needs a short name (the name used in the results table)")
    build = _mapping(ctx.at("build"), settings.get("build"), BUILD_FIELDS) or None
    gguf = _mapping(ctx.at("gguf"), settings.get("gguf"), GGUF_FIELDS) or None
    hf_id = settings.get("hf_id")
    if hf_id is None:
        if build is not None:
            hf_id = f"local/{name}"
        elif name in BASE_MODELS_BY_NAME:
            hf_id = BASE_MODELS_BY_NAME[name].hf_id
        else:
            raise ctx.at("hf_id").error(
                f"model {name!r} is not in the paper catalog: give its hf_id (or a "
                f"build: section for a locally built tiny model)",
                name,
                BASE_MODELS_BY_NAME,
            )
    resources = _resources(ctx.at("resources"), settings.get("resources"), default_resources)
    return _Model(name, hf_id, build, gguf, resources)


def _models(ctx: _Context, raw: Any, default_resources: Resources) -> dict[str, _Model]:
    models: dict[str, _Model] = {}
    for index, entry in enumerate(_as_list(ctx, raw)):
        model = _model(ctx.at(index), entry, default_resources)
        if model.name in models:
            raise ctx.at(index).error(f"model {model.name!r} is listed twice")
        models[model.name] = model
    return models


# ---------------------------------------------------------------- blocks


def _check_dataset_size(ctx: _Context, dataset: str, size: int) -> None:
    limit = max_size(dataset)
    if limit is not None and size > limit:
        raise ctx.error(
            f"{dataset!r} has at most {limit} samples (the paper has no larger {dataset} subset); got {size}",
            size,
            [f"1..{limit}"],
        )
    mixture = composite(dataset)
    if mixture is not None:
        try:
            per_member = member_size(dataset, size)
        except DataError as error:
            raise ctx.error(str(error), size) from error
        for member in mixture.members:
            _check_dataset_size(ctx, member, per_member)


def _datasets(ctx: _Context, raw: Any, sizes: list[int] | None) -> list[tuple[str, int]]:
    """(dataset, data_size) pairs; an entry may be a name or {name, data_sizes} to override the sizes."""
    pairs = []
    for index, entry in enumerate(_as_list(ctx, raw)):
        here = ctx.at(index)
        entry_sizes = sizes
        if isinstance(entry, dict):
            settings = _mapping(here, entry, DATASET_ENTRY_FIELDS)
            entry, entry_sizes = (
                settings.get("name"),
                _sizes(here.at("data_sizes"), settings.get("data_sizes")),
            )
        name = _choice(here, entry, known_datasets(), "dataset")
        if not entry_sizes:
            raise here.error("no data_sizes: set them on the block or on this dataset entry")
        for size in entry_sizes:
            _check_dataset_size(here.at("data_sizes"), name, size)
            pairs.append((name, size))
    return pairs


def _sizes(ctx: _Context, raw: Any) -> list[int] | None:
    if raw is None:
        return None
    return [_positive_int(ctx.at(i), size) for i, size in enumerate(_as_list(ctx, raw))]


def _kept_epochs(ctx: _Context, keep: Any, epochs: int) -> tuple[int, ...]:
    if keep == "last":
        return (epochs,)
    if keep == "all":
        return tuple(range(1, epochs + 1))
    if isinstance(keep, list) and keep:
        kept = sorted({_positive_int(ctx, epoch) for epoch in keep})
        if kept[-1] > epochs:
            raise ctx.error(
                f"cannot keep epoch {kept[-1]} of a {epochs}-epoch run", kept[-1], range(1, epochs + 1)
            )
        return tuple(kept)
    raise ctx.error(f"expected 'last', 'all' or a list of epochs, got {keep!r}", keep, KEEP_WORDS)


@dataclass(frozen=True)
class _Recipe:
    name: str
    defaults: dict[str, Any]
    methods: dict[str, dict[str, Any]]
    models: dict[str, _Model]


def _block_models(ctx: _Context, raw: Any, recipe: _Recipe) -> list[_Model]:
    if raw in (None, "all", "*"):
        return list(recipe.models.values())
    names = _as_list(ctx, raw)
    return [
        recipe.models[_choice(ctx.at(i), name, list(recipe.models), "model")] for i, name in enumerate(names)
    ]


def _block_jobs(ctx: _Context, raw: Any, recipe: _Recipe) -> list[Job]:
    block = _mapping(ctx, raw, BLOCK_FIELDS)
    name = block.get("name") or ctx.where
    models = _block_models(ctx.at("models"), block.get("models"), recipe)
    datasets = _datasets(
        ctx.at("datasets"), block.get("datasets"), _sizes(ctx.at("data_sizes"), block.get("data_sizes"))
    )
    methods = [
        _choice(ctx.at("methods").at(i), m, list(recipe.methods), "method")
        for i, m in enumerate(_as_list(ctx.at("methods"), block.get("methods", list(recipe.methods))))
    ]
    schedule = _choice(ctx.at("lr_schedule"), block.get("lr_schedule", "cosine"), LR_SCHEDULES, "lr_schedule")
    epoch_counts = [
        _positive_int(ctx.at("epochs").at(i), e)
        for i, e in enumerate(_as_list(ctx.at("epochs"), block.get("epochs")))
    ]
    overrides = _job_defaults(
        ctx.at("overrides"), _mapping(ctx.at("overrides"), block.get("overrides"), JOB_DEFAULT_FIELDS)
    )
    jobs = []
    for model, (dataset, size), method, epochs in itertools.product(models, datasets, methods, epoch_counts):
        settings = _merged_settings(recipe.defaults, recipe.methods[method], overrides)
        jobs.append(
            Job(
                grid=recipe.name,
                block=name,
                base_model=model.hf_id,
                base_model_name=model.name,
                dataset=dataset,
                data_size=size,
                method=method,
                epochs=epochs,
                lr_schedule=schedule,
                checkpoint_epochs=_kept_epochs(ctx.at("keep"), block.get("keep", "last"), epochs),
                base_model_build=model.build,
                gguf=model.gguf,
                resources=_resources(ctx.at("resources"), block.get("resources"), model.resources),
                **settings,
            )
        )
    return jobs


# ---------------------------------------------------------------- public API


def grid_path(name_or_path: str | Path) -> Path:
    """A recipe file: a path to a YAML file, or the stem of a file under configs/grids/."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise GridError(str(name_or_path), "path", f"no recipe file at {path}")
        return path
    candidate = configs_dir() / "grids" / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise GridError(
            str(name_or_path),
            "grid",
            f"no recipe named {str(name_or_path)!r} in {candidate.parent}",
            name_or_path,
            available_grids(),
        )
    return candidate


def available_grids() -> list[str]:
    return sorted(p.stem for p in (configs_dir() / "grids").glob("*.yaml"))


def parse_grid(raw: Any, name: str) -> list[Job]:
    """Expand an already-loaded recipe (a mapping) into jobs, validating everything."""
    ctx = _Context(name)
    top = _mapping(ctx, raw, TOP_FIELDS)
    name = top.get("name", name)
    ctx = _Context(name)
    resources = _resources(ctx.at("resources"), top.get("resources"))
    recipe = _Recipe(
        name=name,
        defaults=_job_defaults(
            ctx.at("defaults"), _mapping(ctx.at("defaults"), top.get("defaults"), JOB_DEFAULT_FIELDS)
        ),
        methods=_methods(ctx.at("methods"), top.get("methods")),
        models=_models(ctx.at("models"), top.get("models"), resources),
    )
    jobs = [
        job
        for index, block in enumerate(_as_list(ctx.at("blocks"), top.get("blocks")))
        for job in _block_jobs(ctx.at("blocks").at(index), block, recipe)
    ]
    _check_unique(ctx, jobs)
    return jobs


def _check_unique(ctx: _Context, jobs: list[Job]) -> None:
    seen: dict[str, str] = {}
    for job in jobs:
        if job.run_id in seen:
            raise ctx.at("blocks").error(
                f"job {job.run_id} appears twice (blocks {seen[job.run_id]!r} and "
                f"{job.block!r}); remove the overlap"
            )
        seen[job.run_id] = job.block


def load_grid(name_or_path: str | Path) -> list[Job]:
    path = grid_path(name_or_path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise GridError(path.stem, "yaml", f"{path} is not valid YAML: {error}") from error
    return parse_grid(raw, path.stem)


def record_keys() -> list[str]:
    return ["run_id", *(f.name for f in fields(Job))]


def filter_jobs(jobs: Sequence[Job], only: str | None) -> list[Job]:
    """Jobs matching ``key=glob[,key=glob...]`` (``common.selection``): different keys must all match,
    repeated keys are alternatives (``method=full,method=lora``)."""
    if not only:
        return list(jobs)
    try:
        terms = parse_filter(only, record_keys())
    except SelectionError as error:
        raise GridError("", "--only", error.reason, error.value, error.allowed) from error
    return [job for job in jobs if matches(job.to_record(), terms)]


def models_count(jobs: Iterable[Job]) -> int:
    """Released models = kept checkpoints."""
    return sum(len(job.checkpoint_epochs) for job in jobs)


@dataclass(frozen=True)
class GridSelection:
    """Which jobs a command works on: a recipe and an optional filter over its job records."""

    grid: str = setting(
        "demo", "recipe name under configs/grids/ (paper, demo, smollm2) or a YAML path", metavar="NAME"
    )
    only: str | None = setting(
        None,
        "keep jobs whose fields match KEY=GLOB[,KEY=GLOB...] (keys: the JSONL fields of `python -m "
        "training plan --format jsonl`, e.g. dataset=flan_*,method=lora; a repeated key means either)",
        metavar="FILTER",
    )

    def jobs(self) -> list[Job]:
        """The selected jobs; an empty selection is an error naming the filter."""
        jobs = filter_jobs(load_grid(self.grid), self.only)
        if not jobs:
            raise GridError(
                self.grid,
                "--only",
                f"no job matches {self.only!r}; see `python -m training plan --grid {self.grid} "
                "--format jsonl` for the job records",
            )
        return jobs
