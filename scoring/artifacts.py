"""A model's files on disk: the checksum manifest written at training time and the meta that names its kind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from scoring.segments import SegmentGrid
from scoring.spec import FeatureSpec

CHECKSUMS = "checksums.json"


class ArtifactError(RuntimeError):
    """A model artifact is missing or does not match the checksum written at training time."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(paths: dict[str, Path], folder: Path) -> Path:
    out = folder / CHECKSUMS
    out.write_text(json.dumps({name: file_sha256(p) for name, p in paths.items()}, indent=2))
    return out


def verify_checksums(artifacts: dict[str, str]) -> None:
    """Raise ArtifactError naming the first artifact that is missing or altered."""
    if CHECKSUMS not in artifacts or not Path(artifacts[CHECKSUMS]).exists():
        raise ArtifactError("checksum manifest missing")
    expected = json.loads(Path(artifacts[CHECKSUMS]).read_text())
    for name, digest in expected.items():
        path = Path(artifacts.get(name, ""))
        if not path.is_file():
            raise ArtifactError(f"artifact {name} missing")
        if file_sha256(path) != digest:
            raise ArtifactError(f"artifact {name} does not match its training-time checksum")


def verify_folder(folder: Path) -> None:
    """`verify_checksums` of a folder whose files the manifest lists by stem; a file it does not list
    is refused too, as nothing vouches for it."""
    files = {p.name if p.name == CHECKSUMS else p.stem: p for p in folder.iterdir() if p.is_file()}
    verify_checksums({name: str(p) for name, p in files.items()})
    listed = json.loads(files[CHECKSUMS].read_text())
    unlisted = sorted(p.name for name, p in files.items() if name != CHECKSUMS and name not in listed)
    if unlisted:
        raise ArtifactError(f"{unlisted[0]} has no checksum in {folder.name}/{CHECKSUMS}")


def write_meta(folder: Path, kind: str, spec: FeatureSpec, band_edges: list[float],
               segments: SegmentGrid | None, **extra) -> Path:
    path = folder / "meta.json"
    path.write_text(json.dumps({"kind": kind, "spec": spec.to_dict(), "band_edges": band_edges,
                                "value_edges": segments.value_edges if segments else None, **extra}))
    return path


def read_kind(artifacts: dict[str, str]) -> str | None:
    """The scorer kind meta.json names, or None when there is no meta."""
    path = Path(artifacts.get("meta", ""))
    return json.loads(path.read_text())["kind"] if path.is_file() else None


def read_meta(artifacts: dict[str, str]) -> tuple[dict, FeatureSpec, SegmentGrid | None]:
    verify_checksums(artifacts)
    meta = json.loads(Path(artifacts["meta"]).read_text())
    grid = SegmentGrid(meta["value_edges"]) if meta["value_edges"] is not None else None
    return meta, FeatureSpec.from_dict(meta["spec"]), grid
