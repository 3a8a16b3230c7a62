"""Writing the demo's items fast: BatchWriteItem of 25 over several keep-alive connections.

One thread runs an asyncio loop: it generates the items, groups them into
batches, and ``connections`` tasks, each with one keep-alive ``AsyncConnection``,
send the batches, resending ``UnprocessedItems`` with back-off.  Many requests
in flight let the server share each durable commit among many batches (group
commit), which is where the throughput comes from: one connection would wait
for every commit.  One thread, not one per connection: with ``http.client`` on
8 to 16 threads the client spent about 25 µs of CPU per event on requests,
three times what generating the event costs, and on a small machine that CPU
is the server's.  (On 2 cores, a million events took 107 s that way, 87 s
this way with 64 connections.)

Items of a table listed in ``update_tables`` are not put but merged into what is
stored, one UpdateItem each: a continue-watching position only if it is newer
than the stored one, a counter by ``ADD``.  ``shoal demo`` asks for that when it
loads into tables that already hold data, so that a second load adds to the
first instead of overwriting it.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from dataclasses import dataclass, field

from shoal.demo.client import AsyncConnection, DynamoError, Endpoint
from shoal.demo.workload import COUNTERS_TABLE, EVENTS_TABLE, PROGRESS_TABLE

BATCH = 25


@dataclass
class LoadReport:
    events: int = 0
    seconds: float = 0.0
    items: dict = field(default_factory=dict)  # table -> items written (or merged)
    unprocessed: int = 0  # items the server handed back once (then resent)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def merge_request(table: str, item: dict) -> dict | None:
    """The UpdateItem that merges ``item`` into what ``table`` stores, or None (a plain put)."""
    if table == PROGRESS_TABLE:
        return {"TableName": table, "Key": {"user_id": item["user_id"], "content_id": item["content_id"]},
                "UpdateExpression": "SET position_s = :p, updated_at = :t, session_id = :s",
                "ConditionExpression": "attribute_not_exists(updated_at) OR updated_at < :t",
                "ExpressionAttributeValues": {":p": item["position_s"], ":t": item["updated_at"],
                                              ":s": item["session_id"]}}
    if table == COUNTERS_TABLE:
        return {"TableName": table, "Key": {"counter_id": item["counter_id"]},
                "UpdateExpression": "ADD plays :n", "ExpressionAttributeValues": {":n": item["plays"]}}
    return None


class Loader:
    def __init__(self, endpoint: Endpoint, connections: int = 64, progress: "Progress | None" = None) -> None:
        self.endpoint = endpoint
        self.connections = max(1, connections)
        self.progress = progress
        self.report = LoadReport()

    def load(self, pairs, update_tables=frozenset()) -> LoadReport:
        """Write every ``(table, item)`` of ``pairs``; raises the first error any request met."""
        if self.progress:
            self.progress.start(lambda: self.report.events)
        started = time.monotonic()
        # The items in flight are many small acyclic dicts: the cycle collector
        # would walk them again and again (a sixth of the client's CPU) for nothing.
        collecting = gc.isenabled()
        gc.disable()
        try:
            with asyncio.Runner(loop_factory=_loop_factory()) as runner:
                runner.run(self._load(pairs, update_tables))
        finally:
            if collecting:
                gc.enable()
            self.report.seconds = time.monotonic() - started
            if self.progress:
                self.progress.stop()
        return self.report

    async def _load(self, pairs, update_tables) -> None:
        work: asyncio.Queue = asyncio.Queue(maxsize=self.connections * 2)
        senders = [asyncio.create_task(self._sender(work)) for _ in range(self.connections)]
        try:
            # The items are generated here, on the event loop's thread, between the
            # senders' turns: a put into a full queue lets them run.
            pending: dict[str, list] = {}
            for table, item in pairs:
                if table in update_tables:
                    await self._put(work, senders, ("UpdateItem", table, merge_request(table, item)))
                    continue
                batch = pending.setdefault(table, [])
                batch.append({"PutRequest": {"Item": item}})
                if len(batch) == BATCH:
                    await self._put(work, senders, ("BatchWriteItem", table, batch))
                    pending[table] = []
            for table, batch in pending.items():
                if batch:
                    await self._put(work, senders, ("BatchWriteItem", table, batch))
            for _ in senders:
                await self._put(work, senders, None)
            await asyncio.gather(*senders)
        finally:
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)

    @staticmethod
    async def _put(work: asyncio.Queue, senders: list, item) -> None:
        if work.full():
            for sender in senders:  # a sender that failed ends the load with its error
                if sender.done():
                    sender.result()
        await work.put(item)

    async def _sender(self, work: asyncio.Queue) -> None:
        connection = AsyncConnection(self.endpoint)
        try:
            while (unit := await work.get()) is not None:
                operation, table, payload = unit
                if operation == "BatchWriteItem":
                    await self._write_batch(connection, table, payload)
                else:
                    await self._update(connection, table, payload)
        finally:
            connection.close()

    async def _write_batch(self, connection: AsyncConnection, table: str, puts: list) -> None:
        written = len(puts)
        pending = {table: puts}
        delay = 0.01
        while pending:
            answer = await connection.call("BatchWriteItem", {"RequestItems": pending})
            pending = answer.get("UnprocessedItems") or {}
            if pending:
                self.report.unprocessed += sum(len(v) for v in pending.values())
                await asyncio.sleep(delay)
                delay = min(1.0, delay * 2)
        self._count(table, written)

    async def _update(self, connection: AsyncConnection, table: str, request: dict) -> None:
        try:
            await connection.call("UpdateItem", request)
        except DynamoError as exc:
            if exc.type != "ConditionalCheckFailedException":  # a newer position is stored: keep it
                raise
        self._count(table, 1)

    def _count(self, table: str, n: int) -> None:
        items = self.report.items
        items[table] = items.get(table, 0) + n
        if table == EVENTS_TABLE:
            self.report.events += n


def _loop_factory():
    try:
        import uvloop
    except ImportError:  # not on Windows
        return None
    return uvloop.new_event_loop


class Progress:
    """A progress line on stderr: count, rate and time left, redrawn in place on a terminal
    (on anything else, one line every ``quiet_interval`` seconds)."""

    def __init__(self, total: int, label: str = "events", stream=None, quiet_interval: float = 10.0) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = 0.2 if self.tty else quiet_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def start(self, done) -> None:
        self._done = done
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="shoal-demo-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._draw(final=False)

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        self._draw(final=True)

    def line(self, done: int, elapsed: float) -> str:
        total = self.total
        width = 24
        filled = min(width, int(width * done / total)) if total else width
        rate = done / elapsed if elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else None
        eta = _clock(left) if left is not None else "--:--"
        return (f"  {self.label} [{'#' * filled}{'.' * (width - filled)}] {done:>{len(f'{total:,}')},}/{total:,}"
                f"  {rate:>8,.0f}/s  {'elapsed' if done >= total else 'ETA'} "
                f"{_clock(elapsed) if done >= total else eta}")

    def _draw(self, final: bool) -> None:
        text = self.line(self._done(), time.monotonic() - self._started)
        if self.tty:  # redrawn in place; padded over a longer previous line
            self.stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
            self._width = len(text)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
