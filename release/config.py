"""The release configuration: one YAML file (``configs/release/*.yaml``) says where and what to publish.

Every field has a documented default and can be overridden from the CLI like any command's setting
(``common.config``: ``--set key=value`` with a dotted key, e.g. ``--set retry.max_attempts=8``, or a
flag for a top-level one, e.g. ``--namespace``). Repo names are rendered from templates and validated
when the config is built, before anything touches the network; a name the Hub would not accept as
written is an error, never silently rewritten."""

from __future__ import annotations

import re
import string
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common.catalog import BASE_MODELS_BY_HF_ID, BASE_MODELS_BY_NAME, DATASET_HUB_IDS
from common.config import resolve, setting
from common.errors import ConfigError
from common.paths import configs_dir


class ReleaseConfigError(ConfigError):
    """A release config that cannot be used (unknown key, bad value, invalid repo name)."""


@dataclass(frozen=True)
class LicensePolicy:
    """License of a published model: inherited from its base model (SPDX ids, lowercase as on the Hub)."""

    default: str = "apache-2.0"
    by_base_model: dict[str, str] = field(default_factory=dict)  # base_model_name or base_model id -> id

    def for_base(self, base_model_name: str, base_model: str = "") -> str:
        """An override of the config, else the study base model's license (common.catalog), else the
        default (the demo's locally built bases)."""
        known = BASE_MODELS_BY_NAME.get(base_model_name) or BASE_MODELS_BY_HF_ID.get(base_model)
        override = self.by_base_model.get(base_model_name) or self.by_base_model.get(base_model)
        return override or (known.license if known else self.default)


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
    # Consecutive requests, across all workers, that got no answer at all (refused, dropped, timed
    # out) before the whole release stops: a dead endpoint ends the run instead of every repo retrying.
    max_connection_failures: int = 5


@dataclass(frozen=True)
class RequestBudget:
    """Token bucket shared by every worker: ``rate_per_s`` sustained, ``burst`` at once. The Hub limits
    requests per user per 5 minutes; the default stays well under the documented free-tier limits."""

    rate_per_s: float = 50.0
    burst: int = 100


@dataclass(frozen=True)
class ReleaseConfig:
    namespace: str = setting("massive-sft", "user or organization to publish under")
    repo_template: str = setting(
        "{namespace}/{base_model_name}-{dataset}-{method}-{data_size}-{lr_schedule}",
        "model repo id; fields: namespace, base_model_name, dataset, method, data_size, lr_schedule, "
        "epochs, seed, run_id, grid",
    )
    base_repo_template: str = setting(
        "{namespace}/{base_model_name}", "repo id of a locally built base model"
    )
    results_dataset: str = setting("{namespace}/massive-sft-results", "repo id of the results dataset")
    space: str = setting("{namespace}/massive-sft-leaderboard", "repo id of the leaderboard Space")
    collection_title: str = setting("Massive SFT study", "title of the Hub collection")
    collection_description: str = setting(
        "Models, results and leaderboard of the massive SFT study "
        "(Harada et al., EMNLP 2025, arXiv 2506.14681).",
        "description of the Hub collection",
    )
    private: bool = setting(False, "create the repos private")
    license: LicensePolicy = setting(default_factory=LicensePolicy, help="licenses of published models")
    include: Include = setting(default_factory=Include, help="what to publish")
    external_weights_url: str | None = setting(
        None, "results-only mode (the authors' released table, no weights here): cards point at this URL"
    )
    dataset_ids: dict[str, str] = setting(
        default_factory=lambda: dict(DATASET_HUB_IDS),
        help="Hub dataset ids of the SFT datasets, for the cards (name -> id)",
    )
    space_dir: str = setting("space", "the Space's source folder, relative to the project root")
    space_sdk_version: str = setting("6.31.0", "Gradio version of the Space")
    concurrency: int = setting(8, "repos published at the same time (each repo is sequential)")
    repo_creation_interval_s: float = setting(
        0.0, "pacing between repo creations in seconds (the Hub rate-limits them)"
    )
    retry: RetryPolicy = setting(default_factory=RetryPolicy, help="retries of failed requests")
    budget: RequestBudget = setting(default_factory=RequestBudget, help="request rate limit")
    commit_prefix: str = setting("massive-sft release", "first words of every commit message")
    status_interval_s: float = setting(
        60.0, "a status line at least this often (seconds), with or without a progress bar"
    )

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ReleaseConfigError(f"concurrency must be >= 1, got {self.concurrency}")
        validate_repo_id(f"{self.namespace}/x")
        _check_template_text(self.repo_template)
        _check_template_text(self.base_repo_template)
        self.results_repo()
        self.space_repo()

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


def _check_template_text(template: str) -> None:
    """The literal text of a repo template is used as written: it must already be a valid repo id's
    text with exactly one ``/`` (values filled in are sanitized, the template itself never is)."""
    pieces = [text for text, *_ in string.Formatter().parse(template)]
    literal = "".join(pieces)
    if literal.count("/") != 1:
        raise ReleaseConfigError(
            f"repo template {template!r} must have exactly one '/' (namespace/name); "
            "the Hub has no nested repos"
        )
    bad = sorted(set(_INVALID_CHARS.findall(literal.replace("/", ""))))
    bad += [sequence for sequence in ("--", "..") if any(sequence in piece for piece in pieces)]
    if bad:
        raise ReleaseConfigError(
            f"repo template {template!r} contains {bad}: repo ids use only letters, digits, '-', '_', '.'"
        )


def render_repo_id(template: str, values: dict[str, Any]) -> str:
    """Render a repo template; values are sanitized, the namespace is used as given and must be valid."""
    try:
        _check_template_text(template)
        name = template.format(
            **{k: (v if k == "namespace" else sanitize_name(str(v))) for k, v in values.items()}
        )
    except (KeyError, IndexError, ValueError) as err:
        if isinstance(err, ReleaseConfigError):
            raise
        raise ReleaseConfigError(
            f"repo template {template!r} uses unknown field {err}; available: {sorted(values)}"
        ) from None
    namespace, _, rest = name.partition("/")
    return validate_repo_id(f"{namespace}/{sanitize_name(rest)}" if rest else name)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ReleaseConfig:
    """Read a YAML release config (a path, or a name under ``configs/release/``) and apply
    ``key=value`` overrides (dotted keys), as every CLI's ``--config``/``--set`` do."""
    return resolve(
        ReleaseConfig,
        Path(path) if path is not None else None,
        overrides or [],
        configs=configs_dir() / "release",
    )


def config_dict(config: ReleaseConfig) -> dict[str, Any]:
    return asdict(config)


def with_namespace(config: ReleaseConfig, namespace: str) -> ReleaseConfig:
    return replace(config, namespace=namespace)
