-- wrk script: the viewer-events workload (workload.lua) spread over several
-- Shoal nodes, wrk's thread i sending to node i (of BENCH_NODES, a comma-separated
-- list of host:port, one per thread, cycled when there are more threads).
--
--   BENCH_LUA_DIR=bench/lua BENCH_NODES=127.0.0.1:8001,127.0.0.1:8002 \
--   wrk -t2 -c16 -d10s -s bench/lua/nodes.lua http://127.0.0.1:8001/ -- mode=get counts=... threads=2
--
-- Requests, errors and latency percentiles are workload.lua's, over all the
-- threads (so over all the nodes); done() adds one line "BENCH_NODES [n1,n2,...]":
-- the answers each thread (node) got.

local dir = os.getenv("BENCH_LUA_DIR") or "."
dofile(dir .. "/workload.lua")

local workload_setup, workload_response, workload_done = setup, response, done
local nodes = {}
for entry in string.gmatch(os.getenv("BENCH_NODES") or "", "[^,]+") do nodes[#nodes + 1] = entry end
local node_threads = {}

function setup(thread)
  workload_setup(thread)
  node_threads[#node_threads + 1] = thread
  if #nodes == 0 then error("BENCH_NODES names no node") end
  local host, port = nodes[(#node_threads - 1) % #nodes + 1]:match("^(.*):(%d+)$")
  thread.addr = wrk.lookup(host, port)[1]
end

-- read by done() through thread:get, so a global
answered = 0

function response(status, headers, body)
  answered = answered + 1
  workload_response(status, headers, body)
end

function done(summary, latency, requests)
  workload_done(summary, latency, requests)
  local counts = {}
  for i, thread in ipairs(node_threads) do counts[i] = string.format("%d", thread:get("answered") or 0) end
  io.write("BENCH_NODES [" .. table.concat(counts, ",") .. "]\n")
end
