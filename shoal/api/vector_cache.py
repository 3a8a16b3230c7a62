"""The vectors of a vector index held in memory by each worker, so that a
search of a large index is one matrix product instead of a scan that
decodes every entry.

A search of the range [start, stop) of a vector index (the whole index, or
one HASH value's entries: ``shoal.api.vectors.partition_range``) finds, or
builds from one scan of the range, a ``_Matrix``: every entry's key, its
float32 vector as a row of a numpy matrix, and its stored size, as of the
change log's position ``position`` (read in the same snapshot).  It is kept
exact from then on without rescanning: each search reads the table's change
records after ``position`` (``shoal.api.changelog``), leaves out of the
matrix the rows of every item changed since, and scores those items'
current entries, read one by one, the way the scan would.  When more items
than ``REBUILD_FRACTION`` of the rows (at least ``REBUILD_MIN``) changed, or
the records since ``position`` are no longer all in the log (pruned, or a
bulk load that writes none per item), or the table itself changed, the
matrix is built anew from the snapshot being read.

Rows are ranked by numpy in float32; the ``top_k`` taken from them, plus
every row within a small margin of the last one kept, are then scored again
by the exact scorer (``shoal.api.vectors``), so that the scores returned and
the order of equal scores (key order) are exactly those of a full scan.
INLINE_FILTER equalities are checked on the candidates' entries in rank
order; a filter that leaves too few of them hands the search back to the
scan (``None``).

Memory: 4 bytes a dimension a row (and 4 for its norm), plus a key and a
size; at most ``MAX_BYTES`` of vectors over all the matrices of a process,
the least recently used dropped first.  The search is exact (recall 1.0): an approximate index
(HNSW) would replace the matrix product, on the same freshness machinery.
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from collections import OrderedDict

import numpy as np

from shoal.api.changelog import decode_change, head_position, is_table_change, oldest_change, read_table_changes
from shoal.api.common import storage_key

REBUILD_FRACTION = 0.05
REBUILD_MIN = 2000
#: Bytes of vectors a process keeps (SHOAL_VECTOR_CACHE_MB, default 1 GiB): the least recently used
#: matrices are dropped beyond it (a single larger one is kept alone).
MAX_BYTES = int(float(os.environ.get("SHOAL_VECTOR_CACHE_MB", "1024")) * 2 ** 20)
_LITTLE = sys.byteorder == "little"
_lock = threading.Lock()
_matrices: "OrderedDict[tuple, _Matrix]" = OrderedDict()


class _Matrix:
    __slots__ = ("position", "keys", "vectors", "sizes", "row_of", "bytes", "norms")

    def __init__(self, position: int, keys: list, vectors: np.ndarray, sizes: np.ndarray, start_len: int) -> None:
        self.position = position
        self.keys = keys
        self.vectors = vectors
        self.sizes = sizes
        self.bytes = int(sizes.sum()) if len(sizes) else 0
        # the entry key's table part (after the range's prefix) -> its row
        self.row_of = {key[start_len:]: row for row, key in enumerate(keys)}
        self.norms = None  # per-row L2 norms, computed on the first cosine or euclidean search


def clear() -> None:
    """Forget every matrix (tests)."""
    with _lock:
        _matrices.clear()


def nearest(txn, table, start: bytes, stop: bytes | None, query, spec, filters, top_k: int, exact_scorer,
            passes) -> tuple[list, int] | None:
    """The ``top_k`` best entries of [start, stop) as (score, entry value)
    in rank order and the bytes of the range's entries, as a full scan
    would give them; None when the scan should run instead.

    ``exact_scorer(vector array) -> score`` and ``passes(value, width,
    filters) -> bool`` are the scan's own."""
    width = 4 + 4 * spec.dimensions
    cache_key = (table.table_id, start, stop)
    with _lock:
        matrix = _matrices.get(cache_key)
        if matrix is not None:
            _matrices.move_to_end(cache_key)
    changed = None
    if matrix is not None:
        changed = _changed_since(txn, table, matrix.position, start)
        if changed is None or len(changed) > max(REBUILD_MIN, REBUILD_FRACTION * len(matrix.keys)):
            matrix = None
    if matrix is None:
        matrix = _build(txn, start, stop, width)
        changed = {}
        _keep(cache_key, matrix)
    return _search(txn, matrix, changed, start, query, spec, filters, top_k, width, exact_scorer, passes)


def _changed_since(txn, table, position: int, start: bytes) -> dict | None:
    """{entry key's table part: True} of the items changed after
    ``position``; None when that cannot be told from the log."""
    head = head_position(txn)
    if head == position:
        return {}
    oldest = oldest_change(txn)
    if oldest is None or oldest[0] > position + 1:
        return None  # records after the matrix's position were pruned
    changed = {}
    for value in read_table_changes(txn, table.table_id, position):
        _, record = decode_change(value)
        if is_table_change(record) or "keys" not in record:
            return None  # the table changed, or items were loaded in bulk (no record per item)
        skey = storage_key(table, record["keys"])
        changed[skey[len(table.prefix) + 4:]] = True
    return changed


