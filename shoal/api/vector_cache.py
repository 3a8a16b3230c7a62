"""The vectors of a vector index held in memory by each worker, so that a
search of a large index is one matrix product (or, above a size, a walk of
an HNSW graph) instead of a scan that decodes every entry.

A search of the range [start, stop) of a vector index (the whole index, or
one HASH value's entries: ``shoal.api.vectors.partition_range``) finds, or
builds from one scan of the range, a ``_Matrix``: every entry's key, its
float32 vector as a row of a numpy matrix, and its stored size, as of the
change log's position ``position`` (read in the same snapshot).  It is kept
exact from then on without rescanning: each search first applies the
table's change records after ``position`` (``shoal.api.changelog``): the
row of every item changed since is marked dead and the item's current
entry, if it has one, appended as a new row; rows never change in place.
When dead rows pass ``REBUILD_FRACTION`` of the live ones (at least
``REBUILD_MIN``) the live rows are copied into a compact matrix; when the
records since ``position`` are no longer all in the log (pruned, or a bulk
load that writes none per item), or the table itself changed, the matrix is
built anew from the snapshot being read.

Exact search: rows are ranked by numpy in float32; the ``top_k`` taken from
them, plus every row within a small margin of the last one kept, are then
scored again by the exact scorer (``shoal.api.vectors``), so that the
scores returned and the order of equal scores (key order) are exactly
those of a full scan.  INLINE_FILTER equalities are checked on the
candidates' entries in rank order; a filter that leaves too few of them
hands the search back to the scan (``None``).

Approximate search: a matrix of at least ``vector_ann.MIN_ROWS`` live rows
gets an HNSW graph over its rows (``shoal.api.vector_ann``), built on a
background thread while the exact search serves.  The graph's nearest rows
that are still live, and the best rows appended since the graph was built
(ranked exactly by numpy: they are few), are the candidates; each is read in
the snapshot, filtered and scored by the exact scorer, so a result is
never stale or deleted and its score is exact; only which rows are found is
approximate.  A filter that leaves fewer than ``top_k`` candidates fetches
four times more, up to ``8 * top_k + 1000``, and then falls back to the
exact search.  When dead and appended rows pass ``REBUILD_FRACTION`` of the
graph's, a compact copy and a new graph are built in the background; the
old matrix and graph serve until the new graph is ready, then the copy is
brought up to date from the log and replaces them.

Memory: 4 bytes a dimension a row (and 4 for its norm), plus a key and a
size, and a graph's links (about 0.6 KiB a row, ``vector_ann``); at most
``MAX_BYTES`` over all the matrices of a process, the least recently used
dropped first.  While a compact copy is built both copies are held.
"""

from __future__ import annotations

import os
import sys
import threading
from array import array
from collections import OrderedDict

import numpy as np

from shoal.api import vector_ann
from shoal.api.changelog import decode_change, head_position, is_table_change, oldest_change, read_table_changes
from shoal.api.common import storage_key

REBUILD_FRACTION = 0.2
REBUILD_MIN = 2000
#: Bytes of vectors a process keeps (SHOAL_VECTOR_CACHE_MB, default 1 GiB): the least recently used
#: matrices are dropped beyond it (a single larger one is kept alone).
MAX_BYTES = int(float(os.environ.get("SHOAL_VECTOR_CACHE_MB", "1024")) * 2 ** 20)
_LITTLE = sys.byteorder == "little"
_lock = threading.Lock()
_matrices: "OrderedDict[tuple, _Matrix]" = OrderedDict()
#: How searches were answered since the process started (or ``clear()``): by the
#: graph, by the exact matrix, or handed back to the scan.
stats = {"graph": 0, "matrix": 0, "scan": 0}


