"""``create_chart``: a real PNG chart and real statistics from given data or a workspace CSV."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import statistics
from pathlib import Path
from typing import Literal

from langchain_core.tools import tool
from langgraph.prebuilt import ToolRuntime

from loom.settings import get_settings
from services.paths import artifact_url, thread_artifacts_dir, user_workspace_file
from state.common import Artifact, RunContext

ChartKind = Literal["bar", "line", "pie"]
_PAIR = re.compile(r"([A-Za-z0-9][\w .'/&-]{0,40}?)(?:\s*[:=]\s*|\s+)\$?(-?\d[\d,]*(?:\.\d+)?)")
_SEPARATOR = re.compile(r"[;\n]+|,(?!\d{3}\b)")  # a comma inside 1,200 is not a separator


def parse_series(text: str) -> tuple[list[str], list[float]]:
    """Label/number pairs from free text: "Q1 120, Q2 150, Q3: 90" → (["Q1","Q2","Q3"], [120,150,90])."""
    labels, values = [], []
    for chunk in _SEPARATOR.split(text):
        match = _PAIR.search(chunk.strip())
        if match:
            labels.append(match.group(1).strip())
            values.append(float(match.group(2).replace(",", "")))
    return labels, values


def read_csv_series(path: Path, label_column: str = "", value_column: str = "") -> tuple[list[str], list[float]]:
    """First text column as labels and first numeric column as values, unless named."""
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    if not rows:
        raise ValueError(f"{path.name} has no data rows")
    columns = list(rows[0])
    numeric = [c for c in columns if all(_is_number(r[c]) for r in rows)]
    value_column = value_column or (numeric[0] if numeric else "")
    label_column = label_column or next((c for c in columns if c not in numeric), columns[0])
    if value_column not in columns:
        raise ValueError(f"{path.name} has no numeric column (columns: {', '.join(columns)})")
    return [r[label_column] for r in rows], [float(r[value_column].replace(",", "")) for r in rows]


def _is_number(text: str | None) -> bool:
    try:
        float((text or "").replace(",", ""))
    except ValueError:
        return False
    return True


def describe(labels: list[str], values: list[float]) -> dict[str, float | str]:
    top, bottom = max(range(len(values)), key=values.__getitem__), min(range(len(values)), key=values.__getitem__)
    stats: dict[str, float | str] = {
        "count": len(values),
        "total": round(sum(values), 4),
        "mean": round(statistics.fmean(values), 4),
        "median": round(statistics.median(values), 4),
        "max": f"{labels[top]} ({values[top]:g})",
        "min": f"{labels[bottom]} ({values[bottom]:g})",
    }
    if len(values) > 1:
        stats["stdev"] = round(statistics.stdev(values), 4)
        if values[0]:
            stats["change_first_to_last_pct"] = round((values[-1] - values[0]) / abs(values[0]) * 100, 2)
    return stats


def default_title(labels: list[str], kind: ChartKind) -> str:
    """A title that tells charts apart when none was given: the kind and the labels it spans."""
    span = labels[0] if len(labels) == 1 else f"{labels[0]} to {labels[-1]}"
    return f"{kind.capitalize()} chart, {span}"


def render_chart(labels: list[str], values: list[float], title: str, kind: ChartKind, out_dir: Path) -> Path:
    """Draws on a ``Figure`` of its own, never pyplot's global state: tools run in a thread pool."""
    from matplotlib.figure import Figure

    digest = hashlib.sha256(repr((labels, values, title, kind)).encode()).hexdigest()[:12]
    path = out_dir / f"chart-{digest}.png"
    figure = Figure(figsize=(6.4, 4.0), dpi=100)
    axes = figure.subplots()
    if kind == "pie":
        axes.pie(values, labels=labels, autopct="%1.0f%%")
    elif kind == "line":
        axes.plot(labels, values, marker="o")
    else:
        axes.bar(labels, values, color="#4C72B0")
    axes.set_title(title)
    figure.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")  # the Agg canvas, whatever backend pyplot would pick
    return path


@tool(response_format="content_and_artifact")
def create_chart(
    runtime: ToolRuntime[RunContext],
    data: str = "",
    csv_file: str = "",
    title: str = "",
    kind: ChartKind = "bar",
) -> tuple[str, Artifact | None]:
    """Draw a chart and compute statistics.

    Give either `data` as label/value pairs ("Q1 120, Q2 150, Q3 90") or `csv_file`, the name of a
    CSV file in the user's workspace (e.g. "sales_q3.csv").
    """
    context = runtime.context or RunContext()
    try:
        if csv_file:
            labels, values = read_csv_series(user_workspace_file(context.user_id, csv_file))
        else:
            labels, values = parse_series(data)
    except OSError as exc:  # its message holds the server's path: name the file as the user did instead
        return f"Could not read {csv_file!r} in your workspace: {exc.strerror or exc}.", None
    except ValueError as exc:
        return f"Could not read the data: {exc}", None
    if not values:
        return "No label/value pairs found; give data like 'Q1 120, Q2 150' or a CSV file name.", None
    settings = get_settings()
    title = title.strip() or default_title(labels, kind)
    path = render_chart(labels, values, title, kind, thread_artifacts_dir(settings, runtime.config, context.user_id))
    stats = describe(labels, values)
    summary = ", ".join(f"{key}: {value}" for key, value in stats.items())
    url = artifact_url(runtime.config, path)
    artifact = Artifact(kind="chart", name=path.name, url=url, title=title, media_type="image/png")
    return f"Chart: {url}. Statistics: {summary}", artifact
