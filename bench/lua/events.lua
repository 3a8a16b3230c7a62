-- The viewer-events workload inside wrk: keys, events and request bodies.
--
-- Must agree with bench/workload.py: the counts file (events per user, by
-- popularity rank), user ids "u%08d" of the rank, and the sort key of a user's
-- k-th preloaded event, T0_MS + k * floor(SPAN_MS / count).  Drawing an item
-- index uniformly from [0, items) and mapping it through the cumulative counts
-- therefore reads an existing event, with users drawn by their (Zipf) activity.
--
-- Bodies are built by string concatenation: every string in them is plain
-- ASCII without quotes, so no JSON escaping is needed.

local M = {}

local random, floor, format, concat = math.random, math.floor, string.format, table.concat

M.T0_MS = 1735689600000
M.SPAN_MS = 2592000000
M.TTL_S = 7776000
M.EVENTS = "viewer_events"
M.PROGRESS = "continue_watching"
M.COUNTERS = "title_counters"

local EVENT_TYPES = { "play", "heartbeat", "pause", "seek", "stop", "rating", "search" }
local EVENT_WEIGHTS = { 30, 40, 10, 8, 7, 2, 3 }
local COUNTRIES = { "US", "GB", "DE", "FR", "BR", "IN", "JP", "CA", "MX", "ES", "IT", "AU", "NL", "SE", "PL",
  "KR", "AR", "TR", "ZA", "NG", "EG", "ID", "PH", "VN", "TH", "CO", "CL", "NO", "DK", "IE" }
local DEVICE_TYPES = { "tv", "mobile", "web", "console" }
local DEVICE_WEIGHTS = { 35, 35, 20, 10 }
local DEVICE_OS = { tv = { "tizen", "webos", "androidtv", "tvos" }, mobile = { "ios", "android" },
  web = { "chrome", "firefox", "safari", "edge" }, console = { "ps5", "xbox" } }
local BITRATES = { 800, 1500, 3000, 4500, 6000, 8000, 12000, 16000 }
local GENRES = { "drama", "comedy", "action", "thriller", "documentary", "kids", "anime", "horror",
  "romance", "scifi", "crime", "reality", "sports", "music", "history" }
local QUERY_WORDS = { "night", "love", "war", "star", "last", "city", "blue", "house", "dark", "road",
  "king", "girl", "summer", "ocean", "ghost", "game", "secret", "wild", "time", "world" }

-- ------------------------------------------------------------ weighted choice

local function cumulative(weights)
  local out, total = {}, 0
  for i = 1, #weights do
    total = total + weights[i]
    out[i] = total
  end
  return out
end

-- smallest index i with cum[i] > x (cum is increasing)
local function search(cum, x)
  local lo, hi = 1, #cum
  while lo < hi do
    local mid = floor((lo + hi) / 2)
    if cum[mid] > x then hi = mid else lo = mid + 1 end
  end
  return lo
end

local function zipf(n, s)
  local w = {}
  for r = 1, n do w[r] = r ^ -s end
  return cumulative(w)
end

