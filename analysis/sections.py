"""The sections of the study's report, in reading order (``SECTIONS``). Each is a function of the
explicit ``Context`` and the ``Section`` it fills: it reads earlier results only with ``ctx.need`` and
publishes every number it states with ``ctx.table`` (``tables/<name>.parquet``).

Sentences never average tasks on different scales: pooled numbers are over the tasks scored in percent
(percentage points), MT-Bench (1-10) is given on its own, and benchmarks whose base rows fail the answer
format (format learning) are set apart."""

from __future__ import annotations

import pandas as pd

from analysis import consistency, factors, figures, predictors, synergy
from analysis.common import MissingInputError, count, flagged_note, headline_tasks, is_percent_task
from analysis.context import Context, Inputs, Section, SectionBody
from analysis.gains import compute_gains, missing_base_models
from analysis.layer_correlation import layer_gain_correlation, model_gain
from analysis.model_map import summarise
from common.catalog import JUDGED_BENCHMARKS

# The study's headline benchmarks (epochs figure, dataset-effect table, best-epoch comparisons).
HEADLINE_BENCHMARKS = ("mtbench", "alpaca_eval_v2", "mmlu", "gsm8k", "humaneval", "mbpp")
ALPHA = 0.05  # significance level of the Benjamini-Hochberg adjusted p-values
FEW_PAIRS = 3  # fewer pairs per benchmark than this: no conclusion is drawn
CLUSTER_RATIO = 1.5  # a between/within distance ratio below this does not support "models cluster"
STUDY_COMPONENTS = 5  # the paper: about 5 components explain about 90% of the gain variance
MIN_DEPTH_BINS = 3  # a peak of the layer correlation needs at least this many depth bins
PERPLEXITY_COMMANDS = (
    'python -m training prepare --grid paper --root outputs/paper --only "data_size=1000" && '
    'python -m evaluation perplexity --grid paper --root outputs/paper --only "data_size=1000" --device cuda'
)


def _pct(value: float) -> str:
    return "n/a" if pd.isna(value) else f"{value:.0%}"


def _num(value: float, digits: int = 2) -> str:
    return "n/a" if pd.isna(value) else f"{value:+.{digits}f}"


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _gains(ctx: Context) -> pd.DataFrame:
    return ctx.need("gains", "Gains")


def _format_tasks(ctx: Context) -> set[str]:
    table = ctx.tables.get("format_learning")
    return set() if table is None else set(table["task"].astype(str))


def _comparable(tasks, ctx: Context) -> list[str]:
    """Tasks scored in percent whose base rows answer in format: the ones a pooled sentence may use."""
    excluded = _format_tasks(ctx)
    return [t for t in tasks if is_percent_task(t) and t not in excluded]


def _headline(gains: pd.DataFrame) -> list[str]:
    """One task per headline benchmark of the study; the most common tasks when none is present."""
    tasks = headline_tasks(gains)
    chosen = [t for b in HEADLINE_BENCHMARKS for t in tasks if t.rsplit("-", 1)[0] == b]
    return chosen or tasks[:6]


# --- data quality and gains ------------------------------------------------------------------------


def quality_section(ctx: Context, s: Section) -> None:
    scores = ctx.inputs.scores
    flagged = scores["flags"].fillna("").astype(str).str.len().gt(0)
    counts = pd.DataFrame(
        [
            {
                "score_rows": len(scores),
                "models": scores["model_id"].nunique(),
                "flagged_rows": int(flagged.sum()),
            }
        ]
    )
    ctx.table(s, "quality_counts", counts)
    s.sentences.append(
        f"The scores table has {len(scores)} score rows of {scores['model_id'].nunique()} "
        f"models; {int(flagged.sum())} rows carry data-quality flags."
    )
    s.notes.extend(ctx.inputs.notes)
    if ctx.inputs.quality is None:
        s.notes.append("No quality.json was given (--quality): importer findings are not shown.")
        return
    lines, table = quality_lines(ctx.inputs.quality)
    ctx.table(s, "quality", table)
    s.sentences.append(f"The importer reported {_plural(len(lines), 'finding')}:")
    s.sentences.extend(f"- {line}" for line in lines)


