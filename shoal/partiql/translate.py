"""From a PartiQL AST (with its Parameters) to DynamoDB's own expressions.

Conditions, update actions and projections become DynamoDB expression text with
``#nN`` name and ``:vN`` value placeholders, so that ``shoal.expressions`` (and
the operations that use it) parse, check and evaluate them: PartiQL adds no
evaluator of its own.  The text depends only on the statement's shape, so the
expression parser's cache serves every execution of a statement.

``split_key`` finds the key equalities of a WHERE clause: the item a write
targets, and the partition (and sort range) a SELECT reads;
``partition_options`` the partitions a SELECT whose WHERE names several
(``pk IN [...]``, ``pk = a OR pk = b``) reads one after the other.
"""

from __future__ import annotations

import base64
from decimal import Decimal

from shoal.errors import ValidationException

from . import ast

PARAMETER_COUNT = "Number of parameters in request and statement don't match."
# A SELECT that names its partitions (``pk IN [...]``, ``pk = a OR pk = b``) is read one
# partition at a time: DynamoDB refuses one naming more than 50 (its PartiQL operators page:
# "at max 50 hash attribute values"), in these words (recorded from DynamoDB, eu-west-2,
# 2026-09-17, by floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest).
MAX_DECOMPOSED_READS = 50
DECOMPOSED_READS = "Too many decomposed read operations for a given query."
# The same page: "Results are returned in pages of up to 10 items. If the IN list contains more
# values, you must use the NextToken returned in the response to retrieve subsequent pages."
# A SELECT that reads the partitions it names returns at most this many items a page.
IN_PAGE_ITEMS = 10
_SCALAR_SET = {"S": "SS", "N": "NS"}
_BOOLEAN_FUNCTIONS = {"begins_with", "contains", "attribute_type", "attribute_exists", "attribute_not_exists"}
_CONDITION_FUNCTIONS = _BOOLEAN_FUNCTIONS | {"size"}
_UPDATE_FUNCTIONS = {"list_append", "if_not_exists"}
_FLIPPED = {"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def unrecognized_function(name: str) -> ValidationException:
    return ValidationException(f"Unrecognized function: {name}")


def operand_count(name: str, count: int) -> ValidationException:
    return ValidationException(
        "Incorrect number of operands for operator or function; "
        f"operator or function: {name}, number of operands: {count}"
    )


def check_parameters(statement, parameters: list | None) -> list:
    """The statement's Parameters; their number must match its ``?``s."""
    parameters = parameters or []
    if len(parameters) != statement.params:
        raise ValidationException(PARAMETER_COUNT)
    return parameters


# ---------------------------------------------------------------- values


def bind_value(node, params: list) -> dict:
    """The attribute value of a value node, with ``?``s replaced by Parameters."""
    if isinstance(node, ast.Literal):
        return node.av()
    if isinstance(node, ast.Param):
        return params[node.index]
    if isinstance(node, ast.ListValue):
        return {"L": [bind_value(item, params) for item in node.items]}
    if isinstance(node, ast.MapValue):
        return {"M": {name: bind_value(value, params) for name, value in node.pairs}}
    if isinstance(node, ast.SetValue):
        return _bind_set(node, params)
    raise ValidationException("Unsupported operand in PartiQL value")


def _bind_set(node: ast.SetValue, params: list) -> dict:
    """A bag literal <<...>>: a string or number set (DynamoDB's only bag types)."""
    members = [bind_value(item, params) for item in node.items]
    if not members:
        raise ValidationException("Empty bags are not supported")
    types = {next(iter(m)) for m in members}
    if len(types) != 1 or next(iter(types)) not in _SCALAR_SET:
        raise ValidationException(
            "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"
        )
    type_ = types.pop()
    return {_SCALAR_SET[type_]: [m[type_] for m in members]}


# ---------------------------------------------------------------- keys


def conjuncts(where) -> list:
    """The top-level AND operands of a WHERE clause (one when it is no AND)."""
    if where is None:
        return []
    if isinstance(where, ast.And):
        out = []
        for operand in where.operands:
            out.extend(conjuncts(operand))
        return out
    return [where]


def key_equality(node, names) -> tuple[str, object] | None:
    """(key name, value node) if ``node`` is ``key = value`` for one of ``names``."""
    if not isinstance(node, ast.Compare) or node.op != "=":
        return None
    for path, other in ((node.left, node.right), (node.right, node.left)):
        if (isinstance(path, ast.Path) and len(path.elements) == 1 and path.elements[0] in names
                and isinstance(other, (ast.Literal, ast.Param))):
            return path.elements[0], other
    return None


def split_key(where, names: tuple, params: list) -> tuple[dict, list]:
    """(key attribute values found as ``name = value``, the other conjuncts).

    The first equality on each key attribute identifies the item; any further
    conjunct, even on a key attribute, is left as a condition.
    """
    key: dict = {}
    rest = []
    for node in conjuncts(where):
        found = key_equality(node, names)
        if found is not None and found[0] not in key:
            key[found[0]] = bind_value(found[1], params)
        else:
            rest.append(node)
    return key, rest


def single_item_key(where, names: tuple, params: list) -> tuple[dict, list]:
    """``split_key`` for a batch's or transaction's SELECT, which names one
    item: an IN of one value on a key attribute is its equality, and a further
    equality (or one-value IN) giving a key attribute the value it already has
    is no further condition.  DynamoDB reads ``pk IN ['a'] AND sk IN ['1']``,
    ``(pk IN ['a']) AND pk = 'a' AND sk = '2'`` and ``sk = '1' AND pk = 'k'
    AND pk = 'k'`` so, and refuses ``pk IN ['b'] AND pk = 'a' AND sk = '1'``
    (recorded, eu-west-2, 2026-09-17, floci-io/floci's
    DynamoDbPartiQLEdgeCaseIntegrationTest)."""
    key: dict = {}
    rest = []
    for node in conjuncts(where):
        found = key_equality(node, names) or _one_value_in(node, names)
        if found is None:
            rest.append(node)
            continue
        value = bind_value(found[1], params)
        if found[0] not in key:
            key[found[0]] = value
        elif key[found[0]] != value:
            rest.append(node)
    return key, rest


def _one_value_in(node, names) -> tuple[str, object] | None:
    """(key name, value node) if ``node`` is ``key IN [value]``."""
    if (isinstance(node, ast.In) and len(node.options) == 1 and _is_value(node.options[0])
            and isinstance(node.operand, ast.Path) and len(node.operand.elements) == 1
            and node.operand.elements[0] in names):
        return node.operand.elements[0], node.options[0]
    return None


def partition_options(where, hash_key: str) -> tuple[list, object] | None:
    """(options, conjunct) of the first top-level conjunct that holds only for
    items of a few partitions: ``hash_key IN [v, ...]``, or an OR whose every
    operand is ``hash_key = v``, such an IN or such an OR; None if there is none.

    ``options`` are (value node, from_in) in statement order: a SELECT with such
    a conjunct reads those partitions only, as the Developer Guide's PartiQL
    SELECT page says (an equality or IN on the partition key is no full table
    scan, nor an OR of equalities on it).  ``from_in`` tells an IN's values
    (one of the wrong type refuses the statement) from an OR's equalities
    (one of the wrong type matches nothing), as DynamoDB Local answers them.
    More than ``MAX_DECOMPOSED_READS`` options (each value counted as
    written) refuse the statement, as DynamoDB refuses them.
    """
    found = key_options(where, hash_key)
    if found is not None and len(found[0]) > MAX_DECOMPOSED_READS:
        raise ValidationException(DECOMPOSED_READS)
    return found


def key_options(where, name: str) -> tuple[list, object] | None:
    """(options, conjunct) of the first top-level conjunct that names values
    of the key attribute ``name`` only: ``name IN [v, ...]``, an OR of
    ``name = v``, such INs and such ORs (``partition_options`` without its
    limit; for a sort key, the values whose type a key read checks)."""
    for node in conjuncts(where):
        options = _partition_options(node, name)
        if options is not None:
            return options, node
    return None


def check_decomposed_reads(where, hash_key: str, range_key: str | None) -> None:
    """Refuse a SELECT whose key conditions decompose into more than
    ``MAX_DECOMPOSED_READS`` reads: the partitions it names (one equality, or
    ``partition_options``'), times the sort key values it names with an IN or
    an OR of equalities.  DynamoDB refuses ``pk = 'a' AND sk IN [51 values]``
    and ``pk IN [26 values] AND sk IN [2 values]`` so (recorded, eu-west-2,
    2026-09-17), and runs one of no partition as a scan, whatever its INs.
    (For ``shoal.api.partiql``: a SELECT's plan, a batch's or transaction's
    single-item read, before their own key rules.)"""
    if any(key_equality(node, (hash_key,)) is not None for node in conjuncts(where)):
        partitions = 1
    else:
        found = partition_options(where, hash_key)  # refuses over 50 partitions itself
        if found is None:
            return
        partitions = len(found[0])
    if range_key is None:
        return
    found = key_options(where, range_key)
    if found is not None and partitions * len(found[0]) > MAX_DECOMPOSED_READS:
        raise ValidationException(DECOMPOSED_READS)


OVERLAPPING = "Overlapping conditions with range keys are not supported in where clause"
_MAX_BRANCHES = 256  # a WHERE whose OR branches number more is not checked (it is refused or scanned otherwise)


def check_overlapping_ranges(where, hash_key: str, range_key: str | None, params: list,
                             attribute_types: dict) -> None:
    """Refuse a SELECT whose OR branches read one partition's sort key range
    twice, as DynamoDB does ("Overlapping conditions with range keys are not
    supported in where clause").

    The WHERE is taken as an OR of branches (AND of its conditions; an IN of
    values an OR of equalities).  When every branch fixes the partition key
    by an equality (else the SELECT is a scan, and no check applies), two
    branches of one partition whose sort key ranges meet are refused; a
    branch's range is where its sort key comparisons, BETWEEN and
    equalities hold, the whole partition without them (a filter on another
    attribute does not narrow it, nor an OR naming no key attribute).  A
    branch with a negated sort key condition (NOT, <>) exempts the
    statement, and a branch that cannot hold
    (two partition values, a range that is empty) reads nothing.  As recorded
    from DynamoDB (floci-io/floci's DynamoDbPartiQLEdgeCaseIntegrationTest,
    eu-west-2, 2026-09-17: ``pk = 'r' AND (sk > '0' OR sk < '5')``, ``pk = 'r'
    AND (sk = '1' OR flag = 'two')``, ``(pk = 'r' AND flag = 'one') OR (pk =
    'r' AND flag = 'two')`` refused, ``pk = 'r' AND (sk < '1' OR sk > '1' OR
    sk = '1')`` and ``pk = 'r' OR sk = '1'`` read; nubo-db/dynamodb-conformance,
    October 2026: ``pk = 'a' AND x <> '1' OR pk = 'a' AND sk = '2'`` refused,
    a negated sort key branch beside an equality one read).  A begins_with
    on the sort key, or a key value of another type, leaves the statement
    to the other rules (nothing is recorded)."""
    keys = (hash_key,) if range_key is None else (hash_key, range_key)
    branches = _branches(where, keys)
    if branches is None or len(branches) < 2:
        return
    hash_type, range_type = attribute_types.get(hash_key), attribute_types.get(range_key)
    ranges: dict = {}
    for branch in branches:
        partition = None
        span = _Span()
        for atom in branch:
            found = key_equality(atom, (hash_key,))
            if found is not None:
                value = _key_value(bind_value(found[1], params), hash_type)
                if value is _MISMATCH:
                    return
                if partition is not None and value != partition:
                    span = None  # two partitions: the branch reads nothing
                    break
                partition = value
                continue
            if range_key is None or not _names(atom, range_key):
                continue
            if isinstance(atom, ast.Not) or (isinstance(atom, ast.Compare) and atom.op == "<>"):
                return  # a negated sort key condition: not refused (recorded)
            found = _sort_conjunct(atom, range_key)
            if found is None:
                continue  # another condition naming the sort key filters the range, does not narrow it
            op, nodes = found
            if op == "begins_with":
                return
            values = [_key_value(bind_value(node, params), range_type) for node in nodes]
            if _MISMATCH in values:
                return
            span.narrow(op, values)
        if partition is None:
            return  # a branch without the partition: the SELECT scans
        if span is None or span.empty():
            continue
        for other in ranges.get(partition, ()):
            if span.meets(other):
                raise ValidationException(OVERLAPPING)
        ranges.setdefault(partition, []).append(span)


def _branches(node, keys: tuple) -> list | None:
    """The WHERE as an OR of ANDs: a list of branches, each a list of its
    conditions; None past _MAX_BRANCHES.  An OR that names no key attribute
    is one condition, a filter (DynamoDB reads ``gsiPk = 'y' AND (projattr =
    'proj1' OR projattr = 'proj2')``, recorded 2026-09-17)."""
    if node is None:
        return [[]]
    if isinstance(node, ast.And):
        out = [[]]
        for operand in node.operands:
            parts = _branches(operand, keys)
            if parts is None or len(out) * len(parts) > _MAX_BRANCHES:
                return None
            out = [left + right for left in out for right in parts]
        return out
    if isinstance(node, ast.Or) and any(_names(node, key) for key in keys):
        out = []
        for operand in node.operands:
            parts = _branches(operand, keys)
            if parts is None or len(out) + len(parts) > _MAX_BRANCHES:
                return None
            out.extend(parts)
        return out
    if (isinstance(node, ast.In) and any(_is_key(node.operand, key) for key in keys) and node.options
            and all(_is_value(option) for option in node.options)):
        if len(node.options) > _MAX_BRANCHES:
            return None
        return [[ast.Compare("=", node.operand, option)] for option in node.options]
    return [[node]]


def _names(node, name: str) -> bool:
    """Whether a condition names the top-level attribute ``name`` anywhere."""
    if isinstance(node, ast.Path):
        return node.elements[:1] == (name,)
    if isinstance(node, (ast.And, ast.Or)):
        return any(_names(operand, name) for operand in node.operands)
    if isinstance(node, ast.Not):
        return _names(node.operand, name)
    if isinstance(node, (ast.Compare, ast.Arithmetic)):
        return _names(node.left, name) or _names(node.right, name)
    if isinstance(node, ast.Between):
        return any(_names(n, name) for n in (node.operand, node.low, node.high))
    if isinstance(node, ast.In):
        return _names(node.operand, name) or any(_names(option, name) for option in node.options)
    if isinstance(node, ast.Call):
        return any(_names(arg, name) for arg in node.args)
    if isinstance(node, (ast.IsMissing, ast.IsType)):
        return _names(node.path, name)
    return False


_MISMATCH = object()


def _key_value(value: dict, key_type: str | None):
    """A key attribute's value in Python's order (DynamoDB's: strings by code
    point, numbers by value, binary by byte), or _MISMATCH for another type."""
    if key_type is None or key_type not in value:
        return _MISMATCH
    try:
        if key_type == "N":
            return Decimal(value["N"])
        if key_type == "B":
            raw = value["B"]
            return bytes(raw) if isinstance(raw, (bytes, bytearray)) else base64.b64decode(raw)
        return value["S"]
    except (ArithmeticError, ValueError, TypeError):
        return _MISMATCH


class _Span:
    """A sort key range: its bounds (None: unbounded) and whether each is included."""

    __slots__ = ("low", "low_in", "high", "high_in")

    def __init__(self) -> None:
        self.low = self.high = None
        self.low_in = self.high_in = True

    def narrow(self, op: str, values: list) -> None:
        if op in ("=", "BETWEEN"):
            self._above(values[0], True)
            self._below(values[-1], True)
        elif op in (">", ">="):
            self._above(values[0], op == ">=")
        elif op in ("<", "<="):
            self._below(values[0], op == "<=")

    def _above(self, value, included: bool) -> None:
        if self.low is None or value > self.low or (value == self.low and not included):
            self.low, self.low_in = value, included

    def _below(self, value, included: bool) -> None:
        if self.high is None or value < self.high or (value == self.high and not included):
            self.high, self.high_in = value, included

    def empty(self) -> bool:
        if self.low is None or self.high is None:
            return False
        return self.low > self.high or (self.low == self.high and not (self.low_in and self.high_in))

    def meets(self, other: "_Span") -> bool:
        """Whether two non-empty ranges share a value."""
        return not (_before(self, other) or _before(other, self))


def _before(first: _Span, second: _Span) -> bool:
    """Whether ``first`` ends before ``second`` starts."""
    if first.high is None or second.low is None:
        return False
    return first.high < second.low or (first.high == second.low and not (first.high_in and second.low_in))


def _partition_options(node, name: str) -> list | None:
    if isinstance(node, ast.In):
        if _is_key(node.operand, name) and node.options and all(_is_value(o) for o in node.options):
            return [(option, True) for option in node.options]
        return None
    if isinstance(node, ast.Or):
        out = []
        for operand in node.operands:
            found = key_equality(operand, (name,))
            if found is not None:
                out.append((found[1], False))
                continue
            found = _partition_options(operand, name)
            if found is None:
                return None
            out.extend(found)
        return out
    return None


def sort_condition(where, range_key: str) -> tuple | None:
    """(operator, value nodes, the conjunct) of the first conjunct a Query can
    use as its sort key condition: =, <, <=, >, >=, BETWEEN or begins_with on
    ``range_key``."""
    for node in conjuncts(where):
        found = _sort_conjunct(node, range_key)
        if found is not None:
            return (*found, node)
    return None


def _is_key(node, name: str) -> bool:
    return isinstance(node, ast.Path) and node.elements == (name,)


def _is_value(node) -> bool:
    return isinstance(node, (ast.Literal, ast.Param))


def _sort_conjunct(node, name: str):
    if isinstance(node, ast.Compare) and node.op != "<>":
        if _is_key(node.left, name) and _is_value(node.right):
            return node.op, (node.right,)
        if _is_key(node.right, name) and _is_value(node.left):
            return _FLIPPED[node.op], (node.left,)
    elif isinstance(node, ast.Between):
        if _is_key(node.operand, name) and _is_value(node.low) and _is_value(node.high):
            return "BETWEEN", (node.low, node.high)
    elif isinstance(node, ast.Call) and node.name == "begins_with" and len(node.args) == 2:
        if _is_key(node.args[0], name) and _is_value(node.args[1]):
            return "begins_with", (node.args[1],)
    return None


# ---------------------------------------------------------------- expression text


class ExpressionBuilder:
    """Collects placeholders while writing DynamoDB expression text.

    ``names`` and ``values`` become the request's ExpressionAttributeNames and
    ExpressionAttributeValues (None when empty, as the operations expect).
    """

    __slots__ = ("params", "names", "values", "_by_name")

    def __init__(self, params: list) -> None:
        self.params = params
        self.names: dict[str, str] = {}
        self.values: dict[str, dict] = {}
        self._by_name: dict[str, str] = {}

    def members(self) -> dict:
        """The ExpressionAttributeNames/Values members of a request."""
        out = {}
        if self.names:
            out["ExpressionAttributeNames"] = self.names
        if self.values:
            out["ExpressionAttributeValues"] = self.values
        return out

    def name(self, name: str) -> str:
        placeholder = self._by_name.get(name)
        if placeholder is None:
            placeholder = f"#n{len(self.names)}"
            self._by_name[name] = placeholder
            self.names[placeholder] = name
        return placeholder

    def value(self, av: dict) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = av
        return placeholder

    def path(self, path: ast.Path) -> str:
        parts = []
        for element in path.elements:
            if isinstance(element, int):
                parts.append(f"[{element}]")
            else:
                parts.append(("." if parts else "") + self.name(element))
        return "".join(parts)

    def operand(self, node) -> str:
        if isinstance(node, ast.Path):
            return self.path(node)
        if isinstance(node, ast.Call):
            return self.call(node, _CONDITION_FUNCTIONS)
        return self.value(bind_value(node, self.params))

    def call(self, node: ast.Call, allowed) -> str:
        if node.name not in allowed:
            raise unrecognized_function(node.name)
        if not node.args:  # the expression grammar has no empty call to check
            raise operand_count(node.name, 0)
        return f"{node.name}({', '.join(self.operand(arg) for arg in node.args)})"

    # ------------------------------------------------------------ conditions

    def condition(self, node) -> str:
        """The condition expression text of a WHERE clause (or part of one)."""
        if isinstance(node, ast.And):
            return " AND ".join(f"({self.condition(op)})" for op in node.operands)
        if isinstance(node, ast.Or):
            return " OR ".join(f"({self.condition(op)})" for op in node.operands)
        if isinstance(node, ast.Not):
            return f"NOT ({self.condition(node.operand)})"
        if isinstance(node, ast.Compare):
            truth = self._boolean_test(node)
            if truth is not None:
                return truth
            return f"{self.operand(node.left)} {node.op} {self.operand(node.right)}"
        if isinstance(node, ast.Between):
            return (f"{self.operand(node.operand)} BETWEEN {self.operand(node.low)} "
                    f"AND {self.operand(node.high)}")
        if isinstance(node, ast.In):
            options = ", ".join(self.operand(option) for option in node.options)
            return f"{self.operand(node.operand)} IN ({options})"
        if isinstance(node, ast.IsMissing):
            return self._is_missing(node)
        if isinstance(node, ast.IsType):
            test = f"attribute_type({self.path(node.path)}, {self.value({'S': node.type})})"
            return f"NOT ({test})" if node.negated else test
        if isinstance(node, ast.Call):
            return self.call(node, _CONDITION_FUNCTIONS)
        raise ValidationException("Unsupported condition in PartiQL statement")

    def _boolean_test(self, node: ast.Compare) -> str | None:
        """``f(...) = TRUE`` (or <> FALSE, either way round) as the function
        itself, ``= FALSE`` as its negation; None for any other comparison."""
        if node.op not in ("=", "<>"):
            return None
        for call, other in ((node.left, node.right), (node.right, node.left)):
            if (isinstance(call, ast.Call) and call.name in _BOOLEAN_FUNCTIONS
                    and isinstance(other, (ast.Literal, ast.Param))):
                value = bind_value(other, self.params)
                if "BOOL" not in value:
                    return None
                text = self.call(call, _CONDITION_FUNCTIONS)
                return text if value["BOOL"] == (node.op == "=") else f"NOT ({text})"
        return None

    def _is_missing(self, node: ast.IsMissing) -> str:
        path = self.path(node.path)
        if node.null:
            test = f"attribute_type({path}, {self.value({'S': 'NULL'})})"
            return f"NOT ({test})" if node.negated else test
        return f"attribute_exists({path})" if node.negated else f"attribute_not_exists({path})"

    def conjunction(self, nodes: list) -> str | None:
        """The AND of several conditions' text; None for none."""
        if not nodes:
            return None
        if len(nodes) == 1:
            return self.condition(nodes[0])
        return " AND ".join(f"({self.condition(node)})" for node in nodes)

    # ------------------------------------------------------------ updates

    def update(self, clauses: tuple) -> str:
        """The UpdateExpression of an UPDATE's SET and REMOVE clauses."""
        sections: dict[str, list[str]] = {}
        for clause in clauses:
            target = self.path(clause.path)
            if isinstance(clause, ast.RemoveClause):
                sections.setdefault("REMOVE", []).append(target)
                continue
            value = clause.value
            if isinstance(value, ast.Call) and value.name in ("set_add", "set_delete"):
                section = "ADD" if value.name == "set_add" else "DELETE"
                sections.setdefault(section, []).append(f"{target} {self._set_operand(value)}")
            else:
                sections.setdefault("SET", []).append(f"{target} = {self._update_value(value)}")
        return " ".join(f"{kind} {', '.join(parts)}" for kind, parts in sections.items())

    def _set_operand(self, node: ast.Call) -> str:
        value = bind_value(node.args[1], self.params) if len(node.args) == 2 else None
        if value is None or next(iter(value)) not in ("SS", "NS", "BS"):
            raise ValidationException(
                f"The second argument to {node.name.upper()} must be a value with type SET"
            )
        return self.value(value)

    def _update_value(self, node) -> str:
        if isinstance(node, ast.Arithmetic):
            return f"{self._update_value(node.left)} {node.op} {self._update_value(node.right)}"
        if isinstance(node, ast.Call):
            if node.name not in _UPDATE_FUNCTIONS:
                raise unrecognized_function(node.name)
            return f"{node.name}({', '.join(self._update_value(arg) for arg in node.args)})"
        if isinstance(node, ast.Path):
            return self.path(node)
        return self.value(bind_value(node, self.params))

    # ------------------------------------------------------------ projections

    def projection(self, paths: tuple | None) -> str | None:
        if paths is None:
            return None
        return ", ".join(self.path(path) for path in paths)