local function pick(cum, values)
  return values[search(cum, random() * cum[#cum])]
end

local EVENT_CUM = cumulative(EVENT_WEIGHTS)
local DEVICE_CUM = cumulative(DEVICE_WEIGHTS)
local COUNTRY_CUM = zipf(#COUNTRIES, 1.0)
local TITLE_CUM = zipf(50000, 1.1)

function M.content_id()
  return format("c%06d", search(TITLE_CUM, random() * TITLE_CUM[#TITLE_CUM]))
end

-- ------------------------------------------------------------ users and keys

local user_cum, items = nil, 0

-- Read the counts file written by workload.DataSet.write_counts.
function M.load_counts(path)
  local cum, total, n = {}, 0, 0
  for line in io.lines(path) do
    n = n + 1
    total = total + tonumber(line)
    cum[n] = total
  end
  user_cum, items = cum, total
  return total
end

local function user_of(index)
  local rank = search(user_cum, index)
  local before = rank > 1 and user_cum[rank - 1] or 0
  return rank, before, user_cum[rank] - before
end

-- A preloaded event: its user id and sort key, users weighted by activity.
function M.existing_key()
  local rank, before, count = user_of(floor(random() * items))
  local k = floor(random() * count)
  return format("u%08d", rank), format("%.0f", M.T0_MS + k * floor(M.SPAN_MS / count))
end

-- A user drawn by activity (Zipf popularity).
function M.user()
  return format("u%08d", (user_of(floor(random() * items))))
end

-- ------------------------------------------------------------ events

local function uuid4()
  return format("%04x%04x-%04x-4%03x-%04x-%04x%04x%04x", random(0, 65535), random(0, 65535),
    random(0, 65535), random(0, 4095), 32768 + random(0, 16383), random(0, 65535),
    random(0, 65535), random(0, 65535))
end

local session_left, session_prefix, session_tail = 0, nil, nil

-- A session fixes session id, content, device and country for 5 to 200 events.
local function new_session()
  local kind = pick(DEVICE_CUM, DEVICE_TYPES)
  local systems = DEVICE_OS[kind]
  session_prefix = '"content_id":{"S":"' .. M.content_id() .. '"},"session_id":{"S":"' .. uuid4() .. '"},'
  session_tail = format(',"device":{"M":{"type":{"S":"%s"},"os":{"S":"%s"},"app_version":{"S":"%d.%d.%d"}}},'
    .. '"country":{"S":"%s"}', kind, systems[random(1, #systems)], random(3, 9), random(0, 30),
    random(0, 9), pick(COUNTRY_CUM, COUNTRIES))
  session_left = random(5, 200)
end

local function tags()
  local n = random(0, 5)
  if n == 0 then return "" end
  local chosen, used = {}, {}
  while #chosen < n do
    local g = GENRES[random(1, #GENRES)]
    if not used[g] then
      used[g] = true
      chosen[#chosen + 1] = '"' .. g .. '"'
    end
  end
  return ',"tags":{"SS":[' .. concat(chosen, ",") .. "]}"
end

local function extra(kind)
  if kind == "play" or kind == "heartbeat" then
    return ',"bitrate_kbps":{"N":"' .. BITRATES[random(1, #BITRATES)] .. '"}'
  elseif kind == "rating" then
    return ',"rating":{"N":"' .. random(1, 5) .. '"}'
  elseif kind == "search" then
    return ',"query":{"S":"' .. QUERY_WORDS[random(1, #QUERY_WORDS)] .. " "
      .. QUERY_WORDS[random(1, #QUERY_WORDS)] .. '"}'
  end
  return ""
end

-- The JSON of one event item of user `uid` at `ts` (epoch ms, a number).
function M.event(uid, ts)
  if session_left <= 0 then new_session() end
  session_left = session_left - 1
  local kind = pick(EVENT_CUM, EVENT_TYPES)
  return '{"user_id":{"S":"' .. uid .. '"},"ts":{"N":"' .. format("%.0f", ts) .. '"},"event_type":{"S":"'
    .. kind .. '"},' .. session_prefix .. '"position_s":{"N":"' .. format("%.3f", random() * 7200) .. '"}'
    .. session_tail .. extra(kind) .. tags() .. ',"expires_at":{"N":"'
    .. format("%.0f", floor(ts / 1000) + M.TTL_S) .. '"}}'
end

-- ------------------------------------------------------------ request bodies

function M.put_body(ts)
  return '{"TableName":"' .. M.EVENTS .. '","Item":' .. M.event(M.user(), ts) .. "}"
end

function M.get_body()
  local uid, ts = M.existing_key()
  return '{"TableName":"' .. M.EVENTS .. '","Key":{"user_id":{"S":"' .. uid .. '"},"ts":{"N":"' .. ts .. '"}}}'
end

function M.query_body()
  return '{"TableName":"' .. M.EVENTS .. '","KeyConditionExpression":"user_id = :u",'
    .. '"ExpressionAttributeValues":{":u":{"S":"' .. M.user() .. '"}},"ScanIndexForward":false,"Limit":20}'
end

function M.batch_body(next_ts)
  local puts = {}
  for i = 1, 25 do
    puts[i] = '{"PutRequest":{"Item":' .. M.event(M.user(), next_ts()) .. "}}"
  end
  return '{"RequestItems":{"' .. M.EVENTS .. '":[' .. concat(puts, ",") .. "]}}"
end

-- Per-title play counter of the hour, sharded 10 ways so a hot title is no hot key.
function M.counter_body(hour)
  return '{"TableName":"' .. M.COUNTERS .. '","Key":{"counter_id":{"S":"' .. M.content_id() .. "#" .. hour
    .. "#" .. random(0, 9) .. '"}},"UpdateExpression":"ADD plays :one",'
    .. '"ExpressionAttributeValues":{":one":{"N":"1"}}}'
end

-- Continue watching: move a (user, title) position forward, never back in time.
function M.progress_body(updated_at)
  return '{"TableName":"' .. M.PROGRESS .. '","Key":{"user_id":{"S":"' .. M.user() .. '"},"content_id":{"S":"'
    .. M.content_id() .. '"}},"UpdateExpression":"SET position_s = :p, updated_at = :t, session_id = :s",'
    .. '"ConditionExpression":"attribute_not_exists(updated_at) OR updated_at < :t",'
    .. '"ExpressionAttributeValues":{":p":{"N":"' .. format("%.3f", random() * 7200) .. '"},":t":{"N":"'
    .. format("%.0f", updated_at) .. '"},":s":{"S":"' .. uuid4() .. '"}}}'
end

return M
