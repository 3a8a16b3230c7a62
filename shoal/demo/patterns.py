"""The seven access patterns of the viewer-events workload, as snippets with their answers.

Each pattern is a boto3 snippet (it uses ``ddb``, the client of the printed
set-up) and the AWS CLI commands that do the same, filled in with a concrete
user and title of the loaded data.  Both print the same answer.

The answer shown is what the boto3 snippet itself printed: ``run`` executes the
snippet's exact text with ``ddb`` bound to ``SnippetClient``, which offers the
part of boto3's low-level client the snippets use (operations named in
snake_case taking the request's fields, answers in DynamoDB's JSON, errors as
``ddb.exceptions.<ErrorType>``) over the demo's own connection, so that the
demo needs no boto3 and the shown answer cannot drift from the snippet.  The
tests run the printed snippets with real boto3 and the AWS CLI and compare.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from shoal.demo.client import Connection, DynamoError
from shoal.demo.workload import (
    COUNTER_SHARDS, EVENTS_TABLE, TTL_S, content_id, counter_id, hour_of, title_length_s, user_id,
)

INDENT = "    "


@dataclass
class Pattern:
    number: int
    title: str
    note: str  # one line about the concrete values (human-readable times)
    python: str
    cli: str
    answer: str = ""


@dataclass
class Credentials:
    """How the printed set-up authenticates: ``mode`` "any" (a server with auth off),
    "profile" or "environment" (the credentials boto3 and the AWS CLI find)."""

    mode: str = "any"
    profile: str | None = None


class SnippetError(Exception):
    """Base of the ``ddb.exceptions.<ErrorType>`` classes of SnippetClient."""


class _Exceptions:
    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def __getattr__(self, name: str) -> type:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._classes:
            self._classes[name] = type(name, (SnippetError,), {})
        return self._classes[name]


class SnippetClient:
    """boto3's low-level DynamoDB client, as far as the snippets use it, over a Connection."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self.exceptions = _Exceptions()

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        operation = "".join(part.capitalize() for part in name.split("_"))

        def call(**request):
            try:
                return self._connection.call(operation, request)
            except DynamoError as exc:
                raise getattr(self.exceptions, exc.type)(exc.message) from None
        return call


def run(pattern: Pattern, connection: Connection) -> str:
    """Execute the pattern's boto3 snippet against ``connection``; what it printed."""
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(pattern.python, f"<pattern {pattern.number}>", "exec"), {"ddb": SnippetClient(connection)})
    except Exception as exc:  # shown in place of the answer: the other patterns still run
        out.write(f"(failed: {type(exc).__name__}: {exc})\n")
    pattern.answer = out.getvalue().rstrip("\n")
    return pattern.answer


# ---------------------------------------------------------------- set-up


def setup_python(endpoint_url: str, region: str, credentials: Credentials, verify_tls: bool = True) -> str:
    where = f"endpoint_url={_j(endpoint_url)}, region_name={_j(region)}" + ("" if verify_tls else ", verify=False")
    if credentials.mode == "profile":
        return (f"import boto3\n"
                f"ddb = boto3.Session(profile_name={_j(credentials.profile)}).client(\n"
                f"    \"dynamodb\", {where})")
    if credentials.mode == "environment":
        return (f"import boto3  # with the AWS credentials of your environment\n"
                f"ddb = boto3.client(\"dynamodb\", {where})")
    return (f"import boto3\n"
            f"ddb = boto3.client(\"dynamodb\", {where},\n"
            f"                   aws_access_key_id=\"any\", aws_secret_access_key=\"any\")")


def setup_cli(region: str, credentials: Credentials) -> str:
    if credentials.mode == "profile":
        return f"export AWS_PROFILE={credentials.profile} AWS_DEFAULT_REGION={region}"
    if credentials.mode == "environment":
        return f"export AWS_DEFAULT_REGION={region}  # with the AWS credentials of your environment"
    return f"export AWS_ACCESS_KEY_ID=any AWS_SECRET_ACCESS_KEY=any AWS_DEFAULT_REGION={region}"


# ---------------------------------------------------------------- the patterns


def _j(value) -> str:
    """JSON text of a request value: valid Python too (the values are strings and dicts)."""
    return json.dumps(value)


def _when(ms) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(Decimal(ms)) // 1000))


