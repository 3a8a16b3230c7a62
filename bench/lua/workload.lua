-- wrk script: one viewer-events workload against a DynamoDB endpoint.
--
--   wrk -t1 -c16 -d10s -s bench/lua/workload.lua http://127.0.0.1:8000/ -- \
--       mode=point counts=/path/counts.txt base_ms=1764000000000 hour=2025112712
--
-- BENCH_LUA_DIR must name this folder (for require).  Modes: put, get, query,
-- ingest (BatchWriteItem of 25), counter (UpdateItem ADD), app (70% latest-20
-- Query, 20% PutItem, 10% conditional continue-watching UpdateItem), point
-- (90% GetItem, 10% PutItem).  done() prints one line "BENCH_JSON {...}" with
-- the request count, latency percentiles (microseconds) and every error,
-- by kind and by DynamoDB error type; nothing is dropped.

package.path = (os.getenv("BENCH_LUA_DIR") or ".") .. "/?.lua;" .. package.path
local ev = require("events")

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("thread_id", #threads)
end

local TARGETS = { put = "PutItem", get = "GetItem", query = "Query", ingest = "BatchWriteItem",
  counter = "UpdateItem", progress = "UpdateItem" }
local heads = {}
local make

-- `errs` and `misses` are read by done() through thread:get, so they must be globals;
-- an answer "{}" is counted: in the get mode that is a GetItem that found no item (the keys
-- disagree with the preload); writes answer "{}" normally
errs = {}
misses = 0

local function header(host, target)
  return "POST / HTTP/1.1\r\nHost: " .. host .. "\r\nContent-Type: application/x-amz-json-1.0\r\n"
    .. "X-Amz-Target: DynamoDB_20120810." .. target .. "\r\nX-Amz-Date: 20240101T000000Z\r\n"
    .. "Authorization: AWS4-HMAC-SHA256 Credential=bench/20240101/us-east-1/dynamodb/aws4_request, "
    .. "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature="
    .. string.rep("0", 64) .. "\r\nContent-Length: "
end

local function req(op, body)
  return heads[op] .. #body .. "\r\n\r\n" .. body
end

local function parse(args)
  local out = {}
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then out[k] = v end
  end
  return out
end

function init(args)
  local opts = parse(args)
  local id = thread_id or 1
  math.randomseed(tonumber(opts.seed or "1") * 1000 + id)
  ev.load_counts(opts.counts)
  local host = wrk.host .. ":" .. wrk.port
  for op, target in pairs(TARGETS) do heads[op] = header(host, target) end

  -- new events get fresh sort keys: base_ms plus a per-thread counter, so that
  -- concurrent threads never collide; "updated_at" for continue watching moves
  -- forward the same way, in microseconds
  local base_ms, nthreads, counter = tonumber(opts.base_ms), tonumber(opts.threads or "1"), 0
  local function next_ts()
    counter = counter + 1
    return base_ms + counter * nthreads + id
  end
  local function next_us()
    counter = counter + 1
    return base_ms * 1000 + counter * nthreads + id
  end
  local hour = opts.hour or "2025010100"

  local ops = {
    put = function() return req("put", ev.put_body(next_ts())) end,
    get = function() return req("get", ev.get_body()) end,
    query = function() return req("query", ev.query_body()) end,
    ingest = function() return req("ingest", ev.batch_body(next_ts)) end,
    counter = function() return req("counter", ev.counter_body(hour)) end,
    progress = function() return req("progress", ev.progress_body(next_us())) end,
  }
  local random = math.random
  ops.app = function()
    local x = random()
    if x < 0.7 then return ops.query() elseif x < 0.9 then return ops.put() end
    return ops.progress()
  end
  ops.point = function()
    if random() < 0.9 then return ops.get() end
    return ops.put()
  end
  make = ops[opts.mode]
  if make == nil then error("unknown mode " .. tostring(opts.mode)) end
end

function request()
  return make()
end

function response(status, headers, body)
  if status == 200 then
    if #body == 2 then misses = misses + 1 end
  else
    local kind = body:match('"__type"%s*:%s*"[^"]-#?([%w%.]+)"') or ("HTTP " .. status)
    errs[kind] = (errs[kind] or 0) + 1
  end
end

local function json_table(t)
  local parts = {}
  for k, v in pairs(t) do parts[#parts + 1] = string.format("%q:%d", k, v) end
  return "{" .. table.concat(parts, ",") .. "}"
end

function done(summary, latency, requests)
  local types, missed = {}, 0
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("errs") or {}) do types[k] = (types[k] or 0) + v end
    missed = missed + (thread:get("misses") or 0)
  end
  local e = summary.errors
  local pct = {}
  for _, p in ipairs({ 50, 90, 99, 99.9, 99.99 }) do
    pct[#pct + 1] = string.format('"p%s":%d', tostring(p), latency:percentile(p))
  end
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"non2xx":%d,'
    .. '"error_types":%s,"empty_answers":%d,"latency_us":{%s,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.timeout, e.status,
    json_table(types), missed, table.concat(pct, ","), latency.mean, latency.max))
end