def quality_lines(quality: dict | list) -> tuple[list[str], pd.DataFrame]:
    """Readable findings and a one-column table (``finding``) from quality.json."""
    if isinstance(quality, dict):
        lines = [str(line) for line in quality.get("summary", [])]
        flags = quality.get("flags", {})
        counts = {code: sum(len(v) for v in where.values()) for code, where in flags.items()}
        lines += [f"Flag {code} attached to {n} cells/columns/models." for code, n in counts.items() if n]
    else:
        lines = [str(item.get("message", item)) if isinstance(item, dict) else str(item) for item in quality]
    return lines, pd.DataFrame({"finding": lines})


def gain_summary(gains: pd.DataFrame, format_tasks: set[str]) -> pd.DataFrame:
    grouped = gains.assign(positive=gains["gain"] > 0).groupby("task", observed=True)
    table = grouped.agg(
        n=("gain", "size"),
        mean_gain=("gain", "mean"),
        median_gain=("gain", "median"),
        share_positive=("positive", "mean"),
    ).reset_index()
    table["task"] = table["task"].astype(str)
    table["scale"] = ["percent" if is_percent_task(t) else "1-10" for t in table["task"]]
    table["format_learning"] = table["task"].isin(format_tasks)
    return table


def gains_section(ctx: Context, s: Section) -> None:
    scores = ctx.inputs.scores
    if missing := missing_base_models(scores):
        s.notes.append(f"Base models without base-model (pretrain) rows, their runs get no gain: {missing}")
    if unjudged := [b for b in JUDGED_BENCHMARKS if b not in set(scores["benchmark"])]:
        s.notes.append(
            f"No {' or '.join(unjudged)} scores: these benchmarks need a judge model "
            "(`python -m evaluation judge --judge-url URL`, or `--judge-url` on the demo pipeline)."
        )
    gains = ctx.table(s, "gains", compute_gains(scores))
    formats = synergy.format_learning_tasks(gains)
    n_base = gains["base_model_name"].nunique()
    ctx.table(
        s,
        "format_learning",
        pd.DataFrame(
            {
                "task": list(formats),
                "n_base_models_failing": [len(v) for v in formats.values()],
                "base_models": [", ".join(v) for v in formats.values()],
            }
        ),
    )
    summary = ctx.table(s, "gain_summary", gain_summary(gains, set(formats)))
    s.sentences.append(
        f"{gains['model_id'].nunique()} fine-tuned models of {n_base} base models have {len(gains)} gains "
        f"over {gains['task'].nunique()} benchmark settings; {_pct(float((gains['gain'] > 0).mean()))} of "
        "them are positive."
    )
    if formats:
        s.sentences.append(
            "Set apart as format learning (the base model fails the answer format: a few-shot score near "
            "zero while its zero-shot score is normal, so the gain mostly measures learning the format): "
            + "; ".join(f"{t} ({len(m)} of {n_base} base models)" for t, m in formats.items())
            + ". Headline sentences leave these benchmarks out."
        )
    headline = summary[summary["task"].isin(_comparable(headline_tasks(gains), ctx))]
    headline = headline.sort_values("mean_gain")
    if not headline.empty:
        s.sentences.append(
            f"Over the {_plural(len(headline), 'benchmark')} scored in percent ({', '.join(sorted(headline['task']))}), "
            f"the largest mean gain is on {headline['task'].iloc[-1]} ({_num(headline['mean_gain'].iloc[-1])} "
            f"points) and the smallest on {headline['task'].iloc[0]} ({_num(headline['mean_gain'].iloc[0])})."
        )
    mtbench = summary[summary["task"] == "mtbench-total"]
    if not mtbench.empty:
        s.sentences.append(
            f"MT-Bench (1-10 scale): mean gain {_num(mtbench['mean_gain'].iloc[0])}, positive for "
            f"{_pct(mtbench['share_positive'].iloc[0])} of {count(mtbench['n'].iloc[0])} models."
        )
    s.notes.append(flagged_note(int(gains["flagged"].sum()), len(gains), "gains"))
    ctx.figure(
        s,
        "gains_distribution",
        figures.gain_distribution(gains, headline_tasks(gains)),
        "Distribution of gains per benchmark (box: quartiles, whiskers: 1.5 IQR, dots: outliers); "
        "percent-scored benchmarks and MT-Bench (1-10) on separate axes.",
    )


# --- synergy, dataset effects, consistency -------------------------------------------------------------