@dataclass
class Context:
    """The concrete values the snippets use, read from the loaded data."""

    user: str
    title: str  # the most popular title
    resumed: str  # the title of the user's latest event, which the user resumes
    resume_position: str
    now_ms: int
    window: tuple[str, str]  # ts of the 8th and the 4th newest event of the user
    session: str


def read_context(connection: Connection, now_ms: int | None = None, session: str | None = None) -> Context:
    """Pick the demo's user (the most active one) and look at their latest events."""
    uid = user_id(1)
    latest = connection.call("Query", {
        "TableName": EVENTS_TABLE, "KeyConditionExpression": "user_id = :u",
        "ExpressionAttributeValues": {":u": {"S": uid}}, "ScanIndexForward": False, "Limit": 8})["Items"]
    if not latest:
        raise LookupError(f"{uid} has no events in {EVENTS_TABLE}")
    newest, oldest = latest[0], latest[-1]
    return Context(
        user=uid, title=content_id(1), resumed=newest["content_id"]["S"],
        resume_position=newest.get("position_s", {"N": "0"})["N"],
        now_ms=now_ms if now_ms is not None else int(time.time() * 1000),
        window=(oldest["ts"]["N"], latest[min(3, len(latest) - 1)]["ts"]["N"]),
        session=session or str(uuid.uuid4()))


def patterns(ctx: Context, endpoint_url: str, verify_tls: bool = True) -> list[Pattern]:
    """The seven patterns, filled in with ``ctx``; the CLI commands talk to ``endpoint_url``."""
    now = str(ctx.now_ms)
    start, end = ctx.window
    hour = hour_of(ctx.now_ms)
    position = min(Decimal(ctx.resume_position) + 60, Decimal(title_length_s(ctx.resumed)))
    saved_at = str(ctx.now_ms + 60_000)
    expires = ctx.now_ms // 1000 + TTL_S
    event = {"user_id": {"S": ctx.user}, "ts": {"N": now}, "event_type": {"S": "play"},
             "content_id": {"S": ctx.resumed}, "session_id": {"S": ctx.session},
             "position_s": {"N": ctx.resume_position}, "expires_at": {"N": str(expires)}}
    values = {
        "aws": f"aws dynamodb --endpoint-url {endpoint_url}" + ("" if verify_tls else " --no-verify-ssl"),
        "user": ctx.user, "title": ctx.title, "hour": hour, "shards": str(COUNTER_SHARDS),
        "event": _wrapped(event), "event_key": _j({"user_id": {"S": ctx.user}, "ts": {"N": now}}),
        "user_value": _j({":u": {"S": ctx.user}}),
        "window_values": _j(window := {":u": {"S": ctx.user}, ":start": {"N": start}, ":end": {"N": end}}),
        "window_values_cli": _wrapped(window, indent=" " * 8, width=80),
        "progress_key": _j({"user_id": {"S": ctx.user}, "content_id": {"S": ctx.resumed}}),
        "progress_values": _j({":p": {"N": f"{position:.3f}"}, ":t": {"N": saved_at}}),
        "title_value": _j({":c": {"S": ctx.title}}),
        "counter_keys": ",\n    ".join(_j({"counter_id": {"S": counter_id(ctx.title, hour, n)}})
                                       for n in range(COUNTER_SHARDS)),
    }
    notes = {
        1: f"{ctx.user} resumes {ctx.resumed} at {_when(now)}; expires_at is 90 days later",
        2: f"{ctx.user} is the most active user; newest first: ts, event type, title, position",
        3: f"{ctx.user} from {_when(start)} to {_when(end)}, oldest first",
        4: f"a minute into the play appended in 1, at {_when(saved_at)}, the app saves the position; "
           "run it again: refused, as its time is not newer",
        5: f"{ctx.title} is the most popular title: its latest 5 viewers among its latest 200 events",
        6: f"{ctx.title}, hour {hour} UTC; each run adds one play",
        7: f"the event of 1 expires at {_when(expires * 1000)}; Shoal deletes expired items in the "
           "background, and reads may return them until then",
    }
    return [Pattern(number, _fill(title, values), notes[number], _fill(python, values), _fill(cli, values))
            for number, (title, python, cli) in enumerate(_TEMPLATES, 1)]


def _fill(template: str, values: dict) -> str:
    """``template`` with each ``@name@`` replaced by ``values[name]``."""
    def value(match):
        return values[match.group(1)]
    return re.sub(r"@(\w+)@", value, template)


