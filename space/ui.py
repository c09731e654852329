"""The Gradio Blocks of the Space. Handlers are thin: they turn widget values into ``Filters`` and
call the pure functions of ``space.table`` / ``findings`` / ``compare`` / ``about``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from common.io import stable_hash, write_text
from space import about, compare, findings
from space.config import SpaceConfig
from space.data import Results, ResultsStore
from space.table import AVERAGE, GAIN, IDENTITY_DISPLAY, RANK, RAW, Filters, build_view, datatypes, to_csv
from space.urlstate import choices, decode, encode, valid_only

TITLE = "Massive SFT leaderboard"
DESCENDING, ASCENDING = "descending", "ascending"
# Runs in the browser after each view update: keep the filters in the address bar (no reload).
REPLACE_URL_JS = """(query) => {
  const url = window.location.pathname + (query ? "?" + query : "");
  window.history.replaceState(null, "", url);
}"""
CSS = """
#leaderboard-table { font-size: 0.9em; }
footer { display: none !important; }
"""


def _epoch_bounds(results: Results) -> tuple[int, int]:
    epochs = results.leaderboard["epoch"].dropna()
    return (int(epochs.min()), int(epochs.max())) if len(epochs) else (0, 10)


def filters_from_widgets(
    results: Results,
    base: list,
    lang: list,
    dataset: list,
    method: list,
    size: list,
    schedule: list,
    epoch_min: float,
    epoch_max: float,
    search: str,
    families: list,
    shots: list,
    mode: str,
    sort_by: str,
    order: str,
) -> Filters:
    """Widget values -> Filters; a widget left at "everything" maps to the default (short URLs)."""
    low, high = _epoch_bounds(results)
    known = choices(results)
    return Filters(
        base_models=tuple(base or ()),
        languages=tuple(lang or ()),
        datasets=tuple(dataset or ()),
        methods=tuple(method or ()),
        data_sizes=tuple(int(s) for s in size or ()),
        schedules=tuple(schedule or ()),
        epoch_min=None if epoch_min is None or epoch_min <= low else int(epoch_min),
        epoch_max=None if epoch_max is None or epoch_max >= high else int(epoch_max),
        search=search or "",
        families=None if set(families or ()) == set(known["families"]) else tuple(families or ()),
        shots=None if set(shots or ()) == set(known["shots"]) else tuple(shots or ()),
        mode=GAIN if mode == GAIN else RAW,
        sort_by=sort_by or AVERAGE,
        descending=order != ASCENDING,
    )


def widget_updates(results: Results, filters: Filters) -> list[Any]:
    """Choices and values of every filter widget (in ``Leaderboard.inputs`` order) for ``filters``."""
    known = choices(results)
    shown = valid_only(filters, results)
    low, high = _epoch_bounds(results)
    sizes = [(f"{s:,}", s) for s in known["data_sizes"]]
    sortable = [AVERAGE, RANK, *IDENTITY_DISPLAY, *results.score_names]
    return [
        gr.update(choices=known["base_models"], value=list(shown.base_models)),
        gr.update(choices=known["languages"], value=list(shown.languages)),
        gr.update(choices=known["datasets"], value=list(shown.datasets)),
        gr.update(choices=known["methods"], value=list(shown.methods)),
        gr.update(choices=sizes, value=list(shown.data_sizes)),
        gr.update(choices=known["schedules"], value=list(shown.schedules)),
        gr.update(minimum=low, maximum=high, value=low if filters.epoch_min is None else filters.epoch_min),
        gr.update(minimum=low, maximum=high, value=high if filters.epoch_max is None else filters.epoch_max),
        gr.update(value=filters.search),
        gr.update(
            choices=known["families"],
            value=known["families"] if shown.families is None else list(shown.families),
        ),
        gr.update(choices=known["shots"], value=known["shots"] if shown.shots is None else list(shown.shots)),
        gr.update(value=filters.mode),
        gr.update(choices=sortable, value=filters.sort_by if filters.sort_by in sortable else AVERAGE),
        gr.update(value=DESCENDING if filters.descending else ASCENDING),
    ]


def table_outputs(store: ResultsStore, filters: Filters, problems: list[str] | None = None) -> list[Any]:
    """[message, table, url query] for a view; problems (from a link) give an empty table."""
    view = build_view(store.results, filters, store.config)
    shown, message = view.shown, view.message
    if problems:
        shown = shown.head(0)
        message = (
            "**This link asks for something the leaderboard does not have**, so no models are shown: "
            + "; ".join(problems)
            + ". Change a filter, or open the page without parameters."
        )
    table = gr.Dataframe(value=shown, datatype=datatypes(shown))
    return [message, table, encode(filters)]


def banner(results: Results) -> str:
    text = f"Results: `{results.source}` · {len(results.leaderboard):,} models · loaded {results.loaded_at}"
    return "\n\n".join([text, *(f"**Warning:** {w}" for w in results.warnings)])


def export_csv(store: ResultsStore, filters: Filters) -> str:
    """Write the current view (all matching rows) to a CSV file that the page offers for download."""
    view = build_view(store.results, filters, store.config)
    text = to_csv(view)
    folder = Path(os.environ.get("GRADIO_TEMP_DIR", tempfile.gettempdir())) / "massive-sft-space"
    path = folder / f"leaderboard-{stable_hash(text)}.csv"
    write_text(path, text)
    return str(path)


def build_app(store: ResultsStore) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(
            f"# {TITLE}\nOver a thousand 7–9B models fine-tuned in the massive SFT study "
            "(Harada et al., EMNLP 2025): explore their scores, compare them and read the findings."
        )
        source = gr.Markdown(banner(store.results), elem_id="results-source")
        with gr.Tabs():
            loaders = [
                _leaderboard_tab(store, source),
                _findings_tab(store),
                _compare_tab(store),
                _about_tab(store),
            ]
        _load_once(demo, [loader for loader in loaders if loader is not None])
    return demo


Loader = tuple[Callable[..., list[Any]], list[gr.components.Component]]


def _load_once(demo: gr.Blocks, loaders: list[Loader]) -> None:
    """One load event for the whole page (one round trip, not one per tab); not queued, so the table
    arrives as soon as the page asks for it."""
    outputs = [c for _, outs in loaders for c in outs]

    def on_load(request: gr.Request) -> list[Any]:
        values: list[Any] = []
        for fn, _ in loaders:
            values += fn(request)
        return values

    demo.load(on_load, None, outputs, show_progress="hidden", queue=False)


def _leaderboard_tab(store: ResultsStore, source: gr.Markdown) -> Loader:
    with gr.Tab("Leaderboard", id="leaderboard"):
        with gr.Row():
            search = gr.Textbox(
                label="Search (several terms: every one must match)",
                elem_id="search",
                placeholder="e.g. olmo lima lora",
                scale=4,
            )
            refresh = gr.Button("Reload results", scale=1, elem_id="refresh")
        with gr.Row():
            base = gr.Dropdown(label="Base model", multiselect=True, elem_id="f-base")
            lang = gr.Dropdown(label="Language group", multiselect=True, elem_id="f-lang")
            dataset = gr.Dropdown(label="SFT dataset", multiselect=True, elem_id="f-dataset")
            method = gr.Dropdown(label="Method", multiselect=True, elem_id="f-method")
            size = gr.Dropdown(label="Data size", multiselect=True, elem_id="f-size")
            schedule = gr.Dropdown(label="LR schedule", multiselect=True, elem_id="f-schedule")
        with gr.Row():
            epoch_min = gr.Slider(label="Epochs from", step=1, elem_id="f-epoch-min")
            epoch_max = gr.Slider(label="Epochs to", step=1, elem_id="f-epoch-max")
            families = gr.CheckboxGroup(label="Benchmark families", elem_id="f-family", scale=2)
            shots = gr.CheckboxGroup(label="Shot settings", elem_id="f-shots", scale=2)
        with gr.Row():
            mode = gr.Radio(
                [("raw scores", RAW), ("gain over base model", GAIN)],
                value=RAW,
                label="Scores",
                elem_id="f-mode",
            )
            sort_by = gr.Dropdown(label="Sort by", elem_id="f-sort")
            order = gr.Radio([DESCENDING, ASCENDING], value=DESCENDING, label="Order", elem_id="f-order")
        message = gr.Markdown(elem_id="view-message")
        table = gr.Dataframe(
            interactive=False,
            elem_id="leaderboard-table",
            max_height=620,
            pinned_columns=2,
            column_widths=["60px", "360px"],
            buttons=["fullscreen", "copy"],
        )
        with gr.Row():
            export = gr.Button("Download the current view as CSV", elem_id="export-csv", scale=1)
            csv_file = gr.File(label="CSV of the current view", elem_id="csv-file", scale=2)
        query = gr.Textbox(visible="hidden", elem_id="url-query")
    inputs = [
        base,
        lang,
        dataset,
        method,
        size,
        schedule,
        epoch_min,
        epoch_max,
        search,
        families,
        shots,
        mode,
        sort_by,
        order,
    ]
    outputs = [message, table, query]

    def on_change(*values: Any) -> list[Any]:
        return table_outputs(store, filters_from_widgets(store.results, *values))

    def on_load(request: gr.Request) -> list[Any]:
        params = dict(request.query_params) if request is not None else {}
        filters, problems = decode(params, store.results)
        return [*widget_updates(store.results, filters), *table_outputs(store, filters, problems)]

    def on_refresh(*values: Any) -> list[Any]:
        results = store.reload()
        filters = valid_only(filters_from_widgets(results, *values), results)
        return [banner(results), *widget_updates(results, filters), *table_outputs(store, filters)]

    def on_export(*values: Any) -> str:
        return export_csv(store, filters_from_widgets(store.results, *values))

    gr.on(
        [*(c.input for c in inputs), search.submit],
        on_change,
        inputs,
        outputs,
        trigger_mode="always_last",
        show_progress="hidden",
    ).then(None, [query], None, js=REPLACE_URL_JS)
    refresh.click(on_refresh, inputs, [source, *inputs, *outputs]).then(
        None, [query], None, js=REPLACE_URL_JS
    )
    export.click(on_export, inputs, csv_file)
    return on_load, [*inputs, *outputs]


def _findings_tab(store: ResultsStore) -> None:
    with gr.Tab("Findings", id="findings") as tab:
        gr.Markdown("Plots read from the published analysis tables; hover for values, drag to zoom.")
        with gr.Row():
            base = gr.Dropdown(label="Base model", elem_id="fi-base")
            method = gr.Dropdown(label="Method", elem_id="fi-method")
            task = gr.Dropdown(label="Benchmark (epoch curves, predictors)", elem_id="fi-task")
            predictor = gr.Dropdown(label="Predictor", elem_id="fi-predictor")
        plots, captions = [], []
        for title in (
            "Training–task synergy",
            "Cross-model consistency",
            "Epochs",
            "LoRA vs full fine-tuning",
            "Predictors of the gain",
            "Layer-wise change vs gain",
            "Model map",
        ):
            gr.Markdown(f"### {title}")
            plots.append(gr.Plot(elem_classes=["finding-plot"], show_label=False))
            captions.append(gr.Markdown())
    selectors = [base, method, task, predictor]

    def figures(
        base_model: str | None, method_name: str | None, task_name: str | None, predictor_name: str | None
    ) -> list[Any]:
        results = store.results
        made = [
            findings.synergy_figure(results, base_model, method_name),
            findings.consistency_figure(results, method_name),
            findings.epoch_figure(results, task_name),
            findings.lora_full_figure(results),
            findings.predictor_figure(results, predictor_name, task_name),
            findings.layers_figure(results),
            findings.model_map_figure(results),
        ]
        return [f for f, _ in made] + [c for _, c in made]

    def on_open() -> list[Any]:
        results = store.results
        models, methods = findings.synergy_choices(results)
        tasks = results.score_names
        predictors = findings.predictor_options(results)
        picks = [
            models[0] if models else None,
            "full" if "full" in methods else (methods or [None])[0],
            "gsm8k-4shot" if "gsm8k-4shot" in tasks else (tasks or [None])[0],
            predictors[0] if predictors else None,
        ]
        updates = [
            gr.update(choices=c, value=v)
            for c, v in zip([models, methods, tasks, predictors], picks, strict=True)
        ]
        return updates + figures(*picks)

    tab.select(on_open, None, [*selectors, *plots, *captions])
    gr.on([s.input for s in selectors], figures, selectors, [*plots, *captions])


def _compare_tab(store: ResultsStore) -> None:
    with gr.Tab("Compare", id="compare") as tab:
        with gr.Row():
            models = gr.Dropdown(
                label="Models (2 to 4)",
                multiselect=True,
                max_choices=compare.MAX_MODELS,
                elem_id="c-models",
                scale=4,
            )
            mode = gr.Radio([("raw scores", RAW), ("gain over base model", GAIN)], value=RAW, label="Scores")
        message = gr.Markdown(elem_id="c-message")
        table = gr.Dataframe(interactive=False, elem_id="c-table")
        plot = gr.Plot(show_label=False, elem_id="c-plot")

    def on_compare(model_ids: list[str], mode_name: str) -> list[Any]:
        frame, text = compare.compare_frame(store.results, model_ids, mode_name)
        figure = compare.compare_figure(frame) if len(frame.columns) > 1 else findings.note(text)
        return [text, frame, figure]

    gr.on([models.input, mode.input], on_compare, [models, mode], [message, table, plot])
    # Choices are sent when the tab opens, keeping the first page load small.
    tab.select(lambda: gr.update(choices=_model_choices(store.results)), None, models)


def _model_choices(results: Results) -> list[str]:
    return results.leaderboard["model_id"].dropna().tolist()


def python_block(code: str) -> str:
    return f"```python\n{code}\n```"


def _about_tab(store: ResultsStore) -> None:
    with gr.Tab("About", id="about") as tab:
        gr.Markdown(about.STUDY)
        gr.Markdown("### How to cite")
        # Markdown code blocks carry a copy button and, unlike gr.Code, load no editor into the page.
        gr.Markdown(f"```bibtex\n{about.CITATION}\n```", elem_id="a-citation")
        gr.Markdown("### Download a model at a given epoch, or load an adapter")
        model = gr.Dropdown(label="Model", elem_id="a-model")
        code = gr.Markdown(python_block(about.download_code(None)), elem_id="a-code")
        quality = gr.Markdown(elem_id="a-quality")

    def on_model(model_id: str | None) -> str:
        board = store.results.leaderboard
        rows = board[board["model_id"].eq(model_id).fillna(False)]
        return python_block(about.download_code(rows.iloc[0].to_dict() if len(rows) else None))

    def on_open() -> list[Any]:
        return [
            gr.update(choices=_model_choices(store.results)),
            about.quality_markdown(store.results.quality),
        ]

    model.input(on_model, model, code)
    tab.select(on_open, None, [model, quality])


def launch(demo: gr.Blocks, config: SpaceConfig, **kwargs: Any) -> Any:
    """Serve with nothing fetched from outside: no analytics, no SSR node server, local fonts."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    options: dict[str, Any] = {
        "server_name": config.host,
        "server_port": config.port,
        "ssr_mode": False,
        "show_error": False,
        "css": CSS,
        "theme": gr.themes.Default(),
        "allowed_paths": [str(Path(tempfile.gettempdir()) / "massive-sft-space")],
    }
    options.update(kwargs)
    return demo.launch(**options)
