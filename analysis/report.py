"""The report: runs every analysis, writes tables, figures, ``report.md`` and a self-contained
``report.html`` (figures embedded as base64 PNG, no external URL). One failing section becomes a note
in the report (and on stderr); the other sections are still produced."""

from __future__ import annotations

import base64
import html
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import consistency, factors, figures, predictors, synergy
from analysis.common import MissingInputError, flagged_note, headline_tasks
from analysis.config import DEFAULT_CONFIG, AnalysisConfig
from analysis.gains import compute_gains, missing_base_models
from analysis.layer_correlation import layer_gain_correlation, model_gain
from analysis.model_map import summarise
from common.catalog import JUDGED_BENCHMARKS
from common.io import write_parquet, write_text


@dataclass
class Section:
    title: str
    sentences: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    notes: list[str] = field(default_factory=list)  # missing inputs, failures, caveats


@dataclass
class Inputs:
    scores: pd.DataFrame
    perplexity: pd.DataFrame | None = None
    layers: pd.DataFrame | None = None
    model_map: pd.DataFrame | None = None  # model_map.parquet of `python -m analysis map`
    quality: dict | list | None = None  # quality.json: evaluation.quality.assess output
    training_texts: dict[str, list[str]] | None = None
    benchmark_texts: dict[str, list[str]] | None = None
    notes: list[str] = field(default_factory=list)  # why an optional input is absent


