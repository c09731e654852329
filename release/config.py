"""The release configuration: one YAML file (``configs/release/*.yaml``) says where and what to publish.

Every field has a documented default and can be overridden from the CLI (``--set key=value`` with a
dotted key, e.g. ``--set retry.max_attempts=8``). Repo names are rendered from templates and validated
before anything touches the network."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from common.catalog import DATASET_HUB_IDS
from common.paths import configs_dir


class ReleaseConfigError(ValueError):
    """A release config that cannot be used (unknown key, bad value, invalid repo name)."""


@dataclass(frozen=True)
class LicensePolicy:
    """License of a published model: inherited from its base model (SPDX ids, lowercase as on the Hub)."""

    default: str = "apache-2.0"
    by_base_model: dict[str, str] = field(default_factory=dict)  # base_model_name or base_model id -> id

    def for_base(self, base_model_name: str, base_model: str = "") -> str:
        return self.by_base_model.get(base_model_name) or self.by_base_model.get(base_model) or self.default


@dataclass(frozen=True)
class Include:
    models: bool = True  # fine-tuned model repos (weights, or cards only in the results-only mode)
    base_models: bool = True  # locally built base models, so `base_model` in the cards resolves
    merged_lora: bool = False  # also upload merged weights of LoRA runs (subfolder `merged/`)
    results_dataset: bool = True
    report: bool = True  # the analysis report (report.md/html, figures) inside the results dataset
    space: bool = True
    collection: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0
    jitter: float = 0.5  # the delay is multiplied by a random factor in [1 - jitter, 1 + jitter]
    timeout_s: float = 60.0  # per HTTP request


@dataclass(frozen=True)
class RequestBudget:
    """Token bucket shared by every worker: ``rate_per_s`` sustained, ``burst`` at once. The Hub limits
    requests per user per 5 minutes; the default stays well under the documented free-tier limits."""

    rate_per_s: float = 50.0
    burst: int = 100


@dataclass(frozen=True)
class ReleaseConfig:
    namespace: str = "massive-sft"
    # Fields: namespace, base_model_name, dataset, method, data_size, lr_schedule, epochs, seed, run_id, grid.
    repo_template: str = "{namespace}/{base_model_name}-{dataset}-{method}-{data_size}-{lr_schedule}"
    base_repo_template: str = "{namespace}/{base_model_name}"  # locally built base models
    results_dataset: str = "{namespace}/massive-sft-results"
    space: str = "{namespace}/massive-sft-leaderboard"
    collection_title: str = "Massive SFT study"
    collection_description: str = (
        "Models, results and leaderboard of the massive SFT study "
        "(Harada et al., EMNLP 2025, arXiv 2506.14681)."
    )
    private: bool = False
    license: LicensePolicy = field(default_factory=LicensePolicy)
    include: Include = field(default_factory=Include)
    # Results-only mode (the authors' released table, no weights here): model cards point at this URL.
    external_weights_url: str | None = None
    # Hub dataset ids of the SFT datasets, for the cards' `datasets:` field (name -> id).
    dataset_ids: dict[str, str] = field(default_factory=lambda: dict(DATASET_HUB_IDS))
    space_dir: str = "space"  # the Space's source folder, relative to the project root
    space_sdk_version: str = "6.31.0"
    concurrency: int = 8  # repos published at the same time (each repo is sequential)
    repo_creation_interval_s: float = 0.0  # pacing between repo creations (the Hub rate-limits them)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget: RequestBudget = field(default_factory=RequestBudget)
    commit_prefix: str = "massive-sft release"

    def results_repo(self) -> str:
        return render_repo_id(self.results_dataset, {"namespace": self.namespace})

    def space_repo(self) -> str:
        return render_repo_id(self.space, {"namespace": self.namespace})


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_INVALID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_REPO_NAME = 96


def sanitize_name(name: str) -> str:
    """Map a free-form name onto the Hub's repo-name alphabet: other characters become ``-`` and the
    sequences the Hub rejects (``--``, ``..``, leading/trailing ``-``/``.``) are collapsed."""
    name = _INVALID_CHARS.sub("-", name)
    name = re.sub(r"-{2,}", "-", re.sub(r"\.{2,}", ".", name))
    return name.strip("-.")


def validate_repo_id(repo_id: str) -> str:
    """Return ``repo_id`` if the Hub would accept it, else raise naming the rule it breaks."""
    parts = repo_id.split("/")
    if len(parts) != 2:
        raise ReleaseConfigError(f"repo id {repo_id!r} must be 'namespace/name' (exactly one '/')")
    for part in parts:
        if not part or not _NAME.match(part) or "--" in part or ".." in part or part.endswith((".", "-")):
            raise ReleaseConfigError(
                f"invalid repo id {repo_id!r}: each part must use only letters, digits, '-', '_', '.', "
                "start with a letter or digit, and contain no '--' or '..'; fix `namespace` or the template"
            )
        if len(part) > MAX_REPO_NAME:
            raise ReleaseConfigError(
                f"repo name {part!r} is longer than {MAX_REPO_NAME} characters; shorten the repo template"
            )
    return repo_id


def render_repo_id(template: str, values: dict[str, Any]) -> str:
    """Render a repo template; values are sanitized, the namespace is used as given and must be valid."""
    try:
        name = template.format(
            **{k: (v if k == "namespace" else sanitize_name(str(v))) for k, v in values.items()}
        )
    except KeyError as err:
        raise ReleaseConfigError(
            f"repo template {template!r} uses unknown field {err}; available: {sorted(values)}"
        ) from None
    namespace, _, rest = name.partition("/")
    return validate_repo_id(f"{namespace}/{sanitize_name(rest)}" if rest else name)


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ReleaseConfigError(f"unknown key(s) {unknown} in {where}; known: {sorted(known)}")
    values = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        values[name] = (
            _build(type(default), value or {}, f"{where}.{name}") if is_dataclass(default) else value
        )
    return cls(**values)


def _default_at(key: str) -> Any:
    node: Any = ReleaseConfig()
    for part in key.split("."):
        node = getattr(node, part, None)
    return node


def _parse_value(key: str, raw: str) -> Any:
    """YAML for numbers, booleans, lists and mappings; text fields (templates like ``{namespace}/x``,
    which YAML would read as a mapping) stay the raw string."""
    if isinstance(_default_at(key), str):
        return raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ReleaseConfig:
    """Read a YAML release config (a path, or a name under ``configs/release/``) and apply
    ``key=value`` overrides (values parsed as YAML)."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists() and (configs_dir() / "release" / f"{path}.yaml").exists():
            path = configs_dir() / "release" / f"{path}.yaml"
        if not path.exists():
            raise ReleaseConfigError(
                f"release config {path} not found; pass a YAML file or one of "
                f"{sorted(p.stem for p in (configs_dir() / 'release').glob('*.yaml'))}"
            )
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ReleaseConfigError(f"override {item!r} must be key=value (e.g. namespace=my-org)")
        node = data
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = _parse_value(key, raw)
    config = _build(ReleaseConfig, data, "release config")
    if config.concurrency < 1:
        raise ReleaseConfigError("concurrency must be >= 1")
    validate_repo_id(f"{config.namespace}/x")
    config.results_repo()
    config.space_repo()
    return config


def config_dict(config: ReleaseConfig) -> dict[str, Any]:
    return asdict(config)


def with_namespace(config: ReleaseConfig, namespace: str) -> ReleaseConfig:
    return replace(config, namespace=namespace)
