"""Contributor insights: UpdateContributorInsights, DescribeContributorInsights, ListContributorInsights.

A table's or a global secondary index's setting is one small JSON record in
``meta`` under ``b"insights/s/" + table prefix + index name`` (no name for
the table itself)::

    {"region", "table", "index", "enabled", "mode", "at": epoch s of the last change,
     "since": epoch ms the rules were created, "hash", "range": the key attribute names}

Keyed by the table's prefix, a setting dies with its table: a table created
again under the same name has a new prefix and starts DISABLED, as in
DynamoDB, where DeleteTable removes the table's rules.

The status is derived from ``enabled`` and the time since ``at``: DynamoDB
answers ENABLE with ENABLING and settles within seconds (1-16 s observed;
DISABLING about 2 s), so Shoal reports ENABLING for ``ENABLING_S`` and
DISABLING for ``DISABLING_S`` and needs no job to settle them.  What
DynamoDB's recorded answers show (ack-api-quirks, verified 2026-10-08):
ENABLE or DISABLE of a settled state is a no-op echoing it; ENABLE with
another mode (an omitted mode is ACCESSED_AND_THROTTLED_KEYS) goes through
ENABLING again and keeps the rules' creation time; a never-configured table
or index describes as ``{TableName, ContributorInsightsStatus: DISABLED}``;
the list omits DISABLED entries and gives a table before its indexes.

FAILED: CloudWatch allows 100 Contributor Insights rules per account and
region (its service quotas page; ``SHOAL_CONTRIBUTOR_INSIGHTS_RULE_QUOTA``
changes it).  As DynamoDB answers past it (ack-api-quirks, verified
2026-10-09): ENABLE still answers ENABLING, the entry turns FAILED once
ENABLING would end, with a FailureException, no rules and no rule list; the
rules are made all or none, so a failed entry uses none of the quota; FAILED
stays until an ENABLE (evaluated again, new rule times) or a DISABLE
(DISABLING still shows the failure, DISABLED clears it); the list shows
FAILED entries.  Shoal decides at the ENABLE, with the rules of the region's
other entries that have them at that moment.

A table being created (a restore or an import) takes no update: DynamoDB's
ValidationException once the table is known (before, it answers
ResourceNotFoundException for a few seconds, which Shoal does not imitate).

The rules are named as the developer guide gives them,
``DynamoDBContributorInsights-<PKC|PKT|SKC|SKT>-<resource>-<creation ms>``,
the resource being the table's name or ``<table>-<index>``: PKC and SKC
(most accessed partition keys, partition and sort keys) exist only in the
ACCESSED_AND_THROTTLED_KEYS mode, SKC and SKT only with a sort key.  Their
KeyLabels are the key attribute names; for a multi-attribute GSI key, every
one of its attributes (``key_names``: DynamoDB does not document these
labels).  The counting behind them is ``shoal.metrics.insights``.
"""

from __future__ import annotations

import base64
import os
import weakref
from dataclasses import dataclass

import orjson

from shoal.api.tables import table_name_of
from shoal.errors import ResourceNotFoundException, ValidationException, validation_errors

SETTINGS_PREFIX = b"insights/s/"
ENABLING_S = 2.0
DISABLING_S = 2.0
ACCESSED = "ACCESSED_AND_THROTTLED_KEYS"
THROTTLED = "THROTTLED_KEYS"
LIST_PAGE = 100
RULE_PREFIX = "DynamoDBContributorInsights-"
RULE_QUOTA = int(os.environ.get("SHOAL_CONTRIBUTOR_INSIGHTS_RULE_QUOTA", "100"))
#: DynamoDB's FailureException past the quota, as recorded (ack-api-quirks, 2026-10-09)
QUOTA_FAILURE = {"ExceptionName": "LimitExceededException",
                 "ExceptionDescription": "Amazon CloudWatch Contributor Insights rule limit reached. Please disable "
                                         "Contributor Insights for other tables/indexes OR disable other CloudWatch "
                                         "Contributor Insights rules before retrying."}


@dataclass(frozen=True)
class Rule:
    """One CloudWatch Contributor Insights rule DynamoDB makes for a table or index."""

    name: str
    kind: str  # PKC, PKT, SKC or SKT
    region: str
    table: str
    index: str | None
    labels: tuple  # the key attribute names: the report's KeyLabels


