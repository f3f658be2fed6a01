-- POST /events with size=<N> events per request (500 by default), every event from a first-time
-- visitor with a new event id. The JSON around the ids is built once; a request only joins pieces.
-- Arguments: nonce=<number, distinct per run>, key=<ingest key>, size=<events per request>.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("common")
bench.install()

local headers, size, prefix
local pieces = {}

function bench.init(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. (args.key or "")}
  size = tonumber(args.size or "500")
  prefix = string.format('{"visitor_id": "b-%s-%d-', args.nonce, bench.thread)
end

function request()
  local n = bench.next()
  local parts = pieces
  local k = 0
  for i = 1, size do
    local id = (n - 1) * size + i
    k = k + 1
    parts[k] = (i == 1 and "[" or ",") .. prefix .. id .. '", "variant": "' .. (id % 2 == 0 and "A" or "B")
      .. '", "event_type": "page_view", "event_id": "' .. bench.uuid(id) .. '"}'
  end
  k = k + 1
  parts[k] = "]"
  return wrk.format("POST", "/events", headers, table.concat(parts, "", 1, k))
end
