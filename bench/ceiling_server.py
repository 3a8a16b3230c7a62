"""Serve bench/http_ceiling.py's constant-reply app on a given port (for run.py).

``http_ceiling.py --serve-only`` listens on a fixed port; the harness needs a
free one of its own choosing, so it starts this instead:

    python bench/ceiling_server.py PORT
"""

from __future__ import annotations

import sys

from http_ceiling import constant_handler_factory, serve

if __name__ == "__main__":
    port = int(sys.argv[1])
    sys.exit(serve(constant_handler_factory, "127.0.0.1", port, workers=1,
                   on_ready=lambda url: print(url, flush=True)))