def setting_key(prefix: bytes, index: str | None) -> bytes:
    return SETTINGS_PREFIX + prefix + (index or "").encode()


def status_of(setting: dict | None, now: float) -> str:
    """ENABLING, ENABLED, FAILED, DISABLING or DISABLED at ``now``."""
    if setting is None:
        return "DISABLED"
    if setting["enabled"]:
        if now - setting["at"] < ENABLING_S:
            return "ENABLING"
        return "FAILED" if setting.get("failure") else "ENABLED"
    return "DISABLING" if now - setting["at"] < DISABLING_S else "DISABLED"


def has_rules(setting: dict) -> bool:
    """Whether the setting's rules exist (and count keys): enabled and not
    failed; ENABLING counts already, so that every worker counts by the time
    the status reads ENABLED."""
    return setting["enabled"] and not setting.get("failure")


def rules_of(setting: dict) -> list[Rule]:
    """The rules of an enabled setting, in DynamoDB's order (PKC, PKT, SKC, SKT)."""
    resource = setting["table"] if not setting["index"] else f"{setting['table']}-{setting['index']}"
    kinds = ["PKC", "PKT"] if setting["mode"] == ACCESSED else ["PKT"]
    if setting["range"]:
        kinds += ["SKC", "SKT"] if setting["mode"] == ACCESSED else ["SKT"]
    out = []
    hashes, ranges = key_names(setting)
    for kind in kinds:
        labels = hashes if kind.startswith("PK") else hashes + ranges
        out.append(Rule(f"{RULE_PREFIX}{kind}-{resource}-{setting['since']}", kind, setting["region"],
                        setting["table"], setting["index"] or None, labels))
    return out


def key_names(setting: dict) -> tuple[tuple, tuple]:
    """The partition-key and sort-key attribute names the rules count by: a
    multi-attribute GSI key's every attribute, in KeySchema order (DynamoDB
    does not document how it labels such keys; the whole key is what
    identifies an entry)."""
    hashes = setting.get("hashes") or (setting["hash"],)
    ranges = setting.get("ranges") or ((setting["range"],) if setting["range"] else ())
    return tuple(hashes), tuple(ranges)


def live_settings(txn, catalog, region: str | None = None):
    """(table, setting) of every stored setting whose table (and index) still
    exists, of ``region`` or of all regions; enabled or not."""
    stop = SETTINGS_PREFIX[:-1] + b"0"
    tables: dict = {}
    for _, raw in txn.scan("meta", SETTINGS_PREFIX, stop):
        setting = orjson.loads(raw)
        if region is not None and setting["region"] != region:
            continue
        where = (setting["region"], setting["table"])
        if where not in tables:
            tables[where] = catalog.get(txn, *where)
        table = tables[where]
        if table is None or table.table_id != setting["table_id"]:  # deleted, or created again since
            continue
        if setting["index"]:
            if not _insightful_index(table, setting["index"]):
                continue
            index = table.index_map[setting["index"]]  # settings stored before multi-attribute keys name the first
            setting["hashes"], setting["ranges"] = list(index.hash_keys), list(index.range_keys)
        yield table, setting


def _insightful_index(table, name: str) -> bool:
    index = (table.index_map or {}).get(name)
    return index is not None and not index.local and index.status != "DELETING"


# ---------------------------------------------------------------- writes no request made

#: The counters of this process (``shoal.metrics.insights.Insights``, normally one per worker), for
#: the writes no request makes: weak references in a tuple replaced whole, so that any thread may read it
_COUNTERS: tuple = ()
#: The ids of the tables some counter counts (insights on for the table or a GSI): the writers test
#: a table's id in it before they call ``count_applied_write``, their whole cost for other tables
counting_tables: frozenset = frozenset()


def register_counter(counter) -> None:
    """Give ``counter`` (with ``active`` and ``applied_write``) the writes ``count_applied_write`` reports."""
    global _COUNTERS
    _COUNTERS = tuple(ref for ref in _COUNTERS if ref() is not None) + (weakref.ref(counter),)
    counters_changed()