def synergy_section(ctx: Context, s: Section) -> None:
    gains = _gains(ctx)
    condition = synergy.resolve_main_condition(gains, ctx.config)
    ctx.table(
        s,
        "main_condition",
        pd.DataFrame(
            [
                {
                    "data_size": condition.data_size,
                    "schedule": condition.schedule,
                    "epoch": condition.epoch,
                    "note": condition.note,
                }
            ]
        ),
    )
    table = ctx.table(s, "synergy", synergy.synergy_table(gains, condition))
    if condition.note:
        s.notes.append(f"Main condition adapted to the data: {condition.note}.")
    agreement = ctx.table(s, "synergy_agreement", synergy.synergy_agreement(table))
    n_models = table["base_model_name"].nunique()
    s.sentences.append(
        f"Main condition: {condition.describe()}; {n_models} base models, {table['dataset'].nunique()} "
        f"datasets, {table['task'].nunique()} benchmarks."
    )
    if n_models < 3:
        s.notes.append(
            f"Only {_plural(n_models, 'base model')}: 'universal' below means shared by these models; the "
            "study's claim (synergies shared by all of 11 models) cannot be tested on this data."
        )
    multi = agreement[agreement["n_models"] >= 2]
    kinds = multi.groupby(["method", "kind"]).size().rename("n_cells").reset_index()
    ctx.table(s, "synergy_kinds", kinds)
    formats = _format_tasks(ctx)
    for method, rows in multi.groupby("method"):
        counts = rows["kind"].value_counts()
        s.sentences.append(
            f"{method}: of {len(rows)} (dataset, benchmark) cells, {counts.get('universal-positive', 0)} "
            f"universally positive and {counts.get('universal-negative', 0)} universally negative (same "
            f"sign for all models), {counts.get('model-specific', 0)} model-specific, "
            f"{counts.get('no-change', 0)} without any change (every gain exactly zero); mean share of "
            f"models with the majority sign {_pct(rows['share_same_sign'].mean())}."
        )
        universal = rows[rows["kind"] == "universal-positive"]
        comparable = universal[universal["task"].isin(_comparable(universal["task"].unique(), ctx))]
        top = comparable.nlargest(3, "mean_gain")
        if not top.empty:
            s.sentences.append(
                f"{method}: strongest universal synergies on benchmarks scored in percent (format learning "
                "excluded): "
                + "; ".join(
                    f"{d} → {t} ({g:+.2f} points)"
                    for d, t, g in zip(top["dataset"], top["task"], top["mean_gain"], strict=True)
                )
                + "."
            )
        apart = universal[universal["task"].isin(formats)]
        if not apart.empty:
            s.sentences.append(
                f"{method}: {_plural(len(apart), 'universally positive cell')} on format-learning benchmarks "
                f"({', '.join(sorted(apart['task'].unique()))}) are set apart: the base models fail the "
                "answer format there."
            )
        ctx.figure(
            s,
            f"synergy_agreement_{method}",
            figures.agreement_heatmap(agreement, method),
            f"{method}: mean gain across base models per cell (colour scale per benchmark family), with the "
            "share of models sharing its sign.",
        )
    s.notes.append(flagged_note(int(table["flagged"].sum()), len(table), "synergy cells"))
    for method in sorted(table["method"].unique()):
        ctx.figure(
            s,
            f"synergy_models_{method}",
            figures.synergy_grid(table, method),
            f"{method}: synergy matrix of each base model (one colour scale per benchmark family, clipped at "
            "its 98th percentile).",
        )


def dataset_effects_section(ctx: Context, s: Section) -> None:
    table = ctx.need("synergy", "Training-task synergy")
    gains = _gains(ctx)
    tasks = _headline(gains)
    effects = ctx.table(s, "dataset_effects", synergy.dataset_effects(table, sorted(table["task"].unique())))
    for method in sorted(effects["method"].unique()):
        rows = effects[(effects["method"] == method) & effects["task"].isin(tasks)]
        wide = rows.pivot(index="dataset", columns="task", values="mean_gain").reindex(columns=tasks)
        n = count(rows["n_models"].max())
        ctx.show(
            s,
            f"{method}: mean gain per SFT dataset over {_plural(n, 'base model')} (main condition; MT-Bench "
            "in 1-10 points, the others in percentage points; every benchmark in the file)",
            "dataset_effects",
            wide.reset_index(),
        )


