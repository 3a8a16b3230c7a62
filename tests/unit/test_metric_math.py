"""shoal.metrics.math without a server: the parser, the checks, the evaluator
(values from the CloudWatch User Guide's tables where it gives them), and
GetMetricData's use of it over a real in-memory engine."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.metrics.cloudwatch import CloudWatch
from shoal.metrics.errors import ValidationError
from shoal.metrics.math import (
    ARITHMETIC_ERROR,
    Array,
    Binary,
    Call,
    Keyword,
    MathError,
    Number,
    Ref,
    Series,
    String,
    Unary,
    compile_expression,
    evaluate_queries,
    references,
)
from shoal.storage.memory_engine import MemoryEngine

T0 = 1_800_000_000  # a minute boundary; a Friday (1800000000 // 86400 + 4) % 7 == 4 -> isoweekday 5
M = 60


def series(values, label="", period=M, metric=True):
    """A metric series from values per minute from T0; None is a missing point."""
    return Series({T0 + i * period: float(v) for i, v in enumerate(values) if v is not None}, label, period, metric)


def values_of(s: Series, slots: int, period=M):
    return [s.points.get(T0 + i * period) for i in range(slots)]


def run(text, slots=4, **metrics):
    """Evaluate ``text`` over ``metrics`` in a window of ``slots`` minutes from T0."""
    out = evaluate_queries({"e": text}, metrics, T0, T0 + slots * M)["e"]
    return out


def ts(text, slots=4, **metrics):
    value = run(text, slots, **metrics).value
    assert isinstance(value, Series), value
    return values_of(value, slots)


# ---------------------------------------------------------------- parsing


def test_precedence_and_associativity():
    assert compile_expression("m1 + m2 * 3") == Binary("+", Ref("m1"), Binary("*", Ref("m2"), Number(3.0)))
    assert compile_expression("2 ^ 3 ^ 2") == Binary("^", Number(2.0), Binary("^", Number(3.0), Number(2.0)))
    assert compile_expression("-2^2") == Unary("-", Binary("^", Number(2.0), Number(2.0)))
    assert compile_expression("(m1 - m2) / m3") == Binary("/", Binary("-", Ref("m1"), Ref("m2")), Ref("m3"))
    assert compile_expression("m1 > 1 AND m2 < 2 || m3 == 0") == Binary(
        "||", Binary("&&", Binary(">", Ref("m1"), Number(1.0)), Binary("<", Ref("m2"), Number(2.0))),
        Binary("==", Ref("m3"), Number(0.0)))
    assert compile_expression("NOT m1 > 5") == Unary("!", Binary(">", Ref("m1"), Number(5.0)))
    assert compile_expression('SUM([METRICS("4xx"), m1])') == Call(
        "SUM", (Array((Call("METRICS", (String("4xx"),)), Ref("m1"))),))
    assert compile_expression("SORT(METRICS(), AVG, DESC, 10)") == Call(
        "SORT", (Call("METRICS", ()), Keyword("AVG"), Keyword("DESC"), Number(10.0)))
    assert compile_expression("FILL(m1, 1.5e2)") == Call("FILL", (Ref("m1"), Number(150.0)))
    assert compile_expression("m1") is compile_expression("m1")  # cached by text


def test_references_are_the_ids_named():
    assert references(compile_expression("FILL(m1, e2) / SUM(METRICS()) + IF(e3 > 1, 2)")) == {"m1", "e2", "e3"}


@pytest.mark.parametrize("text, message", [
    ("", "The expression is empty"),
    ("m1 +", "Syntax error: unexpected end of the expression"),
    ("SUM(m1", "Syntax error: unexpected end of the expression, expected ')'"),
    ("m1 m2", "Syntax error: unexpected 'm2' at position 4"),
    ("m1 $ 2", "Unexpected character '$' at position 4"),
    ("sum(m1)", "Unknown function 'sum': functions are written in upper case"),
    ("FOO(m1)", "Unknown function FOO"),
    ("SEARCH('{AWS/EC2} CPU', 'Average')", "Shoal does not evaluate the function SEARCH yet"),
    ("ABS(m1, m2)", "The function ABS takes 1 argument, not 2"),
    ("IF(m1)", "The function IF takes 2 to 3 arguments, not 1"),
    ("FILL(m1, ASC)", "Unexpected ASC as argument 2 of FILL"),
    ("SORT(METRICS(), MEDIAN, ASC)", "Unexpected MEDIAN as argument 2 of SORT"),
    ("SORT(METRICS(), 3, ASC)", "Argument 2 of SORT must be one of AVG, MIN, MAX, SUM"),
    ("METRICS(m1)", "The argument of METRICS must be a string"),
    ("ABS('x')", "Unexpected string as argument 1 of ABS"),
    ("m1 * REPEAT", "Unexpected REPEAT: a function needs its arguments in parentheses"),
])
def test_what_does_not_parse_or_check(text, message):
    with pytest.raises(MathError) as caught:
        compile_expression(text)
    assert caught.value.message == message


# ---------------------------------------------------------------- arithmetic and comparisons


def test_arithmetic_keeps_the_timestamps_both_series_have():
    m1, m2 = series([10, 20, None, 40]), series([1, None, 3, 4])
    assert ts("m1 + m2", m1=m1, m2=m2) == [11.0, None, None, 44.0]
    assert ts("m1 - m2 * 2", m1=m1, m2=m2) == [8.0, None, None, 32.0]
    assert ts("m1 ^ 2 / 100", m1=m1) == [1.0, 4.0, None, 16.0]
    assert ts("-m1 + 5", m1=m1) == [-5.0, -15.0, None, -35.0]
    assert ts("m3 - AVG(m3)", m3=series([10, 20, None, 30])) == [-10.0, 0.0, None, 10.0]  # AVG of a series: 20
    assert ts("PERIOD(m1) / 60 * m2", m1=m1, m2=m2) == [1.0, None, 3.0, 4.0]


def test_division_by_zero_drops_the_point_and_says_so():
    m1, m2 = series([10, 20, 30, 40]), series([2, 0, 5, 0])
    outcome = run("m1 / m2", m1=m1, m2=m2)
    assert values_of(outcome.value, 4) == [5.0, None, 6.0, None] and outcome.dropped
    assert not run("m1 / 2", m1=m1).dropped
    assert run("LOG(m2)", m1=m1, m2=m2).dropped  # LOG(0) is -Infinite
    assert ts("SQRT(m1 - 20)", m1=m1) == [None, 0.0, math.sqrt(10), math.sqrt(20)]  # SQRT(-10) is NaN
    assert ARITHMETIC_ERROR == ("ArithmeticError", "One or more data-points have been dropped due to non-numeric "
                                                   "values (NaN, -Infinite, +Infinite)")


def test_comparisons_and_logic_as_the_guide_tabulates_them():
    # The guide's example: metric1 [30, 20, 0, 0], metric2 [20, -, 20, -].
    metric1, metric2 = series([30, 20, 0, 0]), series([20, None, 20, None])
    assert ts("(metric1 < metric2)", metric1=metric1, metric2=metric2) == [0.0, 0.0, 1.0, 0.0]
    assert ts("(metric1 >= 30)", metric1=metric1) == [1.0, 0.0, 0.0, 0.0]
    assert ts("(metric1 > 15 AND metric2 > 15)", metric1=metric1, metric2=metric2) == [1.0, 0.0, 0.0, 0.0]
    assert ts("metric1 > 15 && metric2 > 15", metric1=metric1, metric2=metric2) == [1.0, 0.0, 0.0, 0.0]
    assert ts("metric1 == 0 OR metric2 == 20", metric1=metric1, metric2=metric2) == [1.0, 0.0, 1.0, 1.0]
    assert ts("NOT metric1", metric1=metric1) == [0.0, 0.0, 1.0, 1.0]
    assert ts("metric1 != 20", metric1=metric1) == [1.0, 0.0, 1.0, 1.0]
    assert ts("metric1 * (2 > 1)", metric1=metric1) == [30.0, 20.0, 0.0, 0.0]


# ---------------------------------------------------------------- functions


def test_if_follows_the_guides_tables():
    metric1 = series([1, 1, 0, 0, None])
    metric2 = series([30, None, 0, 0, 30])
    metric3 = series([0, 0, 20, None, 20])
    kw = dict(metric1=metric1, metric2=metric2, metric3=metric3, slots=5)
    assert ts("IF(metric1, metric2, metric3)", **kw) == [30.0, 0.0, 20.0, None, None]
    assert ts("IF(metric1, 5, metric3)", **kw) == [5.0, 5.0, 20.0, None, None]
    assert ts("IF(metric1, metric2, 5)", **kw) == [30.0, 0.0, 5.0, 5.0, None]
    assert ts("IF(metric1, metric2)", **kw) == [30.0, 0.0, None, None, None]
    assert ts("IF(metric2 < 10, 1, 0)", **kw) == [0.0, None, 1.0, 1.0, 0.0]
    assert ts("IF(1, metric2, metric3)", **kw) == [30.0, None, 0.0, 0.0, 30.0]
    assert ts("IF(0, metric2)", **kw) == [None] * 5


def test_fill_with_a_constant_a_series_repeat_and_linear():
    m1 = series([None, 10, None, None, 40, None])
    m2 = series([7, 7, 8, None, 9, 9])
    kw = dict(m1=m1, m2=m2, slots=6)
    assert ts("FILL(m1, 0)", **kw) == [0.0, 10.0, 0.0, 0.0, 40.0, 0.0]
    assert ts("FILL(m1, MIN(m2))", **kw) == [7.0, 10.0, 7.0, 7.0, 40.0, 7.0]
    assert ts("FILL(m1, m2)", **kw) == [7.0, 10.0, 8.0, None, 40.0, 9.0]
    assert ts("FILL(m1, REPEAT)", **kw) == [None, 10.0, 10.0, 10.0, 40.0, 40.0]
    assert ts("FILL(m1, LINEAR)", **kw) == [None, 10.0, 20.0, 30.0, 40.0, None]
    filled = run("FILL(METRICS(), 1)", **kw).value
    assert [values_of(s, 6) for s in filled] == [[1.0, 10.0, 1.0, 1.0, 40.0, 1.0], [7.0, 7.0, 8.0, 1.0, 9.0, 9.0]]


def test_rate_diff_diff_time_and_running_sum():
    m1 = series([10, 40, None, 100])
    assert ts("RATE(m1)", m1=m1) == [None, 0.5, None, 0.5]  # (100 - 40) / 120 s
    assert ts("DIFF(m1)", m1=m1) == [None, 30.0, None, 60.0]
    assert ts("DIFF_TIME(m1)", m1=m1) == [None, 60.0, None, 120.0]
    assert ts("RUNNING_SUM(m1)", m1=m1) == [10.0, 50.0, None, 150.0]


def test_aggregates_of_a_series_are_scalars_and_of_an_array_series():
    m1, m2 = series([1, 2, None, 5]), series([3, None, 3, 1])
    kw = dict(m1=m1, m2=m2)
    assert ts("m1 * 0 + SUM(m1)", **kw) == [8.0, 8.0, None, 8.0]
    assert ts("m1 * 0 + MAX(m1) - MIN(m1) + DATAPOINT_COUNT(m1)", **kw) == [7.0, 7.0, None, 7.0]
    deviation = math.sqrt(8 / 9)  # of 3, 3 and 1, around 7/3
    assert ts("m2 * 0 + STDDEV(m2)", **kw) == [pytest.approx(deviation), None, pytest.approx(deviation),
                                              pytest.approx(deviation)]
    assert ts("SUM([m1, m2])", **kw) == [4.0, 2.0, 3.0, 6.0]
    assert ts("AVG([m1, m2])", **kw) == [2.0, 1.0, 1.5, 3.0]  # a missing value counts as 0
    assert ts("MAX(METRICS())", **kw) == [3.0, 2.0, 3.0, 5.0]
    assert ts("MIN(METRICS())", **kw) == [1.0, 2.0, 3.0, 1.0]
    assert ts("DATAPOINT_COUNT(METRICS())", **kw) == [2.0, 1.0, 1.0, 2.0]
    assert ts("STDDEV([m1, m2])", **kw) == [1.0, 0.0, 0.0, 2.0]
    assert ts("m1 / METRIC_COUNT(METRICS())", **kw) == [0.5, 1.0, None, 2.5]


def test_metrics_filters_by_id_and_arrays_map_element_wise():
    kw = dict(errors_4xx=series([1, 2], "4xx"), errors_5xx=series([10, 20], "5xx"), requests=series([100, 100], "r"))
    assert [s.label for s in run('METRICS("errors")', 2, **kw).value] == ["4xx", "5xx"]
    assert ts('SUM(METRICS("errors")) / SUM(METRICS("requests")) * 100', 2, **kw) == [11.0, 22.0]
    scaled = run("METRICS() / 100", 2, **kw).value
    assert [values_of(s, 2) for s in scaled] == [[0.01, 0.02], [0.1, 0.2], [1.0, 1.0]]
    assert [s.label for s in scaled] == ["4xx", "5xx", "r"]
    assert ts('SUM([METRICS("4xx"), METRICS("5xx")])', 2, **kw) == [11.0, 22.0]


def test_sort_slice_first_last_and_remove_empty():
    kw = dict(a=series([1, 1], "a"), b=series([5, 7], "b"), c=series([3, 3], "c"), d=series([None, None], "d"))
    labels = lambda text: [s.label for s in run(text, 2, **kw).value]  # noqa: E731
    assert labels("SORT(METRICS(), AVG, DESC)") == ["b", "c", "a", "d"]
    assert labels("SORT(METRICS(), MAX, ASC, 2)") == ["a", "c"]
    assert labels("SLICE(SORT(METRICS(), SUM, DESC), 1)") == ["c", "a", "d"]
    assert labels("SLICE(METRICS(), 1, 3)") == ["b", "c"]
    assert labels("REMOVE_EMPTY(METRICS())") == ["a", "b", "c"]
    assert run("FIRST(SORT(METRICS(), MAX, DESC))", 2, **kw).value.label == "b"
    assert run("LAST(METRICS())", 2, **kw).value.label == "d"


def test_time_series_and_calendar_functions_cover_the_grid():
    m1 = series([None, 4])
    assert ts("TIME_SERIES(2 * MAX(m1))", 3, m1=m1) == [8.0, 8.0, 8.0]
    assert ts("MINUTE(m1)", 3, m1=m1) == [0.0, 1.0, 2.0]  # T0 is 2027-01-15 08:00 UTC
    assert ts("HOUR(m1) * 100 + DAY(m1)", 1, m1=m1) == [805.0]
    assert ts("EPOCH(m1) - " + str(T0), 2, m1=m1) == [0.0, 60.0]


def test_expressions_refer_to_expressions_and_errors_name_their_query():
    metrics = {"m1": series([1, 2])}
    out = evaluate_queries({"e2": "e1 * 10", "e1": "m1 + 1"}, metrics, T0, T0 + 2 * M)
    assert values_of(out["e2"].value, 2) == [20.0, 30.0] and values_of(out["e1"].value, 2) == [2.0, 3.0]
    cases = [({"e1": "m2 * 2"}, "e1", "Unknown metric or expression Id m2"),
             ({"e1": "e2 + 1", "e2": "e3 + m1", "e3": "e1"}, "e1", "Circular dependency between expressions: "
                                                                    "e1 -> e2 -> e3 -> e1"),
             ({"e1": "e1 + 1"}, "e1", "Circular dependency between expressions: e1 -> e1"),
             ({"e1": "e2 * 2", "e2": "AVG(m1)"}, "e2",
              "The expression must result in a time series or an array of time series, not a scalar"),
             ({"e1": "PERIOD(e2)", "e2": "m1 * 2"}, "e1",
              "The function PERIOD takes a metric (the Id of a MetricStat query)"),
             ({"e1": "METRICS() + METRICS()"}, "e1", "The operator + does not take two arrays of time series"),
             ({"e1": "FIRST(m1)"}, "e1", "The function FIRST takes an array of time series, not a time series"),
             ({"e1": "RATE(3)"}, "e1",
              "The function RATE takes a time series or an array of time series, not a scalar")]
    for expressions, query_id, message in cases:
        with pytest.raises(MathError) as caught:
            evaluate_queries(expressions, metrics, T0, T0 + 2 * M)
        assert (caught.value.id, caught.value.message) == (query_id, message)


# ---------------------------------------------------------------- properties

points = st.dictionaries(st.integers(0, 30).map(lambda i: T0 + i * M),
                         st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: round(v, 3)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(points, points)
def test_adding_then_subtracting_a_series_gives_back_the_shared_points(a, b):
    out = run("a + b - b", 31, a=Series(dict(sorted(a.items()))), b=Series(dict(sorted(b.items())))).value
    shared = {t: v for t, v in a.items() if t in b}
    assert out.points.keys() == shared.keys()
    for t, v in shared.items():
        assert out.points[t] == pytest.approx(v, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(points, min_size=1, max_size=5))
def test_sum_of_metrics_is_the_pointwise_sum(many):
    metrics = {f"m{i}": Series(dict(sorted(p.items()))) for i, p in enumerate(many)}
    out = run("SUM(METRICS())", 31, **metrics).value
    stamps = set().union(*(p.keys() for p in many))
    assert out.points.keys() == stamps
    for t in stamps:
        assert out.points[t] == pytest.approx(sum(p[t] for p in many if t in p))


@settings(max_examples=60, deadline=None)
@given(points)
def test_fill_leaves_no_slot_of_the_window_empty(a):
    out = run("FILL(a, 0)", 31, a=Series(dict(sorted(a.items())))).value
    assert list(out.points) == [T0 + i * M for i in range(31)]
    assert all(out.points[t] == a.get(t, 0.0) for t in out.points)


# ---------------------------------------------------------------- GetMetricData over a real engine


@pytest.fixture
def cloudwatch():
    api = CloudWatch(MemoryEngine(), clock=lambda: T0 + 600)
    put = [{"MetricName": "Errors", "Timestamp": T0 + i * M, "Value": v} for i, v in enumerate([1, 0, 3])]
    put += [{"MetricName": "Requests", "Timestamp": T0 + i * M, "Value": v} for i, v in enumerate([10, 0, 30, 40])]
    writes, job = api.prepare("PutMetricData", {"Namespace": "App", "MetricData": put}, "us-east-1")
    job()
    return api


def metric(name, query_id, **extra):
    return {"Id": query_id, "MetricStat": {"Metric": {"Namespace": "App", "MetricName": name}, "Period": 60,
                                           "Stat": "Sum"}, **extra}


def get(api, queries, **extra):
    request = {"StartTime": T0, "EndTime": T0 + 300, "MetricDataQueries": queries, **extra}
    writes, job = api.prepare("GetMetricData", request, "us-east-1")
    assert not writes
    return job()


def test_get_metric_data_evaluates_expressions_over_hidden_metrics(cloudwatch):
    out = get(cloudwatch, [metric("Errors", "errors", ReturnData=False), metric("Requests", "requests", ReturnData=False),
                           {"Id": "rate", "Expression": "100 * errors / requests", "Label": "Error rate"},
                           {"Id": "total", "Expression": "errors + requests"},
                           {"Id": "both", "Expression": "METRICS() * 2"}], ScanBy="TimestampAscending")
    results = out["MetricDataResults"]
    assert [(r["Id"], r["Label"]) for r in results] == [("rate", "Error rate"), ("total", "total"),
                                                        ("both", "Errors"), ("both", "Requests")]
    rate = results[0]
    assert [t - T0 for t in rate["Timestamps"]] == [0, 120] and rate["Values"] == [10.0, 10.0]
    assert rate["Messages"] == [{"Code": "ArithmeticError", "Value": "One or more data-points have been dropped "
                                                                     "due to non-numeric values (NaN, -Infinite, "
                                                                     "+Infinite)"}]
    assert results[1]["Values"] == [11.0, 0.0, 33.0] and "Messages" not in results[1]
    assert results[3]["Values"] == [20.0, 0.0, 60.0, 80.0]
    labelled = get(cloudwatch, [metric("Errors", "m1"), {"Id": "e1", "Expression": "METRICS() + 1", "Label": "Plus"}])
    assert [r["Label"] for r in labelled["MetricDataResults"]] == ["Errors", "Plus Errors"]


def test_get_metric_data_pages_across_expression_results(cloudwatch):
    queries = [metric("Requests", "m1"), {"Id": "e1", "Expression": "m1 / 10"}]
    first = get(cloudwatch, queries, MaxDatapoints=3)
    assert [(r["Values"], r["StatusCode"]) for r in first["MetricDataResults"]] == [
        ([40.0, 30.0, 0.0], "PartialData"), ([], "PartialData")]
    second = get(cloudwatch, queries, MaxDatapoints=3, NextToken=first["NextToken"])
    assert [(r["Values"], r["StatusCode"]) for r in second["MetricDataResults"]] == [
        ([10.0], "Complete"), ([4.0, 3.0], "PartialData")]
    third = get(cloudwatch, queries, MaxDatapoints=3, NextToken=second["NextToken"])
    assert [(r["Values"], r["StatusCode"]) for r in third["MetricDataResults"]] == [
        ([], "Complete"), ([0.0, 1.0], "Complete")]
    assert "NextToken" not in third


@pytest.mark.parametrize("queries, message", [
    ([metric("Errors", "m1"), {"Id": "e1", "Expression": "m1 +"}],
     "The value m1 + for parameter MetricDataQueries.member.2.Expression is invalid: Syntax error: unexpected end "
     "of the expression.\n"),
    ([{"Id": "e1", "Expression": "m9 * 2"}],
     "The value m9 * 2 for parameter MetricDataQueries.member.1.Expression is invalid: Unknown metric or expression "
     "Id m9.\n"),
    ([metric("Errors", "m1"), {"Id": "e1", "Expression": "e2"}, {"Id": "e2", "Expression": "e1 + m1"}],
     "The value e2 for parameter MetricDataQueries.member.2.Expression is invalid: Circular dependency between "
     "expressions: e1 -> e2 -> e1.\n"),
    ([metric("Errors", "m1"), {"Id": "e1", "Expression": "SUM(m1)"}],
     "The value SUM(m1) for parameter MetricDataQueries.member.2.Expression is invalid: The expression must result "
     "in a time series or an array of time series, not a scalar.\n"),
    ([{"Id": "e1", "Expression": "m1", "MetricStat": metric("Errors", "x")["MetricStat"]}],
     "The parameters MetricDataQuery Expression and MetricStat are mutually exclusive and you have specified both.\n"),
    ([{"Id": "q", "Expression": 'SELECT AVG(Errors) FROM "App"'}],
     "Shoal does not run Metrics Insights queries yet (MetricDataQueries.member.1.Expression); use MetricStat and "
     "metric math.\n"),
    ([{"Id": "e1"}], "The parameter MetricDataQueries.member.1.MetricStat is required.\n"),
    ([metric("Errors", "m1"), {"Id": "M2", "Expression": "m1"}],
     "The value M2 for parameter MetricDataQueries.member.2.Id is not matching the expected pattern "
     "^[a-z][a-zA-Z0-9_]*$.\n"),
    ([metric("Errors", "m1"), {"Id": "m1\n", "Expression": "m1"}],
     "The value m1\n for parameter MetricDataQueries.member.2.Id is not matching the expected pattern "
     "^[a-z][a-zA-Z0-9_]*$.\n"),
    ([metric("Errors", "m1"), {"Id": "m1", "Expression": "m1"}],
     "The values for parameter id in MetricDataQueries are not unique.\n"),
    ([metric("Errors", "m1"), {"Id": "m1", "Expression": "m1"}, {"Id": "m1", "Expression": "m1 * 2"},
      {"Id": "E4", "Expression": "m1"}],
     "The values for parameter id in MetricDataQueries are not unique.\n"
     "The value E4 for parameter MetricDataQueries.member.4.Id is not matching the expected pattern "
     "^[a-z][a-zA-Z0-9_]*$.\n"),
])
def test_get_metric_data_refuses_bad_expressions(cloudwatch, queries, message):
    with pytest.raises(ValidationError) as caught:
        get(cloudwatch, queries)
    assert caught.value.message == message


def test_an_id_named_select_is_not_taken_for_a_metrics_insights_query(cloudwatch):
    out = get(cloudwatch, [metric("Errors", "select", ReturnData=False), {"Id": "e1", "Expression": "select * 2"}],
              ScanBy="TimestampAscending")
    assert out["MetricDataResults"][0]["Values"] == [2.0, 0.0, 6.0]
