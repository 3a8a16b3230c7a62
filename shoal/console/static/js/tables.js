// Tables and schemas: ListTables (paged), and per table DescribeTable,
// DescribeTimeToLive, DescribeContinuousBackups and ListBackups, each shown
// where it belongs; a call that fails (AccessDeniedException...) shows its
// error in its own section and the rest of the card still renders.

import { dynamodb } from "./api.js";
import { badge, busyButton, clear, errorBox, formatBytes, formatNumber, formatTime, h, notice } from "./ui.js";

const PAGE = 20;

export function render(container, args, { navigate }) {
  const pages = [undefined]; // ExclusiveStartTableName of each page seen
  let alive = true;
  const summary = h("div", { class: "card" });
  const details = h("div", { class: "table-cards" });
  const pager = h("div", { class: "pager" });
  clear(container,
    h("div", { class: "view-head" }, h("h1", {}, "Tables"),
      h("span", { class: "muted" }, "Key schemas, attribute definitions, indexes, streams, TTL, PITR and backups"),
      busyButton("Refresh", () => load(pages.length - 1))),
    summary, pager, details);

  async function load(index) {
    clear(summary, h("div", { class: "muted pad" }, "Loading tables…"));
    clear(details);
    let listed;
    try {
      listed = await dynamodb("ListTables", { Limit: PAGE, ...(pages[index] ? { ExclusiveStartTableName: pages[index] } : {}) });
    } catch (error) {
      if (alive) clear(summary, errorBox(error, "ListTables"));
      return;
    }
    if (!alive) return;
    pages.length = index + 1;
    if (listed.LastEvaluatedTableName) pages.push(listed.LastEvaluatedTableName);
    renderPager(index, Boolean(listed.LastEvaluatedTableName));
    const names = listed.TableNames || [];
    if (!names.length) {
      clear(summary, notice(index === 0 ? "No tables in this region yet. Create one with the API, e.g. " +
        "aws dynamodb create-table --endpoint-url " + location.origin + " …" : "No more tables."));
      return;
    }
    const infos = await Promise.all(names.map(describeAll));
    if (!alive) return;
    clear(summary, h("div", { class: "scroll" }, summaryTable(infos, navigate)));
    clear(details, infos.map((info) => tableCard(info, navigate)));
  }

  function renderPager(index, more) {
    pager.classList.toggle("single", index === 0 && !more);
    clear(pager,
      h("button", { disabled: index === 0, onclick: () => load(index - 1) }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${index + 1}`),
      h("button", { disabled: !more, onclick: () => load(index + 1) }, "Next ›"));
  }

  load(0);
  return () => { alive = false; };
}

async function settle(promise) {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}

async function describeAll(name) {
  const [table, ttl, backups, list] = await Promise.all([
    settle(dynamodb("DescribeTable", { TableName: name })),
    settle(dynamodb("DescribeTimeToLive", { TableName: name })),
    settle(dynamodb("DescribeContinuousBackups", { TableName: name })),
    settle(dynamodb("ListBackups", { TableName: name })),
  ]);
  return { name, table, ttl, backups, list };
}

function attributeTypes(table) {
  const types = {};
  for (const a of table.AttributeDefinitions || []) types[a.AttributeName] = a.AttributeType;
  return types;
}

const TYPE_NAMES = { S: "String", N: "Number", B: "Binary" };

function keyText(schema, types) {
  return (schema || []).map((k) => `${k.AttributeName} (${k.KeyType === "HASH" ? "partition" : "sort"}` +
    `${types[k.AttributeName] ? ", " + types[k.AttributeName] : ""})`).join(" + ");
}

function ttlText(info) {
  if (info.ttl.error) return info.ttl.error.type;
  const d = info.ttl.value.TimeToLiveDescription || {};
  return d.AttributeName ? `${d.TimeToLiveStatus} (${d.AttributeName})` : d.TimeToLiveStatus || "DISABLED";
}

function pitrText(info) {
  if (info.backups.error) return info.backups.error.type;
  const d = (info.backups.value.ContinuousBackupsDescription || {}).PointInTimeRecoveryDescription || {};
  return d.PointInTimeRecoveryStatus || "DISABLED";
}

function summaryTable(infos, navigate) {
  return h("table", { class: "grid", id: "tables-summary" },
    h("thead", {}, h("tr", {}, ["Table", "Status", "Keys", "Indexes", "Items", "Size", "Capacity", "Stream",
      "TTL", "PITR", "Backups", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, infos.map((info) => {
      if (info.table.error) {
        return h("tr", {}, h("td", {}, info.name), h("td", { colspan: 11 }, errorBox(info.table.error, "DescribeTable")));
      }
      const t = info.table.value.Table;
      const types = attributeTypes(t);
      const indexes = (t.GlobalSecondaryIndexes || []).length + (t.LocalSecondaryIndexes || []).length;
      const stream = t.StreamSpecification && t.StreamSpecification.StreamEnabled
        ? t.StreamSpecification.StreamViewType : "off";
      return h("tr", { dataset: { table: t.TableName } },
        h("td", {}, h("a", { href: `#table-${cssId(t.TableName)}`, onclick: (e) => {
          e.preventDefault();
          document.getElementById(`table-${cssId(t.TableName)}`).scrollIntoView({ behavior: "smooth" });
        } }, t.TableName)),
        h("td", {}, badge(t.TableStatus)),
        h("td", { class: "mono" }, keyText(t.KeySchema, types)),
        h("td", { class: "num" }, indexes),
        h("td", { class: "num" }, formatNumber(t.ItemCount)),
        h("td", { class: "num" }, formatBytes(t.TableSizeBytes)),
        h("td", {}, billing(t)),
        h("td", {}, stream),
        h("td", {}, ttlText(info)),
        h("td", {}, pitrText(info)),
        h("td", { class: "num" }, info.list.error ? info.list.error.type : (info.list.value.BackupSummaries || []).length),
        h("td", { class: "actions" },
          h("button", { class: "small", onclick: () => navigate("items", t.TableName) }, "Items"),
          h("button", { class: "small", onclick: () => navigate("metrics", t.TableName) }, "Metrics")));
    })));
}

