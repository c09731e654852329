"""Model, dataset and Space cards rendered from the jinja2 templates in ``model_cards/``.

Safety rules: the YAML front matter is ``yaml.safe_dump`` of a metadata dict (never templated YAML);
every value printed in the markdown body is escaped by default (the environment's ``finalize``), so a
dataset called ``a|b*<script>`` or one with a newline cannot break a table or inject HTML. Templates
opt out only through the ``code`` filter (a JSON string literal for code blocks) or ``raw`` for text
this module built itself. Undefined variables are errors (StrictUndefined)."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd
import yaml

from common.citation import BIBTEX, PAPER
from common.schema import wide_column

TEMPLATES_DIR = Path(__file__).resolve().parents[1] / "model_cards"
# Values never start a line in the templates, so only inline markup needs escaping ("-" and "." stay).
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~])")


class Raw(str):
    """Text that is already safe for the card body (built here, not taken from data)."""


def md_escape(value: Any) -> str:
    """Escape a data value for a markdown body: one line, markdown punctuation and HTML neutralised."""
    if isinstance(value, Raw):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = " ".join(str(value).split())  # newlines and tabs would end a table row or a heading
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code_literal(value: Any) -> Raw:
    """A value as a JSON (= Python) string literal inside a code block; backticks cannot close it."""
    return Raw(json.dumps(str(value)).replace("`", "\\u0060"))


def fmt_number(value: Any, digits: int = 2) -> Raw:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Raw("–")
    return Raw(f"{float(value):.{digits}f}")


@lru_cache(maxsize=4)
def _environment(templates_dir: str) -> Any:

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=md_escape,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(code=code_literal, num=fmt_number, raw=Raw)
    return env


_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the C dumper: same output, much faster


def front_matter(metadata: dict[str, Any]) -> Raw:
    body = yaml.dump(metadata, Dumper=_SAFE_DUMPER, sort_keys=False, allow_unicode=True, width=10_000)
    return Raw(f"---\n{body}---\n")


def render(
    template: str, metadata: dict[str, Any], templates_dir: Path = TEMPLATES_DIR, **context: Any
) -> str:
    env = _environment(str(templates_dir))
    return env.get_template(template).render(
        front_matter=front_matter(metadata), paper=PAPER, bibtex=Raw(BIBTEX), **context
    )


# ---------------------------------------------------------------- results of one model vs its base


@dataclass(frozen=True)
class ModelResults:
    """Each model's score rows with their gains, read from the release's gains table (``common.gains``,
    also published as ``data/gains.parquet``); built once per release, not once per card."""

    by_model: dict[str, list[dict[str, Any]]]

    @classmethod
    def build(cls, scores: pd.DataFrame, gains: pd.DataFrame) -> ModelResults:
        key = ["model_id", "benchmark", "shots", "metric"]
        base_values = gains[[*key, "base_value", "gain"]].astype({"shots": "Int64"})
        rows = (
            scores[[*key, "value", "flags"]].astype({"shots": "Int64"}).merge(base_values, on=key, how="left")
        )
        rows = rows.dropna(subset=["value"]).sort_values(["benchmark", "shots", "metric"], kind="stable")
        by_model: dict[str, list[dict[str, Any]]] = {}
        for r in rows.to_dict("records"):
            by_model.setdefault(r["model_id"], []).append(
                {
                    "task": wide_column(r["benchmark"], r["shots"], r["metric"]),
                    "benchmark": r["benchmark"],
                    "shots": int(r["shots"]),
                    "metric": r["metric"],
                    "value": float(r["value"]),
                    "base_value": None if pd.isna(r["base_value"]) else float(r["base_value"]),
                    "gain": None if pd.isna(r["gain"]) else float(r["gain"]),
                    "flags": r["flags"] if isinstance(r["flags"], str) else "",
                }
            )
        return cls(by_model)

    def rows(self, model_id: str) -> list[dict[str, Any]]:
        """Rows (task, benchmark, shots, metric, value, base value, gain, flags) of one model."""
        return self.by_model.get(model_id, [])


def model_index(name: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``model-index`` metadata (parsed back by huggingface_hub into ``card.data.eval_results``)."""
    results = [
        {
            "task": {"type": "text-generation", "name": "Text Generation"},
            "dataset": {
                "name": row["benchmark"],
                "type": row["benchmark"],
                "args": {"num_few_shot": row["shots"]},
            },
            "metrics": [
                {
                    "type": row["metric"],
                    "name": f"{row['task']} {row['metric']}",
                    "value": round(row["value"], 4),
                }
            ],
        }
        for row in rows
    ]
    return [{"name": name, "results": results}] if results else []


# ---------------------------------------------------------------- per-card context

_JOB_FIELDS = (
    "epochs",
    "learning_rate",
    "lr_schedule",
    "batch_size",
    "warmup_ratio",
    "weight_decay",
    "max_length",
    "template",
    "loss_on",
    "seed",
)


