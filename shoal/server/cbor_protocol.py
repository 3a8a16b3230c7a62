"""Smithy RPC v2 CBOR, as botocore's ``smithy-rpc-v2-cbor`` client speaks it.

A pure codec, with no I/O.  A request is ``POST
/service/<Service>/operation/<Operation>`` with ``smithy-protocol:
rpc-v2-cbor`` and a CBOR map of the input's members as its body (none when
the input is empty).  ``parse`` turns that map into the JSON protocol's shape,
so the operations written for the JSON protocol answer it unchanged, and
``response`` turns their output back: the two protocols differ only where
CBOR has types JSON lacks.

- Timestamps travel as tag 1 (epoch seconds, integer or float); the JSON
  shape holds epoch seconds.  cbor2 decodes tag 1 into a datetime, so a
  time is kept to the microsecond.
- Blobs travel as byte strings; the JSON shape holds base64 text.
- NaN and the infinities of a double travel as floats; the JSON shape holds
  the strings "NaN", "Infinity", "-Infinity", as botocore sends them in JSON.
- CBOR null is an absent member.

The shapes come from botocore's service model, read as ``shoal.api.shapes``
reads it (botocore itself is not imported).  CloudWatch's model is
``awsQueryCompatible``: an error also carries the query protocol's code in
the ``x-amzn-query-error`` header (``error_headers``), which the SDKs report.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from datetime import datetime, timedelta, timezone

import cbor2

from shoal.server.query_protocol import service_model
from shoal.metrics.errors import SerializationError
from shoal.server.query_protocol import epoch_seconds

CONTENT_TYPE = "application/cbor"
PROTOCOL_HEADER = ("smithy-protocol", "rpc-v2-cbor")
#: The headers of an answer with a body (an operation without output answers with no body and no Content-Type).
HEADERS = (PROTOCOL_HEADER, ("Content-Type", CONTENT_TYPE))
#: The Smithy service names in request paths, and the botocore service each is.
SERVICES = {"GraniteServiceVersion20100801": "cloudwatch"}

_PATH = re.compile(r"(?:/[^?#]*)?/service/([^/?#]+)/operation/([^/?#]+)")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_JSON_SCALARS = (str, bool, int, float)


class CborSerializationError(SerializationError):
    """A body that is not one CBOR map, or a value CBOR gives no JSON form to.
    A ``CloudWatchError`` (SerializationException) so that CloudWatch's error
    path renders it as is."""


def operation_of(path: str) -> tuple[str, str] | None:
    """(Smithy service name, operation) from an RPC v2 path (after any prefix
    of the endpoint's own path); None for any other path."""
    match = _PATH.fullmatch(path.split("?", 1)[0])
    if match is None:
        return None
    return match[1], match[2]


def response_headers(body: bytes) -> list[tuple[str, str]]:
    """The protocol's headers for an answer whose body is ``body``."""
    return list(HEADERS) if body else [PROTOCOL_HEADER]


def error_headers(query_error: str | None = None) -> list[tuple[str, str]]:
    """An error answer's headers; ``query_error`` (``Code;Sender``) for an awsQueryCompatible service."""
    headers = list(HEADERS)
    if query_error:
        headers.append(("x-amzn-query-error", query_error))
    return headers


# ---------------------------------------------------------------- the model


# ---------------------------------------------------------------- requests


def parse(body: bytes, service: str, operation: str) -> dict:
    """The input of ``operation`` in the JSON protocol's shape; an empty body is an empty input."""
    model = service_model(service)
    if not body:
        return {}
    stream = io.BytesIO(body)
    try:
        value = cbor2.CBORDecoder(stream).decode()
    except (cbor2.CBORError, ValueError, OverflowError, TypeError, RecursionError):
        raise CborSerializationError("The request body is not valid CBOR.") from None
    if stream.tell() != len(body):
        raise CborSerializationError("The request body holds more than one CBOR data item.")
    if not isinstance(value, dict):
        raise CborSerializationError("The request body must be a CBOR map of the input's members.")
    input_ref = model.operations[operation].get("input")
    if input_ref is None:
        return {}
    return _Reader(model.shapes).structure(input_ref["shape"], value)


class _Reader:
    """CBOR values (as cbor2 decodes them) into their JSON-protocol form, by shape."""

    def __init__(self, shapes: dict) -> None:
        self.shapes = shapes

    def structure(self, shape_name: str, value: dict) -> dict:
        out = {}
        for name, member in self.shapes[shape_name].get("members", {}).items():
            item = value.get(name)
            if item is not None and item is not cbor2.undefined:
                out[name] = self.value(member["shape"], item)
        return out

    def value(self, shape_name: str, value):
        shape = self.shapes[shape_name]
        kind = shape["type"]
        # A value of the wrong CBOR type stays as it is, for the operation's
        # own checks to refuse as they refuse it in JSON.
        if kind == "structure" and isinstance(value, dict):
            return self.structure(shape_name, value)
        if kind == "list" and isinstance(value, list):
            return [self.value(shape["member"]["shape"], item) for item in value if item is not None]
        if kind == "map" and isinstance(value, dict):
            return {key: self.value(shape["value"]["shape"], item)
                    for key, item in value.items() if item is not None}
        if kind == "timestamp":
            if isinstance(value, datetime):
                moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
                return (moment - _EPOCH) / timedelta(seconds=1)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
        if kind == "blob" and isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode("ascii")
        if kind in ("double", "float") and isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return _json_value(value)


def _json_value(value):
    """A value outside the model's expectations, in a form JSON has (or refused)."""
    if isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, list):
        return [_json_value(item) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _json_value(item) for key, item in value.items()}
    raise CborSerializationError(f"A CBOR value of type {type(value).__name__} was found where not expected.")


