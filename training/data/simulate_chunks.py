"""A base too large to simulate as one world in memory, simulated in chunks of users and written into one
warehouse.

Each chunk is a world of its own (`SimConfig.first_user`): its own random streams, rings, invites and
shared devices, ids and addresses past the earlier chunks', the same campaigns. Chunks run in parallel
processes, each writing its tables to a folder of parts; the parts are appended in chunk order to one
Parquet file per table, the ids that count rows (transactions, loans, rings) shifted past the earlier
chunks'. Memory is bounded by the processes × one chunk, whatever the base.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tqdm import tqdm

from scoring.settings import Settings
from training.data.simulate import SimConfig, simulate
from training.data.warehouse import create_views, write_world

# Row-counting ids shifted past the earlier chunks' (folder, table, column, the count they shift by).
SHIFTED = (
    ("warehouse", "transactions", "txn_id", "transactions"),
    ("warehouse", "loans", "loan_id", "loans"),
    ("warehouse", "instalments", "loan_id", "loans"),
    ("truth", "loans", "loan_id", "loans"),
    ("truth", "users", "ring_id", "rings"),
)
# The same in every chunk: written from the first.
SHARED = {("warehouse", "campaigns")}
BATCH_ROWS = 1_000_000


def simulate_into(cfg: SimConfig, settings: Settings, progress: bool = True) -> dict[str, int]:
    """The world of `cfg` into the warehouse (in chunks when it has more users than a chunk); rows per table."""
    size = settings.simulate_chunk_users
    if cfg.users <= size:
        return write_world(simulate(cfg, progress=progress), settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # the parts are written inside it
    starts = range(0, cfg.users, size)
    parts = Path(tempfile.mkdtemp(prefix=".chunks-", dir=settings.data_dir))
    try:
        with ProcessPoolExecutor(settings.simulate_processes, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(simulate_part, replace(cfg, users=min(size, cfg.users - s), first_user=s),
                                   parts / str(k)) for k, s in enumerate(starts)]
            rows = merge(_in_order(futures, progress), settings)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    meta = json.loads((settings.truth_dir / "meta.json").read_text())
    meta.update(users=cfg.users, chunk_users=size)
    (settings.truth_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    return rows


def simulate_part(cfg: SimConfig, folder: Path) -> tuple[Path, dict[str, int]]:
    """One chunk's world written as a warehouse of its own in `folder` (warehouse/, truth/); what its ids
    count."""
    world = simulate(cfg, progress=False)
    write_world(world, Settings(data_dir=folder))
    ring = world.truth["users"]["ring_id"]
    counts = {"transactions": len(world.tables["transactions"]), "loans": len(world.tables["loans"]),
              "rings": int(ring.max()) + 1 if (ring >= 0).any() else 0}
    return folder, counts


def _in_order(futures: list[Future], progress: bool) -> Iterator[tuple[Path, dict[str, int]]]:
    for future in tqdm(futures, desc="simulate chunks", unit="chunk", disable=not progress):
        yield future.result()


def merge(parts: Iterator[tuple[Path, dict[str, int]]], settings: Settings) -> dict[str, int]:
    """The chunks' parts appended in order to one file per table, ids shifted; rows per warehouse table."""
    targets = {"warehouse": settings.warehouse_dir, "truth": settings.truth_dir}
    for folder in targets.values():
        folder.mkdir(parents=True, exist_ok=True)
    writers: dict[tuple[str, str], pq.ParquetWriter] = {}
    offsets = {"transactions": 0, "loans": 0, "rings": 0}
    rows: dict[str, int] = {}
    try:
        for k, (folder, counts) in enumerate(parts):
            if k == 0:
                shutil.copy(folder / "truth" / "meta.json", settings.truth_dir / "meta.json")
            for kind, target in targets.items():
                for path in sorted((folder / kind).glob("*.parquet")):
                    key = (kind, path.stem)
                    if key in SHARED and k > 0:
                        continue
                    part = pq.ParquetFile(path)
                    if key not in writers:  # from the first chunk's schema, so that an empty table is written too
                        writers[key] = pq.ParquetWriter(target / f".{path.stem}.part", part.schema_arrow)
                    for batch in part.iter_batches(BATCH_ROWS):
                        table = _shifted(pa.Table.from_batches([batch]), kind, path.stem, offsets)
                        writers[key].write_table(table.cast(writers[key].schema))
                        if kind == "warehouse":
                            rows[path.stem] = rows.get(path.stem, 0) + len(table)
            for name, n in counts.items():
                offsets[name] += n
            shutil.rmtree(folder)
    finally:
        for w in writers.values():
            w.close()
    for kind, name in writers:
        (targets[kind] / f".{name}.part").replace(targets[kind] / f"{name}.parquet")
    create_views(settings)
    return rows


def _shifted(table: pa.Table, kind: str, name: str, offsets: dict[str, int]) -> pa.Table:
    for k, t, column, count in SHIFTED:
        if (k, t) == (kind, name) and offsets[count]:
            col = table.column(column)
            shift = pa.scalar(offsets[count], col.type)
            # A ring id of -1 (no ring) stays -1.
            moved = pc.if_else(pc.greater_equal(col, 0), pc.add(col, shift), col) if column == "ring_id" else pc.add(col, shift)
            table = table.set_column(table.schema.get_field_index(column), column, moved)
    return table
