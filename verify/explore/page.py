"""One self-contained HTML page per example: the page data (JSON), plotly's offline bundle and the explorer's own
script and style sheet are all inlined, so the file opens from disk with no server and no network.

The charts are plotly's (its ``plotly.min.js`` ships inside the ``plotly`` Python package); the explorer's script
(``static/explorer.js``) only lays out tables, moves the slider and hands the numbers to plotly.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from tfconstruct.constructions.construction import TutorialExample

from .data import forward, lesson_data
from .reference import checkpoints, width_study


def plotly_bundle() -> str:
    """plotly.js, minified, from the installed ``plotly`` package (no network)."""
    try:
        import plotly
    except ImportError as err:  # a core dependency; a broken install says what to do
        raise RuntimeError("the explorer needs the plotly package: pip install 'plotly>=5'") from err
    return (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")


def page_data(key: str, example: TutorialExample) -> dict[str, Any]:
    """Everything the page shows (see :mod:`.data` and :mod:`.reference`)."""
    trace = forward(key, example)
    data = lesson_data(key, example, trace)
    data["checkpoints"] = checkpoints(example, trace)
    data["geometry"] = None if example.geometry is None else asdict(example.geometry)
    data["width"] = width_study(example)
    return data


def render_page(data: dict[str, Any], bundle: str) -> str:
    """The HTML document for ``data``."""
    static = resources.files("tfconstruct.verify.explore") / "static"
    script = (static / "explorer.js").read_text(encoding="utf-8")
    style = (static / "explorer.css").read_text(encoding="utf-8")
    payload = json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    title = html.escape(f"tfconstruct explorer: {data['title']}")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{style}</style>"
        f"<script>{bundle}</script></head><body>"
        f"<script id='lesson' type='application/json'>{payload}</script>"
        f"<script>{script}</script></body></html>\n"
    )


def write_pages(out_dir: str | Path, examples: dict[str, Callable[[], TutorialExample]]) -> dict[str, Path]:
    """``<out_dir>/<key>.html`` for every example; returns key -> path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = plotly_bundle()
    written = {}
    for key, factory in examples.items():
        source = f"{factory.__module__}.{factory.__qualname__}()"
        try:
            example = factory()
            if not isinstance(example, TutorialExample):
                raise TypeError(f"returned {type(example).__name__}, expected TutorialExample")
            page = render_page(page_data(key, example), bundle)
        except Exception as err:
            raise RuntimeError(f"explorer page {key!r} ({source}) failed: {err}") from err
        path = out_dir / f"{key}.html"
        path.write_text(page, encoding="utf-8")
        written[key] = path
    return written
