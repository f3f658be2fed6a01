-- What every load script shares: thread numbers, script arguments, counting answers that are not
-- 2xx, and one JSON line at the end (prefixed "BENCH_JSON ") that bench/wrk.py parses.
--
-- A script does  local bench = require("common"); bench.install()  and defines request().
-- Arguments follow the URL on wrk's command line as key=value words; bench.args holds them.
local M = {}

local threads = {}

function M.install()
  -- In wrk's main Lua state: number every thread before it starts.
  function setup(thread)
    thread:set("thread_number", #threads)
    table.insert(threads, thread)
  end

  -- In each thread's own Lua state.
  function init(args)
    M.args = {}
    for i = 1, #args do
      local key, value = args[i]:match("^([%w_]+)=(.*)$")
      if key then M.args[key] = value end
    end
    M.thread = thread_number
    M.counter = 0
    non_2xx = 0
    first_error = ""
    if M.init then M.init(M.args) end
  end

  function response(status, headers, body)
    if status < 200 or status > 299 then
      non_2xx = non_2xx + 1
      if first_error == "" then first_error = status .. " " .. (body or ""):sub(1, 300) end
    end
  end

  function done(summary, latency, requests)
    local errors, sample = 0, ""
    for _, thread in ipairs(threads) do
      errors = errors + (thread:get("non_2xx") or 0)
      if sample == "" then sample = thread:get("first_error") or "" end
    end
    local e = summary.errors
    io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "non_2xx": %d, '
      .. '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, '
      .. '"max_us": %d, "threads": %d, "first_error": "%s"}\n',
      summary.requests, summary.duration, summary.bytes, errors,
      e.connect + e.read + e.write + e.timeout, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      #threads, (sample:gsub('[%c"\\]', " "))))
  end
end

-- The next number of this thread's sequence, from 1.
function M.next()
  M.counter = M.counter + 1
  return M.counter
end

-- A UUID (version-4 layout) made of the run's nonce, the thread number and a counter (each below
-- 2^31): no other request of any run has it.
function M.uuid(n)
  return string.format("%08x-%04x-4000-8000-%012x", tonumber(M.args.nonce or "0"), M.thread, n)
end

return M