class _Matrix:
    """A range's entries as rows: rows [0, count) of ``vectors``, the dead
    ones (changed or deleted since) marked in ``live``."""

    __slots__ = ("position", "keys", "vectors", "count", "sizes", "live", "dead", "row_of", "bytes", "norms",
                 "normed", "start_len", "graph", "successor", "distance")

    def __init__(self, position: int, keys: list, vectors: np.ndarray, sizes: np.ndarray, start_len: int,
                 distance: str) -> None:
        self.position = position
        self.keys = keys
        self.count = len(keys)
        self.vectors = vectors
        self.sizes = sizes
        self.live = np.ones(len(sizes), dtype=bool)
        self.live[self.count:] = False
        self.dead = 0
        self.bytes = int(sizes[:self.count].sum()) if self.count else 0
        self.start_len = start_len
        # the entry key's table part (after the range's prefix) -> its live row
        self.row_of = {key[start_len:]: row for row, key in enumerate(keys)}
        self.norms = None  # per-row L2 norms, computed on the first cosine or euclidean search
        self.normed = 0  # rows whose norms are computed
        self.distance = distance
        self.graph: vector_ann.Graph | None = None  # over rows [0, graph.rows)
        self.successor: _Matrix | None = None  # a compact copy whose graph is being built

    @property
    def live_rows(self) -> int:
        return self.count - self.dead

    def kill(self, row: int) -> None:
        self.live[row] = False
        self.dead += 1
        self.bytes -= int(self.sizes[row])

    def append(self, key: bytes, value) -> None:
        row = self.count
        if row == len(self.vectors):  # grow by a quarter; a graph keeps the array it reads
            capacity = row + max(1024, row // 4)
            self.vectors = _grown(self.vectors, capacity)
            self.sizes = _grown(self.sizes, capacity)
            self.live = _grown(self.live, capacity)
            if self.norms is not None:
                self.norms = _grown(self.norms, capacity)
        dims = self.vectors.shape[1]
        self.vectors[row] = np.frombuffer(bytes(value[4:4 + 4 * dims]), dtype="<f4")
        self.sizes[row] = len(value)
        self.live[row] = True
        self.keys.append(key)
        self.row_of[key[self.start_len:]] = row
        self.bytes += len(value)
        self.count += 1

    def norms_of(self) -> np.ndarray:
        """Rows' L2 norms (float32), computed once for each row."""
        if self.norms is None:
            self.norms = np.zeros(len(self.vectors), dtype=np.float32)
        if self.normed < self.count:
            block = self.vectors[self.normed:self.count]
            self.norms[self.normed:self.count] = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
            self.normed = self.count
        return self.norms[:self.count]

    def compacted(self) -> "_Matrix":
        """A copy of the live rows, as of the same position."""
        rows = np.nonzero(self.live[:self.count])[0]
        copy = _Matrix(self.position, [self.keys[r] for r in rows], np.ascontiguousarray(self.vectors[rows]),
                       self.sizes[rows], self.start_len, self.distance)
        if self.norms is not None and self.normed == self.count:
            copy.norms, copy.normed = self.norms[rows], len(rows)
        return copy

    def memory(self) -> int:
        graphs = (self.graph, self.successor.graph if self.successor is not None else None)
        return self.vectors.nbytes + (self.successor.vectors.nbytes if self.successor is not None else 0) + \
            sum(g.nbytes for g in graphs if g is not None)

    def forget(self) -> None:
        """Stop the graph builds this matrix waits for (it is dropped)."""
        for graph in (self.graph, self.successor.graph if self.successor is not None else None):
            if graph is not None:
                graph.cancel()


def _grown(values: np.ndarray, capacity: int) -> np.ndarray:
    grown = np.zeros((capacity, *values.shape[1:]), dtype=values.dtype)
    grown[:len(values)] = values
    return grown


def clear() -> None:
    """Forget every matrix (tests, bench)."""
    with _lock:
        for matrix in _matrices.values():
            matrix.forget()
        _matrices.clear()
        for name in stats:
            stats[name] = 0


def nearest(txn, table, start: bytes, stop: bytes | None, query, spec, filters, top_k: int, exact_scorer,
            passes) -> tuple[list, int] | None:
    """The ``top_k`` best entries of [start, stop) as (score, entry value)
    in rank order and the bytes of the range's entries, as a full scan
    would give them (by the graph: the best of those it finds); None when
    the scan should run instead.

    ``exact_scorer(vector array) -> score`` and ``passes(value, width,
    filters) -> bool`` are the scan's own."""
    width = 4 + 4 * spec.dimensions
    cache_key = (table.table_id, start, stop)
    with _lock:
        matrix = _matrices.get(cache_key)
        if matrix is not None:
            _matrices.move_to_end(cache_key)
    if matrix is not None and matrix.successor is not None and matrix.successor.graph.done.is_set():
        matrix = _promote(cache_key, matrix)
    if matrix is not None:
        if head_position(txn) < matrix.position:  # a snapshot older than the matrix: it cannot answer
            stats["scan"] += 1
            return None
        try:
            if not _catch_up(txn, table, matrix, start):
                matrix.forget()  # replaced below by a matrix built from the snapshot
                matrix = None
        except BaseException:
            _drop(cache_key)  # half applied: build afresh next time
            raise
    if matrix is None:
        matrix = _build(txn, start, stop, width, spec.distance)
        _keep(cache_key, matrix)
    matrix = _maintain(cache_key, matrix)
    q = np.frombuffer(query.tobytes(), dtype=np.float32) if hasattr(query, "tobytes") else \
        np.asarray(query, dtype=np.float32)
    if matrix.graph is not None and matrix.graph.ready:
        found = _graph_search(txn, matrix, q, spec, filters, top_k, width, exact_scorer, passes)
        if found is not None:
            stats["graph"] += 1
            return found, matrix.bytes
    found = _search(txn, matrix, q, spec, filters, top_k, width, exact_scorer, passes)
    stats["matrix" if found is not None else "scan"] += 1
    return (found, matrix.bytes) if found is not None else None


def _catch_up(txn, table, matrix: _Matrix, start: bytes) -> bool:
    """Apply the changes after the matrix's position; False when the log
    cannot tell them."""
    head = head_position(txn)
    if head == matrix.position:
        return True
    changed = _changed_since(txn, table, matrix.position, start)
    if changed is None:
        return False
    for suffix in changed:
        row = matrix.row_of.pop(suffix, None)
        if row is not None:
            matrix.kill(row)
        value = txn.get("indexes", start + suffix)
        if value is not None:
            matrix.append(start + suffix, value)
    matrix.position = head
    return True


def _changed_since(txn, table, position: int, start: bytes) -> dict | None:
    """{entry key's table part: True} of the items changed after
    ``position``; None when that cannot be told from the log."""
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


def _build(txn, start: bytes, stop: bytes | None, width: int, distance: str) -> _Matrix:
    position = head_position(txn)
    keys, sizes = [], []
    buffer = bytearray()
    for key, value in txn.scan("indexes", start, stop):
        keys.append(bytes(key))
        sizes.append(len(value))
        buffer += value[4:width]
    dims = (width - 4) // 4
    vectors = np.frombuffer(buffer, dtype="<f4").reshape(len(keys), dims) if keys else \
        np.zeros((0, dims), dtype="<f4")
    if not vectors.flags.writeable:
        vectors = vectors.copy()
    return _Matrix(position, keys, vectors, np.asarray(sizes, dtype=np.int64), len(start), distance)


def _maintain(cache_key: tuple, matrix: _Matrix) -> _Matrix:
    """Compact a matrix with many dead rows, and give one large enough a
    graph (or a new one, when many rows changed since its graph was built).
    Returns the matrix to search."""
    live = matrix.live_rows
    limit = max(REBUILD_MIN, REBUILD_FRACTION * live)
    # A graph, once built, is kept down to half the size that earns one (no rebuilds at the edge).
    wants_graph = vector_ann.MIN_ROWS > 0 and live >= vector_ann.MIN_ROWS // (1 if matrix.graph is None else 2)
    if not wants_graph:
        if matrix.graph is not None:
            matrix.forget()
            matrix.graph = matrix.successor = None
        if matrix.dead > limit:
            matrix = matrix.compacted()
            _keep(cache_key, matrix)
        return matrix
    if matrix.successor is not None:
        return matrix  # a new graph is on its way
    graph = matrix.graph
    if graph is None and matrix.dead == 0:
        matrix.graph = vector_ann.build_later(matrix.vectors, matrix.count, matrix.distance)
        return matrix
    if graph is not None and (not graph.done.is_set() or graph.error is not None):
        return matrix  # being built, or failed: the exact search serves (a failed build is not tried again)
    stale = matrix.dead + matrix.count - (graph.rows if graph is not None and graph.ready else 0)
    if graph is None or stale > limit:
        successor = matrix.compacted()
        successor.graph = vector_ann.build_later(successor.vectors, successor.count, successor.distance)
        matrix.successor = successor
    return matrix


def _promote(cache_key: tuple, matrix: _Matrix) -> _Matrix:
    """The compact copy whose graph is built replaces ``matrix`` (it is
    brought up to date from the log by the search that follows)."""
    successor = matrix.successor
    matrix.successor = None
    if not successor.graph.ready:  # the build failed: keep the exact search, do not try again
        if successor.graph.error is not None:
            matrix.graph = successor.graph
        return matrix
    if matrix.graph is not None:
        matrix.graph.cancel()
    _keep(cache_key, successor)
    return successor


def _drop(cache_key: tuple) -> None:
    with _lock:
        matrix = _matrices.pop(cache_key, None)
    if matrix is not None:
        matrix.forget()


def _keep(cache_key: tuple, matrix: _Matrix) -> None:
    with _lock:
        _matrices[cache_key] = matrix
        _matrices.move_to_end(cache_key)
        total = sum(m.memory() for m in _matrices.values())
        while total > MAX_BYTES and len(_matrices) > 1:
            _, dropped = _matrices.popitem(last=False)
            total -= dropped.memory()
            dropped.forget()


def _fast_scores(matrix: _Matrix, query: np.ndarray, distance: str, rows: slice | np.ndarray = slice(None)
                 ) -> tuple[np.ndarray, float, float]:
    """The rank in float32 (higher is better) of every row (or of ``rows``),
    and a bound on how far float32 rounding may have moved a rank near
    ``r``: ``absolute + relative * |r|``."""
    vectors = matrix.vectors[:matrix.count][rows]
    norms = matrix.norms_of()
    q_norm = float(np.sqrt(np.dot(query.astype(np.float64), query.astype(np.float64))))
    largest = float(norms.max()) if len(norms) else 0.0
    norms = norms[rows]
    # A float32 dot product of n terms errs by at most about n * 2**-24 * sum|x_i q_i| <= n * 2**-24 * |x| |q|.
    slack = 4 * len(query) * 2.0 ** -24
    if distance == "DOT_PRODUCT":
        return vectors @ query, slack * largest * q_norm + 1e-30, 0.0
    if distance == "EUCLIDEAN":  # from the differences: no cancellation between near vectors
        diff = vectors - query
        return -np.sqrt(np.einsum("ij,ij->i", diff, diff)), 1e-30, slack
    dots = vectors @ query
    with np.errstate(divide="ignore", invalid="ignore"):
        cosine = np.where(norms > 0, dots / (norms * np.float32(q_norm)), np.float32(0.0))
    return cosine.astype(np.float32), 4 * slack + 1e-6, 0.0  # 1 - the cosine distance


def _search(txn, matrix: _Matrix, q: np.ndarray, spec, filters, top_k: int, width: int, exact_scorer,
            passes) -> list | None:
    """The exact search of every live row."""
    higher_is_better = spec.distance == "DOT_PRODUCT"
    rows = matrix.count
    if matrix.live_rows == 0:
        return []
    ranks, absolute, relative = _fast_scores(matrix, q, spec.distance)
    if matrix.dead:
        ranks = np.where(matrix.live[:rows], ranks, -np.inf)
    wanted = top_k
    while True:
        take = min(matrix.live_rows, wanted)
        if take == matrix.live_rows:
            top = np.nonzero(matrix.live[:rows])[0]
        else:  # every row within rounding of the last one taken (and its ties)
            top = np.argpartition(-ranks, take - 1)[:take]
            floor = float(ranks[top].min())
            top = np.nonzero(ranks >= floor - 2 * (absolute + relative * abs(floor)))[0]
        order = top[np.argsort(-ranks[top], kind="stable")]
        found = []
        for row in order:
            if not matrix.live[row]:
                continue
            key = matrix.keys[row]
            value = txn.get("indexes", key)
            if value is None:  # cannot happen in one snapshot with the log read: let the scan decide
                return None
            if filters and not passes(value, width, filters):
                continue
            found.append(_scored(value, key, width, exact_scorer, higher_is_better))
        if len(found) >= top_k or take == matrix.live_rows:
            break
        if wanted >= 8 * top_k + 1000:
            return None  # a filter that few entries pass: the scan is cheaper
        wanted *= 4
    found.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return [(score, value) for _, _, score, value in found[:top_k]]


def _graph_search(txn, matrix: _Matrix, q: np.ndarray, spec, filters, top_k: int, width: int, exact_scorer,
                  passes) -> list | None:
    """The best ``top_k`` of the graph's nearest live rows and the rows
    appended since it was built, scored exactly; None when a filter leaves
    too few of them (the exact search decides)."""
    higher_is_better = spec.distance == "DOT_PRODUCT"
    graph = matrix.graph
    built = graph.rows
    appended = np.arange(built, matrix.count)
    appended = appended[matrix.live[built:matrix.count]]
    appended_ranks = _fast_scores(matrix, q, spec.distance, appended)[0] if len(appended) else None
    wanted = top_k
    seen: set = set()
    found: list = []
    passed = {"graph": 0, "appended": 0}  # candidates of each kind that pass the filters

    def consider(row: int, kind: str) -> bool:
        if row in seen or not matrix.live[row]:
            return True
        seen.add(row)
        key = matrix.keys[row]
        value = txn.get("indexes", key)
        if value is None:  # cannot happen in one snapshot with the log read: let the exact search decide
            return False
        if not filters or passes(value, width, filters):
            found.append(_scored(value, key, width, exact_scorer, higher_is_better))
            passed[kind] += 1
        return True

    while True:
        rows = graph.nearest(q, wanted)
        graph_done = wanted >= built or len(rows) < wanted  # all the graph can give
        if not all(consider(int(row), "graph") for row in rows):
            return None
        take = min(len(appended), wanted)
        if take:
            best = np.argpartition(-appended_ranks, take - 1)[:take] if take < len(appended) else \
                np.arange(len(appended))
            if not all(consider(int(row), "appended") for row in appended[best]):
                return None
        # Enough when each source gave top_k that pass, or all it has.
        if (passed["graph"] >= top_k or graph_done) and (passed["appended"] >= top_k or take == len(appended)):
            break
        if wanted >= 8 * top_k + 1000:
            return None  # a selective filter (or many dead rows): the exact search finds the rows that pass
        wanted *= 4
    found.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return [(score, value) for _, _, score, value in found[:top_k]]


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
