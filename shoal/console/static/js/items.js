// The item browser: Scan and Query builders over a table or one of its
// indexes, paging by LastEvaluatedKey, and items created, edited (PutItem of
// the edited DynamoDB JSON) and deleted (DeleteItem by key).  What is sent is
// shown beside the results, and what the API answers (an error's type and
// message included) is shown as it came.

import { dynamodb, listAllTables } from "./api.js";
import { busyButton, clear, errorBox, field, formatNumber, h, modal, notice, select, shortValue } from "./ui.js";

// Names and values of the console's own placeholders: unlikely to clash with the user's.
const PK_NAME = "#console_pk", SK_NAME = "#console_sk";
const PK_VALUE = ":console_pk", SK_VALUE = ":console_sk", SK_VALUE2 = ":console_sk2";
const SORT_OPERATORS = [["", "(no condition)"], ["=", "="], ["<", "<"], ["<=", "<="], [">", ">"], [">=", ">="],
  ["BETWEEN", "BETWEEN"], ["begins_with", "begins_with"]];

export function render(container, args, { navigate }) {
  const tableName = args[0];
  let alive = true;
  const head = h("div", { class: "view-head" }, h("h1", {}, "Items"));
  const body = h("div", {});
  clear(container, head, body);
  const picker = h("select", { id: "items-table", "aria-label": "Table" }, h("option", { value: "" }, "Choose a table…"));
  picker.addEventListener("change", () => picker.value && navigate("items", picker.value));
  head.append(picker);

  listAllTables().then((names) => {
    if (!alive) return;
    for (const name of names) picker.append(h("option", { value: name, selected: name === tableName }, name));
    if (!tableName) clear(body, notice(names.length ? "Choose a table to browse its items." : "No tables in this region."));
  }, (error) => alive && !tableName && clear(body, errorBox(error, "ListTables")));

  if (tableName) {
    clear(body, h("div", { class: "muted pad" }, "Loading…"));
    dynamodb("DescribeTable", { TableName: tableName }).then(
      (answer) => alive && browser(body, answer.Table),
      (error) => alive && clear(body, errorBox(error, "DescribeTable")));
  }
  return () => { alive = false; };
}

function attributeTypes(table) {
  const types = {};
  for (const a of table.AttributeDefinitions || []) types[a.AttributeName] = a.AttributeType;
  return types;
}

function keyNames(schema) {
  const hash = (schema || []).find((k) => k.KeyType === "HASH");
  const range = (schema || []).find((k) => k.KeyType === "RANGE");
  return { hash: hash && hash.AttributeName, range: range && range.AttributeName };
}

function typed(type, text) {
  return { [type || "S"]: text };
}

function parseJsonField(text, what) {
  if (!text.trim()) return undefined;
  try {
    const value = JSON.parse(text);
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw new Error("expected a JSON object");
    return value;
  } catch (exc) {
    const error = new Error(`${what} is not valid JSON: ${exc.message}`);
    error.type = "InvalidJSON";
    throw error;
  }
}

