-- GET /assign?visitor_id=... With pool=<N> every request is one of the returning visitors
-- back-0 .. back-(N-1) (assigned before the run), each thread walking them from its own offset;
-- without it every request is a new visitor.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("common")
bench.install()

function request()
  local n = bench.next()
  local visitor
  local pool = tonumber(bench.args.pool or "0")
  if pool > 0 then
    visitor = "back-" .. (bench.thread * 7919 + n) % pool
  else
    visitor = string.format("new-%s-%d-%d", bench.args.nonce, bench.thread, n)
  end
  return wrk.format("GET", "/assign?experiment=landing&visitor_id=" .. visitor)
end
