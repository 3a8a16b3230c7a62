"""CloudWatch's metric API, JSON protocol: GetMetricStatistics, GetMetricData,
ListMetrics and PutMetricData; and, for the rules DynamoDB's contributor
insights make (``shoal.metrics.insights``), GetInsightRuleReport and
DescribeInsightRules.

A request is checked in three steps: required parameters (MissingParameter,
named as the query protocol names them: ``MetricData.member.1.MetricName``),
then JSON types and the model's constraints (``shoal.api.shapes`` driven by
botocore's CloudWatch model: SerializationException and ValidationError),
then CloudWatch's own rules (InvalidParameterValue,
InvalidParameterCombination...).  Reads add up the stored periods of a series
(sealed blocks and recent periods, every level: see ``shoal.metrics.store``),
as numpy columns (``shoal.metrics.blocks``), into the requested periods, which
start at StartTime rounded down as CloudWatch rounds it (to the minute, to
five minutes past 15 days, to the hour past 63 days).  PutMetricData is a
write: it runs through the group committer like a DynamoDB write and is
answered once durable.

GetMetricData evaluates metric math (``shoal.metrics.math``) over its
MetricStat queries, returned or not; an invalid expression refuses the whole
request (ValidationError naming the query's Expression), a dropped
non-numeric point is reported in that result's Messages.  An expression's
Label defaults to its Id; one returning an array gives one result per series,
all with the query's Id, labelled "<Label> <metric's label>" (the metric's
label alone without a Label), as the User Guide labels them.
Pages: MaxDatapoints points in all, results in request order; the NextToken
remembers how many points of each result were sent.  CloudWatch's reference
says it returns no NextToken when a request holds math; Shoal pages
expression results like the others, so that nothing is cut off.

Not yet: Metrics Insights (``SELECT``) queries (refused with
ValidationError), dynamic labels and LabelOptions (a Label is returned as
given), periods under a minute (high-resolution data is kept per minute), the
trimmed and interquartile statistics (``tm99``, ``IQM``...), units other than
the one a series was last given.
"""

from __future__ import annotations

import base64
import math
import re
from typing import Callable

import numpy as np
import orjson

from shoal.api.shapes import ShapeValidator
from shoal.errors import SerializationException, ValidationException
from shoal.metrics.errors import (
    CloudWatchError,
    InvalidAction,
    InvalidNextToken,
    InvalidParameterCombination,
    InvalidParameterValue,
    MissingParameter,
    SerializationError,
    ValidationError,
)
from shoal.metrics.math import ARITHMETIC_ERROR, MathError, Series, evaluate_queries
from shoal.metrics import blocks
from shoal.metrics.blocks import Columns
from shoal.metrics.stats import HEADER_STATISTICS, Stats
from shoal.metrics.store import (
    LEVELS,
    Writer,
    iter_series,
    lookup,
    namespace_range,
    read_blocks_and_rows,
    read_columns,
    read_parts,
    series_key,
)

TARGET_PREFIX = "GraniteServiceVersion20100801."
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
MAX_DATAPOINTS = 1440
MAX_ALARM_METRICS = 10  # the User Guide's quota: an alarm on metric math has at most 10 metrics
HIGH_RESOLUTION_PERIODS = (1, 5, 10, 20, 30)
LIST_PAGE = 500
RECENT_S = 3 * 3600
LISTED_FOR_S = 14 * 86400  # ListMetrics shows metrics with data in the last two weeks
MAX_PAST_S = 14 * 86400  # how old a PutMetricData timestamp may be
MAX_FUTURE_S = 2 * 3600
MAX_VALUE = 2.0 ** 360
DEFAULT_MAX_DATAPOINTS = 100_800
_PERCENTILE = re.compile(r"p(\d{1,2}(\.\d{0,10})?|100(\.0{0,10})?)$")
METRIC_ID_PATTERN = "^[a-z][a-zA-Z0-9_]*$"  # a query's Id, as CloudWatch's messages name the pattern
_METRIC_ID = re.compile(r"[a-z][a-zA-Z0-9_]*\Z")  # \Z: "$" would let a trailing newline through
DUPLICATE_QUERY_IDS = "The values for parameter id in MetricDataQueries are not unique."
_INSIGHTS_QUERY = re.compile(r"\s*SELECT\s+[A-Za-z]", re.IGNORECASE)  # not an Id named "select"

INSIGHT_ORDERS = ("Sum", "Maximum")
INSIGHT_METRICS = ("UniqueContributors", "MaxContributorValue", "SampleCount", "Sum", "Minimum", "Maximum", "Average")

READS = frozenset({"GetMetricStatistics", "GetMetricData", "ListMetrics", "GetInsightRuleReport",
                   "DescribeInsightRules"})
WRITES = frozenset({"PutMetricData"})
OPERATIONS = READS | WRITES


class InsightRuleNotFound(CloudWatchError):
    """GetInsightRuleReport's unknown rule (the model's ResourceNotFoundException)."""

    type_name = "ResourceNotFoundException"
    code = "ResourceNotFoundException"
    status = 404


