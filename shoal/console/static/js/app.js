// The console's shell: finds out whether the server wants credentials, shows
// the sign-in when it does, and routes #/<view>/<argument> to the views.
//
// Whether auth is on is learnt the way a client would: a ListTables signed
// with placeholder credentials either works (auth off: the server ignores
// signatures) or is refused with an authentication error (auth on).

import {
  ApiError, DEFAULT_REGION, dynamodb, forgetCredentials, region, setRegion, storeCredentials, storedCredentials,
} from "./api.js";
import { cryptoKind } from "./sigv4.js";
import { clear, errorBox, field, h } from "./ui.js";
import * as tables from "./tables.js";
import * as items from "./items.js";
import * as metrics from "./metrics.js";
import * as alarms from "./alarms.js";

const VIEWS = { tables, items, metrics, alarms };
const main = document.getElementById("main");
const session = document.getElementById("session");

// What tests and curious users can inspect from the page (the charts' data, the auth state).
const state = { auth: "unknown", view: null, charts: {}, ready: false };
window.shoalConsole = state;

let cleanup = null;

async function probe(credentials) {
  try {
    await dynamodb("ListTables", { Limit: 1 }, credentials ? { credentials } : undefined);
    return null;
  } catch (error) {
    if (error instanceof ApiError && error.isAuth) return error;
    return null; // any other answer (AccessDeniedException...) means the signature was accepted
  }
}

function renderSession() {
  const credentials = storedCredentials();
  const regionInput = h("input", { class: "region-input", value: region(), size: 12, title: "Region",
    "aria-label": "Region", spellcheck: "false" });
  regionInput.addEventListener("change", () => {
    setRegion(regionInput.value.trim() || DEFAULT_REGION);
    const stored = storedCredentials();
    if (stored) storeCredentials({ ...stored, region: region() });
    route();
  });
  clear(session,
    state.auth === "signed-out" ? null : [h("span", { class: "session-label" }, "Region"), regionInput],
    state.auth === "signed-in" && credentials
      ? [h("span", { class: "session-user", title: "Access key id" }, credentials.accessKeyId),
         h("button", { class: "link-button", id: "sign-out", onclick: signOut }, "Sign out")]
      : state.auth === "anonymous" ? h("span", { class: "session-user muted" }, "auth off") : null);
  document.getElementById("footer").textContent =
    `Shoal console · requests signed with SigV4 (${cryptoKind === "webcrypto" ? "WebCrypto" : "JavaScript"} SHA-256)` +
    " · every action goes through the DynamoDB and CloudWatch APIs";
}

function signOut() {
  forgetCredentials();
  state.auth = "signed-out";
  renderSession();
  showSignIn(null);
}

function showSignIn(error) {
  if (cleanup) { cleanup(); cleanup = null; }
  state.view = "signin";
  document.body.classList.add("signed-out");
  const key = h("input", { name: "accessKeyId", id: "access-key-id", autocomplete: "username", required: true,
    spellcheck: "false" });
  const secret = h("input", { name: "secretAccessKey", id: "secret-access-key", type: "password",
    autocomplete: "current-password", required: true });
  const token = h("input", { name: "sessionToken", id: "session-token", spellcheck: "false" });
  const regionInput = h("input", { name: "region", id: "sign-in-region", value: region(), required: true });
  const message = h("div", { class: "sign-in-message" }, error ? errorBox(error) : null);
  const submit = h("button", { type: "submit", class: "primary", id: "sign-in" }, "Sign in");
  const form = h("form", { class: "sign-in", autocomplete: "on" },
    h("h1", {}, "Sign in to Shoal"),
    h("p", { class: "muted" }, "This server checks every request's signature (--auth sigv4). The console signs " +
      "each request with these credentials, so IAM policies apply to everything you do here. They are kept " +
      "in this tab's session storage only."),
    field("Access key ID", key), field("Secret access key", secret),
    field("Session token", token, "Only for temporary credentials (STS)"), field("Region", regionInput),
    submit, message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    const credentials = { accessKeyId: key.value.trim(), secretAccessKey: secret.value,
      sessionToken: token.value.trim(), region: regionInput.value.trim() || DEFAULT_REGION };
    clear(message, h("div", { class: "muted" }, "Checking…"));
    const refused = await probe(credentials);
    submit.disabled = false;
    if (refused) {
      clear(message, errorBox(refused, "Sign-in refused"));
      return;
    }
    storeCredentials(credentials);
    state.auth = "signed-in";
    document.body.classList.remove("signed-out");
    renderSession();
    route();
  });
  clear(main, h("div", { class: "sign-in-page" }, form));
  renderSession();
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const view = VIEWS[parts[0]] ? parts[0] : "tables";
  return { view, args: parts.slice(1).filter((p) => p !== "") };
}

export function navigate(view, ...args) {
  location.hash = "#/" + [view, ...args].map(encodeURIComponent).join("/");
}

function route() {
  if (state.auth === "signed-out" || state.auth === "unknown") return;
  if (cleanup) { cleanup(); cleanup = null; }
  const { view, args } = parseHash();
  state.view = view;
  for (const link of document.querySelectorAll("#nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  const container = h("div", { class: `view view-${view}` });
  clear(main, container);
  try {
    cleanup = VIEWS[view].render(container, args, { navigate, state }) || null;
  } catch (error) {
    clear(container, errorBox(error, "The console failed"));
  }
}

async function start() {
  const stored = storedCredentials();
  const refused = await probe(stored);
  if (refused) {
    if (stored) forgetCredentials();
    state.auth = "signed-out";
    state.ready = true;
    // With nothing stored the refusal only says auth is on: the form is the answer, not an error.
    showSignIn(stored ? refused : null);
    return;
  }
  state.auth = stored ? "signed-in" : "anonymous";
  state.ready = true;
  renderSession();
  route();
}

window.addEventListener("hashchange", route);
window.addEventListener("shoal:auth-refused", (event) => {
  if (state.auth !== "signed-in") return;
  forgetCredentials();
  state.auth = "signed-out";
  showSignIn(event.detail);
});
window.addEventListener("unhandledrejection", (event) => {
  // Never a blank page: an error no view caught is shown where the view was.
  const error = event.reason;
  main.prepend(errorBox(error instanceof Error ? error : new Error(String(error)), "Unexpected error"));
});
start();
