// A table's metrics over a chosen time range, through CloudWatch's API:
// ListMetrics (namespace AWS/DynamoDB, dimension TableName) finds which
// series exist, GetMetricData reads them, uPlot draws them.  The view
// refreshes every 10 s while "Live" is on.

import { cloudwatch, listAllTables } from "./api.js";
import { busyButton, clear, errorBox, field, h, notice, select } from "./ui.js";

const NAMESPACE = "AWS/DynamoDB";
const RANGES = [["3600", "Last 1 hour"], ["10800", "Last 3 hours"], ["43200", "Last 12 hours"],
  ["86400", "Last 24 hours"], ["604800", "Last 7 days"], ["custom", "Custom…"]];
const REFRESH_MS = 10_000;
const PERIODS = [60, 300, 900, 3600, 21600, 86400];
const MAX_POINTS = 500;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d",
  "#9333ea", "#ea580c", "#0d9488", "#4b5563"];

// One chart per entry: its series are the table-level metrics named in
// `table` (always asked for) and the per-Operation ones in `perOperation`
// (asked for the operations ListMetrics found).
const CHARTS = [
  { id: "capacity", title: "Consumed capacity", unit: "units (Sum per period)",
    table: [["ConsumedReadCapacityUnits", "Sum", "Read"], ["ConsumedWriteCapacityUnits", "Sum", "Write"],
            ["ProvisionedReadCapacityUnits", "Average", "Provisioned read", true],
            ["ProvisionedWriteCapacityUnits", "Average", "Provisioned write", true]] },
  { id: "latency-average", title: "Successful request latency, Average", unit: "ms",
    perOperation: ["SuccessfulRequestLatency", "Average"] },
  { id: "latency-p99", title: "Successful request latency, p99", unit: "ms",
    perOperation: ["SuccessfulRequestLatency", "p99"] },
  { id: "throttles", title: "Throttled requests and events", unit: "count (Sum)",
    perOperation: ["ThrottledRequests", "Sum"],
    table: [["ReadThrottleEvents", "Sum", "Read throttle events"], ["WriteThrottleEvents", "Sum", "Write throttle events"]] },
  { id: "errors", title: "Errors", unit: "count (Sum)",
    perOperation: ["SystemErrors", "Sum", "SystemErrors"],
    table: [["ConditionalCheckFailedRequests", "Sum", "Conditional check failed", true]],
    account: [["UserErrors", "Sum", "UserErrors (region)"]] },
  { id: "returned", title: "Returned item count", unit: "items (Sum)", perOperation: ["ReturnedItemCount", "Sum"] },
  { id: "item-count", title: "Item count", unit: "items", table: [["ItemCount", "Maximum", "ItemCount"]] },
  { id: "table-size", title: "Table size", unit: "bytes", table: [["TableSizeBytes", "Maximum", "TableSizeBytes"]] },
];