# ---------------------------------------------------------------- checks of the request


class _Required:
    """Finds the first required parameter a request lacks, from the model."""

    def __init__(self, model: dict) -> None:
        self.shapes = model["shapes"]
        self.inputs = {name: op.get("input", {}).get("shape") for name, op in model["operations"].items()}

    def check(self, operation: str, body: dict) -> None:
        shape = self.inputs.get(operation)
        if shape is not None:
            self._structure(shape, body, "")

    def _structure(self, name: str, value, path: str) -> None:
        shape = self.shapes[name]
        if not isinstance(value, dict):
            return
        for member in shape.get("required", ()):
            if value.get(member) is None:
                raise MissingParameter(f"The parameter {path}{member} is required.")
        for member, spec in shape.get("members", {}).items():
            if value.get(member) is not None:
                self._value(spec["shape"], value[member], f"{path}{member}")

    def _value(self, name: str, value, path: str) -> None:
        shape = self.shapes[name]
        if shape["type"] == "structure":
            self._structure(name, value, path + ".")
        elif shape["type"] == "list" and isinstance(value, list):
            for i, element in enumerate(value, 1):
                self._value(shape["member"]["shape"], element, f"{path}.member.{i}")


def model_validator() -> ShapeValidator:
    """The checker of CloudWatch's requests against botocore's CloudWatch
    model, by Coral's rules (``shoal.api.shapes``; DynamoDB's departures by
    shape name, such as its recorded order of its own ComparisonOperator
    enum, apply to DynamoDB's models only), built once per process."""
    return ShapeValidator.for_service("cloudwatch")


def _model_checked(validator: ShapeValidator, required: _Required, operation: str, data) -> None:
    if not isinstance(data, dict):
        raise SerializationError("Start of structure or map found where not expected.")
    required.check(operation, data)
    try:
        validator.validate(operation, data)
    except SerializationException as exc:
        raise SerializationError(exc.message) from None
    except ValidationException as exc:
        raise ValidationError(exc.message) from None


def _epoch(value) -> float:
    return float(value)


def _dimensions(raw, path: str) -> tuple:
    """A request's Dimensions as a series names them: sorted by name."""
    out = {}
    for i, dim in enumerate(raw or (), 1):
        name = dim["Name"]
        if name in out:
            raise InvalidParameterValue(f"The parameter {path}.member.{i}.Name has a duplicate value {name}.")
        out[name] = dim["Value"]
    return tuple(sorted(out.items()))


def _checked_percentile(text: str, path: str) -> str:
    if not _PERCENTILE.match(text):
        raise InvalidParameterValue(f"The value {text} for parameter {path} is not supported: "
                                    "Shoal takes percentiles, p0 to p100.")
    return text


def _period_ok(period: int) -> bool:
    return period in HIGH_RESOLUTION_PERIODS or period % 60 == 0


def _period_problem(path: str) -> str:
    return f"The parameter {path} must be a multiple of 60."


def _checked_period(period: int, path: str) -> int:
    """GetMetricStatistics' Period (InvalidParameterValue there; GetMetricData lists it with its other faults)."""
    if not _period_ok(period):
        raise InvalidParameterValue(_period_problem(path))
    return period