def _wrapped(value: dict, indent: str = "    ", width: int = 96) -> str:
    """JSON text of a dict with its members packed onto indented lines of at most ``width``."""
    lines, line = [], ""
    for key, member in value.items():
        part = f"{json.dumps(key)}: {json.dumps(member)}"
        if line and len(indent) + len(line) + len(part) + 2 > width:
            lines.append(line + ",")
            line = part
        else:
            line = f"{line}, {part}" if line else part
    lines.append(line)
    return "{\n" + "\n".join(indent + text for text in lines) + "}"


# (title, boto3 snippet, AWS CLI snippet) of each pattern, in the workload's order.
# The table and index names are workload.EVENTS_TABLE, PROGRESS_TABLE, COUNTERS_TABLE, CONTENT_INDEX.
_TEMPLATES = [
    ("Append an event (PutItem; the load above used BatchWriteItem of 25)", '''\
ddb.put_item(TableName="viewer_events", Item=@event@)
item = ddb.get_item(TableName="viewer_events",
                    Key=@event_key@)["Item"]
print(item["ts"]["N"], item["event_type"]["S"], item["content_id"]["S"], item["expires_at"]["N"])''', '''\
@aws@ put-item --table-name viewer_events --item '@event@'
@aws@ get-item --table-name viewer_events \\
    --key '@event_key@' \\
    --query 'Item.[ts.N, event_type.S, content_id.S, expires_at.N]' --output text'''),

    ("A user's latest 5 events (Query with ScanIndexForward false, Limit 5)", '''\
items = ddb.query(TableName="viewer_events", KeyConditionExpression="user_id = :u",
                  ExpressionAttributeValues=@user_value@,
                  ScanIndexForward=False, Limit=5)["Items"]
for item in items:
    print(item["ts"]["N"], item["event_type"]["S"], item["content_id"]["S"], item["position_s"]["N"])''', '''\
# (head: the AWS CLI prints a paging token after the 5 items)
@aws@ query --table-name viewer_events \\
    --key-condition-expression 'user_id = :u' --expression-attribute-values '@user_value@' \\
    --no-scan-index-forward --max-items 5 --page-size 5 \\
    --query 'Items[].[ts.N, event_type.S, content_id.S, position_s.N]' --output text | head -n 5'''),

    ("A user's events in a time window (Query with BETWEEN on ts)", '''\
values = @window_values@
items = ddb.query(TableName="viewer_events",
                  KeyConditionExpression="user_id = :u AND ts BETWEEN :start AND :end",
                  ExpressionAttributeValues=values)["Items"]
for item in items:
    print(item["ts"]["N"], item["event_type"]["S"], item["content_id"]["S"])''', '''\
@aws@ query --table-name viewer_events \\
    --key-condition-expression 'user_id = :u AND ts BETWEEN :start AND :end' \\
    --expression-attribute-values '@window_values_cli@' \\
    --query 'Items[].[ts.N, event_type.S, content_id.S]' --output text'''),

    ("Continue watching (UpdateItem only if newer, then GetItem)", '''\
key = @progress_key@
try:
    ddb.update_item(TableName="continue_watching", Key=key,
                    UpdateExpression="SET position_s = :p, updated_at = :t",
                    ConditionExpression="attribute_not_exists(updated_at) OR updated_at < :t",
                    ExpressionAttributeValues=@progress_values@)
except ddb.exceptions.ConditionalCheckFailedException:
    print("not saved: the stored position is as new or newer")
item = ddb.get_item(TableName="continue_watching", Key=key)["Item"]
print(item["position_s"]["N"], item["updated_at"]["N"])''', '''\
@aws@ update-item --table-name continue_watching \\
    --key '@progress_key@' \\
    --update-expression 'SET position_s = :p, updated_at = :t' \\
    --condition-expression 'attribute_not_exists(updated_at) OR updated_at < :t' \\
    --expression-attribute-values '@progress_values@' \\
  || echo "not saved: the stored position is as new or newer"
@aws@ get-item --table-name continue_watching \\
    --key '@progress_key@' \\
    --query 'Item.[position_s.N, updated_at.N]' --output text'''),

    ("Who watched a title recently (Query on the index by_content: content_id, ts)", '''\
items = ddb.query(TableName="viewer_events", IndexName="by_content",
                  KeyConditionExpression="content_id = :c", ExpressionAttributeValues=@title_value@,
                  ScanIndexForward=False, Limit=200)["Items"]
viewers = {}  # user -> the time of their latest event on the title, newest first
for item in items:
    viewers.setdefault(item["user_id"]["S"], item["ts"]["N"])
for user, ts in list(viewers.items())[:5]:
    print(user, ts)''', '''\
@aws@ query --table-name viewer_events --index-name by_content \\
    --key-condition-expression 'content_id = :c' --expression-attribute-values '@title_value@' \\
    --no-scan-index-forward --max-items 200 --page-size 200 \\
    --query 'Items[].[user_id.S, ts.N]' --output text | awk 'NF == 2 && !seen[$1]++' | head -n 5'''),

    ("Plays of a title this hour (UpdateItem ADD on one of @shards@ shards; read: the sum of the shards)", '''\
import random
shard = random.randrange(@shards@)  # any one: the writes of a hot title spread over @shards@ items
ddb.update_item(TableName="title_counters", Key={"counter_id": {"S": f"@title@#@hour@#{shard}"}},
                UpdateExpression="ADD plays :one", ExpressionAttributeValues={":one": {"N": "1"}})
keys = [{"counter_id": {"S": f"@title@#@hour@#{n}"}} for n in range(@shards@)]
shards = ddb.batch_get_item(RequestItems={"title_counters": {"Keys": keys}})["Responses"]["title_counters"]
print(sum(int(item["plays"]["N"]) for item in shards))''', '''\
@aws@ update-item --table-name title_counters \\
    --key '{"counter_id": {"S": "@title@#@hour@#'$(( $(date +%s) % @shards@ ))'"}}' \\
    --update-expression 'ADD plays :one' --expression-attribute-values '{":one": {"N": "1"}}'
@aws@ batch-get-item --request-items '{"title_counters": {"Keys": [
    @counter_keys@]}}' \\
    --query 'sum(Responses.title_counters[].to_number(plays.N))' --output text'''),

    ("Expire events after 90 days (time to live on expires_at)", '''\
ttl = ddb.describe_time_to_live(TableName="viewer_events")["TimeToLiveDescription"]
print(ttl["TimeToLiveStatus"], ttl["AttributeName"])''', '''\
@aws@ describe-time-to-live --table-name viewer_events \\
    --query 'TimeToLiveDescription.[TimeToLiveStatus, AttributeName]' --output text'''),
]


