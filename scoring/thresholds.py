"""Every size threshold of the scoring path in one place, each beside the measurement that chose it.

The figures were measured on the 2-core development box (in isolation unless said otherwise);
`make bench` measures the end-to-end effect.
"""

from __future__ import annotations

# Up to this many rows, leaves come from LightGBM's fast single-row C API, one call per row:
# ~7 µs a row against ~50 µs for one `Booster.predict` call, whose set-up is most of its cost.
SINGLE_ROW_LEAVES = 4
# Up to this many rows, a dense gather of the per-leaf table beats building a sparse matrix (set when
# the engine was written; not re-measured in isolation since).
DENSE_GATHER_ROWS = 32
# From this many rows the sparse product is split over the scoring threads (scipy releases the
# GIL): a 10,000-row product 15 -> 8 ms on two threads; below it, OpenMP and pool start-up cost more.
PARALLEL_ROWS = 2000
# Up to this many rows the top reasons come from one stable sort (fewest numpy calls); above it,
# k passes of argmax, 5x faster there than argpartition and a sort.
SORT_REASONS_ROWS = 8
# Up to this many rows an answer is built as dicts and serialised: cheaper than the column-wise
# JSON writer's set-up on a handful of rows. Above it, building, serialising and freeing dicts was
# a third of a 10,000-user call (61 -> 45 ms in-process when written column by column).
DICT_ROWS = 32
# A large answer's JSON text is written this many rows at a time. Each piece's C calls (orjson, the
# joins) hold the interpreter lock without a break; a whole 10,000-row answer's held it for
# milliseconds at a stretch, which single-user calls beside it waited out.
WRITE_ROWS = 1000
# Batches up to this size are scored on the event loop (well under a millisecond, less than the
# hop to a thread); larger ones on the batch lane (service/batches.py), so that they do not stall others.
INLINE_ROWS = 64
# Above this many ids, ids are searched in sorted order: that walks the snapshot's ids in one
# direction instead of jumping across them (a 10,000-id search in 1M ids takes half the time).
SORTED_SEARCH_IDS = 256
# Below this many users the lookalike index is exact (IndexFlatIP), which is cheap there; above it
# IVF over 8-bit scalar-quantised vectors (scoring/vector_index.py): a 10M-user base's index is 1.2 GB
# where float32 lists were 4.6 GB (and a second float32 copy beside them). Projecting onto 64 of the 114
# dimensions (PCA, uncentred) halved that again but cost quality: the 1M build's self-check recall of
# held-out seeds 0.757 -> 0.737 and, at 10M, 0.60 of an exact search's top 50k whatever the nprobe.
EXACT_INDEX_BELOW = 200_000
# IVF_LISTS_PER_SQRT_USER * sqrt(n) lists, at most IVF_MAX_LISTS (assigning 10M vectors to 12,649 lists
# is 1.5x the k-means work of 8,192), of which IVF_NPROBE are searched per query. At 10M (8,192 lists of
# ~1,220, filled by random assignment: the real build did not finish on the loaded box), the endpoint's
# whole lookalike call with 1,000 seeds -> 50k took 1.04 s in-process at 24, the search 0.58-0.75 s of it
# (warm pages, load ~6 on 2 cores); 1.2-1.4 s at 16 and 2.4 s at 32 in a run with colder pages.
IVF_LISTS_PER_SQRT_USER = 4
IVF_MAX_LISTS = 8192
IVF_NPROBE = 24
# The lists' k-means: this many training vectors per list, this many rounds. At 1M, float32 lists after
# faiss's default 25 rounds on 50 a list gave the self-check 0.7573; 8-bit lists after these, 0.7567,
# built in 109 s instead of 323 s (one loaded box, both); the old build's figure was 0.7593.
IVF_TRAIN_PER_LIST = 40
IVF_KMEANS_ITERATIONS = 10
# How the IVF lists store a vector (a faiss ScalarQuantizer type). Over 10M users, 1,000 random seeds'
# top 50k against an exact search's (bench.scale's lookalike_10m_recall_vs_exact; the same 8,192 lists):
#   QT_8bit  1 byte a dimension, index 1.2 GB: 0.842 / 0.849 / 0.852 at nprobe 8 / 16 / 32 (a ceiling:
#            it is the codes' precision, not the lists searched);
#   QT_fp16  2 bytes, 2.4 GB: 0.985 / 0.994 at nprobe 8 / 16 (1M, 1,024 lists: 0.997, as float32 lists).
# At 1M (4,000 lists; the final build), 8-bit: 0.834 / 0.867 / 0.880 / 0.886 at nprobe 8 / 16 / 24 / 32,
# where the float32 lists before gave 0.977 at 24; 1,000 seeds -> 50k in-process (self-check included)
# 378-473 ms against 558-643 ms before (one search instead of two).
# 8-bit keeps the lookalike within the ~1.5 GB that two workers' 8 GiB at 10M leaves it. fp16 reaches 0.95
# alone at 1.2 GB more of mapped pages, but this faiss build searched its codes 3.6x slower than 8-bit ones
# (1M, 1,024 lists, nprobe 32: 6.8 s against 1.9 s on the loaded box). The 8-bit codes' ceiling is lifted
# by re-ranking instead (RERANK_DEPTH).
IVF_CODE = "QT_8bit"
# An approximate index is searched for RERANK_DEPTH times each seed's neighbours, and the candidates'
# exact similarities (embedded again from their snapshot rows, scoring/embedding.py) keep the best.
# 1,000 seeds' top 50k against an exact search's: at 1M 0.857 without, 0.916 / 0.940 / 0.960 at depth
# 1 / 1.5 / 2 (the served expansion, self-check included); at 10M 0.961 at depth 1.5 in 885 ms over HTTP,
# 0.983 at depth 2 in 1,294 ms (bench.scale, 2026-12-08): 1.5 meets both 10M targets (0.95, 1 s).
RERANK_DEPTH = 1.5
# The 8-bit codes span each dimension's whole range (faiss's default). Spanning its 0.1%..99.9% quantiles
# instead took 1,000 seeds' top 50k from 0.927 to 0.938 of an exact search's at 1M, but from 0.849 to 0.835
# at 10M (nprobe 16; the same lists).
# The embedding's quantile grids are fitted on this many random rows (a 1M-user base: all of them).
SPACE_SAMPLE_ROWS = 1_000_000
# Up to this many candidate (user, arm) pairs a plan is solved exactly by `scipy.optimize.milp`
# (HiGHS), within the time limit; above it by the Lagrangian threshold (scoring/optimise.py).
# 3,000 pairs of one arm took HiGHS to a 5 s time limit without closing a 1e-4 gap (thousands of
# near-equal value/cost ratios in one knapsack), where the Lagrangian's plan is within 1e-3 in a blink.
MILP_MAX_PAIRS = 2_000
# HiGHS stops within this share of its bound (the plan reports the bound and gap either way).
MILP_REL_GAP = 1e-3
MILP_TIME_LIMIT_S = 2.0
# The Lagrangian optimiser (scoring/optimise.py).
BISECTION_STEPS = 40
DUAL_ROUNDS = 8
# A bisection stops once the constraint's use is within this share of its limit.
SPEND_TOLERANCE = 1e-4
# Above this many users, prices are first found on a sample of this size.
PRICE_SAMPLE_USERS = 50_000
# How far a price bracket grows per step: from nothing, and from a sample's price.
COLD_GROWTH, WARM_GROWTH = 4.0, 1.05
# A bisection also stops once its price bracket is this narrow (relative).
PRICE_TOLERANCE = 1e-3
# Leftover budget below this share is not filled after the prices' plan.
FILL_MIN_ROOM = 1e-3
# Rounds stop once the plan is within this share of the bound.
GAP_TOLERANCE = 1e-3
