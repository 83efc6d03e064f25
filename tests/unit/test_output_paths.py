"""Safe output paths: names, roots, writability and unique experiment dirs (faults 21-23, 32)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from pytest_fluxloop.artifacts.paths import (
    OutputPathError,
    check_writable,
    make_experiment_dir,
    resolve_output_root,
    slugify_suffix,
    validate_experiment_name,
)

NOW = datetime(2024, 11, 1, 14, 30, 22)


# -- validate_experiment_name -------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "..",
        ".",
        "..hidden",
        "/abs",
        "a/b",
        "a\\b",
        "C:evil",
        "a\x00b",
        "tab\tname",
        "line\nbreak",
        "x" * 256,
        "CON",
        "con",
        "Con.txt",
        "nul.tar.gz",
        "PRN",
        "AUX",
        "COM1",
        "lpt9.log",
        "",
        "   ",
    ],
)
def test_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(OutputPathError) as info:
        validate_experiment_name(name)
    message = str(info.value)
    # The message names the (possibly shortened) value and says what a good name looks like.
    assert repr(name[:20])[:-1] in message
    assert "baseline-test" in message


@pytest.mark.parametrize(
    "name",
    ["baseline-test", "My Agent Experiment", "v1.2_run", "café ☕", "CONSOLE", "COM10", "x" * 255],
)
def test_accepts_plain_names(name: str) -> None:
    assert validate_experiment_name(name) == name


def test_rejects_non_string_name() -> None:
    with pytest.raises(OutputPathError, match="must be a string"):
        validate_experiment_name(None)  # type: ignore[arg-type]


def test_output_path_error_is_value_error() -> None:
    assert issubclass(OutputPathError, ValueError)


# -- slugify_suffix -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("baseline test", "baseline-test"),
        ("café: run #2", "cafe-run-2"),
        ("../../etc/passwd", "etc-passwd"),
        ("a..b", "a.b"),
        ("  __x__  ", "x"),
        ("日本語", ""),
        ("v1.2_final", "v1.2_final"),
    ],
)
def test_slugify_suffix(name: str, expected: str) -> None:
    assert slugify_suffix(name) == expected


@pytest.mark.parametrize("name", ["Hello World!", "x" * 300, "-._weird__name_.-" * 10, "ünï cödé"])
def test_slugify_is_safe_bounded_and_idempotent(name: str) -> None:
    slug = slugify_suffix(name)
    assert len(slug) <= 64
    assert slug.isascii()
    assert all(ch.isalnum() or ch in "_.-" for ch in slug)
    assert ".." not in slug
    assert slugify_suffix(slug) == slug


# -- resolve_output_root ------------------------------------------------------------------


def test_relative_output_dir_resolves_inside_project(tmp_path: Path) -> None:
    assert resolve_output_root("experiments", tmp_path) == (tmp_path / "experiments").resolve()
    assert resolve_output_root(Path("a/../b"), tmp_path) == (tmp_path / "b").resolve()


def test_relative_output_dir_escaping_project_is_rejected(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with pytest.raises(OutputPathError) as info:
        resolve_output_root("../outside", project)
    message = str(info.value)
    assert "../outside" in message
    assert str(project.resolve()) in message
    assert str((tmp_path / "outside").resolve()) in message


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_leading_outside_is_rejected(tmp_path: Path) -> None:
    project = tmp_path / "project"
    outside = tmp_path / "elsewhere"
    project.mkdir()
    outside.mkdir()
    (project / "experiments").symlink_to(outside, target_is_directory=True)
    with pytest.raises(OutputPathError) as info:
        resolve_output_root("experiments", project)
    assert str(outside.resolve()) in str(info.value)
    assert str(project.resolve()) in str(info.value)


@pytest.mark.skipif(sys.platform == "win32", reason="symlinks need privileges on Windows")
def test_symlink_staying_inside_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "experiments").symlink_to(tmp_path / "real", target_is_directory=True)
    assert resolve_output_root("experiments", tmp_path) == (tmp_path / "real").resolve()


def test_explicit_absolute_path_outside_project_is_the_users_choice(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    target = tmp_path / "shared" / "runs"
    assert resolve_output_root(str(target), project) == target.resolve()


def test_home_directory_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))
    result = resolve_output_root("~/runs", tmp_path / "project")
    assert result == (tmp_path / "home" / "runs").resolve()


@pytest.mark.parametrize("bad", ["exp\x00s", "", "  "])
def test_nul_or_empty_output_dir_is_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(OutputPathError, match="output_directory"):
        resolve_output_root(bad, tmp_path)


# -- check_writable -----------------------------------------------------------------------


def test_check_writable_creates_parents_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    assert check_writable(target) == target
    assert target.is_dir()
    assert list(target.iterdir()) == []


def test_check_writable_under_a_file_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a dir")
    target = blocker / "experiments"
    with pytest.raises(OutputPathError) as info:
        check_writable(target)
    message = str(info.value)
    assert f"output directory {str(target)!r} is not writable" in message
    assert "output_directory / --output-dir" in message


@pytest.mark.skipif(
    sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
    reason="mode bits do not stop root or Windows",
)
def test_check_writable_read_only_directory(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match=r"is not writable: .*ermission"):
            check_writable(ro)
    finally:
        ro.chmod(0o700)


# -- make_experiment_dir ------------------------------------------------------------------


def test_experiment_dir_name_and_suffix(tmp_path: Path) -> None:
    root = tmp_path / "experiments"
    plain = make_experiment_dir(root, NOW)
    named = make_experiment_dir(root, NOW, "baseline test")
    assert plain == root / "exp_20241101_143022"
    assert named == root / "exp_20241101_143022_baseline-test"
    assert plain.is_dir() and named.is_dir()


def test_collisions_get_numbered_and_existing_dirs_are_never_reused(tmp_path: Path) -> None:
    first = make_experiment_dir(tmp_path, NOW)
    (first / "summary.json").write_text("{}")
    second = make_experiment_dir(tmp_path, NOW)
    third = make_experiment_dir(tmp_path, NOW)
    assert [p.name for p in (first, second, third)] == [
        "exp_20241101_143022",
        "exp_20241101_143022_2",
        "exp_20241101_143022_3",
    ]
    assert (first / "summary.json").read_text() == "{}"
    assert list(second.iterdir()) == []


def test_suffix_cannot_escape_root(tmp_path: Path) -> None:
    path = make_experiment_dir(tmp_path / "root", NOW, "../../evil")
    assert path.parent == tmp_path / "root"
    assert path.name == "exp_20241101_143022_evil"


def test_unwritable_root_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError, match="not writable"):
        make_experiment_dir(blocker / "experiments", NOW)


def test_concurrent_threads_same_second_get_distinct_dirs(tmp_path: Path) -> None:
    results: list[Path] = []
    lock = threading.Lock()
    barrier = threading.Barrier(16)

    def worker() -> None:
        barrier.wait()
        path = make_experiment_dir(tmp_path, NOW, "race")
        with lock:
            results.append(path)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 16
    assert len(set(results)) == 16
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in results)


@pytest.mark.slow
def test_concurrent_processes_same_second_get_distinct_dirs(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=4, mp_context=ctx) as pool:
        futures = [pool.submit(make_experiment_dir, tmp_path, NOW, None) for _ in range(12)]
        results = [f.result() for f in futures]
    assert len(set(results)) == 12
    assert len(list(tmp_path.iterdir())) == 12