# ---------------------------------------------------------------- printing


def _block(label: str, text: str) -> list[str]:
    return [f"  {label}:"] + [INDENT + line if line else "" for line in text.split("\n")]


def render(items: list[Pattern], endpoint_url: str, region: str, credentials: Credentials,
           snippets: str = "both", verify_tls: bool = True) -> str:
    """The printed text: the set-up, then each pattern with its snippets and answer.

    ``snippets`` is "both", "python", "cli" or "none" (the answers only)."""
    python, cli = snippets in ("both", "python"), snippets in ("both", "cli")
    if python or cli:
        lines = ["The seven access patterns, on this data: each snippet prints what is shown under \"prints\"."]
        lines += ["", "Set-up (once, before the snippets)"]
        if python:
            lines += _block("boto3", setup_python(endpoint_url, region, credentials, verify_tls))
        if cli:
            lines += _block("AWS CLI", setup_cli(region, credentials))
    else:
        lines = ["The seven access patterns, answered on this data (--snippets shows the code):"]
    for pattern in items:
        lines += ["", f"{pattern.number}. {pattern.title}", f"  ({pattern.note})"]
        if python:
            lines += _block("boto3", pattern.python)
        if cli:
            lines += _block("AWS CLI", pattern.cli)
        lines += _block("prints", pattern.answer or "(nothing)")
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict:
    """The sections of ``render``'s text: ``{"Set-up": {"boto3": ..., "AWS CLI": ...}, 1: {...}, ...}``
    (for the tests, and for anyone who wants to pick the snippets out of the output)."""
    sections: dict = {}
    current = label = None
    for line in text.split("\n"):
        if line and not line.startswith(" "):
            head = line.split(".", 1)[0]
            current = int(head) if head.isdigit() else line.split(" (", 1)[0]
            sections[current] = {}
            label = None
        elif line.startswith("  ") and not line.startswith(INDENT) and line.endswith(":") and current is not None:
            label = line.strip()[:-1]
            sections[current][label] = []
        elif label is not None and (line.startswith(INDENT) or not line):
            sections[current][label].append(line[len(INDENT):])
    return {key: {name: "\n".join(body).strip("\n") for name, body in value.items()}
            for key, value in sections.items()}