def consistency_section(ctx: Context, s: Section) -> None:
    table = ctx.need("synergy", "Training-task synergy")
    pairs = ctx.table(s, "model_correlation", consistency.model_correlations(table, ctx.config.min_models))
    for method in sorted(pairs["method"].unique()):
        rows = pairs[pairs["method"] == method]
        if rows["pearson"].notna().sum() == 0:
            s.notes.append(f"{method}: too few common cells for a correlation between models.")
            continue
        best = rows.loc[rows["pearson"].idxmax()]
        similar = (
            f"; most similar {best['model_a']} & {best['model_b']} (r = {best['pearson']:.2f})"
            if len(rows) > 1
            else " (one pair: which models are most alike cannot be asked)"
        )
        s.sentences.append(
            f"{method}: mean correlation between models' synergy matrices Pearson {rows['pearson'].mean():.2f}, "
            f"Spearman {rows['spearman'].mean():.2f} over {_plural(len(rows), 'pair')} of models{similar}."
        )
        ctx.figure(
            s,
            f"model_correlation_{method}",
            figures.clustered_correlation(
                consistency.correlation_matrix(pairs, method),
                f"{method}: Pearson correlation between base models' synergy matrices",
            ),
            "Models ordered by average-linkage hierarchical clustering.",
        )
    if table["base_model_name"].nunique() < 2:
        s.notes.append("Only one base model: no correlation between models (needs at least two).")
    decomposition = ctx.table(s, "variance_decomposition", consistency.variance_decomposition(table))
    if decomposition.empty:
        s.notes.append("Variance decomposition needs at least 2 models x 2 datasets with complete gains.")
    for method, rows in decomposition.groupby("method"):
        s.sentences.append(
            f"{method}: across {_plural(len(rows), 'benchmark')}, the dataset explains on average "
            f"{_pct(rows['share_dataset'].mean())} of the gain variance, the base model "
            f"{_pct(rows['share_model'].mean())}, and their interaction {_pct(rows['share_interaction'].mean())}; "
            "with one run per condition the interaction is a residual that also holds run-to-run noise."
        )
        ctx.figure(
            s,
            f"variance_{method}",
            figures.variance_bars(decomposition, method),
            f"{method}: two-way decomposition of the gain variance per benchmark (interaction includes "
            "run-to-run noise).",
        )
    _dataset_pca(ctx, s, table)
    explained, scores = consistency.gain_pca(table)
    ctx.table(s, "pca_explained", explained)
    ctx.table(s, "pca_scores", scores)
    s.sentences.append(
        f"PCA of the standardized gains of {len(scores)} fine-tuned models: the first component explains "
        f"{_pct(explained['explained_variance_ratio'].iloc[0])}, the first two "
        f"{_pct(explained['cumulative'].iloc[min(1, len(explained) - 1)])}."
    )
    ctx.figure(s, "pca", figures.pca_plot(explained, scores), "PCA of gains.")


def _dataset_pca(ctx: Context, s: Section, table: pd.DataFrame) -> None:
    """The paper's claim: about 5 components explain about 90% of the dataset x (model x benchmark)
    gain variance. Stated as measured, next to what shuffled data gives."""
    parts = []
    for method in sorted(table["method"].unique()):
        try:
            parts.append(consistency.dataset_pca(table, method))
        except MissingInputError as error:
            s.notes.append(str(error))
    if not parts:
        return
    pca = ctx.table(s, "dataset_pca", pd.concat(parts, ignore_index=True))
    for method, rows in pca.groupby("method"):
        if len(rows) <= STUDY_COMPONENTS:
            s.notes.append(
                f"{method}: not supported by this data: {count(rows['n_datasets'].iloc[0])} datasets give at most "
                f"{len(rows)} components, so the study's PCA claim (about 90% with {STUDY_COMPONENTS}) cannot be tested."
            )
            continue
        row = rows.iloc[STUDY_COMPONENTS - 1]
        k = STUDY_COMPONENTS
        s.sentences.append(
            f"{method}, the study's PCA design ({count(row['n_datasets'])} datasets x "
            f"{count(row['n_columns'])} (base model x benchmark) cells, each standardised): the first {k} "
            f"components explain {_pct(row['cumulative'])} of the variance (the paper: about 90% with 5); "
            f"shuffled data reaches {_pct(row['null_cumulative'])} with as many, and {len(rows)} components "
            "explain 100% by construction."
        )


# --- training factors ----------------------------------------------------------------------------------


