"""The explicit state of one report run: the inputs, the settings, the output folder and the tables
the sections have published so far. Sections (``analysis.sections``) read and write only through it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.common import MissingInputError
from analysis.config import AnalysisConfig
from common.io import write_parquet


@dataclass
class ShownTable:
    """A table printed in the report: formatted cells, and the ``tables/`` file it comes from."""

    caption: str
    source: str
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Section:
    title: str
    sentences: list[str] = field(default_factory=list)
    figures: list[tuple[str, str]] = field(default_factory=list)  # (relative path, caption)
    notes: list[str] = field(default_factory=list)  # missing inputs, failures, caveats
    shown: list[ShownTable] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # tables/<name>.parquet its numbers come from

    @property
    def paragraphs(self) -> list[str]:
        return [s for s in self.sentences if not s.startswith("- ")]

    @property
    def bullets(self) -> list[str]:
        """Sentences written as list items ("- ..."), without the marker."""
        return [s[2:] for s in self.sentences if s.startswith("- ")]


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


@dataclass
class Context:
    """Everything a section may read: the inputs, the settings, the output folder and the tables the
    sections before it published (by name)."""

    inputs: Inputs
    config: AnalysisConfig
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def table(self, section: Section, name: str, frame: pd.DataFrame) -> pd.DataFrame:
        """Publish a table: kept for later sections and written to ``tables/<name>.parquet``."""
        self.tables[name] = frame
        write_parquet(self.out / "tables" / f"{name}.parquet", frame)
        source = f"tables/{name}.parquet"
        if source not in section.sources:
            section.sources.append(source)
        return frame

    def need(self, name: str, made_by: str) -> pd.DataFrame:
        """A table an earlier section (titled ``made_by``) published; a MissingInputError naming that
        section when it could not."""
        if name not in self.tables:
            raise MissingInputError(f"needs the {name} table, which could not be computed (see {made_by})")
        return self.tables[name]

    def figure(self, section: Section, name: str, fig, caption: str) -> None:
        figures.save(fig, self.out / "figures" / f"{name}.png", self.config.figure_dpi)
        section.figures.append((f"figures/{name}.png", caption))

    def show(self, section: Section, caption: str, name: str, frame: pd.DataFrame, digits: int = 2) -> None:
        """Print a (small) published table in the report, numbers rounded, counts as integers."""
        section.shown.append(
            ShownTable(
                caption,
                f"tables/{name}.parquet",
                [str(c) for c in frame.columns],
                [[_cell(v, digits) for v in row] for row in frame.itertuples(index=False)],
            )
        )


def _cell(value, digits: int) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and float(value).is_integer() and digits == 0):
        return str(int(value))
    if isinstance(value, float):
        return "" if pd.isna(value) else f"{value:+.{digits}f}"
    return "" if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


SectionBody = Callable[[Context, Section], None]
