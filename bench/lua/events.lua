-- POST /events with one event per request: a new event id and a first-time visitor every time.
-- Arguments: nonce=<number, distinct per run>, key=<ingest key, sent as a bearer token>.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("common")
bench.install()

local headers

function bench.init(args)
  headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. (args.key or "")}
end

function request()
  local n = bench.next()
  local body = string.format(
    '{"visitor_id": "v-%s-%d-%d", "variant": "%s", "event_type": "page_view", "event_id": "%s"}',
    bench.args.nonce, bench.thread, n, n % 2 == 0 and "A" or "B", bench.uuid(n))
  return wrk.format("POST", "/events", headers, body)
end
