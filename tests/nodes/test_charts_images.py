from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from nodes.tools.charts import describe, parse_series, read_csv_series, render_chart
from nodes.tools.images import render_stand_in
from services.paths import inside, safe_id, user_workspace_file


def test_parse_series_reads_label_value_pairs() -> None:
    assert parse_series("Q1 120, Q2 150, Q3 90") == (["Q1", "Q2", "Q3"], [120.0, 150.0, 90.0])
    assert parse_series("North: 1,200; South = 800\nEast 3.5") == (["North", "South", "East"], [1200.0, 800.0, 3.5])
    assert parse_series("no numbers here") == ([], [])


def test_describe_reports_real_statistics() -> None:
    stats = describe(["Q1", "Q2", "Q3"], [120, 150, 90])
    assert stats["total"] == 360 and stats["mean"] == 120 and stats["median"] == 120
    assert stats["max"] == "Q2 (150)" and stats["min"] == "Q3 (90)"
    assert stats["change_first_to_last_pct"] == -25.0
    assert stats["stdev"] == 30.0


@pytest.mark.parametrize("kind", ["bar", "line", "pie"])
def test_render_chart_writes_a_png(tmp_path: Path, kind: str) -> None:
    path = render_chart(["a", "b"], [1, 2], "Title", kind, tmp_path)  # type: ignore[arg-type]
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (640, 400)


def test_csv_series_picks_label_and_numeric_columns(tmp_path: Path) -> None:
    csv = tmp_path / "sales.csv"
    csv.write_text("month,revenue,units\nJuly,100,3\nAugust,150,4\n")
    assert read_csv_series(csv) == (["July", "August"], [100.0, 150.0])
    assert read_csv_series(csv, value_column="units") == (["July", "August"], [3.0, 4.0])


def test_stand_in_image_is_a_real_png(tmp_path: Path) -> None:
    path = render_stand_in("a futuristic factory at dawn", "1024x1024", tmp_path)
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (256, 256)
        assert len(set(image.getdata())) > 2  # text drawn on the background


def test_paths_never_leave_their_root(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("x")
    assert inside(tmp_path, "ok.txt") == (tmp_path / "ok.txt").resolve()
    for escape in ("../secret", "/etc/passwd", "sub/../../x"):
        with pytest.raises(PermissionError):
            inside(tmp_path, escape)
    (tmp_path / "link").symlink_to("/etc")
    with pytest.raises(PermissionError):
        inside(tmp_path, "link/passwd")
    assert "/" not in safe_id("../../alice") and safe_id("../../alice") != safe_id("alice")
    with pytest.raises(PermissionError):
        user_workspace_file("demo", "../alice/data/sales_q3.csv")


def test_each_user_id_has_a_folder_of_its_own() -> None:
    """Identities from custom auth are emails and token subjects: ids that clean alike must not share files."""
    assert safe_id("alice") == "alice" and safe_id("a.b-c_d") == "a.b-c_d"  # plain names keep their folders
    alike = ["j@x", "j_x", "j#x", ".alice", "alice", "alice.", "..", ".", "_", "x" * 128, "x" * 129, "x" * 130]
    folders = [safe_id(user) for user in alike]
    assert len(set(folders)) == len(alike)
    assert all(folder not in ("", ".", "..") and "/" not in folder and len(folder) <= 128 for folder in folders)


def test_charts_never_touch_pyplot(tmp_path: Path) -> None:
    """Tools run in a thread pool: a chart draws on its own ``Figure``, and pyplot is never even imported."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from nodes.tools.charts import render_chart; "
        f"render_chart(['a', 'b'], [1, 2], 'T', 'bar', Path({str(tmp_path)!r})); "
        "print('matplotlib.pyplot' in sys.modules)"
    )
    from loom.processes import PROJECT_ROOT

    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
