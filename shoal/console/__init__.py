"""The web console, served by ``shoal serve`` at ``/console``.

Placeholder until the console lands: every console path answers 404.
"""

from __future__ import annotations

from shoal.server.http import Request, Response


def respond(path: str, request: Request, request_id: str) -> Response:
    """A GET of ``/console`` or a path under it."""
    return Response(404, [("Content-Type", "text/plain; charset=utf-8"), ("x-amzn-RequestId", request_id)],
                    b"Not found\n")
