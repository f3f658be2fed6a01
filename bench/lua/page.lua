-- GET / as a browser sends it. With cookies=<file> (one Cookie header per line, captured from the
-- page's own answers to first visits) every request is a returning visitor, each thread walking the
-- file from its own offset; without it every request is a new visitor (no cookie).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = dir .. "?.lua;" .. package.path
local bench = require("common")
bench.install()

local USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
  .. "Chrome/124.0.0.0 Safari/537.36"
local cookies = {}

function bench.init(args)
  if args.cookies then
    for line in io.lines(args.cookies) do
      if line ~= "" then table.insert(cookies, line) end
    end
  end
end

function request()
  local n = bench.next()
  local headers = {["User-Agent"] = USER_AGENT, ["Accept"] = "text/html"}
  if #cookies > 0 then
    headers["Cookie"] = cookies[(bench.thread * 7919 + n) % #cookies + 1]
  end
  return wrk.format("GET", "/", headers)
end
