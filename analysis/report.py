"""The report: runs every section of ``analysis.sections`` over one explicit ``Context``, writes the
tables and figures, and renders ``report.md`` and a self-contained ``report.html`` (figures embedded as
base64 PNG, no external URL) with the jinja2 templates in ``analysis/templates``.

A section is a function ``(ctx, section) -> None``. It reads what earlier sections computed only through
``ctx.need(name)`` (the tables they published) and publishes its own results with ``ctx.table(...)``,
so every number of the report is in a file of ``tables/``. One failing section becomes a note in the
report (and on stderr); the other sections are still produced."""

from __future__ import annotations

import base64
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

from analysis.common import MissingInputError
from analysis.config import DEFAULT_CONFIG, AnalysisConfig
from analysis.context import Context, Inputs, Section, SectionBody
from analysis.sections import SECTIONS
from common.io import write_text

__all__ = ["Inputs", "Report", "Section", "build_report", "render_html", "render_markdown"]

TEMPLATES = Path(__file__).parent / "templates"


def run_section(ctx: Context, title: str, body: SectionBody) -> Section:
    """Run one section; a missing input or an error becomes a note and the report goes on."""
    section = Section(title)
    try:
        body(ctx, section)
    except MissingInputError as error:
        section.notes.append(f"Not available: {error}")
        print(f"[analysis] {title}: not available: {error}", file=sys.stderr)
    except Exception as error:  # noqa: BLE001 - one broken section must not lose the report
        section.notes.append(f"This section failed: {type(error).__name__}: {error}")
        print(f"[analysis] {title} failed:\n{traceback.format_exc()}", file=sys.stderr)
    section.notes = [n for n in section.notes if n]
    return section


@dataclass
class Report:
    out: Path
    sections: list[Section]
    tables: dict[str, pd.DataFrame]


# --- rendering -----------------------------------------------------------------------------------


def _environment(autoescape: bool) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_markdown(sections: list[Section], title: str) -> str:
    return _environment(autoescape=False).get_template("report.md.j2").render(title=title, sections=sections)


def render_html(sections: list[Section], title: str, root: Path) -> str:
    images = {
        path: base64.b64encode((root / path).read_bytes()).decode("ascii")
        for section in sections
        for path, _ in section.figures
    }
    return (
        _environment(autoescape=True)
        .get_template("report.html.j2")
        .render(title=title, sections=sections, images=images)
    )


def build_report(
    inputs: Inputs,
    out: Path,
    config: AnalysisConfig = DEFAULT_CONFIG,
    title: str = "Massive SFT: analysis report",
) -> Report:
    """Compute everything and write ``out/{tables,figures}``, ``report.md`` and ``report.html``."""
    ctx = Context(inputs, config, Path(out))
    sections = [run_section(ctx, title_, body) for title_, body in SECTIONS]
    write_text(ctx.out / "report.md", render_markdown(sections, title))
    write_text(ctx.out / "report.html", render_html(sections, title, ctx.out))
    return Report(ctx.out, sections, ctx.tables)
