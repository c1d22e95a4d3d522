"""The lookalike's faiss index: exact for a small base, IVF over 8-bit scalar-quantised vectors above it.

The index holds the only copy of the base's vectors (a 10M-user base's float32 embedding alone would be
4.5 GB): seeds' vectors are embedded again from their snapshot rows, and the rare pass over every
vector (the classifier's scores, the fallback ranking) decodes them from the index a list at a time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import faiss
import numpy as np

from scoring.thresholds import (EXACT_INDEX_BELOW, IVF_CODE, IVF_KMEANS_ITERATIONS, IVF_LISTS_PER_SQRT_USER, IVF_MAX_LISTS,
                                IVF_NPROBE, IVF_TRAIN_PER_LIST)


def lists_for(n: int) -> int:
    return min(int(IVF_LISTS_PER_SQRT_USER * math.sqrt(n)), IVF_MAX_LISTS)


def new_index(n: int, dims: int, sample: np.ndarray) -> faiss.Index:
    """An empty index for n vectors: exact below EXACT_INDEX_BELOW, else IVF over scalar-quantised residuals
    (IVF_CODE: 8-bit, a quarter of float32's pages), trained on the sample."""
    if n < EXACT_INDEX_BELOW:
        return faiss.IndexFlatIP(dims)
    nlist = lists_for(n)
    code = getattr(faiss.ScalarQuantizer, IVF_CODE)
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(dims), dims, nlist, code, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = IVF_KMEANS_ITERATIONS
    take = np.random.default_rng(0).permutation(len(sample))[: IVF_TRAIN_PER_LIST * nlist]
    index.train(np.ascontiguousarray(sample[np.sort(take)]))
    index.nprobe = IVF_NPROBE
    return index


def read_index(path: str) -> faiss.Index:
    # Mapped, not read: every worker's index is then the page cache's one copy (faiss maps an IVF index's
    # lists; a flat index, below EXACT_INDEX_BELOW users, is read as before).
    index = faiss.read_index(path, faiss.IO_FLAG_MMAP_IFC)
    if isinstance(index, faiss.IndexIVF):
        index.nprobe = IVF_NPROBE
    return index


def scan(index: faiss.Index, block: int = 100_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every stored vector, decoded, with its row: (rows, vectors) a block at a time, never the whole base."""
    if isinstance(index, faiss.IndexIVFScalarQuantizer):
        lists, size = index.invlists, index.code_size
        for lst in range(index.nlist):
            m = lists.list_size(lst)
            if m == 0:
                continue
            codes = faiss.rev_swig_ptr(lists.get_codes(lst), m * size).reshape(m, size)
            rows = faiss.rev_swig_ptr(lists.get_ids(lst), m).copy()
            vectors = index.sq.decode(codes)
            if index.by_residual:
                vectors += index.quantizer.reconstruct(lst)
            yield rows, vectors
    else:
        for start in range(0, index.ntotal, block):
            m = min(block, index.ntotal - start)
            yield np.arange(start, start + m), index.reconstruct_n(start, m)