def counters_changed() -> None:
    """Set ``counting_tables`` again (a counter calls it when it reloaded which tables count: its
    ``active`` maps (region, table name) to an entry with the table's ``table_id``)."""
    global counting_tables
    counting_tables = frozenset(entry.table_id for counter in (ref() for ref in _COUNTERS) if counter is not None
                                for entry in counter.active.values())


def count_applied_write(table, keys: dict, old_raw, new_item: dict | None) -> None:
    """Count a write no request of this region made, from the thread that
    makes it, inside its transaction: a write replicated from another region
    (``shoal.replication.apply``) or a bulk put's (``shoal.api.bulk``).
    ``old_raw`` is the item's stored value before (read in that transaction),
    ``new_item`` the item after (None: deleted).  Costs a test unless some
    table has insights on.  (A transaction that aborts after the call keeps
    its count: rare, the writers above abort only on a fault.)  Here, in the
    API layer, so that the writers need not import the metrics above it."""
    for ref in _COUNTERS:
        counter = ref()
        if counter is not None and counter.active:
            counter.applied_write(table, keys, old_raw, new_item)


# ---------------------------------------------------------------- the API


def _table(ctx, txn, name_or_arn: str):
    name = table_name_of(ctx, name_or_arn)
    table = ctx.catalog.get(txn, ctx.region, name)
    if table is None:
        raise ResourceNotFoundException(f"Requested resource not found: Table: {name} not found")
    return table


def _index(table, name: str | None):
    """The GSI ``name`` of ``table`` (None for the table itself); a local index
    or an unknown name is not found, as DynamoDB answers."""
    if name is None:
        return None
    index = (table.index_map or {}).get(name)
    if index is None or index.local or index.status == "DELETING":
        raise ResourceNotFoundException(f"Requested resource not found: Index: {name} not found for table: "
                                        f"{table.name}")
    return index


def _rules_in_use(txn, catalog, region: str, but: tuple) -> int:
    """The rules of ``region``'s entries that have them, but the entry ``but`` (table name, index name)."""
    return sum(len(rules_of(setting)) for table, setting in live_settings(txn, catalog, region)
               if has_rules(setting) and (table.name, setting["index"]) != but)


def _answer(table, index_name: str | None, setting: dict | None, now: float) -> dict:
    out = {"TableName": table.name}
    if index_name is not None:
        out["IndexName"] = index_name
    out["ContributorInsightsStatus"] = status_of(setting, now)
    if setting is not None:
        out["ContributorInsightsMode"] = setting["mode"]
    return out


def update_contributor_insights(ctx, request: dict) -> dict:
    """ENABLE (in a mode) or DISABLE the rules of a table or GSI."""
    action = request["ContributorInsightsAction"]
    mode = request.get("ContributorInsightsMode") or ACCESSED
    index_name = request.get("IndexName")
    now = ctx.now()
    with ctx.engine.write() as txn:
        table = _table(ctx, txn, request["TableName"])
        if table.description.get("TableStatus") == "CREATING":
            raise ValidationException("Table or Index is not in a valid state to update Key Access Insights: "
                                      "TableStatus must be ACTIVE to enable ContributorInsights.")
        _check_key_usable(ctx, table)
        index = _index(table, index_name)
        if index is not None and index.status != "ACTIVE":
            raise ValidationException("Table or Index is not in a valid state to update Key Access Insights: "
                                      "IndexStatus must be ACTIVE to enable ContributorInsights.")
        key = setting_key(table.prefix, index_name)
        raw = txn.get("meta", key)
        setting = orjson.loads(raw) if raw is not None else None
        working = setting is not None and has_rules(setting)  # its rules exist
        if action == "ENABLE" and not (working and setting["mode"] == mode):
            hash_key, range_key = (index.hash_key, index.range_key) if index is not None else \
                (table.hash_key, table.range_key)
            setting = {"region": table.region, "table": table.name, "table_id": table.table_id,
                       "index": index_name or "", "enabled": True, "mode": mode, "at": now,
                       "since": setting["since"] if working else int(now * 1000),
                       "hash": hash_key, "range": range_key}
            if index is not None:  # a multi-attribute key's every attribute
                setting["hashes"], setting["ranges"] = list(index.hash_keys), list(index.range_keys)
            wanted = len(rules_of(setting))
            if _rules_in_use(txn, ctx.catalog, table.region, (table.name, index_name or "")) + wanted > RULE_QUOTA:
                setting["failure"] = QUOTA_FAILURE  # seen once ENABLING ends, as DynamoDB reports it
            txn.put("meta", key, orjson.dumps(setting))
        elif action == "DISABLE" and setting is not None and setting["enabled"]:
            setting = {**setting, "enabled": False, "at": now}  # a failure stays in view while DISABLING
            txn.put("meta", key, orjson.dumps(setting))
    return _answer(table, index_name, setting, now)


