"""The metrics listener's bookkeeping of the multiprocess directory (wsproxy/cli/_metrics_listener.py),
without a server: which files it empties and which directory it makes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsproxy.cli._metrics_listener import MULTIPROC_ENV, prepare_multiprocess_dir


def test_a_given_directory_is_emptied_of_old_metric_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("counter_12.db", "gauge_livesum_12.db", "histogram_7.db", "notes.txt", "counter.db"):
        (tmp_path / name).write_text("x")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    assert prepare_multiprocess_dir() == str(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["counter.db", "notes.txt"]


def test_without_one_a_fresh_directory_is_made_and_set_for_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored after the test
    made = prepare_multiprocess_dir()
    assert os.environ[MULTIPROC_ENV] == made
    assert os.listdir(made) == []
    os.rmdir(made)
