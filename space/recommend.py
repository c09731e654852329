"""The "What should I train on?" tab: for a base model (one of the results', or a new one described by
its perplexity on the SFT datasets and/or its base scores) and a target benchmark or family, the SFT
datasets ranked by predicted gain with intervals, the evidence and the prediction's leave-one-model-out
error against the mean-gain baseline. Reads only published tables (``analysis/synergy.parquet``, the
leaderboard's base rows, ``analysis/predictor_values.parquet`` for perplexities); the computation is
``common.recommend``, the same as ``python -m analysis recommend``."""

from __future__ import annotations

import gradio as gr
import pandas as pd
import plotly.graph_objects as go

from common.recommend import (
    KINDS,
    Recommendation,
    RecommendError,
    base_scores_of,
    model_profiles,
    new_profile,
    parse_values,
    recommend,
    target_choices,
)
from space.data import Results, ResultsStore

NEW_MODEL = "A new base model (describe it below)"
INTRO = (
    "Pick a base model and the benchmark (or family of benchmarks) you care about: the SFT datasets are "
    "ranked by the gain predicted from the study's measured gains, the closest base models counting "
    "most. The interval and the reliability line come from predicting each base model from the others "
    "alone (leave one model out), against the plain mean over models."
)
MISSING = (
    "*No recommendation: the results dataset has no `analysis/synergy.parquet`. Run `python -m analysis "
    "report`, then publish the results dataset again (`python -m release.publish --root ROOT`).*"
)


def perplexities(results: Results) -> pd.DataFrame | None:
    """Per (base model, dataset) perplexity, from the published predictor table when it has them."""
    values = results.analysis.get("predictor_values")
    if values is None or "perplexity" not in values or values["perplexity"].isna().all():
        return None
    return (
        values[["base_model_name", "dataset", "perplexity"]]
        .dropna()
        .drop_duplicates(["base_model_name", "dataset"])
    )


def synergy_of(results: Results) -> pd.DataFrame:
    synergy = results.analysis.get("synergy")
    if synergy is None or synergy.empty:
        raise RecommendError(MISSING)
    return synergy


def model_options(results: Results) -> list[str]:
    """The base models with results, then the choice of describing a new one."""
    synergy = results.analysis.get("synergy")
    names = [] if synergy is None else sorted(synergy["base_model_name"].dropna().astype(str).unique())
    return [*names, NEW_MODEL]


def target_options(results: Results) -> list[tuple[str, str]]:
    """(label, value) of every target: families first, then benchmarks, then single tasks."""
    synergy = results.analysis.get("synergy")
    if synergy is None:
        return []
    choices = target_choices(synergy["task"])
    return [(f"{kind} · {name}", f"{kind}:{name}") for kind in KINDS for name in choices[kind]]


def method_options(results: Results) -> list[str]:
    synergy = results.analysis.get("synergy")
    return [] if synergy is None else sorted(synergy["method"].dropna().astype(str).unique())


def answer(
    results: Results,
    model: str | None,
    target: str | None,
    method: str | None,
    perplexity_text: str = "",
    scores_text: str = "",
) -> Recommendation:
    """The recommendation for what the tab's inputs say; ``RecommendError`` says what is wrong."""
    synergy = synergy_of(results)
    if not model or not target:
        raise RecommendError("pick a base model and a target")
    profile = new_profile(parse_values(scores_text), parse_values(perplexity_text))
    if model == NEW_MODEL and profile.empty:
        raise RecommendError(
            "describe the new base model: its perplexity on the SFT datasets (dataset=value, ...) and/or "
            "its own scores on the benchmarks (task=value, ...)"
        )
    name = "new base model" if model == NEW_MODEL else model
    profiles = model_profiles(base_scores_of(results.leaderboard), perplexities(results))
    return recommend(synergy, profiles, name, target, method=method or "full", profile=profile)


def summary_markdown(result: Recommendation) -> str:
    reliability = result.reliability.sentence(result.target.unit)
    lines = [f"**{result.headline()}**\n\n{reliability}", *(f"- Note: {n}" for n in result.notes)]
    weights = ", ".join(f"{r.base_model_name} ({r.weight:.0%})" for r in result.similar.itertuples())
    lines.append(f"\nMost similar base models (their weight in the prediction): {weights}.")
    return "\n".join(lines)


