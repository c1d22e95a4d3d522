"""Artifacts are what their training-time manifest says: an altered, missing or unlisted file is refused by name."""

from __future__ import annotations

import pytest

from scoring.artifacts import ArtifactError, verify_folder, write_checksums


@pytest.fixture
def folder(tmp_path):
    paths = {name: tmp_path / f"{name}.parquet" for name in ("top_value", "dormant")}
    for name, p in paths.items():
        p.write_bytes(name.encode() * 100)
    write_checksums(paths, tmp_path)
    return tmp_path


def test_a_folder_as_written_verifies(folder):
    verify_folder(folder)


def test_a_flipped_byte_is_refused_naming_the_file(folder):
    data = bytearray((folder / "dormant.parquet").read_bytes())
    data[7] ^= 1
    (folder / "dormant.parquet").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="dormant"):
        verify_folder(folder)


def test_a_missing_or_unlisted_file_is_refused(folder):
    (folder / "stranger.parquet").write_bytes(b"x")
    with pytest.raises(ArtifactError, match="stranger.parquet has no checksum"):
        verify_folder(folder)
    (folder / "stranger.parquet").unlink()
    (folder / "top_value.parquet").unlink()
    with pytest.raises(ArtifactError, match="top_value missing"):
        verify_folder(folder)
