"""The Gradio Blocks of the Space. The leaderboard table runs in the browser (``space.browser``); the
other tabs' handlers are thin calls of the pure functions of ``findings`` / ``compare`` / ``about``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import gradio as gr

from space import about, compare, findings
from space.browser import static_text, table_payload
from space.config import SpaceConfig
from space.data import Results, ResultsStore
from space.recommend import tab as recommend_tab
from space.submit import submit_tab
from space.table import GAIN, RAW, Filters
from space.urlstate import decode

CSS = """
footer { display: none !important; }
"""
# Dropdown choices sent per keystroke in Compare / About: never the whole (possibly 100k-row) list.
CHOICE_LIMIT = 50


def banner(results: Results) -> str:
    text = f"Results: {source_markdown(results.source)} · {headline(results)} · loaded {results.loaded_at}"
    return "\n\n".join([text, *(f"**Warning:** {w}" for w in results.warnings)])


def source_markdown(source: str) -> str:
    """Where the results come from: a Hub dataset links to its page (``URL@rev`` to that revision's
    page); a local folder is shown as code."""
    if not source.startswith(("http://", "https://")):
        return f"`{source}`"
    page, _, revision = source.partition("@")
    return f"[{source}]({page}/tree/{quote(revision, safe='')})" if revision else f"[{source}]({page})"


def headline(results: Results) -> str:
    """What the loaded results hold, counted from the data (never a claim about the study)."""
    board = results.leaderboard
    tuned = int(board["method"].ne("base").fillna(True).sum())
    bases = board["base_model_name"].dropna().nunique()
    text = f"{len(board):,} models ({tuned:,} fine-tuned) from {bases} base model(s)"
    sizes = board["parameters"].dropna()
    if len(sizes):
        low, high = sizes.min(), sizes.max()
        text += f" of {low:g}B parameters" if low == high else f" of {low:g}–{high:g}B parameters"
    return text


def build_app(store: ResultsStore) -> gr.Blocks:
    title = store.config.title
    with gr.Blocks(title=title, analytics_enabled=False, fill_width=True) as demo:
        gr.Markdown(
            f"# {title}\nExplore the fine-tuned models of the massive SFT study (Harada et al., EMNLP 2025) "
            "as published in this release: their scores, side-by-side comparisons and the findings."
        )
        source = gr.Markdown(banner(store.results), elem_id="results-source")
        with gr.Tabs():
            loaders = [
                _leaderboard_tab(store, source),
                _findings_tab(store),
                _compare_tab(store),
                recommend_tab(store),
                submit_tab(store),
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
    """The table is one gr.HTML whose script (space/static/leaderboard.js) filters, sorts, pages and
    exports in the browser: the data cross the network once per page load, events never do."""
    with gr.Tab("Leaderboard", id="leaderboard"):
        table = gr.HTML(
            value=None,
            html_template=static_text("leaderboard.html"),
            js_on_load=static_text("leaderboard.js"),
            elem_id="leaderboard",
            apply_default_css=False,
        )
        refresh = gr.Button("Reload results", elem_id="refresh", size="sm")

    def on_load(request: gr.Request) -> list[Any]:
        params = dict(request.query_params) if request is not None else {}
        filters, problems = decode(params, store.results)
        # The banner too: a page opened after "Reload results" (or a new submission) counts what it shows.
        return [banner(store.results), table_payload(store.results, store.config, filters, problems)]

    def on_refresh() -> list[Any]:
        results = store.reload()  # the page keeps its current filters (dropping unknown values)
        return [banner(results), table_payload(results, store.config, Filters())]

    refresh.click(on_refresh, None, [source, table], show_progress="hidden")
    return on_load, [source, table]


def _findings_tab(store: ResultsStore) -> None:
    with gr.Tab("Findings", id="findings") as tab:
        gr.Markdown("Plots read from the published analysis tables; hover for values, drag to zoom.")
        with gr.Row():
            base = gr.Dropdown(label="Base model", elem_id="fi-base")
            method = gr.Dropdown(label="Method", elem_id="fi-method")
            task = gr.Dropdown(label="Benchmark (epoch curves, predictors)", elem_id="fi-task")
            predictor = gr.Dropdown(label="Predictor", elem_id="fi-predictor")
        plots, captions = [], []
        for title in findings.SECTIONS:
            gr.Markdown(f"### {title}")
            plots.append(gr.Plot(elem_classes=["finding-plot"], show_label=False))
            captions.append(gr.Markdown(elem_classes=["finding-caption"]))
    selectors = [base, method, task, predictor]

    def figures(
        base_model: str | None, method_name: str | None, task_name: str | None, predictor_name: str | None
    ) -> list[Any]:
        made = findings.all_figures(store.results, base_model, method_name, task_name, predictor_name)
        # A section without data shows its caption only (what is missing, and the command that makes it).
        return [gr.update(value=f, visible=f is not None) for f, _ in made] + [c for _, c in made]

    def on_open() -> list[Any]:
        results = store.results
        models, methods = findings.synergy_choices(results)
        tasks = results.score_names
        predictors = findings.predictor_options(results)
        picks = [
            models[0] if models else None,
            "full" if "full" in methods else (methods or [None])[0],
            findings.default_task(results),
            predictors[0] if predictors else None,
        ]
        updates = [
            gr.update(choices=c, value=v)
            for c, v in zip([models, methods, tasks, predictors], picks, strict=True)
        ]
        return updates + figures(*picks)

    tab.select(on_open, None, [*selectors, *plots, *captions])
    gr.on([s.input for s in selectors], figures, selectors, [*plots, *captions])


def _model_picker(store: ResultsStore, dropdown: gr.Dropdown) -> None:
    """Choices follow what is typed (at most CHOICE_LIMIT), keeping the picked models."""

    def on_key(picked: Any, event: gr.KeyUpData) -> Any:
        keep = picked if isinstance(picked, list) else [picked] if picked else []
        return gr.update(choices=compare.model_choices(store.results, event.input_value, keep, CHOICE_LIMIT))

    # always_last: the answer to the last keystroke always comes (one per keystroke pending at most).
    dropdown.key_up(
        on_key, dropdown, dropdown, queue=False, show_progress="hidden", trigger_mode="always_last"
    )


def _first_models(store: ResultsStore) -> Callable[..., list[Any]]:
    """The model pickers' first choices arrive with the page (not when a tab opens: that answer could
    overwrite the choices of what is already being typed)."""

    def on_load(request: gr.Request) -> list[Any]:
        return [gr.update(choices=compare.model_choices(store.results, "", [], CHOICE_LIMIT))]

    return on_load


def _compare_tab(store: ResultsStore) -> Loader:
    with gr.Tab("Compare", id="compare"):
        with gr.Row():
            models = gr.Dropdown(
                label="Models (2 to 4): type to search",
                multiselect=True,
                max_choices=compare.MAX_MODELS,
                elem_id="c-models",
                scale=4,
            )
            mode = gr.Radio([("raw scores", RAW), ("gain over base model", GAIN)], value=RAW, label="Scores")
        message = gr.Markdown(compare.EMPTY_MESSAGE, elem_id="c-message")
        # Hidden until two models are picked: an empty table would show placeholder headers.
        table = gr.Dataframe(interactive=False, elem_id="c-table", visible=False)
        plot = gr.Plot(show_label=False, elem_id="c-plot", visible=False)

    def on_compare(model_ids: list[str], mode_name: str) -> list[Any]:
        frame, text = compare.compare_frame(store.results, model_ids, mode_name)
        shown = len(frame.columns) > 1
        figure = compare.compare_figure(frame) if shown else None
        return [text, gr.update(value=frame, visible=shown), gr.update(value=figure, visible=shown)]

    gr.on([models.input, mode.input], on_compare, [models, mode], [message, table, plot])
    _model_picker(store, models)
    return _first_models(store), [models]


def python_block(code: str) -> str:
    return f"```python\n{code}\n```"


def _about_tab(store: ResultsStore) -> Loader:
    with gr.Tab("About", id="about") as tab:
        gr.Markdown(about.STUDY)
        gr.Markdown("### How to cite")
        # Markdown code blocks carry a copy button and, unlike gr.Code, load no editor into the page.
        gr.Markdown(f"```bibtex\n{about.CITATION}\n```", elem_id="a-citation")
        gr.Markdown("### Download a model at a given epoch, or load an adapter")
        model = gr.Dropdown(label="Model: type to search", elem_id="a-model")
        code = gr.Markdown(python_block(about.download_code(None)), elem_id="a-code")
        quality = gr.Markdown(elem_id="a-quality")

    def on_model(model_id: str | None) -> str:
        board = store.results.leaderboard
        rows = board[board["model_id"].eq(model_id).fillna(False)]
        return python_block(about.download_code(rows.iloc[0].to_dict() if len(rows) else None))

    model.input(on_model, model, code)
    _model_picker(store, model)
    tab.select(lambda: about.quality_markdown(store.results.quality), None, quality)
    return _first_models(store), [model]


def launch(demo: gr.Blocks, config: SpaceConfig, **kwargs: Any) -> Any:
    """Serve with nothing fetched from outside: no analytics, no SSR node server, local fonts."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    options: dict[str, Any] = {
        "server_name": config.host,
        "server_port": config.port,
        "ssr_mode": False,
        "show_error": False,
        "css": CSS + static_text("leaderboard.css"),
        "theme": gr.themes.Default(),
    }
    options.update(kwargs)
    return demo.launch(**options)
