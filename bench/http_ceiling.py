"""The ceiling of Shoal's HTTP layer: requests/s with a constant-reply handler.

Serves a handler that parses each request's JSON body and answers every
request with the same GetItem-shaped reply (one viewer event, the item the
benchmark's GetItem finds, with DynamoDB's response headers), doing no
validation and no storage work, so what is measured is the HTTP layer and
the JSON parse alone: the most any real operation could reach per worker.

    python bench/http_ceiling.py                  # serve and measure with wrk if installed
    python bench/http_ceiling.py --serve-only     # just serve; print the URL
    python bench/http_ceiling.py --workers 2      # several worker processes

Without ``wrk`` the load comes from a small built-in client: several
processes, each keeping a few keep-alive connections busy with one
request at a time (no pipelining), which is slower than wrk, so the figure
it prints is a lower bound.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

import orjson

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shoal.server.http import Response  # noqa: E402
from shoal.server.runner import serve  # noqa: E402

BODY = b'{"TableNames":[]}'
REQUEST = (
    b"POST / HTTP/1.1\r\nHost: bench\r\nContent-Type: application/x-amz-json-1.0\r\n"
    b"X-Amz-Target: DynamoDB_20120810.ListTables\r\nContent-Length: 2\r\n\r\n{}"
)


# A GetItem answer for one viewer event (bench/workload.py's shape), as Shoal sends it.
GET_ITEM_REPLY = (
    b'{"Item":{"user_id":{"S":"u000042"},"ts":{"N":"1732000000123"},"event_type":{"S":"play"},'
    b'"content_id":{"S":"c000114"},"session_id":{"S":"10c67fd9-94b2-48fd-a02f-34a6795b929e"},'
    b'"device":{"M":{"type":{"S":"tv"},"os":{"S":"webos"},"app_version":{"S":"5.29.9"}}},'
    b'"position_s":{"N":"1687.183"},"country":{"S":"EG"},"expires_at":{"N":"1739776000"},'
    b'"bitrate_kbps":{"N":"16000"},"tags":{"SS":["music","romance","horror","anime"]}}}'
)


def constant_handler_factory():
    """A handler that parses the body and answers a fixed GetItem reply,
    built after fork like the real one."""
    reply = Response(200, [("Content-Type", "application/x-amz-json-1.0"),
                           ("x-amzn-RequestId", "BENCHBENCHBENCHBENCHBENCHBENCHBENCHBENCHBENCH0000"),
                           ("x-amz-crc32", str(zlib.crc32(GET_ITEM_REPLY)))], GET_ITEM_REPLY)
    loads = orjson.loads

    def handler(request):
        if request.body:
            loads(request.body)
        return reply

    return handler


def _serve(port_queue, workers: int) -> None:
    sys.exit(serve(constant_handler_factory, "127.0.0.1", 0, workers=workers,
                   on_ready=lambda url: port_queue.put(url)))


def _client(url: str, connections: int, seconds: float, counts) -> None:
    host, port = url.rsplit("//", 1)[1].split(":")
    socks = [socket.create_connection((host, int(port))) for _ in range(connections)]
    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock in socks:
            sock.sendall(REQUEST)
        for sock in socks:
            data = sock.recv(65536)
            while not data.endswith(GET_ITEM_REPLY):
                data += sock.recv(65536)
        done += connections
    counts.put(done)


def python_load(url: str, seconds: float, processes: int, connections: int) -> float:
    counts = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_client, args=(url, connections, seconds, counts))
             for _ in range(processes)]
    for proc in procs:
        proc.start()
    total = sum(counts.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def wrk_load(url: str, seconds: float, connections: int, threads: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        script = f.name
        f.write('wrk.method = "POST"\nwrk.body = "{}"\n'
                'wrk.headers["Content-Type"] = "application/x-amz-json-1.0"\n'
                'wrk.headers["X-Amz-Target"] = "DynamoDB_20120810.ListTables"\n')
    try:
        out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                              "-s", script, url + "/"], capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    print(out)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--serve-only", action="store_true")
    args = parser.parse_args()
    if args.serve_only:
        return serve(constant_handler_factory, "127.0.0.1", 8765, workers=args.workers,
                     on_ready=lambda url: print(url, flush=True))
    urls = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(urls, args.workers))
    server.start()
    try:
        url = urls.get(timeout=30)
        use_wrk = args.client == "wrk" or (args.client == "auto" and shutil.which("wrk"))
        if use_wrk:
            rate = wrk_load(url, args.seconds, args.connections, args.threads)
        else:
            rate = python_load(url, args.seconds, processes=max(1, (os.cpu_count() or 2) - args.workers),
                               connections=max(1, args.connections // 8))
        print(f"{rate:,.0f} requests/s ({'wrk' if use_wrk else 'python client'}, "
              f"{args.workers} worker(s), {args.connections} connections)")
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
