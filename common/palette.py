"""The one colour convention for gains, shared by the report's figures (matplotlib) and the Space
(plotly): a positive gain is blue, a negative gain red, zero a light neutral grey, everywhere."""

from __future__ import annotations

GAIN_POSITIVE = "#2b6cb0"  # blue: the fine-tuned model scores higher than its base model
GAIN_NEGATIVE = "#c53030"  # red: it scores lower
GAIN_NEUTRAL = "#f7f7f7"  # no change

# plotly ``colorscale`` (value 0 = most negative, 1 = most positive; centre the range on zero)
PLOTLY_GAIN_SCALE: list[list[float | str]] = [[0.0, GAIN_NEGATIVE], [0.5, GAIN_NEUTRAL], [1.0, GAIN_POSITIVE]]
# matplotlib: ``LinearSegmentedColormap.from_list(GAIN_CMAP_NAME, GAIN_CMAP_COLOURS)``
GAIN_CMAP_NAME = "gain"
GAIN_CMAP_COLOURS: tuple[str, str, str] = (GAIN_NEGATIVE, GAIN_NEUTRAL, GAIN_POSITIVE)


def gain_colour(value: float) -> str:
    """The bar/marker colour of one gain or gain difference (zero counts as positive)."""
    return GAIN_POSITIVE if value >= 0 else GAIN_NEGATIVE