def _check_key_usable(ctx, table) -> None:
    """DynamoDB refuses UpdateContributorInsights on a table whose KMS key
    cannot be used (INACCESSIBLE_ENCRYPTION_CREDENTIALS) as it refuses item
    requests there (ack-api-quirks DDB-TABLE-333, which records the
    operation, not its action: both are refused here);
    DescribeContributorInsights still answers."""
    from shoal.replication import control

    if control.is_inaccessible(table):
        raise control.inaccessible_error(ctx.engine, table)


def describe_contributor_insights(ctx, request: dict) -> dict:
    index_name = request.get("IndexName")
    now = ctx.now()
    with ctx.engine.read() as txn:
        table = _table(ctx, txn, request["TableName"])
        _index(table, index_name)
        raw = txn.get("meta", setting_key(table.prefix, index_name))
    setting = orjson.loads(raw) if raw is not None else None
    out = _answer(table, index_name, setting, now)
    if setting is None:
        return out
    status = out["ContributorInsightsStatus"]
    if has_rules(setting):
        out["ContributorInsightsRuleList"] = [rule.name for rule in rules_of(setting)]
    # a failure's time is when it was seen: when ENABLING ended
    out["LastUpdateDateTime"] = setting["at"] + (ENABLING_S if status == "FAILED" else 0)
    if setting.get("failure") and status in ("FAILED", "DISABLING"):
        out["FailureException"] = setting["failure"]
    return out


def list_contributor_insights(ctx, request: dict) -> dict:
    """The tables' and GSIs' settings that are not DISABLED, by table name,
    a table before its indexes, in pages of MaxResults (at most 100)."""
    limit = request.get("MaxResults") or LIST_PAGE
    if limit < 1:
        raise ValidationException(validation_errors([f"Value '{limit}' at 'maxResults' failed to satisfy constraint: "
                                                     "Member must have value greater than or equal to 1"]))
    after = _decode_token(request.get("NextToken"))
    now = ctx.now()
    with ctx.engine.read() as txn:
        only = None
        if request.get("TableName") is not None:
            only = _table(ctx, txn, request["TableName"]).name
        entries = []
        for table, setting in live_settings(txn, ctx.catalog, ctx.region):
            if only is not None and table.name != only:
                continue
            status = status_of(setting, now)
            if status == "DISABLED":
                continue
            entries.append(((table.name, setting["index"]), setting, status))
    entries.sort(key=lambda entry: entry[0])
    if after is not None:
        entries = [entry for entry in entries if entry[0] > after]
    summaries = []
    for (name, index), setting, status in entries[:limit]:
        summary = {"TableName": name}
        if index:
            summary["IndexName"] = index
        summary["ContributorInsightsStatus"] = status
        summary["ContributorInsightsMode"] = setting["mode"]
        summaries.append(summary)
    out = {"ContributorInsightsSummaries": summaries}
    if len(entries) > limit:
        out["NextToken"] = _encode_token(entries[limit - 1][0])
    return out


def _encode_token(position: tuple) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode()


def _decode_token(token: str | None) -> tuple | None:
    if token is None:
        return None
    try:
        position = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, orjson.JSONDecodeError):
        position = None
    if not (isinstance(position, list) and len(position) == 2 and all(isinstance(p, str) for p in position)):
        raise ValidationException("Invalid NextToken")
    return tuple(position)


OPERATIONS = {
    "UpdateContributorInsights": update_contributor_insights,
    "DescribeContributorInsights": describe_contributor_insights,
    "ListContributorInsights": list_contributor_insights,
}