# ---------------------------------------------------------------- answers


def response(service: str, operation: str, result: dict) -> bytes:
    """The CBOR answer of ``operation`` whose output (JSON-protocol shape) is
    ``result``; empty for an operation without output."""
    model = service_model(service)
    output = model.operations[operation].get("output")
    if output is None:
        return b""
    return cbor2.dumps(_Writer(model.shapes).structure(output["shape"], result))


def error(type_name: str, message: str, *, namespace: str = "com.amazonaws.cloudwatch") -> bytes:
    """An error answer's body: ``__type`` the error's shape id, as botocore reads it."""
    return cbor2.dumps({"__type": f"{namespace}#{type_name}", "message": message})


class _Writer:
    """JSON-protocol values into what cbor2 encodes as the protocol wants, by shape."""

    def __init__(self, shapes: dict) -> None:
        self.shapes = shapes

    def structure(self, shape_name: str, value: dict) -> dict:
        out = {}
        for name, member in self.shapes[shape_name].get("members", {}).items():
            item = value.get(name)
            if item is not None:
                out[name] = self.value(member["shape"], item)
        return out

    def value(self, shape_name: str, value):
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            return self.structure(shape_name, value)
        if kind == "list":
            return [self.value(shape["member"]["shape"], item) for item in value]
        if kind == "map":
            return {key: self.value(shape["value"]["shape"], item) for key, item in value.items()}
        if kind == "timestamp":
            return cbor2.CBORTag(1, _epoch(value))
        if kind == "blob":
            if isinstance(value, str):
                try:
                    return base64.b64decode(value, validate=True)
                except binascii.Error:
                    raise ValueError(f"not base64: {value!r}") from None
            return bytes(value)
        if kind in ("double", "float"):
            return _SPECIAL_FLOATS[value] if isinstance(value, str) else float(value)
        if kind in ("integer", "long"):
            return int(value)
        return value


def _epoch(value) -> int | float:
    """Epoch seconds (from a number, a datetime or ISO 8601 text) as tag 1
    carries them: an integer when whole."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        value = (moment - _EPOCH) / timedelta(seconds=1)
    elif isinstance(value, str):
        seconds = epoch_seconds(value)
        if seconds is None:
            raise ValueError(f"not a time: {value!r}")
        value = seconds
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
