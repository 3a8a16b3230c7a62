"""A bound on the pages of LMDB's mapped data file that count in a worker's resident memory.

Why
    LMDB reads through a memory map of ``data.mdb``, and every page a process
    touches stays mapped in it: ``ps``, ``top`` and a container's memory limit
    see it in the resident size (VmRSS, as RssFile), though it is the OS page
    cache, shared and reclaimable.  A server that reads a large table, copies
    it to replicas, or reads months of metrics grows by the bytes it read.

How
    Each worker's background loop calls a ``ResidentTrimmer`` every 20 ms
    (``BackgroundJobs.WATCH_INTERVAL_S``: GetItem at random over a large table
    maps some 200 MiB a second, as each fault maps its 16 neighbouring cached
    pages too, and a replication copy thread more), which reads RssFile from
    ``/proc/self/status`` (about 15 µs of CPU).
    Past the budget it calls ``madvise(MADV_DONTNEED)`` over the data file's
    mapping (found in ``/proc/self/maps``): the process's page-table entries
    for it go, and RssFile falls at once.

Why it is safe
    LMDB maps its data file ``MAP_SHARED`` and, without ``writemap`` (Shoal's
    engine leaves it off), read-only: commits write pages with ``pwrite``,
    never through the map.  On a shared file mapping DONTNEED only unmaps:
    madvise(2) says later accesses succeed and repopulate the pages "from the
    up-to-date contents of the underlying mapped file", and the RSS "will be
    immediately reduced".  The pages stay in the page cache (dirty ones stay
    dirty) and on disk; the next touch is a minor fault that maps the cached
    page again.  A reader in another thread (a replication sender, a backup)
    touching the map meanwhile takes the same minor fault and sees the same
    bytes: nothing is freed that anyone can still point at.

Cost
    After a trim, each request refaults the B-tree pages it touches (root,
    branches, a leaf), and each fault maps and later unmaps its neighbours
    too.  With a working set far larger than the budget the reads fault about
    twice a request, where unbounded they would not fault at all once the set
    is mapped: GetItem at random over a 440 MiB table cost about 40% more
    server CPU with a 48 MiB budget than with none, prewarmed.  Set the
    budget above the working set (or 0) where memory allows.  ``--prewarm``
    maps the whole file on purpose, so with ``SHOAL_PREWARM`` set the default
    budget is off.

Setting
    ``SHOAL_MAX_MAPPED_RESIDENT_MB`` (MiB of RssFile; ``0`` turns it off;
    default ``DEFAULT_BUDGET_MB``, off; ``shoal serve --max-mapped-resident-mb``
    sets the variable).  RssFile also holds the mapped libraries
    and the lock file: when those alone fill the budget it cannot be met, and
    a trim is made only once the data's share has grown by ``slack`` again.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from typing import Callable

from shoal.storage.lmdb_engine import LmdbEngine

log = logging.getLogger("shoal")

ENV_BUDGET = "SHOAL_MAX_MAPPED_RESIDENT_MB"
#: Off unless asked for (``shoal serve --max-mapped-resident-mb``): the bound costs a
#: server reading a working set larger than it about two minor faults a request
#: (see Cost), and the pages it unmaps are page cache that the kernel reclaims
#: under pressure anyway.  48 MiB is the figure the memory benchmarks use.
DEFAULT_BUDGET_MB = 0

_MADV_DONTNEED = 4  # <asm-generic/mman-common.h>
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TRUE_WORDS = ("1", "true", "yes", "on")
_libc = None


def budget_from_env(environ=os.environ) -> int:
    """The budget in bytes from ``SHOAL_MAX_MAPPED_RESIDENT_MB`` (0: off).

    Unset, it is ``DEFAULT_BUDGET_MB``, or 0 with ``SHOAL_PREWARM`` on (a
    prewarmed server wants its pages mapped).  Raises ``ValueError`` with the
    variable's name for a value that is not a whole number of MiB, 0 or more.
    """
    prewarmed = environ.get("SHOAL_PREWARM", "").strip().lower() in _TRUE_WORDS
    return _megabytes(environ, ENV_BUDGET, 0 if prewarmed else DEFAULT_BUDGET_MB, "the bound") << 20


def _megabytes(environ, name: str, default: int, what: str) -> int:
    """The whole number of MiB variable ``name`` sets, ``default`` when unset
    or blank; ``ValueError`` naming the variable for anything else (0
    turns ``what`` off)."""
    text = environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        megabytes = int(text.strip())
    except ValueError:
        megabytes = -1
    if megabytes < 0:
        raise ValueError(f"{name}: {text!r} is not a whole number of MiB (0 turns {what} off)")
    return megabytes


def _status_bytes(field: bytes, status_path: str) -> int | None:
    """A ``kB`` figure of ``/proc/self/status`` (``field`` with its colon) in bytes; None where it is not said."""
    try:
        with open(status_path, "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    at = text.find(b"\n" + field)
    if at < 0:
        return None
    return int(text[at + 1 + len(field):text.index(b"kB", at)]) << 10


def rss_file_bytes(status_path: str = "/proc/self/status") -> int | None:
    """This process's RssFile (resident pages of mapped files) in bytes; None where /proc does not say."""
    return _status_bytes(b"RssFile:", status_path)