def dataset_ids(dataset: str, mapping: dict[str, str]) -> list[str]:
    """Hub ids for the ``datasets:`` field: mixtures list their parts. A name with no Hub id (the demo's
    synthetic sets) is left out, since the Hub would link it to a dataset that does not exist."""
    if dataset == "all" and mapping:
        names = list(mapping.values())
    elif dataset.startswith("w/o-") and mapping:
        names = [v for k, v in mapping.items() if k != dataset[4:]]
    else:
        names = [mapping.get(dataset, dataset)]
    return sorted({name for name in names if "/" in name})


def training_rows(job: dict[str, Any], record: dict[str, Any]) -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = [(name, job[name]) for name in _JOB_FIELDS if job.get(name) is not None]
    lora = job.get("lora") or {}
    rows += [(f"lora_{k}", ", ".join(v) if isinstance(v, list) else v) for k, v in lora.items()]
    for key in ("data_hash", "num_samples", "wall_time_s"):
        if record.get(key) is not None:
            rows.append((key, record[key]))
    rows += [
        (f"version of {lib}", version) for lib, version in sorted((record.get("versions") or {}).items())
    ]
    return rows


def model_card(*, group: Any, checkpoint: Any, config: Any, results: ModelResults, mode: str) -> str:
    """The README.md of one revision (``epoch-NN``; ``main`` carries the final epoch's card)."""
    identity, job = group.identity, checkpoint.record.get("job", {})
    adapter = checkpoint.is_adapter or (mode == "results-only" and identity["method"] == "lora")
    rows = results.rows(checkpoint.model_id)
    license_id = config.license.for_base(identity["base_model_name"], identity["base_model"] or "")
    metadata: dict[str, Any] = {
        "license": license_id,
        "base_model": group.base_repo,
        "base_model_relation": "adapter" if adapter else "finetune",
        "datasets": dataset_ids(str(identity["dataset"]), config.dataset_ids),
        "tags": ["massive-sft", "sft", str(identity["method"]), f"sft-dataset-{identity['dataset']}"],
        "pipeline_tag": "text-generation",
        "model-index": model_index(group.repo_id.split("/")[-1], rows),
    }
    if mode == "results-only":
        # No weights here: no library_name, so the Hub offers no loading code for files that are absent.
        metadata["tags"].append("weights-hosted-externally")
        if config.external_weights_url:
            metadata["external_weights_url"] = config.external_weights_url
    else:
        metadata["library_name"] = "peft" if adapter else "transformers"
    for key in ("datasets", "model-index"):
        if not metadata[key]:
            del metadata[key]
    return render(
        "model.md.j2",
        metadata,
        identity=identity,
        repo_id=group.repo_id,
        model_id=checkpoint.model_id,
        epoch=checkpoint.epoch,
        revision=checkpoint.revision,
        revisions=[c.revision for c in group.checkpoints],
        final=group.final.revision,
        adapter=adapter,
        license=license_id,
        base_repo=group.base_repo,
        training=training_rows(job, checkpoint.record),
        results=rows,
        mode=mode,
        weights_url=config.external_weights_url,
        results_repo=config.results_repo(),
    )


def base_model_card(*, base: Any, config: Any) -> str:
    metadata = {
        "license": config.license.for_base(base.name, base.base_model),
        "library_name": "transformers",
        "tags": ["massive-sft", "base-model"],
        "pipeline_tag": "text-generation",
    }
    return render(
        "base_model.md.j2",
        metadata,
        name=base.name,
        repo_id=base.repo_id,
        base_model=base.base_model,
        results_repo=config.results_repo(),
    )


def size_category(rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if rows < limit:
            return name
    return "n>1M"


def dataset_card(
    *,
    configs: list[tuple[str, str]],
    config: Any,
    counts: dict[str, int],
    extra_files: list[str],
    empty: list[str] = (),
) -> str:
    """The results dataset's README: one ``configs:`` entry per non-empty table (an empty parquet file
    cannot be loaded by ``datasets``; ``empty`` lists those tables in the text instead)."""
    metadata = {
        "license": config.license.default,
        "pretty_name": "Massive SFT study results",
        "task_categories": ["text-generation"],
        "size_categories": [size_category(counts.get("scores", 0))],
        "tags": ["massive-sft", "leaderboard", "evaluation"],
        "configs": [
            {
                "config_name": name,
                "data_files": [{"split": "train", "path": path}],
                **({"default": True} if name == "leaderboard" else {}),
            }
            for name, path in configs
        ],
    }
    return render(
        "dataset.md.j2",
        metadata,
        configs=configs,
        counts=counts,
        extra_files=extra_files,
        empty=list(empty),
        repo_id=config.results_repo(),
        space_repo=config.space_repo(),
    )


def space_readme(*, config: Any, results_revision: str = "main") -> str:
    metadata = {
        "title": "Massive SFT leaderboard",
        "emoji": "📊",
        "colorFrom": "blue",
        "colorTo": "green",
        "sdk": "gradio",
        "sdk_version": config.space_sdk_version,
        "app_file": "app.py",
        "pinned": True,
        "license": config.license.default,
        "datasets": [config.results_repo()],
        "short_description": "Leaderboard of the massive SFT study",
    }
    return render("space.md.j2", metadata, results_repo=config.results_repo(), revision=results_revision)
