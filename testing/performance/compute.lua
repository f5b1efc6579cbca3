-- wrk script for testing/performance/throughput.py: POSTs dry-run computes, cycling through
-- the compute bodies of the file named by BODIES_FILE (one JSON document per line) so that
-- consecutive requests are distinct runs; each thread starts at its own offset. Counts the
-- answers by status and prints one JSON line of figures when done (latencies in ms).
--   BODIES_FILE=bodies.txt wrk -t2 -c128 -d20s -s compute.lua http://127.0.0.1:PORT/rewarder/epochs/perf/compute?allocations=false

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("BODIES_FILE")) do
    if #line > 0 then
      table.insert(bodies, line)
    end
  end
  assert(#bodies > 0, "BODIES_FILE holds no bodies")
  -- Threads start far apart in the cycle, so they never ask for the same run at once.
  i = math.floor((id - 1) * #bodies / 2) % #bodies
  statuses = {}
  headers = {["Content-Type"] = "application/json"}
end

function request()
  i = i % #bodies + 1
  return wrk.format("POST", nil, headers, bodies[i])
end

-- Counting by status needs wrk to hand each answer to Lua whole, a copy of every body (0.8 MB
-- for a full M answer, 3.9 MB at L) that a latency figure must not carry: WRK_STATUSES=0 leaves
-- `response` undefined, and only wrk's own count of answers outside 2xx/3xx is reported.
if os.getenv("WRK_STATUSES") ~= "0" then
  function response(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses")
    for status, n in pairs(s) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  if os.getenv("WRK_STATUSES") == "0" then
    table.insert(parts, string.format('"not_2xx_3xx": %d', summary.errors.status))
  end
  local seconds = summary.duration / 1e6
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format(
    'WRK_JSON {"requests": %d, "seconds": %.2f, "rps": %.1f, "p50_ms": %.2f, "p95_ms": %.2f, "p99_ms": %.2f, "max_ms": %.2f, "socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, errors, table.concat(parts, ", ")))
end
