"""PartiQL operations: ExecuteStatement, BatchExecuteStatement, ExecuteTransaction.

Each statement is parsed (``shoal.partiql``, cached by text), its ``?``s bound
to the request's Parameters, and then run as the item operation it stands for:

    SELECT ... WHERE <partition key> = v ...   Query (the sort key's range too)
    SELECT ... WHERE <partition key> IN [...]  a Query of each partition in turn
      (or pk = a OR pk = b ...)
    SELECT ... (any other WHERE)               Scan
    INSERT INTO t VALUE {...}                  PutItem, attribute_not_exists(key)
    UPDATE t SET/REMOVE ... WHERE <key> ...    UpdateItem, attribute_exists(key)
    FROM t WHERE <key> ... SET/REMOVE ...      the same, WHERE first
    DELETE FROM t WHERE <key> ...              DeleteItem
    [NOT] EXISTS(SELECT ... WHERE <key> ...)   a transaction's ConditionCheck

Conjuncts of a write's WHERE beyond the key equalities are its condition.  A
SELECT's WHERE is evaluated by the expression evaluator over the items the
Query or Scan returns (only the conjuncts the key condition does not already
guarantee), so a filter may name key attributes, which a Query's
FilterExpression may not; Limit still counts items evaluated, as DynamoDB's.
On an index the WHERE sees the index entry: a SELECT keyed by the index's
partition key refuses a filter on what the index does not project, as Query
does; an unkeyed one finds such an attribute missing, as Scan does.
NextToken is the page's LastEvaluatedKey, encoded with a digest of the
statement and its Parameters: replayed with another statement it is refused.
A SELECT over several partitions reads them in the statement's order (an
IN's, then the OR's; each value once), one Query after the other until one
stops short (Limit, 1 MB), whose LastEvaluatedKey names the partition the
next page resumes in, or until the page has read 1 MB, when its NextToken
names the next partition to start; ConsumedCapacity is the sum of the Queries'.
Such a page returns at most 10 items (those its WHERE keeps; a Limit still
counts the items evaluated), the next page resuming after the tenth: the
Developer Guide's PartiQL operators page returns IN results "in pages of up to
10 items", the rest through NextToken.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from contextlib import contextmanager

import orjson

from shoal.api.common import NO_CHARGE, expression_context, meter_condition_failed
from shoal.api.items import delete_item, get_item, put_item, update_item
from shoal.api.query import PAGE_BYTES, check_key_paths, query, scan
from shoal.api.transactions import TransactionCanceledException, transact_get_items, transact_write_items
from shoal.api.transactions import plan_write as transact_plan_write
from shoal.errors import (
    INVALID_PARAMETERS as INVALID,
    VALIDATION_ERRORS_PATTERN,
    ConditionalCheckFailedException,
    ResourceNotFoundException,
    ShoalError,
    ValidationException,
)
from shoal.expressions import parse_condition, parse_projection
from shoal.model.capacity import READ_UNIT_BYTES
from shoal.model.keys import encode_key_value
from shoal.model.numbers import normalize_number
from shoal.model.values import validate_value
from shoal.partiql import ast, parse_statement
from shoal.partiql.shape import SelectShape, identifier
from shoal.partiql.translate import (
    DECOMPOSED_READS,
    IN_PAGE_ITEMS,
    OVERLAPPING,
    ExpressionBuilder,
    bind_value,
    check_decomposed_reads,
    check_overlapping_ranges,
    check_parameters,
    conjuncts,
    key_equality,
    key_options,
    partition_options,
    single_item_key,
    sort_condition,
    split_key,
)

DUPLICATE_ITEM = "Duplicate primary key exists in table"
KEY_EQUALITY = "Where clause does not contain a mandatory equality on all key attributes"
SINGLE_ITEM = "Only single item Update/Insert/Delete are supported"
KEY_TYPE = "Key attribute's data type should match its data type in table's schema"
DUPLICATE_IDENTIFIER = "Duplicate identifiers in select clause: "
NOT_EXISTS = "Unsupported operation in transaction."
INVALID_NEXT_TOKEN = "Invalid NextToken"
TOKEN_MISMATCH = "NextToken does not match request"  # as recorded from DynamoDB (2026)
EXISTS_OUTSIDE_TRANSACTION = "EXISTS can only be used in ExecuteTransaction write requests."
MIXED_BATCH = "Read and write requests together in the same batch is not supported."
MIXED_TRANSACTION = "ExecuteTransaction API does not support both read and write operations in the same request."
DUPLICATE_KEYS = "Provided list of item keys contains duplicates"
TRANSACTION_SELECT = "Select statements within ExecuteTransaction must specify the primary key in the where clause."
BATCH_SELECT = "Select statements within BatchExecuteStatement must specify the primary key in the where clause."
EXISTS_CONDITION = "EXISTS() must contain a single item read with additional condition"
ORDER_BY_WHERE = "Must have WHERE clause in the statement when using ORDER BY clause."
ORDER_BY_HASH = "Must have at least one non-optional hash key condition in WHERE clause when using ORDER BY clause."
# As DynamoDB answers a PartiQL statement (recorded by the dynamodb-conformance suite); Query words
# the first two otherwise ("...: <index>", "Consistent reads are not supported on global secondary indexes").
NO_SUCH_INDEX = "The table does not have the specified index"
GSI_CONSISTENT = "Strongly consistent read is not supported on Global Secondary Indexes"
TRANSACTION_INDEX_READ = "Reads on indices are not supported within transactions."
TRANSACTION_RETURNING = "RETURNING clause is not supported in ExecuteTransaction."
# A transaction's statement that names no single item by its key cancels the transaction with
# these reasons (recorded from DynamoDB, eu-west-2, 2026-09-17, floci-io/floci's
# DynamoDbPartiQLEdgeCaseIntegrationTest): TransactWriteItems' and TransactGetItems' words.
KEY_MISMATCH = "The provided key element does not match the schema"
INSERT_KEY_ABSENT = "Key attribute should be present in the item: Key "


class DuplicateItemException(ShoalError):
    """An INSERT of an item whose primary key is already in the table."""

    type_name = "DuplicateItemException"
    status = 400


# ---------------------------------------------------------------- shared pieces


def _parse(text: str, parameters: list | None):
    """(statement AST, validated Parameters)."""
    statement = parse_statement(text)
    params = check_parameters(statement, parameters)
    if params:
        params = [validate_value(value, "Parameters") for value in params]
    return statement, params


def request_statements(operation: str, request: dict) -> list:
    """The statements of a PartiQL request exactly as its operation runs them:
    (statement AST, Parameters) each, in request order.

    A statement that does not parse fails an ExecuteStatement or
    ExecuteTransaction request (the exception is raised); in a
    BatchExecuteStatement it is that statement's ValidationException, which
    becomes its response's Error, and it runs nothing.  Authorization
    (``shoal.auth.actions``) reads the statements from here too, so the action
    and table it checks are those that run.
    """
    if operation == "ExecuteStatement":
        return [_parse(request["Statement"], request.get("Parameters"))]
    if operation == "ExecuteTransaction":
        return [_parse_in_transaction(position, entry)
                for position, entry in enumerate(request["TransactStatements"])]
    parsed: list = []
    for entry in request["Statements"]:
        try:
            parsed.append(_parse(entry["Statement"], entry.get("Parameters")))
        except ValidationException as exc:
            parsed.append(exc)
    return parsed


def consistent_reads(operation: str, request: dict) -> set[str]:
    """The tables a request's SELECTs read with ConsistentRead: on an MRSC
    table each such read is a read of two regions' registers
    (``shoal.replication.strong``), which waits for a peer: a request
    naming one belongs off the event loop, as a strongly consistent
    GetItem, Query or Scan is run (the replication screen's decision).  ExecuteStatement's
    ConsistentRead is the request's, BatchExecuteStatement's each
    statement's; ExecuteTransaction reads are TransactGetItems, which MRSC
    tables refuse.  A statement that does not parse names nothing (the
    operation words its error)."""
    if operation == "ExecuteStatement":
        entries = [request] if request.get("ConsistentRead") is True else []
    elif operation == "BatchExecuteStatement":
        entries = [entry for entry in request.get("Statements") or ()
                   if isinstance(entry, dict) and entry.get("ConsistentRead") is True]
    else:
        return set()
    names = set()
    for entry in entries:
        if not isinstance(entry.get("Statement"), str):
            continue  # the operation's validation refuses it
        try:
            statement = parse_statement(entry["Statement"])
        except ShoalError:
            continue
        if isinstance(statement, ast.Select):
            names.add(statement.table)
    return names


def reads_only(operation: str, request: dict) -> bool:
    """True when the request's statements are all SELECTs, or it fails
    before running any: it writes nothing, so it need not wait for a commit."""
    try:
        parsed = request_statements(operation, request)
    except ShoalError:
        return True
    return all(isinstance(p, ShoalError) or isinstance(p[0], ast.Select) for p in parsed)


# What the expression layer (and an item write's request envelope) puts before
# an expression's errors; a statement's errors are DynamoDB's without it.
_EXPRESSION_ERROR = re.compile(
    f"(?:{VALIDATION_ERRORS_PATTERN})?(?:Invalid (?:Filter|Condition|Update|Projection|KeyCondition)Expression: )?")


@contextmanager
def statement_errors():
    """Re-raise an expression error as the statement's own: the message without
    the kind of expression the statement was translated to, nor the request
    envelope of the item write it runs as ("1 validation error detected: "),
    as DynamoDB Local words them (a statement has no such members)."""
    try:
        yield
    except ValidationException as exc:
        prefix = _EXPRESSION_ERROR.match(exc.message)
        if not prefix.end():
            raise
        raise ValidationException(exc.message[prefix.end():]) from None


def _table(ctx, name: str):
    with ctx.engine.read() as txn:
        return ctx.catalog.require(txn, ctx.region, name)


def _key_names(table) -> tuple:
    return tuple(name for name, _ in table.key_schema)


def _check_key_types(key: dict, attribute_types: dict) -> None:
    for name, value in key.items():
        if attribute_types.get(name) not in value:
            raise ValidationException(f"{KEY_TYPE}: Key {name}")


def _statement_key(table, where, params: list) -> tuple[dict, list]:
    """(the item's key, the other conjuncts) of a WHERE that must name one
    item.  A key attribute equal to two different values names none: refused
    (DynamoDB Local's words; the Developer Guide: the WHERE of an UPDATE or
    DELETE resolves to a single primary key)."""
    names = _key_names(table)
    key, rest = split_key(where, names, params)
    if len(key) != len(table.key_schema):
        raise ValidationException(KEY_EQUALITY)
    for node in rest:
        found = key_equality(node, names)
        if found is not None and bind_value(found[1], params) != key[found[0]]:
            raise ValidationException(f"Multiple conditions on same key {found[0]}. {SINGLE_ITEM}")
    _check_key_types(key, table.attribute_types)
    return key, rest


def _with_capacity(out: dict, response: dict) -> dict:
    capacity = response.get("ConsumedCapacity")
    if capacity is not None:
        out["ConsumedCapacity"] = capacity
    return out


def _loads(response) -> dict:
    return orjson.loads(response) if isinstance(response, (bytes, bytearray, memoryview)) else response


# ---------------------------------------------------------------- writes


class WritePlan:
    """One write statement as a TransactWriteItems action: ``kind`` is Put,
    Update, Delete or ConditionCheck and ``spec`` its request members."""

    __slots__ = ("kind", "spec", "table", "key", "returning", "insert")

    def __init__(self, kind: str, spec: dict, table, key: dict, returning: str | None = None) -> None:
        self.kind = kind
        self.spec = spec
        self.table = table
        self.key = key
        self.returning = returning
        self.insert = kind == "Put"

    def identity(self) -> tuple:
        """What two statements on one item share."""
        return self.table.name, orjson.dumps(self.key, option=orjson.OPT_SORT_KEYS)


def plan_write(ctx, statement, params: list) -> WritePlan:
    """The item action of an INSERT, UPDATE, DELETE or EXISTS statement."""
    if isinstance(statement, ast.Insert):
        return _plan_insert(ctx, statement, params)
    if isinstance(statement, ast.Update):
        return _plan_update(ctx, statement, params)
    if isinstance(statement, ast.Delete):
        return _plan_delete(ctx, statement, params)
    return _plan_exists(ctx, statement, params)


def _plan_insert(ctx, statement: ast.Insert, params: list) -> WritePlan:
    table = _table(ctx, statement.table)
    item = bind_value(statement.item, params)["M"]
    for name in _key_names(table):
        if name not in item:
            raise ValidationException(f"Key attribute should be present in the item: Key {name}")
    key = {name: item[name] for name in _key_names(table)}
    _check_key_types(key, table.attribute_types)
    spec = {
        "TableName": table.name,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(#n0)",
        "ExpressionAttributeNames": {"#n0": table.hash_key},
    }
    return WritePlan("Put", spec, table, key)


def _plan_update(ctx, statement: ast.Update, params: list) -> WritePlan:
    table = _table(ctx, statement.table)
    key, rest = _statement_key(table, statement.where, params)
    builder = ExpressionBuilder(params)
    spec = {"TableName": table.name, "Key": key, "UpdateExpression": builder.update(statement.clauses)}
    exists = f"attribute_exists({builder.name(table.hash_key)})"
    condition = builder.conjunction(rest)
    spec["ConditionExpression"] = exists if condition is None else f"{exists} AND ({condition})"
    spec.update(builder.members())
    return WritePlan("Update", spec, table, key, statement.returning)


def _plan_delete(ctx, statement: ast.Delete, params: list) -> WritePlan:
    table = _table(ctx, statement.table)
    key, rest = _statement_key(table, statement.where, params)
    builder = ExpressionBuilder(params)
    spec = {"TableName": table.name, "Key": key}
    condition = builder.conjunction(rest)
    if condition is not None:
        spec["ConditionExpression"] = condition
    spec.update(builder.members())
    return WritePlan("Delete", spec, table, key, statement.returning)


def _plan_exists(ctx, statement: ast.Exists, params: list) -> WritePlan:
    select = statement.select
    table = _table(ctx, select.table)
    key, rest = split_key(select.where, _key_names(table), params)
    if select.index is not None or len(key) != len(table.key_schema) or not rest:
        raise ValidationException(EXISTS_CONDITION)
    _check_key_types(key, table.attribute_types)
    builder = ExpressionBuilder(params)
    hash_name = builder.name(table.hash_key)
    condition = builder.conjunction(rest)
    if statement.negated:
        text = f"attribute_not_exists({hash_name}) OR NOT ({condition})"
    else:
        text = f"attribute_exists({hash_name}) AND ({condition})"
    spec = {"TableName": table.name, "Key": key, "ConditionExpression": text}
    spec.update(builder.members())
    return WritePlan("ConditionCheck", spec, table, key)


_WRITERS = {"Put": put_item, "Update": update_item, "Delete": delete_item}


def run_write(ctx, plan: WritePlan, request: dict) -> dict:
    """Run one planned write as its item operation; the ExecuteStatement response."""
    sub = dict(plan.spec)
    for member in ("ReturnConsumedCapacity", "ReturnValuesOnConditionCheckFailure"):
        if request.get(member) is not None:
            sub[member] = request[member]
    if plan.returning is not None:
        sub["ReturnValues"] = plan.returning
    try:
        with statement_errors():
            response = _WRITERS[plan.kind](ctx, sub)
    except ConditionalCheckFailedException as exc:
        if plan.insert and exc.item is None:
            raise DuplicateItemException(DUPLICATE_ITEM) from None
        raise
    attributes = response.get("Attributes")
    return _with_capacity({"Items": [attributes] if attributes else []}, response)


# ---------------------------------------------------------------- SELECT


class _Reader:
    """What a SELECT evaluates over the items it reads: the WHERE conjuncts
    the key condition does not guarantee, and the projection."""

    __slots__ = ("condition", "projection", "entry", "paths")

    def __init__(self, builder: ExpressionBuilder, residual: list, paths: tuple | None,
                 entry: frozenset | None = None, single: bool = False) -> None:
        if paths is not None:
            _check_identifiers(paths)
        # An index read's condition sees the index entry (``entry``: the names
        # it projects), even where a local index fetched more from the table.
        self.entry = entry
        request = {}
        filter_text = builder.conjunction(residual)
        if filter_text is not None:
            request["FilterExpression"] = filter_text
        projection_text = builder.projection(paths)
        if projection_text is not None:
            request["ProjectionExpression"] = projection_text
        request.update(builder.members())
        exprs = expression_context(request, ("FilterExpression", "ProjectionExpression"), ())
        with statement_errors():
            self.condition = None if filter_text is None else parse_condition(filter_text, exprs, "FilterExpression")
        self.projection = self.paths = None
        if projection_text is not None:  # checked as a ProjectionExpression, shaped as PartiQL does
            with statement_errors():
                self.paths = parse_projection(projection_text, exprs)
            # A single-item read (a batch's, a transaction's) keeps a
            # ProjectionExpression's nesting (``b.a`` as ``{"b": {"M": {"a":
            # ...}}}``), as DynamoDB Local answers it; a Query or Scan's items
            # come back shaped as shoal.partiql.shape says.
            self.projection = self.paths if single else SelectShape(self.paths.paths)

    def check_key_paths(self, table) -> None:
        """No path of the WHERE or the list may reach into a key attribute of
        the table or of an index, as in the Query or Scan a SELECT runs as
        (DynamoDB Local refuses them alike)."""
        check_key_paths(table, self.condition, self.paths)

    def names(self) -> list:
        """The top-level attributes the condition reads, sorted."""
        return [] if self.condition is None else sorted(self.condition.top_level_names)

    def shape(self, items: list) -> list:
        """The items that pass the condition, projected."""
        condition, projection, entry = self.condition, self.projection, self.entry
        if condition is None and projection is None:
            return items
        out = []
        for item in items:
            if condition is not None:
                seen = item if entry is None else {name: value for name, value in item.items() if name in entry}
                if not condition.evaluate(seen):
                    continue
            out.append(item if projection is None else projection.apply(item))
        return out


def _check_identifiers(paths: tuple) -> None:
    """Two paths of a SELECT's list known by one name are refused, before
    their overlap is (DynamoDB Local: ``SELECT a, a``, ``SELECT m.x, n.x``)."""
    seen = set()
    for path in paths:
        name = identifier(path.elements)
        if name in seen:
            raise ValidationException(DUPLICATE_IDENTIFIER + name)
        seen.add(name)


def _read_keys(table, statement: ast.Select):
    """(index or None, hash key, range key) a SELECT reads by."""
    if statement.index is None:
        return None, table.hash_key, table.range_key
    index = table.index_map.get(statement.index)
    if index is None and statement.index in (table.vector_map or {}):
        raise ValidationException("Scan operation not supported on this index type")  # as recorded from DynamoDB
    if index is None or index.status == "DELETING":
        raise ValidationException(NO_SUCH_INDEX)
    return index, index.hash_key, index.range_key


def _keyed(where, index, partition) -> bool:
    """True if a SELECT reads an index by its partition key: it runs as a
    Query, or a top-level conjunct is an IN on the partition key (a Scan, but
    keyed all the same in DynamoDB's rule on filters)."""
    if partition is not None:
        return True
    names = index.hash_keys or (index.hash_key,)
    return any(isinstance(node, ast.In) and isinstance(node.operand, ast.Path)
               and node.operand.elements[:1] == (names[0],) and len(node.operand.elements) == 1
               for node in conjuncts(where))


def _check_list_projected(index, paths: tuple) -> None:
    """A global index's SELECT list may name only what it projects: refused
    in the Query's words, before a filter on what it does not project (DynamoDB
    Local's order)."""
    missing = []
    for path in paths:
        name = path.elements[0]
        if name not in index.projected and name not in missing:
            missing.append(name)
    if missing:
        raise ValidationException(
            f"{INVALID}Global secondary index {index.name} does not project [{', '.join(missing)}]")


def _check_filter_projected(index, reader: "_Reader") -> None:
    """A keyed index read may filter only on what the index projects (a local
    index too, though it fetches what it returns), as Query's FilterExpression."""
    unprojected = [name for name in reader.names() if name not in index.projected]
    if unprojected:
        raise ValidationException(
            f"{INVALID}Secondary index {index.name} does not project one or more filter attributes: "
            f"[{', '.join(unprojected)}]"
        )


def _check_order_by(statement: ast.Select, keys: tuple, partition, sort_keys: tuple = ()) -> bool:
    """True if the ORDER BY asks for descending sort key order (the last
    key, or for multi-attribute keys any of ``sort_keys``)."""
    if statement.order_by is None:
        return False
    if statement.where is None:
        raise ValidationException(ORDER_BY_WHERE)
    if partition is None:
        raise ValidationException(ORDER_BY_HASH)
    descending = False
    for path, desc in statement.order_by:
        if len(path.elements) != 1 or path.elements[0] not in keys:
            raise ValidationException(
                f"Variable reference {path.elements[0]} in ORDER BY clause must be part of the primary key"
            )
        if path.elements[0] == keys[-1] or path.elements[0] in sort_keys:
            descending = desc
    return descending


def _key_condition(builder: ExpressionBuilder, table, hash_key, range_key, statement, params, partition,
                   hash_value: dict):
    """(KeyConditionExpression, the conjuncts it covers, the placeholder of
    the partition key's value: a read of several partitions sets it to each)."""
    _check_key_types({hash_key: hash_value}, table.attribute_types)
    holder = builder.value(hash_value)
    text = f"{builder.name(hash_key)} = {holder}"
    covered = [partition[2]]
    sort = sort_condition(statement.where, range_key) if range_key is not None else None
    if sort is not None:
        op, nodes, node = sort
        values = [bind_value(n, params) for n in nodes]
        for value in values:
            _check_key_types({range_key: value}, table.attribute_types)
        name = builder.name(range_key)
        holders = [builder.value(v) for v in values]
        if op == "BETWEEN":
            text += f" AND {name} BETWEEN {holders[0]} AND {holders[1]}"
        elif op == "begins_with":
            text += f" AND begins_with({name}, {holders[0]})"
        else:
            text += f" AND {name} {op} {holders[0]}"
        covered.append(node)
    return text, covered, holder


def _multi_key_condition(builder: ExpressionBuilder, table, index, statement, params):
    """(KeyConditionExpression, the conjuncts it covers, several) for an index
    with multi-attribute keys, or None when the WHERE does not fix every
    partition attribute (the SELECT is then a Scan).  Each is fixed by an
    equality, or one of them by an IN or OR of values (``several``: its
    placeholder, name and values, as ``partition_values`` gives them; a read
    of each partition in turn), else None.  The sort attributes it uses are a
    prefix of them: equalities, then at most one other sort condition, as a
    Query allows."""
    # Whether every partition attribute is fixed is settled before anything
    # is written into ``builder`` (a Scan must not find values it never uses).
    fixed = {name: next((n for n in conjuncts(statement.where) if key_equality(n, (name,)) is not None), None)
             for name in index.hash_keys}
    open_names = [name for name, node in fixed.items() if node is None]
    if len(open_names) > 1:
        return None
    found = partition_values(statement.where, open_names[0], params, table.attribute_types.get(open_names[0])) \
        if open_names else None
    if open_names and found is None:
        return None
    parts, covered, several = [], [], None
    for name in index.hash_keys:
        node = fixed[name]
        if node is None:
            values, conjunct = found
            holder = builder.value(values[0] if values else {table.attribute_types.get(name, "S"): ""})
            parts.append(f"{builder.name(name)} = {holder}")
            covered.append(conjunct)
            several = (holder, name, values)
            continue
        value = bind_value(key_equality(node, (name,))[1], params)
        _check_key_types({name: value}, table.attribute_types)
        parts.append(f"{builder.name(name)} = {builder.value(value)}")
        covered.append(node)
    for name in index.range_keys:
        sort = sort_condition(statement.where, name)
        if sort is None:
            break
        op, nodes, node = sort
        values = [bind_value(n, params) for n in nodes]
        for value in values:
            _check_key_types({name: value}, table.attribute_types)
        holders = [builder.value(v) for v in values]
        if op == "BETWEEN":
            parts.append(f"{builder.name(name)} BETWEEN {holders[0]} AND {holders[1]}")
        elif op == "begins_with":
            parts.append(f"begins_with({builder.name(name)}, {holders[0]})")
        else:
            parts.append(f"{builder.name(name)} {op} {holders[0]}")
        covered.append(node)
        if op != "=":
            break
    return " AND ".join(parts), covered, several


def partition_equality(where, hash_key: str):
    """(name, value node, conjunct) of the partition key equality, or None: a
    SELECT with one runs as a Query, one without as a Scan of the whole table."""
    for node in conjuncts(where):
        found = key_equality(node, (hash_key,))
        if found is not None:
            return found[0], found[1], node
    return None


def partition_values(where, hash_key: str, params: list, key_type: str | None = None) -> tuple[list, object] | None:
    """(partition key values, conjunct) of a SELECT that reads several
    partitions and nothing else (``translate.partition_options``): each value
    once, in statement order; None if its WHERE has no such conjunct.  With
    ``key_type`` (the partition key's S, N or B) a value of another type, in
    an IN or an OR, refuses the statement, and so does a partition named
    twice, as DynamoDB refuses them (recorded, eu-west-2, 2026-09-17:
    ``pk = 1 OR pk = 'a'``, ``pk IN ['a', 'a']``; DynamoDB Local refuses an
    IN's value of another type in other words, lets an OR's match nothing and
    reads a partition named twice once); authorization, which knows no types,
    leaves them in and names each partition once."""
    found = partition_options(where, hash_key)
    if found is None:
        return None
    options, conjunct = found
    values, seen = [], set()
    for node, _ in options:
        value = bind_value(node, params)
        if key_type is not None and key_type not in value:
            raise ValidationException(f"{KEY_TYPE}: Key {hash_key}")
        identity = _value_identity(value)
        if identity in seen:
            if key_type is not None:  # one partition twice (DynamoDB's answer, recorded 2026-09-17)
                raise ValidationException(OVERLAPPING)
            continue
        seen.add(identity)
        values.append(value)
    return values, conjunct


def _value_identity(value: dict):
    """What two partition key values that name one partition share (1 and
    1.0 are one number)."""
    try:
        [(type_, text)] = value.items()
        if type_ == "N":
            text = normalize_number(text)
        return encode_key_value(type_, text)
    except (ValueError, TypeError, ShoalError, LookupError):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def request_binding(request: dict) -> str:
    """What a NextToken is bound to: the statement's text and its Parameters.
    DynamoDB refuses a token replayed with another statement (another table
    or index above all: the key would mean another position, or none), but
    not with another Limit or ConsistentRead (as characterised against
    DynamoDB by the recordings' authors)."""
    digest = hashlib.sha256(request["Statement"].encode())
    digest.update(b"\0")
    digest.update(orjson.dumps(request.get("Parameters") or [], option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:32]


def encode_next_token(last_key: dict, binding: str) -> str:
    """A NextToken: the page's LastEvaluatedKey and the request's binding."""
    return base64.b64encode(orjson.dumps({"k": last_key, "b": binding})).decode()


def decode_next_token(token: str, binding: str) -> dict:
    """The ExclusiveStartKey a NextToken stands for: "Invalid NextToken" if it
    is no token of Shoal's, DynamoDB's TOKEN_MISMATCH if another statement
    (or other Parameters) returned it."""
    try:
        decoded = orjson.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise ValidationException(INVALID_NEXT_TOKEN) from None
    if not isinstance(decoded, dict) or set(decoded) != {"k", "b"} or not isinstance(decoded["b"], str):
        raise ValidationException(INVALID_NEXT_TOKEN)
    key = decoded["k"]
    if not isinstance(key, dict) or not key:
        raise ValidationException(INVALID_NEXT_TOKEN)
    for value in key.values():  # what Shoal encodes are valid key values: anything else is no token of ours
        try:
            validate_value(value)
        except ShoalError:
            raise ValidationException(INVALID_NEXT_TOKEN) from None
    if decoded["b"] != binding:
        raise ValidationException(TOKEN_MISMATCH)
    return key


def encode_partition_token(position: int, binding: str) -> str:
    """A NextToken of a SELECT over several partitions whose page ended
    between two: the next page starts with the partition at ``position``
    (there is no LastEvaluatedKey to resume from)."""
    return base64.b64encode(orjson.dumps({"p": position, "b": binding})).decode()


def _partition_token(token: str, binding: str, count: int) -> int | None:
    """The partition a token of ``encode_partition_token`` starts at, or None
    for any other token (``decode_next_token`` judges it)."""
    try:
        decoded = orjson.loads(base64.b64decode(token, validate=True))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return None
    if not isinstance(decoded, dict) or set(decoded) != {"p", "b"}:
        return None
    position = decoded["p"]
    if decoded["b"] != binding:
        raise ValidationException(TOKEN_MISMATCH)
    if type(position) is not int or not 0 < position < count:
        raise ValidationException(INVALID_NEXT_TOKEN)
    return position


def _index_projection(builder: ExpressionBuilder, index, paths: tuple, reader: _Reader) -> str:
    """The ProjectionExpression of an index read: the top-level attributes the
    SELECT returns (in statement order) and those of its condition the index
    projects (the condition sees the index entry), so that the Query or Scan
    applies DynamoDB's index rules: a local index fetches what it does not
    project from the table, a global one refuses to return it."""
    names: list = []
    for path in paths:
        if path.elements[0] not in names:
            names.append(path.elements[0])
    for name in reader.names():
        if name not in names and (index.projected is None or name in index.projected):
            names.append(name)
    return ", ".join(builder.name(name) for name in names)


def _hash_descending(statement: ast.Select, hash_key: str) -> bool:
    """True if the ORDER BY names the partition key DESC."""
    return any(path.elements == (hash_key,) and desc for path, desc in statement.order_by or ())


def _read_partitions(ctx, read: dict, holder: str, values: list, hash_key: str, reader: _Reader,
                     key_names: list, first: int = 0) -> dict:
    """One page of a SELECT over several partitions: a Query of each in turn,
    from ``first`` or the one a NextToken's key names, its items passed
    through ``reader`` (the page's Items are the SELECT's own), until the
    page holds ``IN_PAGE_ITEMS`` (the Developer Guide: IN results come "in
    pages of up to 10 items"; the next page resumes after the tenth, whose
    ``key_names`` are its LastEvaluatedKey), one Query returns a
    LastEvaluatedKey (its Limit, what is left of the request's, was reached,
    or its 1 MB) or the page has read 1 MB (its Queries' units tell: a page
    of a hundred partitions is not a hundred megabytes), when ``NextPartition``
    is where the next page starts; its ConsumedCapacity is the Queries'
    summed (what a Query read past the tenth item, the next page reads
    again).  No partition is read twice and none the statement does not name."""
    read = dict(read)
    start = read.pop("ExclusiveStartKey", None)
    wanted = read.get("ReturnConsumedCapacity") not in (None, "NONE")
    read["ReturnConsumedCapacity"] = read.get("ReturnConsumedCapacity") if wanted else "TOTAL"
    unit_bytes = READ_UNIT_BYTES * (1 if read.get("ConsistentRead") is True else 2)
    read_bytes = 0.0
    following = None
    if start is not None:
        resume = start.get(hash_key)
        first = next((i for i, value in enumerate(values)
                      if resume is not None and _value_identity(value) == _value_identity(resume)), None)
        if first is None:  # a token of this statement always names one of its partitions
            raise ValidationException(INVALID_NEXT_TOKEN)
    limit = read.get("Limit")
    items: list = []
    capacity = _Capacity()
    last = None
    for position in range(first, len(values)):
        sub = dict(read)
        sub["ExpressionAttributeValues"] = {**read["ExpressionAttributeValues"], holder: values[position]}
        if position == first and start is not None:
            sub["ExclusiveStartKey"] = start
        if limit is not None:
            sub["Limit"] = limit
        page = _loads(query(ctx, sub))
        if wanted:
            capacity.add(page["ConsumedCapacity"])
        last = page.get("LastEvaluatedKey")
        raw = page.get("Items", ())
        full = False
        for number, item in enumerate(raw):
            items.extend(reader.shape([item]))
            if len(items) == IN_PAGE_ITEMS:
                full = True
                if number + 1 < len(raw):  # the next page resumes after this item
                    last = {name: item[name] for name in key_names}
                break
        if last is not None:
            break
        if full:
            if position + 1 < len(values):
                following = position + 1
            break
        if limit is not None:
            limit -= page.get("ScannedCount", 0)
            if limit <= 0:  # a Query that read its Limit returned a LastEvaluatedKey: not reached
                break
        read_bytes += page["ConsumedCapacity"]["CapacityUnits"] * unit_bytes  # at most 4 KB over, a Query
        if read_bytes >= PAGE_BYTES and position + 1 < len(values):
            following = position + 1
            break
    out: dict = {"Items": items}
    if last is not None:
        out["LastEvaluatedKey"] = last
    elif following is not None:
        out["NextPartition"] = following
    if capacity.by_table:
        out["ConsumedCapacity"] = next(iter(capacity.by_table.values()))
    elif wanted:  # no partition of the key's type
        out["ConsumedCapacity"] = {"TableName": read["TableName"], "CapacityUnits": 0.0}
    return out


def _position_names(table, index) -> list:
    """The attributes of a read's LastEvaluatedKey: the table's keys, then the index's."""
    names = [name for name, _ in table.key_schema]
    if index is not None:
        names += [name for name, _ in index.key_schema if name not in names]
    return names


def select(ctx, statement: ast.Select, params: list, request: dict) -> dict:
    """Run a SELECT as a Query (partition key equality) or a Scan."""
    table = _table(ctx, statement.table)
    index, hash_key, range_key = _read_keys(table, statement)
    if index is not None and not index.local and request.get("ConsistentRead") is True:
        raise ValidationException(GSI_CONSISTENT)
    read_builder = ExpressionBuilder(params)
    # A read of several partitions: the values of the partition key (attribute) that names them
    partitions = holder = None
    partition_key = hash_key
    if index is not None and index.multi:
        keys = index.hash_keys + index.range_keys
        found = _multi_key_condition(read_builder, table, index, statement, params)
        partition = None if found is None else found[1]
        if found is not None and found[2] is not None:
            holder, partition_key, partitions = found[2]
    else:
        check_decomposed_reads(statement.where, hash_key, range_key)
        partition = partition_equality(statement.where, hash_key)
        if partition is None:
            several = partition_values(statement.where, hash_key, params, table.attribute_types.get(hash_key))
            if several is not None:
                partitions, conjunct = several
                partition = (hash_key, None, conjunct)
        sort_options = key_options(statement.where, range_key) if partition and range_key else None
        for node, _ in sort_options[0] if sort_options else ():  # a key read's sort key values (as recorded)
            _check_key_types({range_key: bind_value(node, params)}, table.attribute_types)
        check_overlapping_ranges(statement.where, hash_key, range_key, params, table.attribute_types)
        keys = (hash_key,) if range_key is None else (hash_key, range_key)
        found = None
    descending = _check_order_by(statement, keys, partition, index.range_keys if index is not None else ())
    if partitions is not None and _hash_descending(statement, partition_key):
        partitions = partitions[::-1]  # DynamoDB Local's answer to ORDER BY <partition key> DESC
    read = {"TableName": table.name}
    if index is not None:
        read["IndexName"] = index.name
    residual = conjuncts(statement.where)
    if partition is not None:
        if found is not None:
            text, covered = found[0], found[1]
        else:
            hash_value = bind_value(partition[1], params) if partitions is None else \
                (partitions[0] if partitions else {table.attribute_types.get(hash_key, "S"): ""})
            text, covered, holder = _key_condition(read_builder, table, hash_key, range_key, statement, params,
                                                   partition, hash_value)
        read["KeyConditionExpression"] = text
        if descending:
            read["ScanIndexForward"] = False
        residual = [node for node in residual if not any(node is c for c in covered)]
    entry = None if index is None else index.projected
    reader = _Reader(ExpressionBuilder(params), residual, statement.projection, entry)
    reader.check_key_paths(table)
    if entry is not None and not index.local and statement.projection is not None:
        _check_list_projected(index, statement.projection)
    if entry is not None and _keyed(statement.where, index, partition):
        _check_filter_projected(index, reader)
    if index is not None and statement.projection is not None:
        read["ProjectionExpression"] = _index_projection(read_builder, index, statement.projection, reader)
        if partitions is not None:  # a page may end after any item: its key is the next page's start
            named = {read_builder.names[p] for p in read["ProjectionExpression"].split(", ")}
            read["ProjectionExpression"] += "".join(
                f", {read_builder.name(name)}" for name in _position_names(table, index) if name not in named)
    read.update(read_builder.members())
    for member in ("Limit", "ConsistentRead", "ReturnConsumedCapacity"):
        if request.get(member) is not None:
            read[member] = request[member]
    binding = request_binding(request)
    first = 0
    if request.get("NextToken") is not None:
        first = None if partitions is None else _partition_token(request["NextToken"], binding, len(partitions))
        if first is None:
            read["ExclusiveStartKey"] = decode_next_token(request["NextToken"], binding)
            first = 0
    with statement_errors():
        if partitions is not None:
            page = _read_partitions(ctx, read, holder, partitions, partition_key, reader,
                                    _position_names(table, index), first)
        else:
            page = _loads((query if partition is not None else scan)(ctx, read))
            page["Items"] = reader.shape(page.get("Items", []))
    out = {"Items": page["Items"]}
    last = page.get("LastEvaluatedKey")
    if last is not None:
        out["NextToken"] = encode_next_token(last, binding)
        out["LastEvaluatedKey"] = last
    elif page.get("NextPartition") is not None:
        out["NextToken"] = encode_partition_token(page["NextPartition"], binding)
    return _with_capacity(out, page)


# ---------------------------------------------------------------- ExecuteStatement


def execute_statement(ctx, request: dict):
    """ExecuteStatement: one statement, read or write."""
    [(statement, params)] = request_statements("ExecuteStatement", request)
    if isinstance(statement, ast.Select):
        return select(ctx, statement, params, request)
    if isinstance(statement, ast.Exists):
        raise ValidationException(EXISTS_OUTSIDE_TRANSACTION)
    return run_write(ctx, plan_write(ctx, statement, params), request)


# ---------------------------------------------------------------- BatchExecuteStatement

_BATCH_CODES = (
    (ConditionalCheckFailedException, "ConditionalCheckFailed"),
    (DuplicateItemException, "DuplicateItem"),
    (ResourceNotFoundException, "ResourceNotFound"),
    (ValidationException, "ValidationError"),
)


# By type name: a throttled statement's error (raised by shoal.capacity, a layer above), a conflict.
_BATCH_CODES_BY_TYPE = {
    "TransactionConflictException": "TransactionConflict",
    "ProvisionedThroughputExceededException": "ProvisionedThroughputExceeded",
    "ThrottlingException": "ThrottlingError",  # an on-demand table's (shoal.capacity.on_demand)
}


def batch_error(exc: ShoalError, table_name: str | None = None) -> dict:
    """A BatchStatementResponse for a statement that failed."""
    code = next((c for cls, c in _BATCH_CODES if isinstance(exc, cls)), None)
    if code is None:
        code = _BATCH_CODES_BY_TYPE.get(exc.type_name, "InternalServerError")
    error = {"Code": code, "Message": exc.message}
    item = getattr(exc, "item", None)
    if item is not None:
        error["Item"] = item
    out = {"Error": error}
    if table_name is not None:
        out["TableName"] = table_name
    return out


class _Capacity:
    """ConsumedCapacity summed per table, in the order tables first appear."""

    __slots__ = ("by_table",)

    def __init__(self) -> None:
        self.by_table: dict[str, dict] = {}

    def add(self, capacity: dict | None) -> None:
        if capacity is None:
            return
        total = self.by_table.setdefault(capacity["TableName"], {"TableName": capacity["TableName"]})
        _add_units(total, capacity)

    def members(self) -> dict:
        return {"ConsumedCapacity": list(self.by_table.values())} if self.by_table else {}


def _add_units(total: dict, capacity: dict) -> None:
    for member, value in capacity.items():
        if member == "TableName":
            continue
        if member == "CapacityUnits":
            total[member] = total.get(member, 0.0) + value
        elif member == "Table":
            _add_units(total.setdefault("Table", {}), value)
        else:  # LocalSecondaryIndexes / GlobalSecondaryIndexes: {name: {CapacityUnits}}
            into = total.setdefault(member, {})
            for name, units in value.items():
                _add_units(into.setdefault(name, {}), units)


def batch_execute_statement(ctx, request: dict):
    """BatchExecuteStatement: up to 25 statements, all reads or all writes,
    each run on its own; a statement's failure is its response's Error."""
    parsed = request_statements("BatchExecuteStatement", request)
    kinds = {isinstance(p[0], ast.Select) for p in parsed if not isinstance(p, ShoalError)}
    if len(kinds) > 1:
        raise ValidationException(MIXED_BATCH)
    capacity = _Capacity()
    if kinds == {True}:
        _refuse_duplicate_reads(ctx, parsed)
        responses = [_batch_read(ctx, p, entry, request, capacity) for p, entry in zip(parsed, request["Statements"])]
    else:
        responses = _batch_writes(ctx, parsed, request, capacity)
    out = {"Responses": responses}
    if request.get("ReturnConsumedCapacity") not in (None, "NONE"):
        out.update(capacity.members())
    return out


def _refuse_duplicate_reads(ctx, parsed: list) -> None:
    """Two SELECTs of one item refuse the whole batch, as BatchGetItem's
    duplicate keys do (DynamoDB Local answers so); a statement that cannot
    run is left to its own response."""
    seen = set()
    for p in parsed:
        if isinstance(p, ShoalError):
            continue
        statement, params = p
        try:
            table = _table(ctx, statement.table)
            key = _single_item_key(table, statement, params, BATCH_SELECT)
        except ShoalError:
            continue
        identity = (table.name, orjson.dumps(key, option=orjson.OPT_SORT_KEYS))
        if identity in seen:
            raise ValidationException(DUPLICATE_KEYS)
        seen.add(identity)


def _single_item_key(table, statement: ast.Select, params: list, message: str) -> dict:
    """The key of a SELECT in a batch or transaction, whose WHERE must be the
    table's full primary key and nothing more (``translate.single_item_key``:
    a one-value IN names a key attribute, an equality repeated is no more)."""
    check_decomposed_reads(statement.where, table.hash_key, table.range_key)
    if statement.index is None:
        _refuse_partition_named_twice(statement.where, table.hash_key, params)
    key, rest = single_item_key(statement.where, _key_names(table), params)
    if statement.index is not None or len(key) != len(table.key_schema) or rest:
        raise ValidationException(message)
    _check_key_types(key, table.attribute_types)
    return key


def _refuse_partition_named_twice(where, hash_key: str, params: list) -> None:
    """A batch's or transaction's SELECT whose IN (or OR) names one partition
    twice is refused before its one-item rule, as an ExecuteStatement's is
    (``partition_values``): DynamoDB answers a transaction's ``pk IN ['a',
    'a'] AND sk = '1'`` with "Validation failed in TransactStatements[0]:
    Overlapping conditions with range keys are not supported in where clause"
    (recorded, eu-west-2, 2026-09-17, floci-io/floci's
    DynamoDbPartiQLEdgeCaseIntegrationTest).  Values of other types are left
    to the key rules."""
    found = key_options(where, hash_key)
    if found is None:
        return
    seen = set()
    for node, _ in found[0]:
        identity = _value_identity(bind_value(node, params))
        if identity in seen:
            raise ValidationException(OVERLAPPING)
        seen.add(identity)


def _off_loop_charge(ctx, table, writes: bool, consistent: bool = False):
    """What a batch's statement draws on ``table`` when the batch is served
    off the event loop (it names an MRSC table: a write, or a strongly
    consistent read, is a round, ``shoal.replication.protocol``): there
    requiring the table neither admits nor charges it, so each statement is
    admitted (its throttle raised now) and charged as it ends
    (``shoal.capacity.off_loop``), unless it is itself a round, which is
    (``shoal.replication.strong``).  On the loop's thread, or for a table
    without limits, a charge that does nothing: the loop's ``admit`` and
    ``settle`` charge the batch; there each statement is admitted
    (``Capacity.refuses_statement``) counting what the batch's earlier
    statements consumed, as BatchWriteItem's items are."""
    capacity = getattr(ctx.catalog, "capacity", None)
    if capacity is None or not table.limited:
        return NO_CHARGE
    if (writes or consistent) and table.description.get("MultiRegionConsistency") == "STRONG":
        return NO_CHARGE  # a round: admitted and charged by itself
    refusal = capacity.refuses_statement(table, writes)  # on the loop: what the batch consumed so far counted
    if refusal is not None:
        raise refusal
    return capacity.off_loop(ctx, table, writes)


def _batch_read(ctx, parsed, entry: dict, request: dict, capacity: _Capacity) -> dict:
    if isinstance(parsed, ShoalError):
        return batch_error(parsed)
    statement, params = parsed
    table_name = None  # a statement refused before it runs names no table
    try:
        table = _table(ctx, statement.table)
        key = _single_item_key(table, statement, params, BATCH_SELECT)
        # (a path into a key attribute is not refused here: DynamoDB Local
        # finds it missing in a single-item read, as in a transaction's)
        reader = _Reader(ExpressionBuilder(params), [], statement.projection, single=True)
        # throttled off the loop as requiring the table throttles it on the loop: naming no table
        charge = _off_loop_charge(ctx, table, False, entry.get("ConsistentRead") is True)
        table_name = table.name
        get = {"TableName": table.name, "Key": key}
        if entry.get("ConsistentRead") is not None:
            get["ConsistentRead"] = entry["ConsistentRead"]
        if request.get("ReturnConsumedCapacity") is not None:
            get["ReturnConsumedCapacity"] = request["ReturnConsumedCapacity"]
        with charge:
            response = get_item(ctx, get)
        if isinstance(response, dict):  # its Item may be stored JSON spliced in unparsed
            response = orjson.dumps(response)
        response = _loads(response)
    except ShoalError as exc:
        return batch_error(exc, table_name)
    capacity.add(response.get("ConsumedCapacity"))
    out = {"TableName": table.name}
    item = response.get("Item")
    if item is not None:
        shaped = reader.shape([item])
        if shaped:
            out["Item"] = shaped[0]
    return out


def _batch_writes(ctx, parsed: list, request: dict, capacity: _Capacity) -> list:
    plans: list = []
    seen = set()
    for p in parsed:
        if isinstance(p, ShoalError):
            plans.append(p)
            continue
        statement, params = p
        try:
            if isinstance(statement, ast.Exists):
                raise ValidationException(EXISTS_OUTSIDE_TRANSACTION)
            plan = plan_write(ctx, statement, params)
        except ShoalError as exc:
            plans.append(exc)
            continue
        identity = plan.identity()
        if identity in seen:
            raise ValidationException(DUPLICATE_KEYS)
        seen.add(identity)
        plans.append(plan)
    return [_batch_write(ctx, plan, entry, request, capacity) for plan, entry in zip(plans, request["Statements"])]


def _batch_write(ctx, plan, entry: dict, request: dict, capacity: _Capacity) -> dict:
    if isinstance(plan, ShoalError):
        return batch_error(plan)
    # A member's ReturnValuesOnConditionCheckFailure is accepted and inert:
    # DynamoDB's failed member carries no Item, whatever it is set to.
    options = {"ReturnConsumedCapacity": request.get("ReturnConsumedCapacity")}
    try:  # a statement whose expressions are invalid names no table (DynamoDB Local's answer)
        with statement_errors():
            transact_plan_write({plan.kind: plan.spec})
    except ValidationException as exc:
        return batch_error(exc)
    try:  # throttled off the loop as planning it (requiring its table) throttles it on the loop
        charge = _off_loop_charge(ctx, plan.table, True)
    except ShoalError as exc:
        return batch_error(exc)
    try:
        with charge:
            response = run_write(ctx, plan, options)
    except ShoalError as exc:
        if isinstance(exc, ConditionalCheckFailedException):
            # One in its table's ConditionalCheckFailedRequests, as an
            # ExecuteStatement's (the request itself succeeds: no UserErrors)
            meter_condition_failed(ctx, plan.table.name)
        return batch_error(exc, plan.table.name)
    capacity.add(response.get("ConsumedCapacity"))
    out = {"TableName": plan.table.name}
    if response["Items"]:  # what a RETURNING clause returned; none (not an empty Item) when nothing
        out["Item"] = response["Items"][0]
    return out


# ---------------------------------------------------------------- ExecuteTransaction


def execute_transaction(ctx, request: dict):
    """ExecuteTransaction: up to 100 statements, all reads (TransactGetItems)
    or all writes and EXISTS checks (TransactWriteItems), all or nothing."""
    parsed = request_statements("ExecuteTransaction", request)
    reads = [isinstance(statement, ast.Select) for statement, _ in parsed]
    if any(reads):
        if not all(reads):
            raise ValidationException(MIXED_TRANSACTION)
        return _read_transaction(ctx, parsed, request)
    return _write_transaction(ctx, parsed, request)


def _in_statement(position: int, exc: ValidationException) -> ValidationException:
    return ValidationException(f"Validation failed in TransactStatements[{position}]: {exc.message}")


def _parse_in_transaction(position: int, entry: dict):
    """_parse, a fault of the statement's text (not well formed, a write
    naming an index, a literal DynamoDB refuses) naming the statement's place
    in the request, as DynamoDB Local names it."""
    try:
        parse_statement(entry["Statement"])
    except ValidationException as exc:
        raise _in_statement(position, exc) from None
    return _parse(entry["Statement"], entry.get("Parameters"))


def _read_transaction(ctx, parsed: list, request: dict) -> dict:
    gets, readers = [], []
    mistyped = []  # the SELECTs whose key has another type (TransactGetItems' reason)
    for position, (statement, params) in enumerate(parsed):
        if statement.index is not None:  # before the table is looked up (DynamoDB Local's order)
            raise _in_statement(position, ValidationException(TRANSACTION_INDEX_READ))
        table = _table(ctx, statement.table)
        try:
            key = _single_item_key(table, statement, params, TRANSACTION_SELECT)
        except ValidationException as exc:
            if exc.message.startswith(KEY_TYPE):  # cancels, once every statement is checked
                mistyped.append(position)
                continue
            if exc.message not in (TRANSACTION_SELECT, DECOMPOSED_READS, OVERLAPPING):
                raise
            raise _in_statement(position, exc) from None
        try:
            readers.append(_Reader(ExpressionBuilder(params), [], statement.projection, single=True))
        except ValidationException as exc:
            raise _in_statement(position, exc) from None
        gets.append({"Get": {"TableName": table.name, "Key": key}})
    if mistyped:
        raise TransactionCanceledException([
            {"Code": "ValidationError", "Message": KEY_MISMATCH} if position in mistyped else {"Code": "None"}
            for position in range(len(parsed))])
    sub = {"TransactItems": gets}
    if request.get("ReturnConsumedCapacity") is not None:
        sub["ReturnConsumedCapacity"] = request["ReturnConsumedCapacity"]
    response = _loads(orjson.dumps(transact_get_items(ctx, sub)))
    responses = []
    for reader, got in zip(readers, response["Responses"]):
        shaped = reader.shape([got["Item"]]) if "Item" in got else []
        responses.append({"Item": shaped[0]} if shaped else {})
    return _with_capacity({"Responses": responses}, response)


def _write_transaction(ctx, parsed: list, request: dict) -> dict:
    """The statements as one TransactWriteItems.  Refused as a whole: NOT
    EXISTS (the Developer Guide documents EXISTS only; DynamoDB Local: "Unsupported
    operation in transaction."), RETURNING, a statement whose expressions are
    invalid ("Validation failed in TransactStatements[i]: ", as DynamoDB Local
    words them).  A statement that names no single item by its key (a key
    attribute missing, or given by IN, of another type, or twice with two
    values; an INSERT without one) cancels the transaction with that
    statement's ValidationError, once every statement is checked, as DynamoDB
    answers (``_key_reason``)."""
    if any(isinstance(statement, ast.Exists) and statement.negated for statement, _ in parsed):
        raise ValidationException(NOT_EXISTS)
    plans, items = [], []
    unkeyed: dict = {}  # the statements naming no single item, their reasons: they cancel, once all are checked
    for position, ((statement, params), entry) in enumerate(zip(parsed, request["TransactStatements"])):
        if getattr(statement, "returning", None) is not None:
            # After the table is found (DynamoDB Local's order), before the key
            # rule (DynamoDB's recorded one; DynamoDB Local checks the key first).
            _table(ctx, statement.table)
            raise _in_statement(position, ValidationException(TRANSACTION_RETURNING))
        try:
            plan = plan_write(ctx, statement, params)
        except ValidationException as exc:
            if exc.message == EXISTS_CONDITION:
                raise _in_statement(position, exc) from None
            reason = _key_reason(exc.message)
            if reason is None:
                raise
            unkeyed[position] = reason
            continue
        spec = dict(plan.spec)
        if entry.get("ReturnValuesOnConditionCheckFailure") is not None:
            spec["ReturnValuesOnConditionCheckFailure"] = entry["ReturnValuesOnConditionCheckFailure"]
        try:  # the statement's expressions, checked where it stands
            with statement_errors():
                transact_plan_write({plan.kind: spec})
        except ValidationException as exc:
            raise _in_statement(position, exc) from None
        plans.append(plan)
        items.append({plan.kind: spec})
    if unkeyed:
        raise TransactionCanceledException([
            {"Code": "ValidationError", "Message": unkeyed[position]} if position in unkeyed else {"Code": "None"}
            for position in range(len(parsed))])
    sub = {"TransactItems": items}
    for member in ("ClientRequestToken", "ReturnConsumedCapacity"):
        if request.get(member) is not None:
            sub[member] = request[member]
    try:
        with statement_errors():
            response = transact_write_items(ctx, sub)
    except TransactionCanceledException as exc:
        raise TransactionCanceledException(_insert_reasons(plans, exc.reasons)) from None
    return _with_capacity({"Responses": []}, response)


def _key_reason(message: str) -> str | None:
    """The cancellation reason of a transaction's statement refused for its
    key, or None for any other fault."""
    if message.startswith(KEY_TYPE) or message == KEY_EQUALITY:
        return KEY_MISMATCH
    if message.startswith(INSERT_KEY_ABSENT):
        return f"{INVALID}Missing the key {message[len(INSERT_KEY_ABSENT):]} in the item"
    if message.startswith("Multiple conditions on same key "):
        return message
    return None


def _insert_reasons(plans: list, reasons: list) -> list:
    """An INSERT cancelled by its own attribute_not_exists condition is a
    duplicate item, reported as DynamoDB does (ValidationError)."""
    out = []
    for plan, reason in zip(plans, reasons):
        if plan.insert and reason.get("Code") == "ConditionalCheckFailed" and "Item" not in reason:
            reason = {"Code": "ValidationError", "Message": DUPLICATE_ITEM}
        out.append(reason)
    return out


OPERATIONS = {
    "ExecuteStatement": execute_statement,
    "BatchExecuteStatement": batch_execute_statement,
    "ExecuteTransaction": execute_transaction,
}
