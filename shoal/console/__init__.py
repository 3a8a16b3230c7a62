"""The web console, served by ``shoal serve`` at ``/console``.

The console is a static single-page application (``static/``: plain modern
JavaScript, no build step, uPlot vendored from npm for the charts).  The
server only hands out its files: everything the console shows it reads from
the same endpoint through the public APIs (DynamoDB's and CloudWatch's JSON
protocols), signed in the browser with SigV4, so that with ``--auth sigv4``
every action is checked by the same IAM policies as any SDK's call and
nothing here needs to know about credentials.

Files are answered with their content type, ``Cache-Control: no-cache`` and
an ETag (a browser revalidates and gets 304 when nothing changed: the file
names carry no version, so a long cache would keep an old console after an
upgrade), and a Content-Security-Policy that allows only the console's own
scripts and connections to its own origin.  A path with a dot or empty
segment (raw or percent-encoded), a backslash or a NUL, one that resolves
outside ``static/``, or one that names no file is answered 404.
"""

from __future__ import annotations

import hashlib
import os
from urllib.parse import unquote

from shoal.server.http import Request, Response

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
PREFIX = "/console"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".md": "text/plain; charset=utf-8",
    ".LICENSE": "text/plain; charset=utf-8",
}

# uPlot sets element styles from script, hence 'unsafe-inline' for styles only.
SECURITY_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
     "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]

# file -> (mtime_ns, size, body, etag): a file is read once, and again only if it changed.
_cache: dict[str, tuple[int, int, bytes, str]] = {}


def respond(path: str, request: Request, request_id: str) -> Response:
    """A GET of ``/console`` or a path under it (``path`` has no query string)."""
    if path == PREFIX:  # relative links in the page need the trailing slash
        return Response(301, [("Location", PREFIX + "/"), ("x-amzn-RequestId", request_id),
                              ("Content-Type", "text/plain; charset=utf-8")], b"Moved to /console/\n")
    file = static_file(path[len(PREFIX) + 1:])
    if file is None:
        return _not_found(request_id)
    try:
        body, etag = _read(file)
    except OSError:
        return _not_found(request_id)
    headers = [("Content-Type", content_type(file)), ("Cache-Control", "no-cache"), ("ETag", etag),
               ("x-amzn-RequestId", request_id), *SECURITY_HEADERS]
    matches = _etags(request.headers.get("if-none-match", ""))
    if etag in matches or "*" in matches:
        return Response(304, headers[1:], b"")
    return Response(200, headers, body)


def static_file(relative: str) -> str | None:
    """The file under ``static/`` that a URL path below ``/console/`` names,
    or None: the empty path is ``index.html``; a path with a dot segment,
    an empty segment, a backslash or a NUL (raw or percent-encoded), or one
    that resolves outside ``static/`` (a symbolic link) names nothing."""
    if relative == "":
        relative = "index.html"
    try:
        decoded = unquote(relative, errors="strict") if "%" in relative else relative
    except UnicodeDecodeError:
        return None
    segments = decoded.split("/")
    if any(s in ("", ".", "..") or "\\" in s or "\0" in s for s in segments):
        return None
    candidate = os.path.realpath(os.path.join(STATIC_DIR, *segments))
    root = os.path.realpath(STATIC_DIR)
    if os.path.commonpath([candidate, root]) != root or not os.path.isfile(candidate):
        return None
    return candidate


def content_type(file: str) -> str:
    name = os.path.basename(file)
    for suffix, kind in CONTENT_TYPES.items():
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


def _read(file: str) -> tuple[bytes, str]:
    stat = os.stat(file)
    cached = _cache.get(file)
    if cached is not None and cached[0] == stat.st_mtime_ns and cached[1] == stat.st_size:
        return cached[2], cached[3]
    with open(file, "rb") as f:
        body = f.read()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    _cache[file] = (stat.st_mtime_ns, stat.st_size, body, etag)
    return body, etag


def _etags(header: str) -> set[str]:
    """The entity tags an If-None-Match header lists (weak ones compared as strong, as RFC 9110 says for GET)."""
    return {tag.strip().removeprefix("W/") for tag in header.split(",") if tag.strip()}


def _not_found(request_id: str) -> Response:
    return Response(404, [("Content-Type", "text/plain; charset=utf-8"), ("x-amzn-RequestId", request_id)],
                    b"Not found\n")
