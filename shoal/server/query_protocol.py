"""AWS's query protocol: form-encoded requests in, XML answers out (CloudWatch, SNS).

A pure codec, with no I/O.  ``parse`` turns ``Action=...&Version=...&...`` into
the operation's input in the JSON protocol's shape (what botocore's ``json``
serializer would have sent), so the operations written for the JSON protocol
answer query requests unchanged; ``response`` and ``error`` render their
results as the query services do.  botocore's service model drives both
directions: the names alone cannot say whether ``Dimensions.member.1`` is a
list or ``Period`` a number.

What AWS's query front end does, and so does this module:

- the first of a repeated name counts (``Action=A&Action=B`` is ``A``);
- an ``Action`` not in the model, or a ``Version`` other than the model's
  (``NO_VERSION_SPECIFIED`` when absent), is ``InvalidAction``: "Could not
  find operation X for version V";
- parameters the input shape does not name are ignored;
- list and map indexes count from 1; any other index is ``MalformedInput``
  ("0 is not a valid index"), and elements are ordered by index, not by
  their place in the body;
- the front end's own errors (MissingAction, InvalidAction, signatures) are
  in the generic ``AWSFault`` XML namespace, the service's in its own.

Values take the JSON protocol's form: numbers and booleans converted by the
member's type, timestamps as epoch seconds (float), blobs left as base64
text, and NaN and the infinities of a double as the strings "NaN",
"Infinity", "-Infinity" (botocore sends them so in JSON).
"""

from __future__ import annotations

import base64
import math
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl

from shoal.api.shapes import load_model, model_path
from shoal.metrics.errors import CloudWatchError, InvalidParameterValue

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
CONTENT_TYPE = "text/xml"

#: The namespace of the errors AWS's query front end answers before a service sees the request.
AWS_FAULT_NS = "http://webservices.amazon.com/AWSFault/2005-15-09"
#: What InvalidAction's message names when the request has no Version.
NO_VERSION = "NO_VERSION_SPECIFIED"
#: Codes answered by the front end (in AWS_FAULT_NS), not by the service.
FRONT_DOOR_CODES = frozenset({
    "MissingAction", "InvalidAction", "MalformedInput", "IncompleteSignature", "SignatureDoesNotMatch",
    "InvalidClientTokenId", "MissingAuthenticationToken", "ExpiredToken",
})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INDEX = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_SPECIAL_DOUBLES = ("NaN", "Infinity", "-Infinity")
_XML_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#xD;"})
_ABSENT = object()  # a node that holds no value of its shape (skipped, as if not sent)


# ---------------------------------------------------------------- errors


class QueryProtocolError(CloudWatchError):
    """An error of the query protocol itself, raised before any operation runs.

    A ``CloudWatchError`` so that CloudWatch's error path renders it as is;
    ``code`` is what the query protocol's ``<Code>`` says, for any service.
    """


class MissingAction(QueryProtocolError):
    type_name = code = "MissingAction"


class InvalidAction(QueryProtocolError):
    type_name = code = "InvalidAction"


class MalformedInput(QueryProtocolError):
    """A list or map index that is not a positive integer."""

    type_name = code = "MalformedInput"


class InvalidParameter(QueryProtocolError):
    """SNS's answer to a parameter it cannot read (its InvalidParameterException)."""

    type_name = code = "InvalidParameter"


def _unreadable(service: str, text: str, path: str) -> CloudWatchError:
    """The error for a value that does not convert to its member's type, in the service's words."""
    if service == "sns":
        return InvalidParameter(f"Invalid parameter: {path}")
    return InvalidParameterValue(f"The value {text} for parameter {path} is invalid.")


# ---------------------------------------------------------------- the model


class _Service:
    """One service's model, as the query protocol reads it."""

    def __init__(self, name: str) -> None:
        model = load_model(model_path(name))
        self.name = name
        self.shapes: dict = model["shapes"]
        self.operations: dict = model["operations"]
        self.version: str = model["metadata"]["apiVersion"]
        self.namespace: str = model["metadata"].get("xmlNamespace", AWS_FAULT_NS)

    def wire_name(self, member_name: str, member: dict) -> str:
        """A member's name on the wire: its locationName, or for a flattened
        list whose element has a locationName, that name (botocore's rule)."""
        target = self.shapes[member["shape"]]
        if target["type"] == "list" and (member.get("flattened") or target.get("flattened")):
            element_name = target["member"].get("locationName")
            if element_name:
                return element_name
        return member.get("locationName", member_name)


_services: dict[str, _Service] = {}


