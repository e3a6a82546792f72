"""Artifact folders: one per (owner, thread) that no other pair of ids can reach, and bare names only."""

from __future__ import annotations

import pytest

from loom.settings import Settings
from services.paths import artifact_file, artifacts_folder, inside, thread_artifacts_dir


def test_ids_that_clean_up_alike_get_different_folders(loom_env: Settings) -> None:
    folders = {
        artifacts_folder(loom_env, user, thread)
        for user in ("alice", "bob")
        for thread in ("proj:1", "proj_1", "proj.1", "proj1", ".proj1", "proj1.")
    }
    assert len(folders) == 12
    assert all(folder.parent == loom_env.artifacts_dir for folder in folders)


def test_a_tool_writes_where_the_owner_reads(loom_env: Settings) -> None:
    folder = thread_artifacts_dir(loom_env, {"configurable": {"thread_id": "proj:1"}}, "alice")
    (folder / "chart.png").write_bytes(b"png")
    assert artifact_file(loom_env, "alice", "proj:1", "chart.png") == (folder / "chart.png").resolve()
    for user, thread in (("bob", "proj:1"), ("alice", "proj_1"), ("bob", "proj_1")):
        with pytest.raises(FileNotFoundError):
            artifact_file(loom_env, user, thread, "chart.png")


@pytest.mark.parametrize("name", ["..", ".", "", "../chart.png", "a/b", "a\\b", "x\0.png", "/etc/passwd", ".hidden"])
def test_only_bare_file_names_are_artifacts(loom_env: Settings, name: str) -> None:
    folder = thread_artifacts_dir(loom_env, {"configurable": {"thread_id": "t"}}, "alice")
    (folder / ".hidden").write_text("x")
    with pytest.raises(FileNotFoundError):
        artifact_file(loom_env, "alice", "t", name)


def test_nul_in_a_path_is_refused_not_a_crash(loom_env: Settings) -> None:
    with pytest.raises(PermissionError):
        inside(loom_env.data_dir, "a\0b")