function cssId(name) {
  return name.replace(/[^A-Za-z0-9_-]/g, "_");
}

function billing(t) {
  const mode = (t.BillingModeSummary && t.BillingModeSummary.BillingMode) || "PROVISIONED";
  if (mode === "PAY_PER_REQUEST") return "On-demand";
  const p = t.ProvisionedThroughput || {};
  return `Provisioned ${p.ReadCapacityUnits ?? "?"} RCU / ${p.WriteCapacityUnits ?? "?"} WCU`;
}

function definitionList(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

function keyTable(schema, types, extraClass) {
  return h("table", { class: `grid compact ${extraClass || ""}` },
    h("thead", {}, h("tr", {}, h("th", {}, "Attribute"), h("th", {}, "Key"), h("th", {}, "Type"))),
    h("tbody", {}, (schema || []).map((k) => h("tr", {},
      h("td", { class: "mono" }, k.AttributeName),
      h("td", {}, k.KeyType === "HASH" ? "Partition key (HASH)" : "Sort key (RANGE)"),
      h("td", {}, types[k.AttributeName] ? `${types[k.AttributeName]} · ${TYPE_NAMES[types[k.AttributeName]]}` : "—")))));
}

function projectionText(p) {
  if (!p) return "—";
  if (p.ProjectionType === "INCLUDE") return `INCLUDE ${(p.NonKeyAttributes || []).join(", ")}`;
  return p.ProjectionType;
}

function indexSection(t, types) {
  const rows = [];
  for (const [kind, list] of [["Global", t.GlobalSecondaryIndexes], ["Local", t.LocalSecondaryIndexes]]) {
    for (const i of list || []) {
      rows.push(h("tr", { dataset: { index: i.IndexName } },
        h("td", { class: "mono" }, i.IndexName),
        h("td", {}, kind),
        h("td", { class: "mono" }, keyText(i.KeySchema, types)),
        h("td", { class: "mono projection" }, projectionText(i.Projection)),
        h("td", {}, i.IndexStatus ? badge(i.IndexStatus) : "—"),
        h("td", { class: "num" }, formatNumber(i.ItemCount)),
        h("td", { class: "num" }, formatBytes(i.IndexSizeBytes)),
        h("td", {}, kind === "Global" && i.ProvisionedThroughput && i.ProvisionedThroughput.ReadCapacityUnits
          ? `${i.ProvisionedThroughput.ReadCapacityUnits} RCU / ${i.ProvisionedThroughput.WriteCapacityUnits} WCU`
          : kind === "Global" ? "On-demand" : "table's")));
    }
  }
  if (!rows.length) return h("p", { class: "muted" }, "No secondary indexes.");
  return h("table", { class: "grid compact indexes" },
    h("thead", {}, h("tr", {}, ["Index", "Kind", "Key schema", "Projection", "Status", "Items", "Size", "Capacity"]
      .map((x) => h("th", {}, x)))),
    h("tbody", {}, rows));
}

function section(title, ...content) {
  return h("section", { class: "card-section" }, h("h3", {}, title), content);
}

function tableCard(info, navigate) {
  if (info.table.error) {
    return h("article", { class: "card table-card" }, h("h2", {}, info.name), errorBox(info.table.error, "DescribeTable"));
  }
  const t = info.table.value.Table;
  const types = attributeTypes(t);
  const stream = t.StreamSpecification || {};
  let ttl;
  if (info.ttl.error) ttl = errorBox(info.ttl.error, "DescribeTimeToLive");
  else {
    const d = info.ttl.value.TimeToLiveDescription || {};
    ttl = definitionList([["Status", badge(d.TimeToLiveStatus || "DISABLED")], ["Attribute", d.AttributeName]]);
  }
  let pitr;
  if (info.backups.error) pitr = errorBox(info.backups.error, "DescribeContinuousBackups");
  else {
    const c = info.backups.value.ContinuousBackupsDescription || {};
    const p = c.PointInTimeRecoveryDescription || {};
    pitr = definitionList([
      ["Status", badge(p.PointInTimeRecoveryStatus || "DISABLED")],
      p.EarliestRestorableDateTime !== undefined && ["Earliest restorable", formatTime(p.EarliestRestorableDateTime)],
      p.LatestRestorableDateTime !== undefined && ["Latest restorable", formatTime(p.LatestRestorableDateTime)],
      p.RecoveryPeriodInDays !== undefined && ["Recovery period", `${p.RecoveryPeriodInDays} days`],
      ["Continuous backups", c.ContinuousBackupsStatus]]);
  }
  let backups;
  if (info.list.error) backups = errorBox(info.list.error, "ListBackups");
  else {
    const list = info.list.value.BackupSummaries || [];
    backups = h("div", {}, h("div", { class: "big-number", dataset: { backups: list.length } }, formatNumber(list.length),
      h("span", { class: "muted" }, list.length === 1 ? " backup" : " backups")),
    list.slice(0, 3).map((b) => h("div", { class: "small-line" }, `${b.BackupName} · ${b.BackupStatus} · ` +
      `${formatTime(b.BackupCreationDateTime)} · ${formatBytes(b.BackupSizeBytes)}`)));
  }
  return h("article", { class: "card table-card", id: `table-${cssId(t.TableName)}`, dataset: { table: t.TableName } },
    h("div", { class: "card-head" },
      h("h2", {}, t.TableName), badge(t.TableStatus),
      h("span", { class: "muted" }, billing(t)),
      h("span", { class: "spacer" }),
      h("button", { onclick: () => navigate("items", t.TableName) }, "Browse items"),
      h("button", { onclick: () => navigate("metrics", t.TableName) }, "Metrics")),
    h("div", { class: "card-grid" },
      section("Key schema", keyTable(t.KeySchema, types, "key-schema")),
      section("Attribute definitions", h("table", { class: "grid compact attribute-definitions" },
        h("thead", {}, h("tr", {}, h("th", {}, "Attribute"), h("th", {}, "Type"))),
        h("tbody", {}, (t.AttributeDefinitions || []).map((a) => h("tr", {},
          h("td", { class: "mono" }, a.AttributeName), h("td", {}, `${a.AttributeType} · ${TYPE_NAMES[a.AttributeType]}`)))))),
      section("Overview", definitionList([
        ["Items", formatNumber(t.ItemCount)], ["Size", formatBytes(t.TableSizeBytes)],
        ["Capacity", billing(t)],
        ["Table class", (t.TableClassSummary && t.TableClassSummary.TableClass) || "STANDARD"],
        ["Deletion protection", t.DeletionProtectionEnabled ? "on" : "off"],
        ["Created", formatTime(t.CreationDateTime)]]))),
    section("Secondary indexes", indexSection(t, types)),
    h("div", { class: "card-grid" },
      section("Stream", definitionList([
        ["Enabled", stream.StreamEnabled ? badge("ENABLED") : badge("DISABLED")],
        stream.StreamEnabled && ["View type", stream.StreamViewType],
        t.LatestStreamLabel && ["Label", h("span", { class: "mono" }, t.LatestStreamLabel)]])),
      section("Time to live", ttl),
      section("Point-in-time recovery", pitr),
      section("Backups", backups)),
    h("div", { class: "arn mono muted" }, t.TableArn || ""));
}