def _stratum_sentence(row: pd.Series) -> str:
    a, b = row["level_a"], row["level_b"]
    head = f"{row['factor']} ({a} − {b}), {row['stratum']}: "
    dropped = (
        f" ({_plural(count(row['n_dropped_copied']), 'pair')} dropped: copied rows)"
        if row["n_dropped_copied"]
        else ""
    )
    per_task = row["n_pairs"] / max(row["n_tasks"], 1)
    if per_task < FEW_PAIRS:
        return (
            head + f"{count(row['n_pairs'])} pairs over {count(row['n_tasks'])} benchmarks{dropped}: too few "
            "to conclude anything."
        )
    return (
        head
        + f"{count(row['n_pairs'])} pairs over {count(row['n_tasks'])} benchmarks{dropped}; {a} significantly "
        f"better on {count(row['n_a_better'])}, {b} on {count(row['n_b_better'])} (Wilcoxon, "
        f"Benjamini-Hochberg adjusted p < {ALPHA}); mean difference over the "
        f"{count(row['n_percent_tasks'])} benchmarks scored in percent {_num(row['mean_diff_percent_tasks'])} "
        "points"
        + ("" if pd.isna(row["mtbench_mean_diff"]) else f", MT-Bench {_num(row['mtbench_mean_diff'])}")
        + "."
    )


def factors_section(ctx: Context, s: Section) -> None:
    gains = _gains(ctx)
    comparisons = ctx.table(s, "factor_comparisons", factors.factor_comparisons(gains))
    if comparisons.empty:
        s.notes.append("No paired runs (LoRA vs full, 1k vs 20k, cosine vs constant) in the table.")
    else:
        s.sentences.append(
            "Pairs differ only in the factor; each regime (stratum) is compared on its own because regimes "
            "can have effects of opposite sign. Rows the importer found copied from another model's are "
            "left out of every pair; differences of two fine-tuned models do not depend on the base row."
        )
        strata = ctx.table(s, "factor_strata", factors.stratum_summary(comparisons, ALPHA))
        s.sentences += [_stratum_sentence(row) for _, row in strata.iterrows()]
        ctx.figure(
            s,
            "factors",
            figures.factor_plot(comparisons, _headline(gains)),
            "Mean paired difference per factor and regime (text: share of pairs the first level wins, pairs).",
        )
    _epoch_findings(ctx, s, gains)
    _best_epoch_size(ctx, s, gains)


def _epoch_findings(ctx: Context, s: Section, gains: pd.DataFrame) -> None:
    curves = ctx.table(s, "epoch_curves", factors.epoch_curves(gains))
    if curves.empty:
        s.notes.append("No run with several epochs: no epoch curves.")
        return
    tasks = _headline(gains)
    rows = curves[curves["task"].isin(tasks)]
    best = rows.loc[rows.groupby(["study", "method", "data_size", "task"])["mean_gain"].idxmax()]
    best = best[["study", "method", "data_size", "task", "epoch", "mean_gain", "n_models"]]
    ctx.table(s, "epoch_best", best.rename(columns={"epoch": "best_epoch", "mean_gain": "best_mean_gain"}))
    for (study, method, size), group in best.groupby(["study", "method", "data_size"]):
        s.sentences.append(
            f"Epochs, {study} {method} {count(size)} samples: best epoch (mean gain) per benchmark: "
            + ", ".join(
                f"{t} {count(e)} ({_num(g)})"
                for t, e, g in zip(group["task"], group["epoch"], group["mean_gain"], strict=True)
            )
            + "."
        )
    ctx.figure(
        s,
        "epochs",
        figures.epoch_plot(curves, tasks),
        "Mean gain per epoch across models on the headline benchmarks (band: 25-75% of models).",
    )


def _best_epoch_size(ctx: Context, s: Section, gains: pd.DataFrame) -> None:
    table = factors.best_epoch_by_size(gains, _headline(gains))
    if table.empty:
        return
    ctx.table(s, "size_best_epoch", table)
    tests = ctx.table(s, "size_best_epoch_test", factors.best_epoch_size_test(table))
    for _, row in tests.iterrows():
        s.sentences.append(
            f"20k vs 1k samples, each at its best epoch, {row['task']}: mean difference {_num(row['mean_diff'])} "
            f"over {count(row['n_pairs'])} (base model, dataset) pairs, 20k better in {_pct(row['share_large_wins'])}; "
            f"BH-adjusted p = {row['p_adjusted']:.3g}."
        )


