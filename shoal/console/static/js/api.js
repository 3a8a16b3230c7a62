// The console's only way to the server: the public APIs, as an SDK calls them.
//
// DynamoDB: POST /, X-Amz-Target DynamoDB_20120810.<Op>, application/x-amz-json-1.0,
// signed for the service "dynamodb".  CloudWatch: the same with
// GraniteServiceVersion20100801.<Op>, signed for "monitoring".  Errors come
// back as ApiError carrying the API's own type and message.

import { sign } from "./sigv4.js";

const TARGETS = {
  dynamodb: "DynamoDB_20120810.",
  monitoring: "GraniteServiceVersion20100801.",
};

const STORAGE_KEY = "shoal.console.credentials";
const REGION_KEY = "shoal.console.region";
export const DEFAULT_REGION = "us-east-1";

// With auth off the server ignores who signed; the console still signs (with
// these) so that the region travels in the credential scope as an SDK's does.
const ANONYMOUS = { accessKeyId: "shoal-console", secretAccessKey: "shoal-console", sessionToken: "" };

// What an unauthenticated or badly signed request is answered with: the
// console then asks for credentials.
export const AUTH_ERRORS = new Set([
  "MissingAuthenticationTokenException", "MissingAuthenticationToken", "UnrecognizedClientException",
  "InvalidSignatureException", "IncompleteSignatureException", "IncompleteSignature", "ExpiredTokenException",
  "ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch",
]);

export class ApiError extends Error {
  constructor(type, message, status, requestId, operation) {
    super(message || type);
    this.type = type;
    this.apiMessage = message || "";
    this.status = status;
    this.requestId = requestId;
    this.operation = operation;
  }

  get isAuth() { return AUTH_ERRORS.has(this.type); }
}

/** The credentials signed in this browser tab (sessionStorage only), or null. */
export function storedCredentials() {
  try {
    const raw = sessionStorage.getItem(STORAGE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function storeCredentials(credentials) {
  sessionStorage.setItem(STORAGE_KEY, JSON.stringify(credentials));
  if (credentials.region) setRegion(credentials.region);
}

export function forgetCredentials() {
  sessionStorage.removeItem(STORAGE_KEY);
}

export function region() {
  return sessionStorage.getItem(REGION_KEY) || DEFAULT_REGION;
}

export function setRegion(value) {
  sessionStorage.setItem(REGION_KEY, value);
}

/**
 * Call `operation` of `service` ("dynamodb" or "monitoring") with `params`
 * (an object), or with `rawBody` (a string sent as is: the console sends
 * what the user typed when it is not JSON, so that the API judges it).
 */
export async function call(service, operation, params, { rawBody, credentials } = {}) {
  const body = rawBody !== undefined ? rawBody : JSON.stringify(params || {});
  const creds = credentials || storedCredentials() || ANONYMOUS;
  const regionName = (credentials && credentials.region) || region();
  const headers = await sign({
    host: location.host,
    headers: { "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": TARGETS[service] + operation },
    body, service, region: regionName, credentials: creds,
  });
  let response;
  try {
    response = await fetch("/", { method: "POST", headers, body, cache: "no-store", credentials: "omit" });
  } catch (exc) {
    throw new ApiError("NetworkError", `The server could not be reached (${exc.message}).`, 0, "", operation);
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = null;
  }
  if (response.ok && data !== null) return data;
  const requestId = response.headers.get("x-amzn-RequestId") || "";
  if (data === null) {
    throw new ApiError(`HTTP ${response.status}`, text.slice(0, 500), response.status, requestId, operation);
  }
  // CloudWatch (awsQueryCompatible) names its error by the query code in a header, as the SDKs report it.
  const queryError = response.headers.get("x-amzn-query-error");
  let type = queryError ? queryError.split(";")[0] : String(data.__type || data.code || `HTTP ${response.status}`);
  type = type.slice(type.lastIndexOf("#") + 1);
  const message = data.message ?? data.Message ?? "";
  const error = new ApiError(type, message, response.status, requestId, operation);
  // Stored credentials that stop working (an expired session token, a deleted key): the shell asks again.
  if (error.isAuth && !credentials) window.dispatchEvent(new CustomEvent("shoal:auth-refused", { detail: error }));
  throw error;
}

/** Every table name of the region (ListTables, all pages). */
export async function listAllTables(limit = 5000) {
  const names = [];
  let start;
  do {
    const page = await call("dynamodb", "ListTables", start ? { ExclusiveStartTableName: start } : {});
    names.push(...(page.TableNames || []));
    start = page.LastEvaluatedTableName;
  } while (start && names.length < limit);
  return names;
}

export const dynamodb = (operation, params, options) => call("dynamodb", operation, params, options);
export const cloudwatch = (operation, params, options) => call("monitoring", operation, params, options);