def _build(txn, start: bytes, stop: bytes | None, width: int) -> _Matrix:
    position = head_position(txn)
    keys, sizes = [], []
    buffer = bytearray()
    for key, value in txn.scan("indexes", start, stop):
        keys.append(bytes(key))
        sizes.append(len(value))
        buffer += value[4:width]
    dims = (width - 4) // 4
    vectors = np.frombuffer(bytes(buffer), dtype="<f4").reshape(len(keys), dims) if keys else \
        np.zeros((0, dims), dtype="<f4")
    return _Matrix(position, keys, vectors, np.asarray(sizes, dtype=np.int64), len(start))


def _keep(cache_key: tuple, matrix: _Matrix) -> None:
    with _lock:
        _matrices[cache_key] = matrix
        _matrices.move_to_end(cache_key)
        total = sum(m.vectors.nbytes for m in _matrices.values())
        while total > MAX_BYTES and len(_matrices) > 1:
            _, dropped = _matrices.popitem(last=False)
            total -= dropped.vectors.nbytes


def _fast_scores(matrix: _Matrix, query: np.ndarray, distance: str) -> tuple[np.ndarray, float, float]:
    """Every row's rank in float32 (higher is better), and a bound on how
    far float32 rounding may have moved a rank near ``r``: ``absolute +
    relative * |r|``."""
    vectors = matrix.vectors
    if matrix.norms is None:
        matrix.norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)).astype(np.float32)
    q_norm = float(np.sqrt(np.dot(query.astype(np.float64), query.astype(np.float64))))
    largest = float(matrix.norms.max()) if len(matrix.norms) else 0.0
    # A float32 dot product of n terms errs by at most about n * 2**-24 * sum|x_i q_i| <= n * 2**-24 * |x| |q|.
    slack = 4 * len(query) * 2.0 ** -24
    if distance == "DOT_PRODUCT":
        return vectors @ query, slack * largest * q_norm + 1e-30, 0.0
    if distance == "EUCLIDEAN":  # from the differences: no cancellation between near vectors
        diff = vectors - query
        return -np.sqrt(np.einsum("ij,ij->i", diff, diff)), 1e-30, slack
    dots = vectors @ query
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.where(matrix.norms > 0, dots / (matrix.norms * np.float32(q_norm)), np.float32(0.0))
    return cosine.astype(np.float32), 4 * slack + 1e-6, 0.0  # 1 - the cosine distance


def _search(txn, matrix: _Matrix, changed: dict, start: bytes, query, spec, filters, top_k: int, width: int,
            exact_scorer, passes) -> tuple[list, int] | None:
    higher_is_better = spec.distance == "DOT_PRODUCT"
    q = np.frombuffer(query.tobytes(), dtype=np.float32) if hasattr(query, "tobytes") else \
        np.asarray(query, dtype=np.float32)
    read = matrix.bytes
    candidates: list = []  # (rank, -key order, score, value)
    # The changed items: their current entries, scored as the scan scores them.
    for suffix in changed:
        row = matrix.row_of.get(suffix)
        if row is not None:
            read -= int(matrix.sizes[row])
        value = txn.get("indexes", start + suffix)
        if value is None:
            continue
        read += len(value)
        if filters and not passes(value, width, filters):
            continue
        candidates.append(_scored(value, start + suffix, width, exact_scorer, higher_is_better))
    rows = len(matrix.keys)
    if rows:
        ranks, absolute, relative = _fast_scores(matrix, q, spec.distance)
        if changed:
            excluded = [matrix.row_of[s] for s in changed if s in matrix.row_of]
            if excluded:
                ranks = ranks.copy()
                ranks[excluded] = -np.inf
        wanted = top_k
        while True:
            take = min(rows, wanted)
            top = np.argpartition(-ranks, take - 1)[:take] if take < rows else np.arange(rows)
            if take < rows:  # every row within rounding of the last one taken (and its ties)
                floor = float(ranks[top].min())
                top = np.nonzero(ranks >= floor - 2 * (absolute + relative * abs(floor)))[0]
            order = top[np.argsort(-ranks[top], kind="stable")]
            found = []
            for row in order:
                if ranks[row] == -np.inf:
                    continue
                key = matrix.keys[row]
                value = txn.get("indexes", key)
                if value is None:  # cannot happen in one snapshot with the log read: let the scan decide
                    return None
                if filters and not passes(value, width, filters):
                    continue
                found.append(_scored(value, key, width, exact_scorer, higher_is_better))
            if len(found) >= top_k or take >= rows:
                candidates.extend(found)
                break
            if wanted >= 8 * top_k + 1000:
                return None  # a filter that few entries pass: the scan is cheaper
            wanted *= 4
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return [(score, value) for _, _, score, value in candidates[:top_k]], read


class _KeyOrder(bytes):
    """An entry key ranked so that the first in key order ranks first among
    equal scores (reverse-sorted with the scores)."""

    __slots__ = ()

    def __lt__(self, other):
        return bytes.__gt__(self, other)

    def __gt__(self, other):
        return bytes.__lt__(self, other)


def _scored(value, key: bytes, width: int, exact_scorer, higher_is_better: bool) -> tuple:
    vector = array("f")
    vector.frombytes(bytes(value[4:width]))
    if not _LITTLE:
        vector.byteswap()
    score = exact_scorer(vector)
    return (score if higher_is_better else -score, _KeyOrder(key), score, bytes(value))