def rounded_start(start: float, now: float) -> int:
    """StartTime as CloudWatch rounds it: down to the minute within 15 days,
    to five minutes within 63 days, to the hour beyond."""
    age = now - start
    for period, keep in LEVELS:
        if age <= keep:
            return int(start // period * period)
    return int(start // 3600 * 3600)


def _period_fits(period: int, start: float, now: float) -> bool:
    """Whether ``period`` can be answered from the resolution kept for data
    as old as ``start`` (CloudWatch returns nothing otherwise)."""
    age = now - start
    if age > LEVELS[1][1]:
        return period % 3600 == 0
    if age > LEVELS[0][1]:
        return period % 300 == 0
    return True


def aggregate(txn, series_id: int, start: int, end: float, period: int, now: float | None = None) -> dict[int, Stats]:
    """The series' statistics per period of ``period`` seconds from ``start``
    (inclusive) to ``end`` (exclusive): {period start: Stats}, from its
    stored periods, sealed or not, at every level (``now``: see
    ``shoal.metrics.store.read_parts``)."""
    cols = read_columns(txn, series_id, start, end, True, now)
    return dict(blocks.group(cols, start + (cols.at - start) // period * period).rows())


def period_values(txn, series_id: int, start: int, end: float, period: int, name: str,
                  now: float | None = None) -> list[tuple[int, float]]:
    """[(period start, value)] of statistic ``name`` per period, in time
    order, for the periods that have it: what ``aggregate`` answers, worked
    out on columns (a week of minutes of a series is a few blocks and a few
    vectorised calls, not an object per minute); histograms are read only
    for a percentile."""
    histograms = name not in HEADER_STATISTICS
    parts = read_parts(txn, series_id, start, end, histograms, now, dense=histograms)
    if histograms:
        at, values = blocks.grouped_percentile(parts, start, period, float(name[1:]))
    else:
        cols = blocks.concat(parts)
        grouped = blocks.group(cols, start + (cols.at - start) // period * period)
        at, values = grouped.at, blocks.statistic(grouped, name)
    keep = ~np.isnan(values)
    return list(zip(at[keep].tolist(), values[keep].tolist()))


def many_period_values(txn, reads: list, start: int, end: float, now: float | None = None) -> list:
    """``period_values`` of many reads at once: ``reads`` is [(series id,
    period, statistic)], the answer one list of (period start, value) per
    read, equal to ``period_values``'s.  A dashboard or a query per table
    reads many series over few periods each: the statistics that need no
    histogram are worked out for all of them together (the unsealed periods
    of every series turned into columns at once, then one ``blocks.group``
    keyed by the read's number and its period), so that the fixed cost of
    numpy's calls is paid once a request, not once a series; percentiles go
    series by series (their tables of buckets differ)."""
    from shoal.storage.resident import shed_point  # 100 tables' blocks: their pages are not all kept at once

    out: list = [None] * len(reads)
    parts, keys, owners = [], [], []
    rows, row_owners = [], []
    for r, (series_id, period, name) in enumerate(reads):
        if name not in HEADER_STATISTICS:  # a percentile reads its blocks' histograms: a checkpoint each
            shed_point()
            out[r] = period_values(txn, series_id, start, end, period, name, now)
            continue
        if r & 15 == 15:
            shed_point()
        sealed, recent = read_blocks_and_rows(txn, series_id, start, end, False, now)
        for part in sealed:
            parts.append(part)
            keys.append((part.at - start) // period + (r << 32))
        if recent:
            rows.extend(recent)
            row_owners.append(np.full(len(recent), r, np.int64))
        owners.append(r)
    if not owners:
        return out
    periods = np.array([period for _, period, _ in reads], np.int64)
    if rows:
        recent = Columns.from_stored(rows, False)
        owner = np.concatenate(row_owners)
        parts.append(recent)
        keys.append((recent.at - start) // periods[owner] + (owner << 32))
    if not parts:
        for r in owners:
            out[r] = []
        return out
    grouped = blocks.group(blocks.concat(parts), np.concatenate(keys))
    owner = grouped.at >> 32
    at = start + (grouped.at & 0xFFFFFFFF) * periods[owner]
    wanted = sorted({name for _, _, name in reads if name in HEADER_STATISTICS})
    if len(wanted) == 1:
        values = blocks.statistic(grouped, wanted[0])
    else:
        names = np.array([wanted.index(name) if name in wanted else -1 for _, _, name in reads], np.int64)[owner]
        values = np.full(len(grouped), np.nan)
        for i, name in enumerate(wanted):
            values = np.where(names == i, blocks.statistic(grouped, name), values)
    keep = ~np.isnan(values)
    owner, at, values = owner[keep], at[keep], values[keep]
    bounds = np.searchsorted(owner, np.arange(len(reads) + 1), side="left").tolist()
    at, values = at.tolist(), values.tolist()
    for r in owners:
        i, j = bounds[r], bounds[r + 1]
        out[r] = list(zip(at[i:j], values[i:j]))
    return out


# ---------------------------------------------------------------- the API


class CloudWatch:
    """CloudWatch's metric operations over one worker's storage."""

    def __init__(self, engine, clock: Callable[[], float], flush: Callable[[], None] | None = None,
                 insights_flush: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.flush = flush or (lambda: None)  # writes what this worker has not flushed yet
        #: writes the contributor insights this worker counted (``shoal.metrics.insights``)
        self.insights_flush = insights_flush or (lambda: None)
        self._catalog = None
        self.validator = model_validator()
        self.required = _Required({"shapes": self.validator._shapes,
                                   "operations": {name: ({"input": {"shape": shape}} if shape else {})
                                                  for name, shape in self.validator._inputs.items()}})
        from shoal.storage.resident import ColdReads

        #: months of metrics read by a request are not kept mapped (``ColdReads``); None when off
        self.cold_reads = ColdReads.for_engine(engine)
        self._handlers = {"GetMetricStatistics": self.get_metric_statistics, "GetMetricData": self.get_metric_data,
                          "ListMetrics": self.list_metrics, "PutMetricData": self.put_metric_data,
                          "GetInsightRuleReport": self.get_insight_rule_report,
                          "DescribeInsightRules": self.describe_insight_rules}

    def known(self, operation: str) -> bool:
        """Whether ``operation`` is one of CloudWatch's (Shoal offers ``OPERATIONS``)."""
        return operation in self.validator.operations

    def prepare(self, operation: str, data, region: str) -> tuple[bool, Callable[[], dict]]:
        """Check a request; return (whether it writes, a job that runs it and
        returns the operation's output as a dict, which the protocol the
        request came in renders)."""
        handler = self._handlers.get(operation)
        if handler is None:
            raise InvalidAction(f"Shoal does not implement the CloudWatch operation {operation} yet")
        if operation == "PutMetricData" and isinstance(data, dict):
            _refuse_special_values(data)
        if operation == "GetMetricStatistics" and isinstance(data, dict):
            _check_statistics(data.get("Statistics"))
        _model_checked(self.validator, self.required, operation, data)
        if operation in WRITES:
            return True, handler(data, region)
        if self.cold_reads is not None:
            return False, lambda: self.cold_reads.run(lambda: handler(data, region))
        return False, lambda: handler(data, region)

    # -- GetMetricStatistics -----------------------------------------------------------------

    def get_metric_statistics(self, data: dict, region: str) -> dict:
        now = self.clock()
        statistics = data.get("Statistics") or []
        extended = data.get("ExtendedStatistics") or []
        if statistics and extended:
            raise InvalidParameterCombination("The parameters Statistics and ExtendedStatistics are mutually "
                                              "exclusive and you have specified both.")
        if not statistics and not extended:
            raise InvalidParameterCombination("Must specify either Statistics or ExtendedStatistics.")
        for i, name in enumerate(extended, 1):
            _checked_percentile(name, f"ExtendedStatistics.member.{i}")
        period = _checked_period(data["Period"], "Period")
        start, end = _epoch(data["StartTime"]), _epoch(data["EndTime"])
        if start == end:
            raise InvalidParameterValue("The parameter StartTime must not equal parameter EndTime.")
        if start > end:
            raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
        first = rounded_start(start, now)
        wanted = math.ceil((end - first) / period)
        if wanted > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {wanted} datapoints, which exceeds the limit of {MAX_DATAPOINTS}. "
                "You may reduce the datapoints requested by increasing Period, or decreasing the time range.")
        series = (region, data["Namespace"], data["MetricName"], _dimensions(data.get("Dimensions"), "Dimensions"))
        self.flush()
        datapoints = []
        with self.engine.read() as txn:
            info = lookup(txn, series)
            unit = data.get("Unit")
            if info is not None and (unit is None or unit == info.unit) and _period_fits(period, first, now):
                for at, stats in sorted(aggregate(txn, info.series_id, first, end, period, now).items()):
                    point = {"Timestamp": at, "Unit": info.unit or "None"}
                    for name in statistics:
                        point[name] = stats.statistic(name)
                    if extended:
                        values = {name: stats.percentile(float(name[1:])) for name in extended}
                        point["ExtendedStatistics"] = {k: v for k, v in values.items() if v is not None}
                    datapoints.append(point)
        return {"Label": data["MetricName"], "Datapoints": datapoints}

    # -- GetMetricData -----------------------------------------------------------------------

    def get_metric_data(self, data: dict, region: str) -> dict:
        """MetricStat queries read from storage, expressions evaluated over
        them (``shoal.metrics.math``); the queries whose ReturnData is not
        false answered, newest first unless ScanBy says otherwise, in pages
        of MaxDatapoints across them."""
        now = self.clock()
        queries = data["MetricDataQueries"]
        start, end = _checked_window(data)
        expressions, paths = _checked_queries(queries)
        ascending = data.get("ScanBy") == "TimestampAscending"
        limit = data.get("MaxDatapoints") or DEFAULT_MAX_DATAPOINTS
        if limit < 1:
            raise ValidationError(f"The value {limit} for parameter MaxDatapoints is invalid: it must be at least 1.\n")
        skip = _decode_token(data.get("NextToken"))
        first = rounded_start(start, now)
        self.flush()
        metrics: dict[str, Series] = {}
        with self.engine.read() as txn:
            stats = [query for query in queries if query.get("MetricStat") is not None]
            reads = [self._metric_read(txn, query, region, first, now) for query in stats]
            wanted = [read for read in reads if read is not None]
            answers = iter(many_period_values(txn, wanted, first, end, now))
            for query, read in zip(stats, reads):
                points = next(answers) if read is not None else []
                stat = query["MetricStat"]
                metrics[query["Id"]] = Series(dict(points), query.get("Label") or stat["Metric"]["MetricName"],
                                              stat["Period"], True)
        outcomes = {}
        if expressions:
            periods = {q["Id"]: q.get("Period") for q in queries if q["Id"] in expressions}
            default_period = min((q["MetricStat"]["Period"] for q in queries if q.get("MetricStat")), default=60)
            try:
                outcomes = evaluate_queries(expressions, metrics, first, end, periods, default_period)
            except MathError as exc:
                raise ValidationError(f"The value {expressions[exc.id]} for parameter {paths[exc.id]}.Expression "
                                      f"is invalid: {exc.message}.\n") from None
        results = []  # (Id, Label, points, messages): an expression's array gives one result per series
        for query in queries:
            if query.get("ReturnData") is False:
                continue
            query_id, label = query["Id"], query.get("Label")
            if query_id in metrics:
                results.append((query_id, metrics[query_id].label, metrics[query_id].points, []))
                continue
            outcome = outcomes[query_id]
            messages = [{"Code": code, "Value": text} for code, text in [ARITHMETIC_ERROR] if outcome.dropped]
            if isinstance(outcome.value, Series):
                results.append((query_id, label or query_id, outcome.value.points, messages))
            else:  # an array: each series keeps its own label, after the expression's
                for series in outcome.value:
                    results.append((query_id, f"{label} {series.label}" if label else series.label,
                                    series.points, messages))
        return _paged(results, ascending, limit, skip)

    def _metric_read(self, txn, query: dict, region: str, first: int, now: float) -> tuple | None:
        """What a MetricStat query reads (series id, period, statistic), or None when it can have no
        data (no such series, another unit, a period finer than the window's age keeps)."""
        stat = query["MetricStat"]
        metric = stat["Metric"]
        series = (region, metric["Namespace"], metric["MetricName"],
                  _dimensions(metric.get("Dimensions"), "Dimensions"))
        period = stat["Period"]
        info = lookup(txn, series)
        unit = stat.get("Unit")
        if info is not None and (unit is None or unit == info.unit) and _period_fits(period, first, now):
            return info.series_id, period, stat["Stat"]
        return None

    # -- ListMetrics -------------------------------------------------------------------------

    def list_metrics(self, data: dict, region: str) -> dict:
        now = self.clock()
        namespace, name = data.get("Namespace"), data.get("MetricName")
        filters = [(f["Name"], f.get("Value")) for f in data.get("Dimensions") or ()]
        since = now - (RECENT_S if data.get("RecentlyActive") == "PT3H" else LISTED_FOR_S)
        start, stop = namespace_range(region, namespace)
        token = data.get("NextToken")
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(token.encode())
            except ValueError:
                raise InvalidNextToken("The service couldn't process the NextToken.") from None
            if not after.startswith(start):
                raise InvalidNextToken("The service couldn't process the NextToken.")
            start = after + b"\0"
        self.flush()
        metrics, next_token = [], None
        with self.engine.read() as txn:
            for info in iter_series(txn, start, stop):
                _region, series_namespace, metric_name, dims = info.series
                if name is not None and metric_name != name:
                    continue
                if info.last_minute * 60 + 60 <= since:
                    continue
                present = dict(dims)
                if any(key not in present or (value is not None and present[key] != value) for key, value in filters):
                    continue
                if len(metrics) == LIST_PAGE:
                    next_token = base64.urlsafe_b64encode(series_key(previous)).decode()
                    break
                metrics.append({"Namespace": series_namespace, "MetricName": metric_name,
                                "Dimensions": [{"Name": k, "Value": v} for k, v in dims]})
                previous = info.series
        response = {"Metrics": metrics}
        if next_token is not None:
            response["NextToken"] = next_token
        return response

    # -- Contributor Insights (DynamoDB's rules: shoal.metrics.insights) ---------------------

    def _insights_catalog(self):
        if self._catalog is None:
            from shoal.api.catalog import Catalog

            self._catalog = Catalog(self.engine)
        return self._catalog

    def get_insight_rule_report(self, data: dict, region: str) -> dict:
        """The top contributors of one of DynamoDB's rules over [StartTime,
        EndTime): ranked by their Sum over the window or by their Maximum in
        one Period, each with its value per Period; the rule's figures per
        Period (MetricDatapoints) for the Metrics asked.  A DynamoDB rule
        counts (AggregateOn Count), so each observation's value is 1."""
        from shoal.metrics.insights import Sketch, STORED_CAPACITY, find_rule, read_minutes

        now = self.clock()
        start, end = _epoch(data["StartTime"]), _epoch(data["EndTime"])
        if start == end:
            raise InvalidParameterValue("The parameter StartTime must not equal parameter EndTime.")
        if start > end:
            raise InvalidParameterValue("The parameter StartTime must be less than the parameter EndTime.")
        period = data["Period"]
        if period % 60:
            raise InvalidParameterValue("The parameter Period must be a multiple of 60.")
        count = data.get("MaxContributorCount")
        count = 10 if count is None else count
        if not 1 <= count <= 100:
            raise InvalidParameterValue(f"The value {count} for parameter MaxContributorCount is invalid: "
                                        "it must be between 1 and 100.")
        order = data.get("OrderBy") or "Sum"
        if order not in INSIGHT_ORDERS:
            raise InvalidParameterValue(f"The value {order} for parameter OrderBy is invalid: "
                                        "it must be Sum or Maximum.")
        metrics = data.get("Metrics") or []
        for i, name in enumerate(metrics, 1):
            if name not in INSIGHT_METRICS:
                raise InvalidParameterValue(f"The value {name} for parameter Metrics.member.{i} is invalid.")
        first = int(start // 60 * 60)
        if math.ceil((end - first) / period) > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {math.ceil((end - first) / period)} datapoints, which exceeds the limit "
                f"of {MAX_DATAPOINTS}. You may reduce the datapoints requested by increasing Period, or decreasing "
                "the time range.")
        self.insights_flush()
        with self.engine.read() as txn:
            rule = find_rule(txn, self._insights_catalog(), region, data["RuleName"], now)
            if rule is None:
                raise InsightRuleNotFound(f"Rule {data['RuleName']} does not exist.")
            minutes = read_minutes(txn, rule.name, first, end)
        periods: dict[int, Sketch] = {}
        window = Sketch(STORED_CAPACITY)
        for minute, sketch in minutes:
            bucket = first + (minute - first) // period * period
            have = periods.get(bucket)
            periods[bucket] = sketch if have is None else have.merge(sketch)
        for sketch in periods.values():
            window.merge(sketch)
        per_key: dict[tuple, list] = {}  # key -> [(period start, value)]
        for at in sorted(periods):
            for key, value in periods[at].counts.items():
                per_key.setdefault(key, []).append((at, value))
        if order == "Sum":
            ranked = window.top(count)
        else:
            ranked = sorted(((key, max(v for _, v in points)) for key, points in per_key.items()),
                            key=lambda item: (-item[1], item[0]))[:count]
        contributors = [{"Keys": list(key), "ApproximateAggregateValue": float(value),
                         "Datapoints": [{"Timestamp": at, "ApproximateValue": float(v)}
                                        for at, v in per_key.get(key, ())]}
                        for key, value in ranked]
        datapoints = []
        if metrics:
            for at in sorted(periods):
                sketch = periods[at]
                figures = {"UniqueContributors": float(len(sketch.counts)),
                           "MaxContributorValue": float(max(sketch.counts.values(), default=0)),
                           "SampleCount": float(sketch.total), "Sum": float(sketch.total),
                           "Minimum": 1.0, "Maximum": 1.0, "Average": 1.0}
                datapoints.append({"Timestamp": at, **{name: figures[name] for name in metrics}})
        return {"KeyLabels": list(rule.labels), "AggregationStatistic": "Count",
                "AggregateValue": float(window.total), "ApproximateUniqueCount": len(window.counts),
                "Contributors": contributors, "MetricDatapoints": datapoints}

    def describe_insight_rules(self, data: dict, region: str) -> dict:
        """The rules DynamoDB made for the tables and GSIs with insights on, by
        name, in pages of MaxResults (500 by default)."""
        from shoal.metrics.insights import all_rules

        limit = data.get("MaxResults") or 500
        token = data.get("NextToken")
        after = None
        if token is not None:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except ValueError:
                raise InvalidNextToken("The service couldn't process the NextToken.") from None
        with self.engine.read() as txn:
            rules = all_rules(txn, self._insights_catalog(), region, self.clock())
        if after is not None:
            rules = [rule for rule in rules if rule.name > after]
        out = {"InsightRules": [_insight_rule(rule) for rule in rules[:limit]]}
        if len(rules) > limit:
            out["NextToken"] = base64.urlsafe_b64encode(rules[limit - 1].name.encode()).decode()
        return out

    # -- PutMetricData -----------------------------------------------------------------------

    def put_metric_data(self, data: dict, region: str) -> Callable[[], bytes]:
        """Check the data now; return the job that stores it."""
        now = self.clock()
        namespace = data["Namespace"]
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(f"The value {namespace} for parameter Namespace is invalid.")
        data_lists = [("MetricData", data.get("MetricData") or [])]
        for i, entity in enumerate(data.get("EntityMetricData") or (), 1):
            data_lists.append((f"EntityMetricData.member.{i}.MetricData", entity.get("MetricData") or []))
        if not any(datums for _, datums in data_lists):
            raise MissingParameter("The parameter MetricData is required.")
        points: dict[tuple, Stats] = {}
        for base, datums in data_lists:
            if len(datums) > 1000:
                raise InvalidParameterValue(f"The collection {base} must not have a size greater than 1000.")
            for i, datum in enumerate(datums, 1):
                path = f"{base}.member.{i}"
                stats = _datum_stats(datum, path)
                at = _epoch(datum["Timestamp"]) if datum.get("Timestamp") is not None else now
                if at < now - MAX_PAST_S or at > now + MAX_FUTURE_S:
                    raise InvalidParameterValue(f"The parameter {path}.Timestamp must specify a time no more than "
                                                "two weeks in the past and no more than two hours in the future.")
                series = (region, namespace, datum["MetricName"], _dimensions(datum.get("Dimensions"),
                                                                             f"{path}.Dimensions"))
                key = (series, datum.get("Unit") or "None", int(at // 60 * 60))
                have = points.get(key)
                points[key] = stats if have is None else have.merge(stats)

        def job() -> dict:
            with self.engine.write() as txn:
                writer = Writer(txn)
                for (series, unit, start), stats in points.items():
                    writer.add(series, unit, start, stats)
                writer.finish()
            return {}

        return job


def _insight_rule(rule) -> dict:
    """A DynamoDB rule as DescribeInsightRules shows it: a managed rule,
    counting the key attributes it names (Shoal's own rendering of the
    definition: DynamoDB's is not documented)."""
    definition = {"Schema": {"Name": "ServiceLogRule", "Version": 1}, "AggregateOn": "Count",
                  "Contribution": {"Keys": list(rule.labels)},
                  "Resource": {"TableName": rule.table, **({"IndexName": rule.index} if rule.index else {})},
                  "RuleType": rule.kind}
    return {"Name": rule.name, "State": "ENABLED", "Schema": '{"Name": "ServiceLogRule", "Version": 1}',
            "Definition": orjson.dumps(definition).decode(), "ManagedRule": True}


def _checked_window(data: dict) -> tuple[float, float]:
    queries = data["MetricDataQueries"]
    if not queries:
        raise ValidationError("The parameter MetricDataQueries must contain at least one query.\n")
    if len(queries) > 500:
        raise ValidationError("The collection MetricDataQueries must not have a size greater than 500.\n")
    start, end = _epoch(data["StartTime"]), _epoch(data["EndTime"])
    if start == end:
        raise ValidationError("The parameter StartTime must not equal parameter EndTime.\n")
    if start > end:
        raise ValidationError("The parameter StartTime must be less than the parameter EndTime.\n")
    return start, end


def _checked_queries(queries: list) -> tuple[dict, dict]:
    """GetMetricData's rules for each query: a valid, unique Id; MetricStat
    or Expression, not both; a metric that names its namespace and name; a
    known statistic and a valid period.  Returns ({Id: expression}, {Id: the
    query's parameter path}).

    CloudWatch answers every query's fault at once, one line each, in the
    words public reports recorded: "The value 5xx_error for parameter
    MetricDataQueries.member.1.Id is not matching the expected pattern
    ^[a-z][a-zA-Z0-9_]*$." and the next query's on the next line (telegraf
    issue 5420, 2019); "The value None for parameter
    MetricDataQueries.member.223.MetricStat.Stat is not a valid statistic.";
    duplicate Ids in one line for the whole request, "The values for
    parameter id in MetricDataQueries are not unique." (quota-monitor-for-aws
    issue 171, 2023), here where the first duplicate is met.  The other
    lines are Shoal's, in the same form."""
    problems: list[str] = []
    seen, expressions, paths = set(), {}, {}
    for i, query in enumerate(queries, 1):
        path = f"MetricDataQueries.member.{i}"
        query_id = query["Id"]
        if not _METRIC_ID.match(query_id):
            problems.append(f"The value {query_id} for parameter {path}.Id is not matching the expected pattern "
                            f"{METRIC_ID_PATTERN}.")
        if query_id in seen and DUPLICATE_QUERY_IDS not in problems:
            problems.append(DUPLICATE_QUERY_IDS)
        seen.add(query_id)
        paths.setdefault(query_id, path)
        expression = query.get("Expression")
        if expression is not None:
            if query.get("MetricStat") is not None:
                problems.append("The parameters MetricDataQuery Expression and MetricStat are mutually exclusive "
                                "and you have specified both.")
            elif _INSIGHTS_QUERY.match(expression):
                problems.append(f"Shoal does not run Metrics Insights queries yet ({path}.Expression); "
                                "use MetricStat and metric math.")
            if query.get("Period") is not None and not _period_ok(query["Period"]):
                problems.append(_period_problem(f"{path}.Period"))
            expressions[query_id] = expression
            continue
        stat = query.get("MetricStat")
        if stat is None:
            problems.append(f"The parameter {path}.MetricStat is required.")
            continue
        metric = stat["Metric"]
        for member in ("Namespace", "MetricName"):
            if metric.get(member) is None:
                problems.append(f"The parameter {path}.MetricStat.Metric.{member} is required.")
        if stat["Stat"] not in STATISTICS and not _PERCENTILE.match(stat["Stat"]):
            problems.append(f"The value {stat['Stat']} for parameter {path}.MetricStat.Stat is not a valid "
                            "statistic.")
        if not _period_ok(stat["Period"]):
            problems.append(_period_problem(f"{path}.MetricStat.Period"))
    if problems:
        raise ValidationError("".join(line + "\n" for line in problems))
    return expressions, paths


def _paged(results: list, ascending: bool, limit: int, skip: dict) -> dict:
    """GetMetricData's answer: at most ``limit`` points in all, the results
    taken in request order, each going on from where the last page left it
    (``skip``: {result's position: points sent}); NextToken while any has
    more."""
    out, sent, more = [], {}, False
    budget = limit
    for position, (query_id, label, points, messages) in enumerate(results):
        ordered = list(points.items())
        if not ascending:
            ordered.reverse()
        offset = skip.get(str(position), 0)
        page = ordered[offset:offset + budget]
        budget -= len(page)
        sent[str(position)] = offset + len(page)
        partial = offset + len(page) < len(ordered)
        more = more or partial
        result = {"Id": query_id, "Label": label, "Timestamps": [at for at, _ in page],
                  "Values": [value for _, value in page], "StatusCode": "PartialData" if partial else "Complete"}
        if messages:
            result["Messages"] = messages
        out.append(result)
    response = {"MetricDataResults": out, "Messages": []}
    if more:
        response["NextToken"] = _encode_token(sent)
    return response


def _check_statistics(statistics) -> None:
    """Statistics outside the five, in CloudWatch's words (before the
    model's enum check would word it otherwise)."""
    if not isinstance(statistics, list):
        return
    for i, name in enumerate(statistics, 1):
        if isinstance(name, str) and name not in STATISTICS:
            raise InvalidParameterValue(f"The parameter Statistics.member.{i} must be a value in the set "
                                        "[ Minimum, Maximum, Average, SampleCount, Sum ].")


def _refuse_special_values(data: dict) -> None:
    """NaN and the infinities, which botocore sends as strings, are not
    metric values (CloudWatch refuses them)."""
    lists = [("MetricData", data.get("MetricData"))]
    entities = data.get("EntityMetricData")
    for i, entity in enumerate(entities if isinstance(entities, list) else (), 1):
        if isinstance(entity, dict):
            lists.append((f"EntityMetricData.member.{i}.MetricData", entity.get("MetricData")))
    for base, datums in lists:
        if not isinstance(datums, list):
            continue
        for i, datum in enumerate(datums, 1):
            if not isinstance(datum, dict):
                continue
            values = [("Value", datum.get("Value"))]
            if isinstance(datum.get("Values"), list):
                values += [(f"Values.member.{j}", v) for j, v in enumerate(datum["Values"], 1)]
            if isinstance(datum.get("StatisticValues"), dict):
                values += [(f"StatisticValues.{k}", v) for k, v in datum["StatisticValues"].items()]
            for name, value in values:
                if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
                    raise InvalidParameterValue(f"The value {value} for parameter {base}.member.{i}.{name} "
                                                "is invalid.")


def _checked_value(value: float, path: str) -> float:
    if abs(value) > MAX_VALUE:
        raise InvalidParameterValue(f"The value {value!r} for parameter {path} is invalid.")
    return float(value)


def _datum_stats(datum: dict, path: str) -> Stats:
    value, statistic, values = datum.get("Value"), datum.get("StatisticValues"), datum.get("Values")
    given = [name for name, v in (("Value", value), ("StatisticValues", statistic), ("Values", values))
             if v is not None]
    if len(given) > 1:
        raise InvalidParameterCombination(f"The parameters {path}.{given[0]} and {path}.{given[1]} are mutually "
                                          "exclusive and you have specified both.")
    if datum.get("StorageResolution") is not None and datum["StorageResolution"] not in (1, 60):
        raise InvalidParameterValue(f"The value {datum['StorageResolution']} for parameter "
                                    f"{path}.StorageResolution is invalid: it must be 1 or 60.")
    stats = Stats()
    if value is not None:
        stats.add(_checked_value(value, f"{path}.Value"))
    elif statistic is not None:
        count = statistic["SampleCount"]
        if count <= 0:
            raise InvalidParameterValue(f"The value {count!r} for parameter {path}.StatisticValues.SampleCount "
                                        "is invalid: it must be greater than 0.")
        low, high = statistic["Minimum"], statistic["Maximum"]
        if low > high:
            raise InvalidParameterCombination(f"The parameters {path}.StatisticValues.Maximum and "
                                              f"{path}.StatisticValues.Minimum are invalid: Maximum is less than "
                                              "Minimum.")
        stats.add_set(count, _checked_value(statistic["Sum"], f"{path}.StatisticValues.Sum"),
                      _checked_value(low, f"{path}.StatisticValues.Minimum"),
                      _checked_value(high, f"{path}.StatisticValues.Maximum"))
    elif values is not None:
        counts = datum.get("Counts")
        if counts is not None and len(counts) != len(values):
            raise InvalidParameterValue(f"The parameters {path}.Values and {path}.Counts must be of the same size.")
        if len(values) > 150:
            raise InvalidParameterValue(f"The collection {path}.Values must not have a size greater than 150.")
        for j, v in enumerate(values, 1):
            n = counts[j - 1] if counts is not None else 1
            v = _checked_value(v, f"{path}.Values.member.{j}")
            if n == int(n) and n > 0:
                stats.add(v, int(n))
            elif n > 0:
                stats.add_set(n, v * n, v, v)
    else:
        raise MissingParameter(f"The parameter {path}.Value is required.")
    return stats


def _encode_token(skip: dict) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(skip)).decode()


def _decode_token(token: str | None) -> dict:
    if token is None:
        return {}
    try:
        skip = orjson.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, orjson.JSONDecodeError):
        raise InvalidNextToken("The service couldn't process the NextToken.") from None
    if not isinstance(skip, dict) or not all(v.__class__ is int and v >= 0 for v in skip.values()):
        raise InvalidNextToken("The service couldn't process the NextToken.")  # points sent: counts, never less than 0
    return skip
