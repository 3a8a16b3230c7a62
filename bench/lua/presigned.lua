-- wrk script: send pre-signed requests (bench/presign.py) in turn, for `shoal serve --auth sigv4`.
--
--   wrk -t1 -c16 -d10s -s bench/lua/presigned.lua http://127.0.0.1:8000/ -- pool=/path/pool.txt start=0
--
-- wrk's Lua cannot compute HMAC-SHA256, so Python signs a pool of distinct requests right before
-- the run; one per line, the raw HTTP request with every CRLF written as a TAB.  Requests are sent
-- in order from line `start` + 1, wrapping round at the end.  Answers are counted and reported by
-- workload.lua's response() and done() (same BENCH_JSON line), so errors are never hidden: a
-- signature wrongly computed or expired shows as a non-2xx answer with its error type.

local dir = os.getenv("BENCH_LUA_DIR") or "."
dofile(dir .. "/workload.lua")  -- setup, response, done and the error counters

local pool, size, next_index = {}, 0, 0

function init(args)
  local opts = {}
  for _, a in ipairs(args) do
    local k, v = a:match("^([%w_]+)=(.*)$")
    if k then opts[k] = v end
  end
  for line in io.lines(opts.pool) do
    size = size + 1
    pool[size] = (line:gsub("\t", "\r\n"))
  end
  if size == 0 then error("empty pool " .. tostring(opts.pool)) end
  next_index = tonumber(opts.start or "0") % size
end

function request()
  next_index = next_index + 1
  if next_index > size then next_index = 1 end
  return pool[next_index]
end
