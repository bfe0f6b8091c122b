"""Stage-out security: names from job reports stay inside their roots (no '..', absolute paths or symlink
escapes, at registration and at transfer time) and everything is created owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosplit.aso import (
    UnsafePathError,
    file_checksum,
    job_transfer_outcome,
    register_outputs,
    run_agent,
    stage_to_temp,
)
from autosplit.aso.paths import check_inside, ensure_private_dir, safe_relpath
from tests.test_aso_helpers import fast_config, files_under, make_task


@pytest.mark.parametrize(
    "name", ["../x", "a/../../x", "..", "/etc/passwd", "", "  ", "a/\x00b", "a\\..\\b", "./..", "a/./../.."]
)
def test_aso_unsafe_names_are_refused(name) -> None:
    with pytest.raises(UnsafePathError):
        safe_relpath(name)


def test_aso_safe_names_are_normalised() -> None:
    assert safe_relpath("a//b/./c.root") == "a/b/c.root"
    assert safe_relpath("./x.root") == "x.root"
    assert safe_relpath("dir.with..dots/file..root") == "dir.with..dots/file..root"


@given(st.text(alphabet="ab./\\\x00", max_size=12))
def test_aso_any_accepted_name_stays_inside_the_root(name) -> None:
    try:
        rel = safe_relpath(name)
    except UnsafePathError:
        return
    root = Path("/r/o/o/t")
    joined = Path(os.path.normpath(root / rel))
    assert joined != root and root in joined.parents


def test_aso_registration_refuses_a_destination_through_a_symlink_out_of_the_root(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "link").symlink_to(outside)
    (dest / "inner").symlink_to(dest)  # a link that stays inside is fine at registration
    check_inside(dest, "inner/x.root")
    with pytest.raises(UnsafePathError, match="outside"):
        check_inside(dest, "link/x.root")
    local = tmp_path / "x.root"
    local.write_bytes(b"x")
    staged = stage_to_temp({local: "link/x.root"}, tmp_path / "temp", task="t", job_id=1, attempt=0)
    with pytest.raises(UnsafePathError):
        register_outputs(
            tmp_path / "db", "t", 1, 0, staged, temp_root=tmp_path / "temp", destination_root=dest
        )


def test_aso_symlink_swapped_in_after_registration_is_refused_at_transfer(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=2)
    outside = tmp_path / "outside"
    outside.mkdir()
    # the destination job directory becomes a link to somewhere else after the job registered
    (task.dest_root / "user" / "t1").mkdir(parents=True)
    (task.dest_root / "user" / "t1" / "job0").symlink_to(outside)
    run_agent(task.db_path, fast_config(), until="final", timeout=30)
    assert list(outside.iterdir()) == []
    outcome = job_transfer_outcome(task.db_path, "t1", "job-0", 0)
    assert outcome.exit_code == 2 and "unsafe-path" in outcome.reason and "symbolic link" in outcome.reason


def test_aso_a_symlinked_temp_copy_is_neither_read_nor_deleted(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"top secret")
    (staged,) = task.staged[("job-0", 0)]
    task.source(staged).unlink()
    task.source(staged).symlink_to(secret)
    run_agent(task.db_path, fast_config(), until="final", timeout=30)
    assert secret.read_bytes() == b"top secret"
    assert not task.dest(staged.dest_path).exists()
    assert "unsafe-path" in job_transfer_outcome(task.db_path, "t1", "job-0", 0).reason


def test_aso_files_and_directories_are_owner_only(tmp_path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen them
    try:
        task = make_task(tmp_path, jobs=2, files_per_job=2)
        run_agent(task.db_path, fast_config(), until="idle")
    finally:
        os.umask(old)
    delivered = files_under(task.dest_root)
    assert len(delivered) == 4
    for path in delivered:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for root in (task.dest_root, task.temp_root):
        for directory, _, _ in os.walk(root):
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
    for name in ("aso.sqlite", "aso.sqlite-wal"):
        assert stat.S_IMODE((task.db_path.parent / name).stat().st_mode) == 0o600
    assert stat.S_IMODE(ensure_private_dir(tmp_path / "a" / "b" / "c").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700


def test_aso_staging_copies_with_checksums_and_refuses_unsafe_names(tmp_path) -> None:
    local = tmp_path / "out.root"
    local.write_bytes(os.urandom(3_000_000))
    (staged,) = stage_to_temp({local: "d/out.root"}, tmp_path / "temp", task="t", job_id="job-3", attempt=2)
    assert staged.source_path == "t/job-3/2/d/out.root" and staged.size == 3_000_000
    copy = tmp_path / "temp" / staged.source_path
    assert copy.read_bytes() == local.read_bytes()
    assert staged.checksum == file_checksum(local) and len(staged.checksum) == 8
    assert [p.name for p in (tmp_path / "temp" / "t/job-3/2/d").iterdir()] == [
        "out.root"
    ]  # no temp name left
    with pytest.raises(UnsafePathError):
        stage_to_temp({local: "../x"}, tmp_path / "temp", task="t", job_id=1, attempt=0)
    with pytest.raises(UnsafePathError):
        stage_to_temp({local: "x"}, tmp_path / "temp", task="../t", job_id=1, attempt=0)