def service_model(name: str) -> _Service:
    """A service's model (loaded once), for this codec and the CBOR one."""
    service = _services.get(name)
    if service is None:
        service = _services[name] = _Service(name)
    return service


# ---------------------------------------------------------------- requests


def parse(body: bytes | str, service: str) -> tuple[str, dict]:
    """(operation, input in the JSON protocol's shape) from a form-encoded
    body or a GET query string."""
    model = service_model(service)
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    params: dict[str, str] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, errors="replace"):
        params.setdefault(name, value)
    action = params.get("Action")
    if action is None:
        raise MissingAction("Missing Action")
    version = params.get("Version", NO_VERSION)
    operation = model.operations.get(action)
    if operation is None or version != model.version:
        raise InvalidAction(f"Could not find operation {action} for version {version}")
    if "input" not in operation:
        return action, {}
    tree: dict = {}
    for name, value in params.items():
        node = tree
        for part in name.split("."):
            node = node.setdefault(part, {})
        node[None] = value
    return action, _Reader(model).structure(operation["input"]["shape"], tree, "")


class _Reader:
    """Reads a tree of dotted names (``{"A": {"member": {"1": {None: "x"}}}}``) by shape."""

    def __init__(self, model: _Service) -> None:
        self.model = model
        self.shapes = model.shapes

    def value(self, shape_name: str, node: dict, path: str):
        shape = self.shapes[shape_name]
        kind = shape["type"]
        if kind == "structure":
            return self.structure(shape_name, node, path + ".")
        if kind == "list":
            return self.list(shape, node, path)
        if kind == "map":
            return self.map(shape, node, path)
        text = node.get(None)
        if text is None:
            return _ABSENT
        return self.scalar(kind, text, path)

    def structure(self, shape_name: str, node: dict, prefix: str) -> dict:
        out = {}
        for name, member in self.shapes[shape_name].get("members", {}).items():
            wire = self.model.wire_name(name, member)
            child = node.get(wire)
            if child is not None:
                value = self.value(member["shape"], child, prefix + wire)
                if value is not _ABSENT:
                    out[name] = value
        return out

    def list(self, shape: dict, node: dict, path: str):
        if shape.get("flattened"):
            elements, element_path = node, path
        else:
            name = shape["member"].get("locationName", "member")
            elements, element_path = node.get(name), f"{path}.{name}"
        if elements is None:
            # botocore sends an empty list as the bare name with an empty value.
            return [] if node.get(None) == "" else _ABSENT
        out = []
        for index, child in _indexed(elements):
            value = self.value(shape["member"]["shape"], child, f"{element_path}.{index}")
            if value is not _ABSENT:
                out.append(value)
        return out

    def map(self, shape: dict, node: dict, path: str):
        if shape.get("flattened"):
            entries, entry_path = node, path
        else:
            entries, entry_path = node.get("entry"), f"{path}.entry"
        if entries is None:
            return {} if node.get(None) == "" else _ABSENT
        key_name = shape["key"].get("locationName", "key")
        value_name = shape["value"].get("locationName", "value")
        out = {}
        for index, child in _indexed(entries):
            key_node, value_node = child.get(key_name), child.get(value_name)
            if key_node is None or value_node is None:
                continue
            key = self.value(shape["key"]["shape"], key_node, f"{entry_path}.{index}.{key_name}")
            value = self.value(shape["value"]["shape"], value_node, f"{entry_path}.{index}.{value_name}")
            if key is not _ABSENT and value is not _ABSENT:
                out[key] = value
        return out

    def scalar(self, kind: str, text: str, path: str):
        if kind in ("integer", "long"):
            if _INTEGER.fullmatch(text):
                return int(text)
        elif kind in ("double", "float"):
            if text in _SPECIAL_DOUBLES:
                return text
            if _DECIMAL.fullmatch(text) and math.isfinite(number := float(text)):  # 1e400: not a double
                return number
        elif kind == "boolean":
            lowered = text.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
        elif kind == "timestamp":
            seconds = epoch_seconds(text)
            if seconds is not None:
                return seconds
        else:  # string (enums too), blob (base64 text, as the JSON protocol carries it)
            return text
        raise _unreadable(self.model.name, text, path)


def _indexed(node: dict) -> list[tuple[str, dict]]:
    """The children of a list or map node, in the order of their (1-based) indexes."""
    children = []
    for index, child in node.items():
        if index is None:
            continue
        if not _INDEX.fullmatch(index) or int(index) < 1:
            raise MalformedInput(f"{index} is not a valid index")
        children.append((int(index), index, child))
    children.sort(key=lambda entry: entry[0])
    return [(index, child) for _, index, child in children]