export function render(container, args, { navigate, state }) {
  const tableName = args[0];
  let alive = true;
  let timer = null;
  const charts = {};
  const picker = h("select", { id: "metrics-table", "aria-label": "Table" }, h("option", { value: "" }, "Choose a table…"));
  picker.addEventListener("change", () => picker.value && navigate("metrics", picker.value));
  const range = select(RANGES, sessionStorage.getItem("shoal.console.range") || "3600", { id: "range" });
  const from = h("input", { id: "range-from", type: "datetime-local" });
  const to = h("input", { id: "range-to", type: "datetime-local" });
  const custom = h("span", { class: "custom-range" }, field("From", from), field("To", to));
  const live = h("input", { id: "live", type: "checkbox", checked: sessionStorage.getItem("shoal.console.live") !== "off" });
  const updated = h("span", { class: "muted", id: "metrics-updated" });
  const status = h("div", { id: "metrics-status" });
  const grid = h("div", { class: "chart-grid" });
  clear(container,
    h("div", { class: "view-head" }, h("h1", {}, "Metrics"), picker),
    h("div", { class: "card toolbar" }, field("Time range", range), custom,
      h("label", { class: "check" }, live, " Live (every 10 s)"),
      busyButton("Refresh", () => refresh(), { id: "refresh" }), updated),
    status, grid);

  listAllTables().then((names) => {
    if (!alive) return;
    for (const name of names) picker.append(h("option", { value: name, selected: name === tableName }, name));
    if (!tableName) clear(status, notice(names.length ? "Choose a table to see its metrics." : "No tables in this region."));
  }, (error) => alive && clear(status, errorBox(error, "ListTables")));

  const now = Date.now();
  from.value = localInput(new Date(now - 3 * 3600_000));
  to.value = localInput(new Date(now + 60_000)); // the fields hold minutes: include the current one
  custom.hidden = range.value !== "custom";
  range.addEventListener("change", () => {
    sessionStorage.setItem("shoal.console.range", range.value);
    custom.hidden = range.value !== "custom";
    refresh();
  });
  from.addEventListener("change", refresh);
  to.addEventListener("change", refresh);
  live.addEventListener("change", () => {
    sessionStorage.setItem("shoal.console.live", live.checked ? "on" : "off");
    schedule();
  });
  const onResize = () => {
    for (const chart of Object.values(charts)) chart.setSize(size(chart.root.parentElement));
  };
  window.addEventListener("resize", onResize);

  function schedule() {
    clearInterval(timer);
    timer = live.checked && tableName ? setInterval(() => document.hidden || refresh(), REFRESH_MS) : null;
  }

  function window_() {
    if (range.value !== "custom") {
      const end = Date.now() / 1000;
      return [end - Number(range.value), end];
    }
    const start = new Date(from.value).getTime() / 1000, end = new Date(to.value).getTime() / 1000;
    return [start, end];
  }

  // One draw at a time; a change made meanwhile (a new range) draws again once it is done.
  let running = false, again = false;
  async function refresh() {
    if (!tableName || !alive) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        await draw();
      } while (again && alive);
    } finally {
      running = false;
    }
  }

  async function draw() {
    const [rawStart, end] = window_();
    if (!(end > rawStart)) {
      clear(status, errorBox({ type: "InvalidTimeRange", message: "The end of the range must be after its start." }));
      return;
    }
    const period = periodFor(rawStart, end);
    const start = Math.floor(rawStart / period) * period; // CloudWatch's periods then fall on the timeline's
    let listed;
    try {
      listed = await listMetrics(tableName);
    } catch (error) {
      if (alive) clear(status, errorBox(error, "ListMetrics"));
      return;
    }
    const plan = planCharts(tableName, listed, period);
    let results;
    try {
      results = await getMetricData(plan.queries, start, end);
    } catch (error) {
      if (alive) clear(status, errorBox(error, "GetMetricData"));
      return;
    }
    if (!alive) return;
    clear(status, listed.length ? null : notice(`No metrics recorded for ${tableName} yet: they appear within ` +
      "seconds of the table's first requests."));
    const xs = timeline(start, end, period);
    for (const chart of plan.charts) {
      const data = [xs, ...chart.series.map((s) => aligned(xs, results[s.id], period))];
      const shown = chart.series.filter((s, i) => !s.optional || data[i + 1].some((v) => v !== null));
      const kept = [xs, ...chart.series.map((s, i) => [s, data[i + 1]]).filter(([s]) => shown.includes(s)).map(([, d]) => d)];
      plot(chart, shown, kept);
    }
    updated.textContent = `Updated ${new Date().toLocaleTimeString()} · period ${period / 60} min`;
  }

  function plot(chart, series, data) {
    let box = grid.querySelector(`[data-chart="${chart.id}"]`);
    const key = series.map((s) => s.label).join("|");
    if (!box) {
      box = h("div", { class: "card chart", dataset: { chart: chart.id } },
        h("div", { class: "chart-head" }, h("h3", {}, chart.title), h("span", { class: "muted" }, chart.unit)),
        h("div", { class: "chart-body" }), h("div", { class: "chart-empty muted" }));
      grid.append(box);
    }
    const empty = !series.length || data.slice(1).every((d) => d.every((v) => v === null));
    box.querySelector(".chart-empty").textContent = empty ? "No data points in this range." : "";
    const existing = charts[chart.id];
    if (existing && existing.seriesKey === key) {
      existing.setData(data);
      return;
    }
    if (existing) existing.destroy();
    const body = box.querySelector(".chart-body");
    const u = new uPlot({
      ...size(body),
      series: [{ label: "Time", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" },
        ...series.map((s, i) => ({ label: s.label, stroke: COLORS[i % COLORS.length], width: 1.5,
          points: { show: true, size: 6, fill: COLORS[i % COLORS.length] }, spanGaps: false, value: (u, v) => v == null ? "—" : formatValue(v) }))],
      axes: [{}, { size: 60, values: (u, ticks) => ticks.map(formatValue) }],
      // From zero, as CloudWatch's console draws counts; an empty chart still gets a y axis.
      scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] } },
      cursor: { drag: { x: true, y: false } },
    }, data, body);
    u.seriesKey = key;
    charts[chart.id] = u;
    state.charts[chart.id] = u;
  }

  if (tableName) {
    refresh();
    schedule();
  }
  return () => {
    alive = false;
    clearInterval(timer);
    window.removeEventListener("resize", onResize);
    for (const [id, chart] of Object.entries(charts)) {
      chart.destroy();
      delete state.charts[id];
    }
  };
}

