// Small DOM and formatting helpers shared by the views.  Text always goes in
// as text nodes (never innerHTML), so item values cannot inject markup.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** An error box with the API's error type and message (and request id). */
export function errorBox(error, context) {
  const type = error.type || error.name || "Error";
  const message = error.apiMessage !== undefined ? error.apiMessage : error.message;
  return h("div", { class: "error", role: "alert", dataset: { errorType: type } },
    h("div", { class: "error-title" }, context ? `${context}: ` : "", h("strong", { class: "error-type" }, type)),
    message ? h("div", { class: "error-message" }, message) : null,
    error.requestId ? h("div", { class: "error-request" }, `Request id ${error.requestId}`) : null);
}

export function notice(text, kind = "info") {
  return h("div", { class: `notice notice-${kind}` }, text);
}

export function badge(text, kind) {
  const k = kind || String(text).toLowerCase().replace(/[^a-z_]/g, "");
  return h("span", { class: `badge badge-${k}` }, text);
}

export function formatBytes(n) {
  if (n === undefined || n === null) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = Number(n), i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
  return i === 0 ? `${value} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${units[i]}`;
}

export function formatNumber(n) {
  if (n === undefined || n === null) return "—";
  return Number(n).toLocaleString("en-US");
}

/** A timestamp as DynamoDB's and CloudWatch's JSON send it (epoch seconds), or ISO text. */
export function formatTime(value) {
  if (value === undefined || value === null || value === "") return "—";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  return date.toISOString().replace("T", " ").replace(/\.\d{3}Z$/, " UTC");
}

/** A short text of one DynamoDB attribute value ({"S": "x"} -> x), for table cells. */
export function shortValue(value) {
  if (!value || typeof value !== "object") return "";
  const [type, v] = Object.entries(value)[0] || [];
  switch (type) {
    case "S": case "N": return v;
    case "B": return `<binary ${v.length} b64>`;
    case "BOOL": return String(v);
    case "NULL": return "null";
    case "SS": case "NS": return `{${v.join(", ")}}`;
    case "BS": return `{${v.length} binaries}`;
    case "L": return `[${v.map(shortValue).join(", ")}]`;
    case "M": return `{${Object.entries(v).map(([k, x]) => `${k}: ${shortValue(x)}`).join(", ")}}`;
    default: return JSON.stringify(value);
  }
}

export function typeOf(value) {
  return value && typeof value === "object" ? Object.keys(value)[0] : "";
}

export function field(label, control, hint, size) {
  return h("label", { class: size ? `field field-${size}` : "field" }, h("span", { class: "field-label" }, label), control,
    hint ? h("span", { class: "field-hint" }, hint) : null);
}

export function select(options, value, attrs) {
  return h("select", attrs || {}, options.map(([v, label]) =>
    h("option", { value: v, selected: v === value }, label ?? v)));
}

/** A modal dialog; returns {close}. `body` is an element, `actions` buttons. */
export function modal(title, body, actions) {
  const backdrop = h("div", { class: "modal-backdrop" });
  const dialog = h("div", { class: "modal", role: "dialog", "aria-modal": "true", "aria-label": title },
    h("div", { class: "modal-head" }, h("h2", {}, title),
      h("button", { class: "icon-button", title: "Close", onclick: () => close() }, "×")),
    h("div", { class: "modal-body" }, body),
    h("div", { class: "modal-actions" }, actions));
  backdrop.append(dialog);
  const onKey = (event) => { if (event.key === "Escape") close(); };
  function close() {
    document.removeEventListener("keydown", onKey);
    backdrop.remove();
  }
  document.addEventListener("keydown", onKey);
  document.body.append(backdrop);
  return { close, dialog };
}

/** A button that shows a spinner state while `action` runs. */
export function busyButton(label, action, attrs = {}) {
  const button = h("button", { ...attrs, type: "button" }, label);
  button.addEventListener("click", async () => {
    if (button.disabled) return;
    button.disabled = true;
    button.classList.add("busy");
    try {
      await action();
    } finally {
      button.disabled = false;
      button.classList.remove("busy");
    }
  });
  return button;
}