def ranking_frame(result: Recommendation) -> pd.DataFrame:
    coverage = f"{result.coverage:.0%}"
    frame = result.ranking.rename(
        columns={
            "low": f"low ({coverage})",
            "high": f"high ({coverage})",
            "mean_over_models": "mean over models",
        }
    )
    return frame.round(2)


def ranking_figure(result: Recommendation) -> go.Figure:
    """Predicted gain per dataset with its interval; the model's measured gain when it has one."""
    table = result.ranking.iloc[::-1]
    figure = go.Figure(
        go.Bar(
            x=table["predicted"],
            y=table["dataset"],
            orientation="h",
            name="predicted",
            error_x={
                "type": "data",
                "symmetric": False,
                "array": table["high"] - table["predicted"],
                "arrayminus": table["predicted"] - table["low"],
            },
        )
    )
    if table["measured"].notna().any():
        figure.add_trace(go.Scatter(x=table["measured"], y=table["dataset"], mode="markers", name="measured"))
    figure.update_layout(
        height=120 + 32 * len(table),
        xaxis_title=f"gain ({result.target.unit})",
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        legend={"orientation": "h", "y": 1.08},
    )
    return figure


def tab(store: ResultsStore) -> None:
    """The tab's components and events (its choices arrive when it is opened)."""
    with gr.Tab("What should I train on?", id="recommend") as opened:
        gr.Markdown(INTRO)
        with gr.Row():
            model = gr.Dropdown(label="Base model", elem_id="r-model")
            target = gr.Dropdown(label="Target: benchmark family, benchmark or task", elem_id="r-target")
            method = gr.Radio(label="Method", elem_id="r-method")
        with gr.Row():
            perplexity = gr.Textbox(
                label="New base model: its perplexity on the SFT datasets (dataset=value, ...)",
                placeholder="alpaca_cleaned=4.1, lima=3.2, ...",
                elem_id="r-perplexity",
            )
            scores = gr.Textbox(
                label="... and/or its own scores (task=value, ...)",
                placeholder="mmlu-5shot=55.2, gsm8k-4shot=40.1, ...",
                elem_id="r-scores",
            )
        go_button = gr.Button("Recommend", variant="primary", elem_id="r-go")
        summary = gr.Markdown(elem_id="r-summary")
        ranking = gr.Dataframe(interactive=False, elem_id="r-ranking", visible=False)
        plot = gr.Plot(show_label=False, elem_id="r-plot", visible=False)
        gr.Markdown("### Evidence: measured gains of this model and of the most similar models")
        evidence = gr.Dataframe(interactive=False, elem_id="r-evidence", visible=False)
    inputs = [model, target, method, perplexity, scores]

    def on_recommend(*values: str | None) -> list:
        try:
            result = answer(store.results, *values)
        except RecommendError as error:
            hidden = gr.update(visible=False)
            return [f"**Cannot recommend:** {error}", hidden, hidden, hidden]
        return [
            summary_markdown(result),
            gr.update(value=ranking_frame(result), visible=True),
            gr.update(value=ranking_figure(result), visible=True),
            gr.update(value=result.evidence.round(2), visible=True),
        ]

    def on_open() -> list:
        models, targets, methods = (
            model_options(store.results),
            target_options(store.results),
            method_options(store.results),
        )
        if not targets:
            return [gr.update(choices=models), gr.update(choices=[]), gr.update(choices=[]), MISSING]
        return [
            gr.update(choices=models, value=models[0]),
            gr.update(choices=targets, value=targets[0][1]),
            gr.update(choices=methods, value="full" if "full" in methods else methods[0]),
            "",
        ]

    opened.select(on_open, None, [model, target, method, summary])
    # Hidden progress: an answer takes a fraction of a second, and a timer over the old answer misleads.
    go_button.click(on_recommend, inputs, [summary, ranking, plot, evidence], show_progress="hidden")
