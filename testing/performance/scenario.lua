-- wrk script of testing/performance/run_scenario.sh (seed §8.4): POSTs computes, cycling
-- through the lines of the file named by BODIES_FILE, each "PATH<TAB>BODY" (PATH without the
-- query; QUERY from the environment is appended), so that consecutive requests are distinct
-- runs; each thread starts at its own offset. Counts 200/202 as success and 429/503 as
-- graceful overload, anything else as an error, and prints one line of JSON when done
-- (latencies of every answer, in ms).
-- Pacing: with RATE (requests/s, all connections together) and CONNS (wrk's -c) set, each
-- connection waits a random 0.5–1.5 × CONNS/RATE s before each request (wrk's delay()), so
-- the offered load is about RATE while the node keeps up (open-loop-like); RATE=0 or unset
-- sends back to back (closed loop: the node's saturation throughput).
--   BODIES_FILE=M.bodies QUERY= RATE=100 CONNS=128 wrk -t2 -c128 -d20s -s scenario.lua http://127.0.0.1:PORT

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end

function init(args)
  reqs = {}
  local query = os.getenv("QUERY") or ""
  local headers = {["Content-Type"] = "application/json"}
  for line in io.lines(os.getenv("BODIES_FILE")) do
    local path, body = line:match("^([^\t]+)\t(.+)$")
    if path then
      table.insert(reqs, wrk.format("POST", path .. query, headers, body))
    end
  end
  assert(#reqs > 0, "BODIES_FILE holds no PATH<TAB>BODY lines")
  i = math.floor((id - 1) * #reqs / 2) % #reqs
  local rate, conns = tonumber(os.getenv("RATE") or "0"), tonumber(os.getenv("CONNS") or "0")
  mean_delay_ms = (rate > 0 and conns > 0) and (conns * 1000 / rate) or 0
  math.randomseed(id * 7919)
  success, graceful, other = 0, 0, 0
  statuses = {}
end

function request()
  i = i % #reqs + 1
  return reqs[i]
end

function delay()
  if mean_delay_ms > 0 then
    return mean_delay_ms * (0.5 + math.random())
  end
  return 0
end

function response(status, headers, body)
  if status == 200 or status == 202 then
    success = success + 1
  elseif status == 429 or status == 503 then
    graceful = graceful + 1
  else
    other = other + 1
  end
  statuses[status] = (statuses[status] or 0) + 1
  if status ~= 200 and status ~= 202 and sample == nil then
    sample = (body:sub(1, 160):gsub("%c", " "))
  end
end

function done(summary, latency, requests)
  local s, g, o, total, sample = 0, 0, 0, {}, ""
  for _, thread in ipairs(threads) do
    sample = thread:get("sample") or sample
    s = s + thread:get("success")
    g = g + thread:get("graceful")
    o = o + thread:get("other")
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(total) do
    table.insert(parts, string.format('"%d": %d', status, n))
  end
  local seconds = summary.duration / 1e6
  io.write(string.format(
    'SCENARIO_JSON {"requests": %d, "seconds": %.3f, "success": %d, "graceful": %d, "errors": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f, "statuses": {%s}, "refusal_sample": %q}\n',
    summary.requests, seconds, s, g, o,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, table.concat(parts, ", "), sample))
end