def leave_one_out_section(ctx: Context, s: Section) -> None:
    gains = _gains(ctx)
    loo = factors.leave_one_out(gains)
    if loo.empty:
        raise MissingInputError("no leave-one-out (w/o-X) runs with a matching 'all' run in the table")
    ctx.table(s, "leave_one_out", loo)
    summary = ctx.table(s, "leave_one_out_summary", factors.leave_one_out_summary(loo))
    models = sorted(loo["base_model_name"].unique())
    s.sentences.append(
        f"w/o-X minus all (the mixture of every dataset) at epoch {count(loo['epoch'].iloc[0])}, per method and "
        f"benchmark, on {', '.join(models)}: a negative difference means dataset X helped the mixture. One "
        "base model and one run per condition: no significance test is possible and every difference "
        "includes run-to-run noise."
    )
    for method, rows in summary.groupby("method"):
        rows = rows.sort_values("mean_diff_percent_tasks")
        dropped = count(loo.loc[loo["method"] == method, "n_dropped_copied"].max())
        helped = rows[rows["mean_diff_percent_tasks"] < 0]["removed"].tolist()
        s.sentences.append(
            f"{method}: over the benchmarks scored in percent, the mean difference ranges from "
            f"{_num(rows['mean_diff_percent_tasks'].iloc[0])} points (w/o-{rows['removed'].iloc[0]}) to "
            f"{_num(rows['mean_diff_percent_tasks'].iloc[-1])} (w/o-{rows['removed'].iloc[-1]}) across "
            f"{_plural(len(rows), 'dataset')}; removing "
            + (
                f"{', '.join(helped)} lowers it (they helped the mixture)"
                if helped
                else "no dataset lowers it"
            )
            + (f"; {_plural(dropped, 'run')} left out as copied" if dropped else "")
            + "."
        )
        wide = loo[(loo["method"] == method) & loo["task"].isin(_headline(gains))].pivot_table(
            index="removed", columns="task", values="diff", aggfunc="mean"
        )
        ctx.show(
            s,
            f"{method}: gain(w/o-X) − gain(all) on the headline benchmarks",
            "leave_one_out",
            wide.reset_index(),
        )


def cross_lingual_section(ctx: Context, s: Section) -> None:
    gains = _gains(ctx)
    transfer = factors.cross_lingual(gains, min_models=ctx.config.min_models)
    pooled = transfer[transfer["base_model_name"] == "all"]
    if pooled.empty:
        raise MissingInputError("cross-lingual transfer needs mmlu and cmmlu/jmmlu scores: not in the table")
    ctx.table(s, "cross_lingual", transfer)
    for _, row in pooled.iterrows():
        s.sentences.append(
            f"Gains on {row['source_task']} and {row['target_task']} correlate with Pearson r = "
            f"{row['pearson']:.2f}, Spearman {row['spearman']:.2f} (n = {count(row['n_models'])} fine-tuned models)."
        )
    groups = ctx.table(
        s, "cross_lingual_groups", factors.cross_lingual_by_language(gains, min_models=ctx.config.min_models)
    )
    for _, row in groups[groups["language"] != "all"].iterrows():
        s.sentences.append(
            f"- {row['language']} base models, {row['source_task']} vs {row['target_task']}: mean gains "
            f"{_num(row['mean_source_gain'])} and {_num(row['mean_target_gain'])} points, r = {row['pearson']:.2f} "
            f"(n = {count(row['n_models'])}, BH-adjusted p = {row['p_adjusted']:.2g})."
        )
    pair = groups[(groups["language"] == "all") & (groups["source_task"] == "jmmlu-0shot")]
    if not pair.empty:
        s.sentences.append(
            f"MMLU-jp vs CMMLU over all models: r = {pair['pearson'].iloc[0]:.2f} "
            f"(n = {count(pair['n_models'].iloc[0])})."
        )
    if pooled["pearson"].notna().any():
        ctx.figure(
            s,
            "cross_lingual",
            figures.cross_lingual_plot(gains, pooled),
            "Gains on English MMLU vs Chinese (CMMLU) and Japanese (JMMLU) MMLU, one dot per model.",
        )


# --- predictors ------------------------------------------------------------------------------------


