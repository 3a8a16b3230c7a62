"""An approximate (HNSW) index over the rows of a vector cache matrix,
built off the request path.

``shoal.api.vector_cache`` keeps a vector index's vectors as the rows of a
float32 matrix, exact through the change log.  Above ``MIN_ROWS`` rows a
search would cost a product with every row; a ``Graph`` (usearch's HNSW,
https://github.com/unum-cloud/usearch) over the rows the matrix had when it
was built answers instead with the rows nearest the query, which the cache
then checks (rows dead since, filters) and scores exactly.  The graph holds
no copy of the vectors (``copy=False``): it reads the matrix's rows, which
never change in place (the cache marks a row dead and appends a new one).

A graph is built on a daemon thread, one build at a time per process, while
the exact matrix product serves; usearch releases the GIL as it builds, so the
worker's event loop goes on serving.  A build that is no longer wanted (its
matrix dropped or replaced) is stopped through usearch's progress callback.

Settings (environment, read once): ``SHOAL_VECTOR_ANN_MIN_ROWS`` (rows from
which a matrix gets a graph; 0 turns graphs off), ``SHOAL_VECTOR_ANN_EF``
(HNSW's search expansion, "ef": recall against latency).
"""

import os
import queue
import threading

import numpy as np

#: Rows from which a matrix gets a graph (0: never).  At 100,000 x 256 the matrix product is about
#: as fast as the graph at the default expansion (docs/benchmarks.md, "Vector search"); the product's
#: cost grows with the rows, the graph's barely, so the graph takes over at twice that.
MIN_ROWS = int(os.environ.get("SHOAL_VECTOR_ANN_MIN_ROWS", "200000"))
#: HNSW's search expansion: candidates kept while walking the graph (at least the rows asked for).
#: 1920 reaches recall@10 0.978 on 100,000 Gaussian vectors of 256 dimensions, the hardest case
#: (1280: 0.942); low-rank data, closer to embeddings, reach 0.997 at 128, ten times faster.
EXPANSION_SEARCH = int(os.environ.get("SHOAL_VECTOR_ANN_EF", "1920"))
#: HNSW's links per node ("M") and insertion expansion ("efConstruction"): fixed when built.
CONNECTIVITY = 32
EXPANSION_ADD = 128

# usearch's names of DynamoDB's distance functions; its "ip" distance is 1 - the inner product.
_METRICS = {"COSINE": "cos", "EUCLIDEAN": "l2sq", "DOT_PRODUCT": "ip"}


class Graph:
    """An HNSW graph over ``rows`` rows of ``vectors`` (row numbers are its keys)."""

    __slots__ = ("index", "rows", "vectors", "done", "cancelled", "error", "seconds")

    def __init__(self, vectors: np.ndarray, rows: int) -> None:
        self.index = None
        self.rows = rows
        self.vectors = vectors  # kept alive: the graph reads these rows (copy=False)
        self.done = threading.Event()
        self.cancelled = False
        self.error: BaseException | None = None
        self.seconds = 0.0

    @property
    def ready(self) -> bool:
        return self.done.is_set() and self.index is not None

    @property
    def nbytes(self) -> int:
        """The graph's own memory (links and bookkeeping, not the vectors)."""
        return int(self.index.memory_usage) if self.ready else 0

    def cancel(self) -> None:
        self.cancelled = True

    def nearest(self, query: np.ndarray, count: int) -> np.ndarray:
        """The rows of (about) the ``count`` nearest vectors, nearest first."""
        index = self.index
        if not self.rows:
            return np.zeros(0, dtype=np.uint64)
        index.expansion_search = max(EXPANSION_SEARCH, count)
        return index.search(query, min(count, self.rows), threads=1).keys


def build_later(vectors: np.ndarray, rows: int, distance: str) -> Graph:
    """A Graph over the first ``rows`` rows of ``vectors``, built on the
    builder thread; ``Graph.done`` is set when it is built (or failed or was
    cancelled)."""
    graph = Graph(vectors, rows)
    _jobs.put((graph, distance))
    _ensure_builder()
    return graph


def wait_idle(timeout: float = 60.0) -> bool:
    """Whether every queued build finished within ``timeout`` seconds (tests, bench)."""
    with _idle:
        return _idle.wait_for(lambda: _pending == 0, timeout)


_jobs: "queue.SimpleQueue[tuple[Graph, str]]" = queue.SimpleQueue()
_idle = threading.Condition()
_pending = 0
_builder: threading.Thread | None = None
_builder_pid = 0


def _ensure_builder() -> None:
    global _builder, _builder_pid, _pending
    with _idle:
        _pending += 1
        # A forked worker inherits no threads: start its own.
        if _builder is None or not _builder.is_alive() or _builder_pid != os.getpid():
            _builder = threading.Thread(target=_run, name="shoal-vector-ann", daemon=True)
            _builder_pid = os.getpid()
            _builder.start()


def _run() -> None:
    global _pending
    while True:
        graph, distance = _jobs.get()
        try:
            if not graph.cancelled:
                _build(graph, distance)
        except BaseException as error:  # a failed build leaves the exact search in place
            graph.error = error
            graph.index = None
        finally:
            graph.done.set()
            with _idle:
                _pending -= 1
                _idle.notify_all()


def _build(graph: Graph, distance: str) -> None:
    import time

    from usearch.index import Index

    started = time.perf_counter()
    vectors = graph.vectors[:graph.rows]
    index = Index(ndim=vectors.shape[1], metric=_METRICS[distance], dtype="f32", connectivity=CONNECTIVITY,
                  expansion_add=EXPANSION_ADD, expansion_search=EXPANSION_SEARCH)

    # usearch checks the callback's annotations (evaluated: this module has no postponed annotations).
    def keep_going(done: int, total: int) -> bool:
        return not graph.cancelled

    if graph.rows:
        keys = np.arange(graph.rows, dtype=np.uint64)
        index.add(keys, vectors, copy=False, threads=1, progress=keep_going)
    if graph.cancelled:
        return
    graph.index = index
    graph.seconds = time.perf_counter() - started