function size(el) {
  return { width: Math.max(280, (el && el.clientWidth) || 520), height: 200 };
}

function formatValue(v) {
  if (v == null) return "";
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100 || Number.isInteger(v)) return String(Math.round(v * 100) / 100);
  return String(Number(v.toPrecision(3)));
}

function localInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 16);
}

/** The smallest period CloudWatch keeps for data that old, that gives at most MAX_POINTS points. */
export function periodFor(start, end) {
  const age = Date.now() / 1000 - start;
  const minimum = age > 63 * 86400 ? 3600 : age > 15 * 86400 ? 300 : 60;
  return PERIODS.find((p) => p >= minimum && (end - start) / p <= MAX_POINTS) || PERIODS[PERIODS.length - 1];
}

async function listMetrics(tableName) {
  const out = [];
  for (const request of [{ Namespace: NAMESPACE, Dimensions: [{ Name: "TableName", Value: tableName }] },
                         { Namespace: NAMESPACE, MetricName: "UserErrors" }]) {
    let token;
    do {
      const page = await cloudwatch("ListMetrics", { ...request, ...(token ? { NextToken: token } : {}) });
      out.push(...(page.Metrics || []));
      token = page.NextToken;
    } while (token);
  }
  return out;
}

function planCharts(tableName, listed, period) {
  const queries = [];
  const charts = [];
  const operations = (metricName) => [...new Set(listed.filter((m) => m.MetricName === metricName &&
    (m.Dimensions || []).length === 2 && m.Dimensions.some((d) => d.Name === "TableName" && d.Value === tableName))
    .map((m) => (m.Dimensions.find((d) => d.Name === "Operation") || {}).Value).filter(Boolean))].sort();
  const add = (metricName, dimensions, stat, label, optional) => {
    const id = `m${queries.length}`;
    queries.push({ Id: id, Label: label, ReturnData: true,
      MetricStat: { Metric: { Namespace: NAMESPACE, MetricName: metricName, Dimensions: dimensions }, Period: period, Stat: stat } });
    return { id, label, optional: Boolean(optional) };
  };
  for (const chart of CHARTS) {
    const series = [];
    for (const [metricName, stat, label, optional] of chart.table || []) {
      series.push(add(metricName, [{ Name: "TableName", Value: tableName }], stat, label, optional));
    }
    if (chart.perOperation) {
      const [metricName, stat, prefix] = chart.perOperation;
      for (const operation of operations(metricName)) {
        series.push(add(metricName, [{ Name: "TableName", Value: tableName }, { Name: "Operation", Value: operation }],
          stat, prefix ? `${prefix} ${operation}` : operation));
      }
    }
    for (const [metricName, stat, label] of chart.account || []) {
      if (listed.some((m) => m.MetricName === metricName && !(m.Dimensions || []).length)) {
        series.push(add(metricName, [], stat, label));
      }
    }
    charts.push({ ...chart, series });
  }
  return { queries, charts };
}

async function getMetricData(queries, start, end) {
  const results = {};
  for (let i = 0; i < queries.length; i += 500) {
    let token;
    do {
      const page = await cloudwatch("GetMetricData", {
        MetricDataQueries: queries.slice(i, i + 500), StartTime: Math.floor(start), EndTime: Math.ceil(end),
        ScanBy: "TimestampAscending", ...(token ? { NextToken: token } : {}) });
      for (const r of page.MetricDataResults || []) {
        const into = results[r.Id] || (results[r.Id] = { timestamps: [], values: [] });
        into.timestamps.push(...(r.Timestamps || []).map(epoch));
        into.values.push(...(r.Values || []));
      }
      token = page.NextToken;
    } while (token);
  }
  return results;
}

function epoch(t) {
  return typeof t === "number" ? t : new Date(t).getTime() / 1000;
}

function timeline(start, end, period) {
  const xs = [];
  for (let t = Math.floor(start / period) * period; t <= end; t += period) xs.push(t);
  return xs;
}

function aligned(xs, result, period) {
  const out = new Array(xs.length).fill(null);
  if (!result) return out;
  const first = xs[0];
  result.timestamps.forEach((t, i) => {
    const at = Math.round((t - first) / period);
    if (at >= 0 && at < out.length) out[at] = result.values[i];
  });
  return out;
}