function browser(body, table) {
  const types = attributeTypes(table);
  const tableKeys = keyNames(table.KeySchema);
  const indexes = [...(table.GlobalSecondaryIndexes || []).map((i) => ({ ...i, kind: "GSI" })),
                   ...(table.LocalSecondaryIndexes || []).map((i) => ({ ...i, kind: "LSI" }))];
  let mode = "query";
  const pages = [undefined];
  let page = 0;

  // -- the builder -------------------------------------------------------------------------
  const modeScan = h("button", { id: "mode-scan", class: "tab", onclick: () => setMode("scan") }, "Scan");
  const modeQuery = h("button", { id: "mode-query", class: "tab", onclick: () => setMode("query") }, "Query");
  const indexSelect = select([["", `${table.TableName} (table)`], ...indexes.map((i) => [i.IndexName, `${i.IndexName} (${i.kind})`])],
    "", { id: "index-select" });
  const pkLabel = h("span", { class: "mono" });
  const pkValue = h("input", { id: "pk-value", spellcheck: "false", placeholder: "value" });
  const skLabel = h("span", { class: "mono" });
  const skOp = select(SORT_OPERATORS, "", { id: "sk-op" });
  const skValue = h("input", { id: "sk-value", spellcheck: "false", placeholder: "value" });
  const skValue2 = h("input", { id: "sk-value2", spellcheck: "false", placeholder: "and value" });
  const filter = h("input", { id: "filter-expression", spellcheck: "false", placeholder: "e.g. #t = :t AND position_s > :p" });
  const names = h("input", { id: "names-json", class: "mono", spellcheck: "false", placeholder: '{"#t": "event_type"}' });
  const values = h("input", { id: "values-json", class: "mono", spellcheck: "false", placeholder: '{":t": {"S": "play"}}' });
  const limit = h("input", { id: "limit", type: "number", min: 1, value: 25 });
  const order = select([["forward", "Ascending (forward)"], ["backward", "Descending (backward)"]], "forward", { id: "order" });
  const consistent = h("input", { id: "consistent", type: "checkbox" });
  const keyRow = h("div", { class: "form-row" },
    field(h("span", {}, "Partition key ", pkLabel, " ="), pkValue),
    h("div", { class: "sort-condition" }, field(h("span", {}, "Sort key ", skLabel), skOp), skValue, skValue2));
  const orderField = field("Order", order);
  const run = h("button", { id: "run", class: "primary", type: "submit" }, "Run");
  const form = h("form", { class: "card builder", id: "builder" },
    h("div", { class: "tabs" }, modeQuery, modeScan, h("span", { class: "spacer" }),
      h("button", { id: "new-item", type: "button", onclick: () => editItem(null) }, "+ Create item")),
    h("div", { class: "form-row" }, field("Table or index", indexSelect, null, "wide"), field("Limit", limit, null, "narrow"),
      orderField, field("Consistent read", consistent, null, "narrow")),
    keyRow,
    h("div", { class: "form-row" }, field("Filter expression", filter, null, "wide"),
      field("Expression attribute names (JSON)", names), field("Expression attribute values (DynamoDB JSON)", values),
      h("div", { class: "form-actions" }, run)));
  form.addEventListener("submit", (event) => { event.preventDefault(); pages.length = 1; page = 0; execute(); });
  indexSelect.addEventListener("change", updateKeys);
  skOp.addEventListener("change", updateKeys);

  const status = h("div", { id: "items-status" });
  const results = h("div", { class: "card results" });
  const requestView = h("pre", { class: "request mono" });
  const pager = h("div", { class: "pager" });
  clear(body, form, status, results, pager, h("details", { class: "request-details" },
    h("summary", {}, "Request sent"), requestView));

  function currentSchema() {
    const index = indexes.find((i) => i.IndexName === indexSelect.value);
    return index ? index.KeySchema : table.KeySchema;
  }

  function updateKeys() {
    const keys = keyNames(currentSchema());
    pkLabel.textContent = `${keys.hash} (${types[keys.hash] || "?"})`;
    skLabel.textContent = keys.range ? `${keys.range} (${types[keys.range] || "?"})` : "(none)";
    skOp.disabled = skValue.disabled = !keys.range;
    skValue.hidden = !skOp.value;
    skValue2.hidden = skOp.value !== "BETWEEN";
  }

  function setMode(next) {
    mode = next;
    modeScan.classList.toggle("active", mode === "scan");
    modeQuery.classList.toggle("active", mode === "query");
    keyRow.hidden = mode === "scan";
    orderField.hidden = mode === "scan";
    run.textContent = mode === "scan" ? "Run scan" : "Run query";
  }

  function buildRequest() {
    const request = { TableName: table.TableName, ReturnConsumedCapacity: "TOTAL" };
    if (indexSelect.value) request.IndexName = indexSelect.value;
    const userNames = parseJsonField(names.value, "Expression attribute names");
    const userValues = parseJsonField(values.value, "Expression attribute values");
    const allNames = { ...(userNames || {}) };
    const allValues = { ...(userValues || {}) };
    if (mode === "query") {
      const keys = keyNames(currentSchema());
      allNames[PK_NAME] = keys.hash;
      allValues[PK_VALUE] = typed(types[keys.hash], pkValue.value);
      let condition = `${PK_NAME} = ${PK_VALUE}`;
      if (keys.range && skOp.value) {
        allNames[SK_NAME] = keys.range;
        allValues[SK_VALUE] = typed(types[keys.range], skValue.value);
        if (skOp.value === "BETWEEN") {
          allValues[SK_VALUE2] = typed(types[keys.range], skValue2.value);
          condition += ` AND ${SK_NAME} BETWEEN ${SK_VALUE} AND ${SK_VALUE2}`;
        } else if (skOp.value === "begins_with") {
          condition += ` AND begins_with(${SK_NAME}, ${SK_VALUE})`;
        } else {
          condition += ` AND ${SK_NAME} ${skOp.value} ${SK_VALUE}`;
        }
      }
      request.KeyConditionExpression = condition;
      request.ScanIndexForward = order.value === "forward";
    }
    if (filter.value.trim()) request.FilterExpression = filter.value.trim();
    if (Object.keys(allNames).length) request.ExpressionAttributeNames = allNames;
    if (Object.keys(allValues).length) request.ExpressionAttributeValues = allValues;
    if (limit.value) request.Limit = Number(limit.value);
    if (consistent.checked) request.ConsistentRead = true;
    if (pages[page]) request.ExclusiveStartKey = pages[page];
    return request;
  }

  // `note` (what the last write did) stays above the refreshed results.
  async function execute(note) {
    let request;
    try {
      request = buildRequest();
    } catch (error) {
      clear(status, errorBox(error));
      return;
    }
    const operation = mode === "scan" ? "Scan" : "Query";
    requestView.textContent = `${operation}\n${JSON.stringify(request, null, 2)}`;
    clear(status, note || null, h("div", { class: "muted" }, `Running ${operation}…`));
    let answer;
    try {
      answer = await dynamodb(operation, request);
    } catch (error) {
      clear(status, note || null, errorBox(error, operation));
      clear(results);
      clear(pager);
      return;
    }
    pages.length = page + 1;
    if (answer.LastEvaluatedKey) pages.push(answer.LastEvaluatedKey);
    const consumed = answer.ConsumedCapacity ? ` · ${answer.ConsumedCapacity.CapacityUnits} RCU consumed` : "";
    clear(status, note || null, h("div", { class: "muted result-line", id: "result-line" },
      `${operation}: ${formatNumber(answer.Count)} items returned, ${formatNumber(answer.ScannedCount)} evaluated${consumed}`));
    showItems(answer.Items || []);
    clear(pager,
      h("button", { id: "previous-page", disabled: page === 0, onclick: () => { page -= 1; execute(); } }, "‹ Previous"),
      h("span", { class: "muted" }, `Page ${page + 1}`),
      h("button", { id: "next-page", disabled: !answer.LastEvaluatedKey, onclick: () => { page += 1; execute(); } }, "Next ›"));
  }

  function columnsOf(items) {
    const keys = [tableKeys.hash, tableKeys.range, ...indexes.flatMap((i) => i.KeySchema.map((k) => k.AttributeName))]
      .filter(Boolean);
    const seen = new Set(keys);
    const others = new Set();
    for (const item of items) for (const name of Object.keys(item)) if (!seen.has(name)) others.add(name);
    const present = keys.filter((k, i) => keys.indexOf(k) === i && items.some((item) => k in item));
    return [...present, ...[...others].sort()];
  }

  function showItems(items) {
    if (!items.length) {
      clear(results, h("div", { class: "muted pad", id: "no-items" }, "No items."));
      return;
    }
    const columns = columnsOf(items);
    clear(results, h("div", { class: "scroll" }, h("table", { class: "grid items", id: "items-results" },
      h("thead", {}, h("tr", {}, h("th", {}, ""), columns.map((c) => h("th", { class: "mono" }, c)))),
      h("tbody", {}, items.map((item) => h("tr", { dataset: { key: JSON.stringify(keyOf(item)) } },
        h("td", { class: "actions" },
          h("button", { class: "small edit-item", onclick: () => editItem(item) }, "View / edit"),
          h("button", { class: "small danger delete-item", onclick: () => deleteItem(item) }, "Delete")),
        columns.map((c) => {
          const text = c in item ? shortValue(item[c]) : "";
          return h("td", { class: "mono", title: text }, text.length > 80 ? text.slice(0, 79) + "…" : text);
        })))))));
  }

  function keyOf(item) {
    const key = {};
    for (const name of [tableKeys.hash, tableKeys.range]) if (name && item[name]) key[name] = item[name];
    return key;
  }

  function template() {
    const item = {};
    for (const name of [tableKeys.hash, tableKeys.range]) {
      if (name) item[name] = typed(types[name], types[name] === "N" ? "0" : "");
    }
    return item;
  }

  function editItem(item) {
    const text = h("textarea", { id: "item-json", class: "mono", rows: 18, spellcheck: "false" },
      JSON.stringify(item || template(), null, 2));
    const message = h("div", { id: "item-message" });
    const save = busyButton("Save (PutItem)", async () => {
      const raw = text.value;
      let parsed, parseProblem = null;
      try {
        parsed = JSON.parse(raw);
      } catch (exc) {
        parseProblem = exc.message;
      }
      // JSON the browser cannot read is still sent: the API's own answer
      // (SerializationException) is the error the user gets, as any client would.
      const options = parseProblem === null ? undefined
        : { rawBody: `{"TableName":${JSON.stringify(table.TableName)},"ReturnConsumedCapacity":"TOTAL","Item":${raw}}` };
      try {
        const answer = await dynamodb("PutItem", { TableName: table.TableName, Item: parsed, ReturnConsumedCapacity: "TOTAL" },
          options);
        dialog.close();
        const units = answer.ConsumedCapacity ? ` (${answer.ConsumedCapacity.CapacityUnits} WCU)` : "";
        execute(notice(`Item saved with PutItem${units}.`, "success"));
      } catch (error) {
        clear(message, errorBox(error, "PutItem"),
          parseProblem ? h("div", { class: "hint" }, `The text is not valid JSON: ${parseProblem}`) : null);
      }
    }, { id: "save-item", class: "primary" });
    const dialog = modal(item ? "Item (DynamoDB JSON)" : "New item (DynamoDB JSON)",
      h("div", {}, h("p", { class: "muted" }, "Saving writes the whole item with PutItem. Changing a key attribute " +
        "writes a new item and leaves the old one."), text, message),
      [h("button", { onclick: () => dialog.close() }, "Cancel"), save]);
    text.focus();
  }

  function deleteItem(item) {
    const key = keyOf(item);
    const message = h("div", { id: "delete-message" });
    const confirm = busyButton("Delete", async () => {
      try {
        await dynamodb("DeleteItem", { TableName: table.TableName, Key: key });
        dialog.close();
        execute(notice("Item deleted.", "success"));
      } catch (error) {
        clear(message, errorBox(error, "DeleteItem"));
      }
    }, { id: "confirm-delete", class: "danger" });
    const dialog = modal("Delete this item?",
      h("div", {}, h("p", {}, "DeleteItem with the key:"), h("pre", { class: "mono request" }, JSON.stringify(key, null, 2)), message),
      [h("button", { onclick: () => dialog.close() }, "Cancel"), confirm]);
  }

  updateKeys();
  setMode("scan");
  execute(); // a first page of the table, as a scan
}