def epoch_seconds(text: str) -> float | None:
    """Epoch seconds from an ISO 8601 time (UTC when it names no zone) or an
    epoch number; None when it is neither (nor a number a double holds)."""
    if _DECIMAL.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    # Dividing timedeltas keeps the microseconds exact until one rounding to float.
    return (moment - _EPOCH) / timedelta(seconds=1)


# ---------------------------------------------------------------- answers


def response(service: str, operation: str, result: dict, request_id: str) -> bytes:
    """The XML answer of ``operation`` whose output (JSON-protocol shape) is ``result``."""
    model = service_model(service)
    output = model.operations[operation].get("output")
    parts = [f'<{operation}Response xmlns="{model.namespace}">']
    if output is not None:
        wrapper = output.get("resultWrapper", f"{operation}Result")
        parts.append(f"<{wrapper}>")
        _Writer(model, parts).members(output["shape"], result)
        parts.append(f"</{wrapper}>")
    parts.append(f"<ResponseMetadata><RequestId>{_text(request_id)}</RequestId></ResponseMetadata>"
                 f"</{operation}Response>")
    return "".join(parts).encode("utf-8")


def error(code: str, message: str, request_id: str, *, sender: bool = True, service: str = "cloudwatch") -> bytes:
    """The XML of an error answer (its status is the caller's)."""
    namespace = AWS_FAULT_NS if code in FRONT_DOOR_CODES else service_model(service).namespace
    text = f"<Message>{_text(message)}</Message>" if message else ""
    return (f'<ErrorResponse xmlns="{namespace}"><Error><Type>{"Sender" if sender else "Receiver"}</Type>'
            f"<Code>{_text(code)}</Code>{text}</Error><RequestId>{_text(request_id)}</RequestId>"
            "</ErrorResponse>").encode("utf-8")


class _Writer:
    """Appends the XML of values, by shape, to a list of parts."""

    def __init__(self, model: _Service, parts: list[str]) -> None:
        self.model = model
        self.shapes = model.shapes
        self.parts = parts

    def members(self, shape_name: str, value: dict) -> None:
        for name, member in self.shapes[shape_name].get("members", {}).items():
            item = value.get(name)
            if item is not None:
                self.element(member["shape"], item, self.model.wire_name(name, member),
                             member.get("flattened", False))

    def element(self, shape_name: str, value, name: str, flattened: bool = False) -> None:
        shape = self.shapes[shape_name]
        kind = shape["type"]
        parts = self.parts
        if kind == "structure":
            parts.append(f"<{name}>")
            self.members(shape_name, value)
            parts.append(f"</{name}>")
        elif kind == "list":
            element_shape = shape["member"]["shape"]
            if flattened or shape.get("flattened"):
                for item in value:
                    self.element(element_shape, item, name)
            else:
                parts.append(f"<{name}>")
                element_name = shape["member"].get("locationName", "member")
                for item in value:
                    self.element(element_shape, item, element_name)
                parts.append(f"</{name}>")
        elif kind == "map":
            key_name = shape["key"].get("locationName", "key")
            value_name = shape["value"].get("locationName", "value")
            flat = flattened or shape.get("flattened")
            if not flat:
                parts.append(f"<{name}>")
            for key, item in value.items():
                parts.append(f"<{name if flat else 'entry'}>")
                self.element(shape["key"]["shape"], key, key_name)
                self.element(shape["value"]["shape"], item, value_name)
                parts.append(f"</{name if flat else 'entry'}>")
            if not flat:
                parts.append(f"</{name}>")
        else:
            parts.append(f"<{name}>{_text(_scalar_text(kind, value))}</{name}>")


def _scalar_text(kind: str, value) -> str:
    if kind == "boolean":
        return "true" if value else "false"
    if kind in ("integer", "long"):
        return str(int(value))
    if kind in ("double", "float"):
        if isinstance(value, str):  # "NaN", "Infinity", "-Infinity", as the JSON protocol carries them
            return value
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return repr(number)
    if kind == "timestamp":
        return iso8601(value)
    if kind == "blob" and isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def iso8601(value) -> str:
    """A time (epoch seconds, a datetime, or ISO 8601 text) as the query
    services write it: UTC, milliseconds, ``Z``."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)
        millis = (moment - _EPOCH) // timedelta(milliseconds=1)
    else:
        seconds = epoch_seconds(value) if isinstance(value, str) else float(value)
        if seconds is None:
            raise ValueError(f"not a time: {value!r}")
        millis = round(seconds * 1000)
    moment = _EPOCH + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


def _text(value: str) -> str:
    """XML character data; a carriage return is written as a reference so
    that the parser's line-end normalisation keeps it."""
    return value.translate(_XML_TEXT)