class ReportBuilder:
    def __init__(self, out: Path, config: AnalysisConfig = DEFAULT_CONFIG):
        self.out, self.config = Path(out), config
        self.sections: list[Section] = []
        self.tables: dict[str, pd.DataFrame] = {}

    def table(self, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        self.tables[name] = frame
        write_parquet(self.out / "tables" / f"{name}.parquet", frame)
        return frame

    def figure(self, section: Section, name: str, fig, caption: str) -> None:
        figures.save(fig, self.out / "figures" / f"{name}.png", self.config.figure_dpi)
        section.figures.append((f"figures/{name}.png", caption))

    def run(self, title: str, body: Callable[[Section], None]) -> Section:
        """Run one section; a missing input or an error becomes a note and the report goes on."""
        section = Section(title)
        try:
            body(section)
        except MissingInputError as error:
            section.notes.append(f"Not available: {error}")
            print(f"[analysis] {title}: not available: {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001 - one broken section must not lose the report
            section.notes.append(f"This section failed: {type(error).__name__}: {error}")
            print(f"[analysis] {title} failed:\n{traceback.format_exc()}", file=sys.stderr)
        self.sections.append(section)
        return section


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if pd.isna(value) else f"{value:+.{digits}f}"


class StudyReport(ReportBuilder):
    """The sections of the study, in reading order."""

    def build(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.gains = None
        self.synergy = None
        self.run("Data quality", self.quality_section)
        self.run("Gains", self.gains_section)
        for title, body in (
            ("Training-task synergy", self.synergy_section),
            ("Cross-model consistency", self.consistency_section),
            ("Training factors", self.factors_section),
            ("Predictors of gains", self.predictors_section),
            ("Predicting gains before training", self.prediction_section),
            ("Layer-wise weight change", self.layers_section),
        ):
            self.run(title, self._needs_gains(body))
        self.run("Model map", self.model_map_section)

    def _needs_gains(self, body: Callable[[Section], None]) -> Callable[[Section], None]:
        def wrapped(section: Section) -> None:
            if self.gains is None:
                raise MissingInputError("needs the gains, which could not be computed (see Gains)")
            body(section)

        return wrapped

    # --- sections -------------------------------------------------------------------------------
    def quality_section(self, s: Section) -> None:
        scores = self.inputs.scores
        flagged = scores["flags"].fillna("").astype(str).str.len().gt(0)
        s.sentences.append(
            f"The scores table has {len(scores)} score rows of {scores['model_id'].nunique()} "
            f"models; {int(flagged.sum())} rows carry data-quality flags."
        )
        s.notes.extend(self.inputs.notes)
        if self.inputs.quality is None:
            s.notes.append("No quality.json was given (--quality): importer findings are not shown.")
            return
        lines, table = quality_lines(self.inputs.quality)
        self.table("quality", table)
        s.sentences.append(f"The importer reported {len(lines)} findings:")
        s.sentences.extend(f"- {line}" for line in lines)

    def gains_section(self, s: Section) -> None:
        scores = self.inputs.scores
        if missing := missing_base_models(scores):
            s.notes.append(
                f"Base models without base-model (pretrain) rows, their runs get no gain: {missing}"
            )
        if unjudged := [b for b in JUDGED_BENCHMARKS if b not in set(scores["benchmark"])]:
            s.notes.append(
                f"No {' or '.join(unjudged)} scores: these benchmarks need a judge model "
                "(`python -m evaluation judge --judge-url URL`, or `--judge-url` on the demo pipeline)."
            )
        gains = self.table("gains", compute_gains(scores))
        self.gains = gains
        self.tasks = headline_tasks(gains)
        positive = float((gains["gain"] > 0).mean())
        s.sentences.append(
            f"{gains['model_id'].nunique()} fine-tuned models of "
            f"{gains['base_model_name'].nunique()} base models have {len(gains)} gains over "
            f"{gains['task'].nunique()} benchmark settings; {_pct(positive)} of them are positive "
            f"(median {gains['gain'].median():+.2f} points)."
        )
        by_task = gains.groupby("task")["gain"].mean().reindex(self.tasks).sort_values()
        s.sentences.append(
            f"Largest mean gain: {by_task.index[-1]} ({by_task.iloc[-1]:+.2f}); smallest: "
            f"{by_task.index[0]} ({by_task.iloc[0]:+.2f})."
        )
        s.notes.append(flagged_note(int(gains["flagged"].sum()), len(gains), "gains"))
        self.figure(
            s,
            "gains_distribution",
            figures.gain_distribution(gains, self.tasks),
            "Distribution of gains per benchmark (box: quartiles, whiskers: 1.5 IQR).",
        )

    def synergy_section(self, s: Section) -> None:
        condition = synergy.resolve_main_condition(self.gains, self.config)
        table = self.table("synergy", synergy.synergy_table(self.gains, condition))
        self.synergy, self.condition = table, condition
        if condition.note:
            s.notes.append(f"Main condition adapted to the data: {condition.note}.")
        agreement = self.table("synergy_agreement", synergy.synergy_agreement(table))
        s.sentences.append(
            f"Main condition: {condition.describe()}; {table['base_model_name'].nunique()} base "
            f"models, {table['dataset'].nunique()} datasets, {table['task'].nunique()} benchmarks."
        )
        multi = agreement[agreement["n_models"] >= 2]
        for method, rows in multi.groupby("method"):
            counts = rows["kind"].value_counts()
            s.sentences.append(
                f"{method}: of {len(rows)} (dataset, benchmark) cells, {counts.get('universal-positive', 0)} "
                f"are universally positive and {counts.get('universal-negative', 0)} universally negative "
                f"(same sign for all models); {counts.get('model-specific', 0)} are model-specific; "
                f"mean share of models with the majority sign {_pct(rows['share_same_sign'].mean())}."
            )
            top = rows[rows["kind"] == "universal-positive"].nlargest(3, "mean_gain")
            if not top.empty:
                s.sentences.append(
                    "Strongest universal synergies: "
                    + "; ".join(
                        f"{d} → {t} ({g:+.2f})"
                        for d, t, g in zip(top["dataset"], top["task"], top["mean_gain"], strict=False)
                    )
                    + "."
                )
            self.figure(
                s,
                f"synergy_agreement_{method}",
                figures.agreement_heatmap(agreement, method),
                f"{method}: mean gain across base models per cell, with the share of models sharing its sign.",
            )
        s.notes.append(flagged_note(int(table["flagged"].sum()), len(table), "synergy cells"))
        for method in sorted(table["method"].unique()):
            self.figure(
                s,
                f"synergy_models_{method}",
                figures.synergy_grid(table, method),
                f"{method}: synergy matrix of each base model (colour scale clipped at the 98th percentile).",
            )

    def _require_synergy(self) -> pd.DataFrame:
        if self.synergy is None:
            raise MissingInputError("needs the synergy matrices (see Training-task synergy)")
        return self.synergy

    def consistency_section(self, s: Section) -> None:
        table = self._require_synergy()
        pairs = self.table("model_correlation", consistency.model_correlations(table, self.config.min_models))
        for method in sorted(pairs["method"].unique()):
            rows = pairs[pairs["method"] == method]
            if rows["pearson"].notna().sum() == 0:
                s.notes.append(f"{method}: too few common cells for a correlation between models.")
                continue
            best = rows.loc[rows["pearson"].idxmax()]
            s.sentences.append(
                f"{method}: mean correlation between models' synergy matrices Pearson "
                f"{rows['pearson'].mean():.2f}, Spearman {rows['spearman'].mean():.2f} over "
                f"{len(rows)} pairs; most similar {best['model_a']} & {best['model_b']} "
                f"(r = {best['pearson']:.2f})."
            )
            matrix = consistency.correlation_matrix(pairs, method)
            self.figure(
                s,
                f"model_correlation_{method}",
                figures.clustered_correlation(
                    matrix, f"{method}: Pearson correlation between base models' synergy matrices"
                ),
                "Models ordered by average-linkage hierarchical clustering.",
            )
        if table["base_model_name"].nunique() < 2:
            s.notes.append("Only one base model: no correlation between models (needs at least two).")
        decomposition = self.table("variance_decomposition", consistency.variance_decomposition(table))
        if decomposition.empty:
            s.notes.append("Variance decomposition needs at least 2 models x 2 datasets with complete gains.")
        for method, rows in decomposition.groupby("method"):
            s.sentences.append(
                f"{method}: across {len(rows)} benchmarks, the dataset explains on average "
                f"{_pct(rows['share_dataset'].mean())} of the gain variance, the base model "
                f"{_pct(rows['share_model'].mean())}, their interaction "
                f"{_pct(rows['share_interaction'].mean())}."
            )
            self.figure(
                s,
                f"variance_{method}",
                figures.variance_bars(decomposition, method),
                f"{method}: two-way decomposition of the gain variance per benchmark.",
            )
        explained, scores = consistency.gain_pca(table)
        self.table("pca_explained", explained)
        self.table("pca_scores", scores)
        s.sentences.append(
            f"PCA of the standardized gains of {len(scores)} models: the first component explains "
            f"{_pct(explained['explained_variance_ratio'].iloc[0])}, the first two "
            f"{_pct(explained['cumulative'].iloc[min(1, len(explained) - 1)])}."
        )
        self.figure(s, "pca", figures.pca_plot(explained, scores), "PCA of gains.")

    def factors_section(self, s: Section) -> None:
        comparisons = self.table("factor_comparisons", factors.factor_comparisons(self.gains))
        if comparisons.empty:
            s.notes.append("No paired runs (LoRA vs full, 1k vs 20k, cosine vs constant) in the table.")
        for factor, rows in comparisons.groupby("factor", sort=False):
            a, b = rows["level_a"].iloc[0], rows["level_b"].iloc[0]
            significant = int((rows["p_value"] < 0.05).sum())
            s.sentences.append(
                f"{factor} ({a} − {b}): over {rows['n_pairs'].sum()} pairs in {len(rows)} benchmarks, the mean "
                f"difference is {rows['mean_diff'].mean():+.2f} points; {a} wins {_pct(rows['share_a_wins'].mean())} "
                f"of pairs, {b} {_pct(rows['share_b_wins'].mean())}; Wilcoxon p < 0.05 in {significant} benchmarks."
            )
            s.notes.append(
                flagged_note(int(rows["n_flagged"].sum()), int(rows["n_pairs"].sum()), f"{factor} pairs")
            )
        if not comparisons.empty:
            self.figure(
                s,
                "factors",
                figures.factor_plot(comparisons, self.tasks),
                "Paired differences per factor (text: share of pairs the first level wins).",
            )
        curves = self.table("epoch_curves", factors.epoch_curves(self.gains))
        for (study, method, size), rows in curves.groupby(["study", "method", "data_size"]):
            per_epoch = rows.groupby("epoch")["mean_gain"].mean()
            s.sentences.append(
                f"Epochs, {study} {method} {size}: mean gain over benchmarks "
                f"{per_epoch.iloc[0]:+.2f} at epoch {per_epoch.index[0]}, best "
                f"{per_epoch.max():+.2f} at epoch {per_epoch.idxmax()}, {per_epoch.iloc[-1]:+.2f} "
                f"at epoch {per_epoch.index[-1]}."
            )
        if curves.empty:
            s.notes.append("No run with several epochs: no epoch curves.")
        else:
            self.figure(s, "epochs", figures.epoch_plot(curves, self.tasks), "Mean gain per epoch.")
        transfer = self.table(
            "cross_lingual", factors.cross_lingual(self.gains, min_models=self.config.min_models)
        )
        pooled = transfer[transfer["base_model_name"] == "all"]
        if pooled.empty:
            s.notes.append("Cross-lingual transfer needs mmlu and cmmlu/jmmlu scores: not in the table.")
        for _, row in pooled.iterrows():
            s.sentences.append(
                f"Cross-lingual: gains on {row['source_task']} and {row['target_task']} correlate "
                f"with Pearson r = {row['pearson']:.2f}, Spearman {row['spearman']:.2f} "
                f"(n = {row['n_models']} models)."
            )
        if not pooled.empty and pooled["pearson"].notna().any():
            self.figure(
                s,
                "cross_lingual",
                figures.cross_lingual_plot(self.gains, pooled),
                "Gains on English MMLU vs Chinese (CMMLU) and Japanese (JMMLU) MMLU, one dot per model.",
            )

    def predictor_values(self) -> pd.DataFrame:
        table = self._require_synergy()
        ppl = sim = lengths = None
        notes = []
        if self.inputs.perplexity is not None:
            ppl = predictors.perplexity_features(
                self.inputs.perplexity, self.config.perplexity_scope, self.condition.data_size
            )
        else:
            notes.append("perplexity (no --perplexity table)")
        if self.inputs.training_texts and self.inputs.benchmark_texts:
            sim = predictors.similarity_features(
                self.inputs.training_texts,
                self.inputs.benchmark_texts,
                self.config,
                self.out / "cache" / "embeddings",
            )
        else:
            notes.append(
                "surface similarity ("
                + (
                    "no training data, pass --data-dir"
                    if not self.inputs.training_texts
                    else "no benchmark texts"
                )
                + ")"
            )
        if self.inputs.training_texts and ppl is None:
            lengths = predictors.word_lengths(self.inputs.training_texts)
        self.predictor_notes = notes
        return predictors.predictor_values(table, ppl, sim, lengths)

    def predictors_section(self, s: Section) -> None:
        values = self.table("predictor_values", self.predictor_values())
        for missing in self.predictor_notes:
            s.notes.append(f"Not available: {missing}.")
        correlations = self.table(
            "predictor_correlations", predictors.predictor_correlations(values, self.config.min_datasets)
        )
        if correlations.empty:
            raise MissingInputError(
                f"no predictor could be correlated with gains (needs at least "
                f"{self.config.min_datasets} datasets per base model with predictor values)"
            )
        summary = self.table("predictor_summary", predictors.predictor_summary(correlations))
        pooled = summary[summary["task"] == "all"].sort_values("mean_abs_spearman", ascending=False)
        for _, row in pooled.iterrows():
            s.sentences.append(
                f"{row['method']}, {row['predictor']}: mean within-model Spearman with gain "
                f"{row['mean_spearman']:+.2f} (mean |rho| {row['mean_abs_spearman']:.2f}), sign "
                f"consistency {_pct(row['sign_consistency'])} over {row['n_models']} models."
            )
        task = self.tasks[0] if self.tasks else values["task"].iloc[0]
        self.figure(
            s,
            "predictors",
            figures.predictor_plot(summary, values, task),
            f"Left: mean within-model rank correlation; right: predictor vs gain on {task}.",
        )

    def prediction_section(self, s: Section) -> None:
        values = self.tables.get("predictor_values")
        if values is None or values["log_perplexity"].isna().all():
            raise MissingInputError("the gain predictor is fitted on perplexity: pass --perplexity")
        values = values[values["method"] == self.config.predictor_method]
        errors = self.table("prediction_lodo", predictors.lodo_errors(predictors.lodo_predictions(values)))
        if not (errors["task"] == "all").any():
            raise MissingInputError(
                "leave-one-dataset-out needs at least two datasets with perplexity and gains "
                f"per base model ({values['dataset'].nunique()} here)"
            )
        overall = errors[errors["task"] == "all"].iloc[0]
        s.sentences.append(
            f"Leave-one-dataset-out ({self.config.predictor_method}): the perplexity model's mean "
            f"absolute error is {overall['model_mae']:.2f} points vs {overall['baseline_mae']:.2f} for "
            f"a baseline predicting the model's mean gain (n = {overall['n']})."
        )
        self.figure(
            s, "prediction_lodo", figures.lodo_plot(errors), "Leave-one-dataset-out error per benchmark."
        )

    def layers_section(self, s: Section) -> None:
        if self.inputs.layers is None:
            raise MissingInputError("no layers table (run `python -m analysis layers`, pass --layers)")
        table = self.table(
            "layer_correlation",
            layer_gain_correlation(
                self.inputs.layers,
                model_gain(self.gains, self.tasks),
                self.config.depth_bins,
                self.config.min_models,
            ),
        )
        valid = table.dropna(subset=["pearson"])
        if valid.empty:
            s.notes.append(f"Fewer than {self.config.min_models} models per depth bin: no correlation.")
        else:
            peak = valid.loc[valid["pearson"].idxmax()]
            s.sentences.append(
                f"The correlation between relative weight change and mean gain peaks at depth "
                f"{peak['depth_bin']:.2f} (r = {peak['pearson']:.2f}, n = {peak['n_models']} models)."
            )
        top = table.loc[table["mean_relative"].idxmax()]
        s.sentences.append(
            f"The mean relative change is largest at depth {top['depth_bin']:.2f} "
            f"({top['mean_relative']:.3g})."
        )
        self.figure(
            s, "layers", figures.layer_plot(table), "Relative change and its correlation with gain by depth."
        )

    def model_map_section(self, s: Section) -> None:
        if self.inputs.model_map is None:
            raise MissingInputError(
                "no model map: it needs the models' weights; run `python -m analysis map --root "
                "ROOT` on trained checkpoints and pass --model-map ROOT/model_map.parquet"
            )
        frame = self.table("model_map", self.inputs.model_map)
        summary = summarise(frame)
        if pd.isna(summary.separation):
            s.notes.append(
                "One base model (or one model per base model): whether models cluster by base model "
                "cannot be measured; map more base models."
            )
        else:
            verdict = (
                "models cluster by base model"
                if summary.clusters_by_base
                else "base models are not clearly separated on this map"
            )
            s.sentences.append(
                f"On the map of {len(frame)} models ({frame['base_model'].nunique()} base models), "
                f"the nearest model of {_pct(summary.neighbour_agreement)} of them shares their base "
                f"model (chance: {_pct(summary.chance_agreement)}), and models of different base "
                f"models lie {summary.separation:.1f} times as far apart as models of the same one "
                f"(mean distance {summary.between_base:.3g} vs {summary.within_base:.3g}): {verdict}."
            )
        if summary.to_base:
            moves = ", ".join(f"{method} {distance:.3g}" for method, distance in summary.to_base.items())
            s.sentences.append(
                f"Median distance of a fine-tuned model from its base model, by method: {moves}."
            )
        self.figure(
            s,
            "model_map",
            figures.model_map_plot(frame),
            "Models placed by their centred log-likelihoods of a fixed text set (PCA); stars are base models.",
        )


def quality_lines(quality: dict | list) -> tuple[list[str], pd.DataFrame]:
    """Readable findings and a one-column table (``finding``) from quality.json."""
    if isinstance(quality, dict):
        lines = [str(line) for line in quality.get("summary", [])]
        flags = quality.get("flags", {})
        counts = {code: sum(len(v) for v in where.values()) for code, where in flags.items()}
        lines += [f"Flag {code} attached to {n} cells/columns/models." for code, n in counts.items() if n]
    else:
        lines = [str(item.get("message", item)) if isinstance(item, dict) else str(item) for item in quality]
    table = pd.DataFrame({"finding": lines})
    return lines, table


# --- rendering -----------------------------------------------------------------------------------


def render_markdown(sections: list[Section], title: str) -> str:
    lines = [f"# {title}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        lines += [f"> **Note:** {n}" for n in section.notes if n] + ([""] if any(section.notes) else [])
        lines += [f"{s}" if s.startswith("- ") else f"{s}\n" for s in section.sentences] + [""]
        for path, caption in section.figures:
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em;line-height:1.45}"
    "img{max-width:100%;border:1px solid #ddd}.note{background:#fff4d6;border-left:4px solid #e0a800;"
    "padding:.4em .8em;margin:.4em 0}figcaption{font-style:italic;color:#444}"
)


def render_html(sections: list[Section], title: str, root: Path) -> str:
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<div class='note'>{html.escape(n)}</div>" for n in section.notes if n]
        bullets = [s for s in section.sentences if s.startswith("- ")]
        parts += [f"<p>{html.escape(s)}</p>" for s in section.sentences if not s.startswith("- ")]
        if bullets:
            parts.append("<ul>" + "".join(f"<li>{html.escape(b[2:])}</li>" for b in bullets) + "</ul>")
        for path, caption in section.figures:
            data = base64.b64encode((root / path).read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(caption)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(
    inputs: Inputs,
    out: Path,
    config: AnalysisConfig = DEFAULT_CONFIG,
    title: str = "Massive SFT: analysis report",
) -> StudyReport:
    """Compute everything and write ``out/{tables,figures}``, ``report.md`` and ``report.html``."""
    report = StudyReport(Path(out), config)
    report.build(inputs)
    write_text(report.out / "report.md", render_markdown(report.sections, title))
    write_text(report.out / "report.html", render_html(report.sections, title, report.out))
    return report