def rss_anon_bytes(status_path: str = "/proc/self/status") -> int | None:
    """This process's RssAnon (resident anonymous pages: its heaps) in bytes; None where /proc does not say."""
    return _status_bytes(b"RssAnon:", status_path)


def _malloc_trim() -> Callable[[], object] | None:
    """glibc's ``malloc_trim(0)`` (hands the free pages of every malloc arena back to the OS), or None
    where the C library has none (musl)."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return lambda: trim(0)


def mapped_ranges(path: str, maps_path: str = "/proc/self/maps") -> list[tuple[int, int, int]]:
    """``(start, end, file offset)`` of each mapping of ``path`` (a real path) in this process."""
    ranges = []
    try:
        with open(maps_path) as maps:
            for line in maps:
                # start-end perms offset dev inode path (the path may hold spaces)
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].rstrip("\n") == path:
                    start, end = fields[0].split("-")
                    ranges.append((int(start, 16), int(end, 16), int(fields[2], 16)))
    except OSError:
        return []
    return ranges


def _madvise():
    global _libc
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        libc.madvise.restype = ctypes.c_int
        _libc = libc
    return _libc.madvise


def drop_mapped(path: str) -> int:
    """Unmap from this process every resident page of its mappings of ``path``
    (``madvise(MADV_DONTNEED)``; see the module docstring for why this loses
    nothing on LMDB's shared mapping).  Only the part of each mapping that
    lies within the file's current size is advised.  Returns the bytes of
    address space advised; raises ``OSError`` if madvise fails.
    """
    try:
        size = os.path.getsize(path)
    except OSError:
        return 0
    madvise = _madvise()
    advised = 0
    for start, end, offset in mapped_ranges(path):
        length = min(end - start, max(0, size - offset))
        length = (length + _PAGE - 1) // _PAGE * _PAGE
        if length == 0:
            continue
        if madvise(start, length, _MADV_DONTNEED) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"madvise(MADV_DONTNEED) on {path}: {os.strerror(err)}")
        advised += length
    return advised


def data_file_of(engine) -> str | None:
    """The real path of the LMDB data file under ``engine`` (through wrappers
    such as the encrypted engine's ``inner``); None for an engine that maps none."""
    seen = 0
    while engine is not None and seen < 8:
        if isinstance(engine, LmdbEngine):
            return os.path.realpath(os.path.join(engine.path, "data.mdb"))
        engine = getattr(engine, "inner", None)
        seen += 1
    return None


class ResidentTrimmer:
    """A background job: keeps RssFile under ``budget`` bytes by unmapping the data file's pages.

    ``floor`` is RssFile just after the last trim, i.e. what the other mapped
    files (libraries, the lock file) hold; a trim is made when RssFile is over
    the budget and has grown by at least ``slack`` since, so a budget that
    those files alone exceed does not set off a trim every round.
    """

    __name__ = "resident_trimmer"

    def __init__(self, data_file: str, budget: int, *, read_rss: Callable[[], int | None] = rss_file_bytes,
                 drop: Callable[[str], int] = drop_mapped) -> None:
        self.data_file = data_file
        self.budget = budget
        self.slack = max(budget // 4, 4 << 20)
        self.floor = 0
        self.trims = 0  # how many trims were made (for tests and logs)
        self._read_rss = read_rss
        self._drop = drop
        self._warned = False

    @classmethod
    def for_engine(cls, engine, environ=os.environ) -> "ResidentTrimmer | None":
        """The trimmer of a worker over ``engine``; None when the budget is off,
        the engine maps no file, or this system has no /proc RssFile.  A bad
        ``SHOAL_MAX_MAPPED_RESIDENT_MB`` raises ``ValueError``."""
        budget = budget_from_env(environ)
        if budget == 0:
            return None
        data_file = data_file_of(engine)
        if data_file is None or rss_file_bytes() is None:
            return None
        return cls(data_file, budget)

    def __call__(self) -> bool:
        """One check; a trim when due.  Never reports a backlog (returns False)."""
        if self.budget == 0:
            return False
        rss = self._read_rss()
        if rss is None or rss <= self.budget or rss - self.floor < self.slack:
            return False
        try:
            self._drop(self.data_file)
        except OSError as exc:  # not expected on Linux; stop rather than fail every round
            log.warning("%s; the bound on mapped resident memory is off in this worker", exc.strerror or exc)
            self.budget = 0
            return False
        self.trims += 1
        after = self._read_rss()
        self.floor = after if after is not None else 0
        if self.floor > self.budget and not self._warned:
            self._warned = True
            log.warning("mapped files other than the data file take %d MiB, over %s (%d MiB): "
                        "trimming the data file's pages cannot meet it", self.floor >> 20, ENV_BUDGET,
                        self.budget >> 20)
        return False


ENV_SHED = "SHOAL_SHED_COLD_READS_MB"
#: A read of cold data (months of metrics) that mapped more than this many MiB of the data
#: file is followed by a trim; see ``ColdReads``.
DEFAULT_SHED_MB = 4


#: A cold read after which RssAnon is more than this above its floor (before the first cold read, or
#: after the last trim) is followed by ``malloc_trim(0)``.  Not less: what a trim hands back, the next
#: large read faults in again (a 7-day dashboard's 6 MiB of arrays: some 1.5 ms of CPU, 13% of the
#: call), and a heap kept for reuse does not raise the peak, which is the heap before plus the
#: largest read's arrays; what the trim bounds is a heap grown by fragmentation across reads.
HEAP_SLACK = 8 << 20

#: ``ColdReads.for_engine``'s instances, by data file and threshold
_shared: dict = {}
_shared_lock = threading.Lock()

#: A shed point unmaps once the cold reads owe this many times the threshold.  Each unmapping costs
#: about 0.3 ms (reading /proc/self/maps, and madvise walking the file's page tables) and the pages
#: refaulted after it; at 1 a scrape unmaps about three times and GetMetricData's CPU stays within
#: noise of reads unmapped only after them (2 holds some 4 MiB more of the file at a read's peak).
MID_READ_FACTOR = 1

#: The cold read running in this thread: [its ColdReads, RssFile when it began or when it last shed]
#: (``shed_point``); None outside one.
_running = threading.local()


def shed_point() -> None:
    """A point inside a long cold read (between two series of a scrape or a GetMetricData) where the
    data file's pages it mapped so far may be unmapped: when what the cold reads owe (``ColdReads``)
    and what this read mapped since it began pass ``MID_READ_FACTOR`` times the threshold, they are
    unmapped now rather than after the read, so that the read's own pages never add more than about
    that to the process's peak resident size (VmHWM).  A read touches each page of its series once, so what
    is unmapped here is not mapped again by it (bar a few B-tree branch pages).  Outside a cold
    read (or with cold reads off) it does nothing; it costs a read of ``/proc/self/status``
    (some 8 us) inside one."""
    frame = getattr(_running, "frame", None)
    if frame is None:
        return
    cold, since = frame
    now = cold._read_rss()
    if since is None or now is None or now <= since:
        return
    if cold.owed + now - since > MID_READ_FACTOR * cold.threshold:
        cold.owed = 0
        cold._shed()
        frame[1] = cold._read_rss()


class ColdReads:
    """Unmap the data file's pages after a read of cold data that mapped many of them.

    A dashboard's GetMetricData over a week of 100 tables, a Prometheus scrape
    or a metrics roll-up reads blocks of metrics history that no item request
    reads again: LMDB maps each page it touches, and they would stay in the
    worker's resident size (RssFile) until something unmapped them.  ``run``
    reads RssFile before and after such a read (about 15 µs each), adds
    what the read mapped to what the cold reads owe since the last trim, and
    when that passes ``threshold`` unmaps the data file's pages
    (``drop_mapped``): so the cold reads' pages, many small reads' included,
    never add more than the threshold and one read's pages to the resident
    size, and pages mapped by item requests meanwhile never set off a trim
    themselves.  The read's pages go, and so do the pages item requests
    had mapped, which the next requests map again with a minor fault each
    (with fault-around, about one per 64 KiB: some 6 ms of CPU for a 400 MiB
    working set, once per such read).  The pages stay in the OS page cache.

    A long read also calls ``shed_point`` between its series, which unmaps
    as soon as the threshold is passed: what the read maps at its peak is
    then about the threshold, not all its pages (a scrape of 100 tables
    maps some 14 MiB, a GetMetricData of 100 tables 11 MiB).

    The heap, too: such a read allocates and frees megabytes of arrays
    (the blocks it decodes), which glibc's malloc keeps for later rather
    than handing back, so a process's anonymous memory stayed some 10 MiB
    above what it holds after its largest read.  When RssAnon after a cold
    read is more than ``HEAP_SLACK`` (8 MiB) above what it was before the
    first one or after the last heap trim, ``malloc_trim(0)`` returns the
    free pages (about 0.3 ms; never where the C library has no malloc_trim).

    ``SHOAL_SHED_COLD_READS_MB`` sets the threshold in MiB (default
    ``DEFAULT_SHED_MB``; 0 turns it off)."""

    def __init__(self, data_file: str, threshold: int, *, read_rss: Callable[[], int | None] = rss_file_bytes,
                 drop: Callable[[str], int] = drop_mapped,
                 read_anon: Callable[[], int | None] | None = rss_anon_bytes,
                 trim_heap: Callable[[], object] | None = None) -> None:
        self.data_file = data_file
        self.threshold = threshold
        self.sheds = 0  # how many reads were followed by a trim (for tests)
        self.owed = 0  # bytes the cold reads mapped since the last trim
        self.heap_trims = 0  # how many times the heap's free pages were handed back (for tests)
        self.heap_floor = None  # RssAnon before the first cold read, or after the last heap trim
        self._read_rss = read_rss
        self._drop = drop
        self._read_anon = read_anon
        self._trim_heap = trim_heap if trim_heap is not None else (_malloc_trim() if read_anon is not None else None)

    @classmethod
    def for_engine(cls, engine, environ=os.environ) -> "ColdReads | None":
        """The worker's instance over ``engine`` (one per data file and
        threshold in a process, shared by its cold reads); None when off,
        over an engine that maps no file, or without /proc's RssFile.  A bad
        value of the variable raises ``ValueError``."""
        megabytes = _megabytes(environ, ENV_SHED, DEFAULT_SHED_MB, "it")
        if megabytes == 0:
            return None
        data_file = data_file_of(engine)
        if data_file is None or rss_file_bytes() is None:
            return None
        # one account per data file and process: the CloudWatch API, the scrape, the table gauges and the
        # roll-up share it, so that what they owe together, not each, stays under the threshold
        key = (data_file, megabytes << 20)
        with _shared_lock:
            shared = _shared.get(key)
            if shared is None:
                shared = _shared[key] = cls(data_file, megabytes << 20)
        return shared

    def run(self, read: Callable[[], object]):
        """``read()``'s result; the data file's pages unmapped after it (or
        within it, at its ``shed_point`` calls) once the cold reads have
        mapped over the threshold since the last trim; the heap's free
        pages handed back after it once RssAnon has grown by the threshold."""
        if self.heap_floor is None and self._trim_heap is not None:
            self.heap_floor = self._read_anon()
        frame = [self, self._read_rss()]
        outer = getattr(_running, "frame", None)
        _running.frame = frame
        try:
            return read()
        finally:
            _running.frame = outer
            since, after = frame[1], self._read_rss()
            if since is not None and after is not None and after > since:
                self.owed += after - since
                if self.owed > self.threshold:
                    self.owed = 0
                    self._shed()
            if outer is None:
                self._settle_heap()

    def _shed(self) -> None:
        try:
            self._drop(self.data_file)
            self.sheds += 1
        except OSError as exc:  # not expected on Linux: stop trying
            log.warning("%s; cold reads' pages stay mapped in this worker", exc.strerror or exc)
            self.threshold = 1 << 62

    def _settle_heap(self) -> None:
        if self._trim_heap is None or self._read_anon is None:
            return
        anon = self._read_anon()
        if anon is None:
            return
        if self.heap_floor is None or anon < self.heap_floor:
            self.heap_floor = anon  # (the heap shrank by itself: a lower floor)
        elif anon - self.heap_floor > HEAP_SLACK:
            self._trim_heap()
            self.heap_trims += 1
            after = self._read_anon()
            self.heap_floor = after if after is not None else anon