def _predictor_inputs(ctx: Context, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    inputs: Inputs = ctx.inputs
    condition = ctx.need("main_condition", "Training-task synergy").iloc[0]
    ppl = sim = lengths = None
    missing = []
    if inputs.perplexity is not None:
        ppl = predictors.perplexity_features(
            inputs.perplexity, ctx.config.perplexity_scope, int(condition["data_size"])
        )
    else:
        missing.append("perplexity (no --perplexity table)")
    if inputs.training_texts and inputs.benchmark_texts:
        sim = predictors.similarity_features(
            inputs.training_texts, inputs.benchmark_texts, ctx.config, ctx.out / "cache" / "embeddings"
        )
    else:
        reason = "no training data, pass --data-dir" if not inputs.training_texts else "no benchmark texts"
        missing.append(f"surface similarity ({reason})")
    if inputs.training_texts and ppl is None:
        lengths = predictors.word_lengths(inputs.training_texts)
    return predictors.predictor_values(table, ppl, sim, lengths), missing


def predictors_section(ctx: Context, s: Section) -> None:
    table = ctx.need("synergy", "Training-task synergy")
    values, missing = _predictor_inputs(ctx, table)
    ctx.table(s, "predictor_values", values)
    s.notes += [f"Not available: {m}." for m in missing]
    if ctx.inputs.perplexity is None:
        s.sentences.append(
            "Perplexity as a predictor on the real study needs only the public base weights, not the 1,000 "
            f"fine-tuned models: `{PERPLEXITY_COMMANDS}`, then pass --perplexity outputs/paper/perplexity.parquet. "
            "The study's 1k subsets (sampling seed) are unknown, so a recomputed perplexity approximates theirs."
        )
    correlations = ctx.table(
        s, "predictor_correlations", predictors.predictor_correlations(values, ctx.config.min_datasets)
    )
    if correlations.empty:
        raise MissingInputError(
            f"no predictor could be correlated with gains (needs at least {ctx.config.min_datasets} datasets "
            "per base model with predictor values)"
        )
    summary = ctx.table(s, "predictor_summary", predictors.predictor_summary(correlations))
    pooled = summary[summary["task"] == "all"].sort_values("mean_abs_spearman", ascending=False)
    for _, row in pooled.iterrows():
        s.sentences.append(
            f"{row['method']}, {row['predictor']}: mean within-model Spearman with gain {row['mean_spearman']:+.2f} "
            f"(mean |rho| {row['mean_abs_spearman']:.2f}), sign consistency {_pct(row['sign_consistency'])} over "
            f"{_plural(count(row['n_models']), 'model')}."
        )
    task = (_headline(_gains(ctx)) or [values["task"].iloc[0]])[0]
    ctx.figure(
        s,
        "predictors",
        figures.predictor_plot(summary, values, task),
        f"Left: mean within-model rank correlation; right: predictor vs gain on {task}.",
    )


def prediction_section(ctx: Context, s: Section) -> None:
    values = ctx.tables.get("predictor_values")
    if values is None or values["log_perplexity"].isna().all():
        raise MissingInputError("the gain predictor is fitted on perplexity: pass --perplexity")
    values = values[values["method"] == ctx.config.predictor_method]
    bounds = predictors.gain_bounds(_gains(ctx))
    predictions = pd.concat(
        [
            predictors.lodo_predictions(values, bounds=bounds),
            predictors.lomo_predictions(values, bounds=bounds),
        ],
        ignore_index=True,
    )
    ctx.table(s, "prediction_values", predictions)
    errors = ctx.table(s, "prediction_errors", predictors.prediction_errors(predictions))
    if not (errors["task"] == "all").any():
        raise MissingInputError(
            "leave-one-dataset-out needs at least two datasets with perplexity and gains "
            f"per base model ({values['dataset'].nunique()} here)"
        )
    s.sentences.append(
        f"Fitted on {ctx.config.predictor_method} runs; predictions are clipped to the gains each benchmark's "
        "score range allows. Leave-one-dataset-out (new data, known base model) is compared with predicting "
        "the model's mean gain; leave-one-model-out (new base model) with predicting the dataset's mean gain "
        "over the other models."
    )
    for scheme in ("leave-one-dataset-out", "leave-one-model-out"):
        line = predictors.verdict(errors, scheme)
        (s.notes if "WORSE" in line else s.sentences).append(line)  # a failing predictor is a warning
    ctx.figure(
        s,
        "prediction_lodo",
        figures.lodo_plot(errors),
        "Prediction error per benchmark under both schemes, against each scheme's baseline.",
    )


# --- layers and the model map --------------------------------------------------------------------------


def layers_section(ctx: Context, s: Section) -> None:
    if ctx.inputs.layers is None:
        raise MissingInputError("no layers table (run `python -m analysis layers`, pass --layers)")
    gains = _gains(ctx)
    tasks = _comparable(_headline(gains), ctx)
    table = ctx.table(
        s,
        "layer_correlation",
        layer_gain_correlation(
            ctx.inputs.layers, model_gain(gains, tasks), ctx.config.depth_bins, ctx.config.min_models
        ),
    )
    s.sentences.append(
        f"A model's gain is its mean gain over {', '.join(tasks)} (percent-scored headline benchmarks)."
    )
    valid = table.dropna(subset=["pearson"])
    if valid.empty:
        s.notes.append(f"Fewer than {ctx.config.min_models} models per depth bin: no correlation.")
    elif len(valid) < MIN_DEPTH_BINS:
        s.notes.append(
            f"Not supported by this data: the correlation exists for {_plural(len(valid), 'depth bin')} only "
            f"(the models have too few layers), so where it peaks (the study: middle layers) cannot be tested."
        )
    else:
        peak = valid.loc[valid["pearson"].idxmax()]
        s.sentences.append(
            f"The correlation between relative weight change and mean gain peaks at depth {peak['depth_bin']:.2f} "
            f"(r = {peak['pearson']:.2f}, n = {count(peak['n_models'])} models)."
        )
    top = table.loc[table["mean_relative"].idxmax()]
    s.sentences.append(
        f"The mean relative change is largest at depth {top['depth_bin']:.2f} ({top['mean_relative']:.3g})."
    )
    ctx.figure(
        s, "layers", figures.layer_plot(table), "Relative change and its correlation with gain by depth."
    )


def model_map_section(ctx: Context, s: Section) -> None:
    if ctx.inputs.model_map is None:
        raise MissingInputError(
            "no model map: it needs the models' weights; run `python -m analysis map --root "
            "ROOT` on trained checkpoints and pass --model-map ROOT/model_map.parquet"
        )
    frame = ctx.table(s, "model_map", ctx.inputs.model_map)
    summary = summarise(frame)
    ctx.table(
        s,
        "model_map_summary",
        pd.DataFrame(
            [
                {
                    "n_models": len(frame),
                    "n_base_models": frame["base_model"].nunique(),
                    "neighbour_agreement": summary.neighbour_agreement,
                    "chance_agreement": summary.chance_agreement,
                    "separation": summary.separation,
                    "between_base": summary.between_base,
                    "within_base": summary.within_base,
                    **{f"median_to_base_{m}": d for m, d in summary.to_base.items()},
                }
            ]
        ),
    )
    n_bases = frame["base_model"].nunique()
    if pd.isna(summary.separation):
        s.notes.append(
            "One base model (or one model per base model): whether models cluster by base model "
            "cannot be measured; map more base models."
        )
    else:
        if summary.separation < CLUSTER_RATIO:
            verdict = (
                f"not supported by this data: a ratio under {CLUSTER_RATIO} is too close to 1 to call it "
                "clustering"
            )
        elif summary.clusters_by_base:
            verdict = "models cluster by base model"
        else:
            verdict = "base models are not clearly separated on this map"
        if n_bases < 3:
            verdict += f" (only {n_bases} base models: the study's family clusters cannot be tested)"
        s.sentences.append(
            f"On the map of {len(frame)} models ({n_bases} base models), the nearest model of "
            f"{_pct(summary.neighbour_agreement)} of them shares their base model (chance: "
            f"{_pct(summary.chance_agreement)}), and models of different base models lie "
            f"{summary.separation:.1f} times as far apart as models of the same one (mean distance "
            f"{summary.between_base:.3g} vs {summary.within_base:.3g}): {verdict}."
        )
    if summary.to_base:
        moves = ", ".join(f"{method} {distance:.3g}" for method, distance in summary.to_base.items())
        s.sentences.append(f"Median distance of a fine-tuned model from its base model, by method: {moves}.")
    ctx.figure(
        s,
        "model_map",
        figures.model_map_plot(frame),
        "Models placed by their centred log-likelihoods of a fixed text set (PCA); hollow stars are base models.",
    )


SECTIONS: tuple[tuple[str, SectionBody], ...] = (
    ("Data quality", quality_section),
    ("Gains", gains_section),
    ("Training-task synergy", synergy_section),
    ("Dataset effects", dataset_effects_section),
    ("Cross-model consistency", consistency_section),
    ("Training factors", factors_section),
    ("Leave one dataset out", leave_one_out_section),
    ("Cross-lingual transfer", cross_lingual_section),
    ("Predictors of gains", predictors_section),
    ("Predicting gains before training", prediction_section),
    ("Layer-wise weight change", layers_section),
    ("Model map", model_map_section),
)
