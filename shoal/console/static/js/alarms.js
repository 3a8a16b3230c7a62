// Alarms: DescribeAlarms (metric and composite alarms, paged, filtered by
// state or name prefix) and DescribeAlarmHistory of a chosen alarm, read with
// botocore's CloudWatch shapes (MetricAlarm, CompositeAlarm, AlarmHistoryItem).
// A server that does not offer these operations answers InvalidAction: the
// view shows that answer and stays usable.

import { cloudwatch } from "./api.js";
import { badge, busyButton, clear, errorBox, field, formatTime, h, notice, select } from "./ui.js";

const STATES = [["", "Any state"], ["ALARM", "ALARM"], ["OK", "OK"], ["INSUFFICIENT_DATA", "INSUFFICIENT_DATA"]];
const COMPARISONS = {
  GreaterThanOrEqualToThreshold: ">=", GreaterThanThreshold: ">", LessThanThreshold: "<",
  LessThanOrEqualToThreshold: "<=", LessThanLowerOrGreaterThanUpperThreshold: "outside band",
  LessThanLowerThreshold: "< lower band", GreaterThanUpperThreshold: "> upper band",
};
const PAGE = 50;

export function render(container, args) {
  let alive = true;
  const selected = args[0];
  const state = select(STATES, "", { id: "alarm-state" });
  const prefix = h("input", { id: "alarm-prefix", placeholder: "name prefix", spellcheck: "false" });
  const status = h("div", { id: "alarms-status" });
  const list = h("div", { class: "card" });
  const pager = h("div", { class: "pager" });
  const history = h("div", { id: "alarm-history" });
  const tokens = [undefined];
  clear(container,
    h("div", { class: "view-head" }, h("h1", {}, "Alarms"),
      h("span", { class: "muted" }, "CloudWatch alarms: state, reason, threshold, metric and actions")),
    h("form", { class: "card toolbar", onsubmit: (e) => { e.preventDefault(); load(0); } },
      field("State", state), field("Name prefix", prefix), h("button", { type: "submit" }, "Apply"),
      busyButton("Refresh", () => load(tokens.length > 1 ? tokens.length - 2 : 0))),
    status, list, pager, history);
  state.addEventListener("change", () => load(0));

  async function load(page) {
    clear(status);
    clear(list, h("div", { class: "muted pad" }, "Loading alarms…"));
    const request = { AlarmTypes: ["MetricAlarm", "CompositeAlarm"], MaxRecords: PAGE };
    if (state.value) request.StateValue = state.value;
    if (prefix.value.trim()) request.AlarmNamePrefix = prefix.value.trim();
    if (tokens[page]) request.NextToken = tokens[page];
    let answer;
    try {
      answer = await cloudwatch("DescribeAlarms", request);
    } catch (error) {
      if (!alive) return;
      clear(list);
      clear(status, errorBox(error, "DescribeAlarms"),
        error.type === "InvalidAction" ? notice("This server does not answer CloudWatch's alarm operations yet.") : null);
      return;
    }
    if (!alive) return;
    tokens.length = page + 1;
    if (answer.NextToken) tokens.push(answer.NextToken);
    const alarms = [...(answer.MetricAlarms || []).map((a) => ({ ...a, type: "Metric" })),
                    ...(answer.CompositeAlarms || []).map((a) => ({ ...a, type: "Composite" }))];
    clear(list, alarms.length ? alarmTable(alarms) : h("div", { class: "muted pad" }, "No alarms."));
    pager.classList.toggle("single", page === 0 && !answer.NextToken);
    clear(pager,
      h("button", { disabled: page === 0, onclick: () => load(page - 1) }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${page + 1}`),
      h("button", { disabled: !answer.NextToken, onclick: () => load(page + 1) }, "Next ›"));
    if (selected) showHistory(selected);
  }

  function alarmTable(alarms) {
    return h("div", { class: "scroll" }, h("table", { class: "grid", id: "alarms-table" },
      h("thead", {}, h("tr", {}, ["Alarm", "State", "Reason", "Metric", "Condition", "Actions", "Updated", ""]
        .map((t) => h("th", {}, t)))),
      h("tbody", {}, alarms.map((a) => h("tr", { dataset: { alarm: a.AlarmName } },
        h("td", {}, h("div", { class: "strong" }, a.AlarmName), a.AlarmDescription ? h("div", { class: "muted" }, a.AlarmDescription) : null),
        h("td", {}, badge(a.StateValue || "—")),
        h("td", { class: "reason" }, a.StateReason || ""),
        h("td", { class: "mono" }, metricText(a)),
        h("td", { class: "mono" }, conditionText(a)),
        h("td", { class: "mono small-text" }, actionsText(a)),
        h("td", {}, formatTime(a.StateUpdatedTimestamp)),
        h("td", {}, h("button", { class: "small", onclick: () => showHistory(a.AlarmName) }, "History")))))));
  }

  async function showHistory(name) {
    clear(history, h("div", { class: "card" }, h("h2", {}, `History of ${name}`), h("div", { class: "muted" }, "Loading…")));
    const items = [];
    try {
      let token;
      do {
        const page = await cloudwatch("DescribeAlarmHistory", { AlarmName: name, MaxRecords: 100,
          ScanBy: "TimestampDescending", AlarmTypes: ["MetricAlarm", "CompositeAlarm"], ...(token ? { NextToken: token } : {}) });
        items.push(...(page.AlarmHistoryItems || []));
        token = page.NextToken;
      } while (token && items.length < 500);
    } catch (error) {
      if (alive) clear(history, h("div", { class: "card" }, h("h2", {}, `History of ${name}`), errorBox(error, "DescribeAlarmHistory")));
      return;
    }
    if (!alive) return;
    clear(history, h("div", { class: "card" }, h("h2", {}, `History of ${name}`),
      items.length ? h("table", { class: "grid compact", id: "history-table" },
        h("thead", {}, h("tr", {}, ["Time", "Type", "Summary", "Data"].map((t) => h("th", {}, t)))),
        h("tbody", {}, items.map((item) => h("tr", {},
          h("td", {}, formatTime(item.Timestamp)), h("td", {}, item.HistoryItemType),
          h("td", {}, item.HistorySummary),
          h("td", {}, item.HistoryData ? h("details", {}, h("summary", {}, "data"),
            h("pre", { class: "mono request" }, pretty(item.HistoryData))) : "")))))
        : h("div", { class: "muted" }, "No history.")));
  }

  load(0);
  return () => { alive = false; };
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

function metricText(a) {
  if (a.type === "Composite") return a.AlarmRule || "";
  if (a.Metrics && a.Metrics.length) {
    return a.Metrics.map((m) => m.Expression ? `${m.Id} = ${m.Expression}`
      : `${m.Id} = ${m.MetricStat.Metric.Namespace}/${m.MetricStat.Metric.MetricName} ${m.MetricStat.Stat}`).join("; ");
  }
  const dims = (a.Dimensions || []).map((d) => `${d.Name}=${d.Value}`).join(", ");
  return `${a.Namespace}/${a.MetricName}${dims ? ` (${dims})` : ""} · ${a.ExtendedStatistic || a.Statistic} per ${a.Period} s`;
}

function conditionText(a) {
  if (a.type === "Composite") return "";
  const op = COMPARISONS[a.ComparisonOperator] || a.ComparisonOperator;
  const threshold = a.ThresholdMetricId ? a.ThresholdMetricId : a.Threshold;
  const m = a.DatapointsToAlarm || a.EvaluationPeriods;
  return `${op} ${threshold} for ${m} of ${a.EvaluationPeriods}` +
    (a.TreatMissingData ? ` · missing: ${a.TreatMissingData}` : "");
}

function actionsText(a) {
  const parts = [];
  for (const [label, list] of [["ALARM", a.AlarmActions], ["OK", a.OKActions], ["INSUFFICIENT_DATA", a.InsufficientDataActions]]) {
    if (list && list.length) parts.push(`${label} → ${list.join(", ")}`);
  }
  if (a.ActionsEnabled === false) parts.push("(actions disabled)");
  return parts.length ? parts.join("\n") : "none";
}
