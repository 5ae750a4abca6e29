-- wrk script for the Tongxing benchmarks (bench/loadgen.py writes its input files).
--
--   wrk -t1 -cC -dD --timeout 10s -s wrk_driver.lua URL -- MODE METHOD PATH REQUESTS HEADERS LIMIT
--
-- MODE "once": REQUESTS holds one form body per line and every body is sent exactly once (one-shot
-- credentials: refresh tokens that rotate, authorization codes). MODE "repeat": REQUESTS holds one
-- body (possibly empty) that is sent again and again. HEADERS holds "Name: value" lines. At most
-- LIMIT requests are sent; when there is nothing left to send the thread stops and wakes wrk's
-- main thread (SIGINT), so a run is bounded by count as well as by -d. Requests still in flight at
-- that moment are neither waited for nor counted.
--
-- The rate is measured here, from the first request to the last response (CLOCK_MONOTONIC through
-- LuaJIT's FFI), because wrk's own duration is -d even when the run ends early. Latency
-- percentiles are wrk's (per request, from the write of the request to the end of the response).
-- The result is one JSON object written to the file named by $BENCH_WRK_OUT.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
int kill(int pid, int sig);
int getpid(void);
]]

local CLOCK_MONOTONIC = 1
local SIGINT = 2
local clock = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    lines[#lines + 1] = line
  end
  return lines
end

local function json_string(text)
  text = string.gsub(text, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end)
  return '"' .. text .. '"'
end

-- --- main thread: collect the worker threads, report at the end ---------------------------------

local threads = {}
local out_path = nil

function setup(thread)
  threads[#threads + 1] = thread
end

-- --- worker threads ------------------------------------------------------------------------------

local requests = {}
local limit = 0
local sent = 0
local stopping = false
received = 0
ok = 0
failed = 0
first_us = 0
last_us = 0
sample = ""
statuses = ""
local status_counts = {}

function init(args)
  local mode, method, path, requests_file, headers_file = args[1], args[2], args[3], args[4], args[5]
  limit = tonumber(args[6])
  local headers = {}
  for _, line in ipairs(read_lines(headers_file)) do
    local name, value = string.match(line, "^([^:]+):%s*(.*)$")
    if name then
      headers[name] = value
    end
  end
  local bodies = read_lines(requests_file)
  if mode == "once" then
    if #bodies < limit then
      limit = #bodies
    end
    for i = 1, limit do
      requests[i] = wrk.format(method, path, headers, bodies[i])
    end
  else
    local body = bodies[1]
    if body == "" then
      body = nil
    end
    requests[1] = wrk.format(method, path, headers, body)
  end
  repeated = mode ~= "once"
end

function request()
  if sent >= limit then
    if not stopping then
      stopping = true
      wrk.thread:stop()
      ffi.C.kill(ffi.C.getpid(), SIGINT) -- wakes wrk's main thread, which then reports
    end
    -- Something must be returned; it is never read (the loop stops), and it is harmless.
    return wrk.format("GET", "/bench-filler-not-counted")
  end
  sent = sent + 1
  if first_us == 0 then
    first_us = now_us()
  end
  if repeated then
    return requests[1]
  end
  return requests[sent]
end

function response(status, headers, body)
  if stopping then
    return
  end
  received = received + 1
  last_us = now_us()
  status_counts[status] = (status_counts[status] or 0) + 1
  if status >= 200 and status < 400 then
    ok = ok + 1
  else
    failed = failed + 1
    if sample == "" then
      sample = tostring(status) .. " " .. string.sub(body or "", 1, 300)
    end
  end
  local parts = {}
  for code, count in pairs(status_counts) do
    parts[#parts + 1] = string.format('"%d": %d', code, count)
  end
  statuses = "{" .. table.concat(parts, ", ") .. "}"
end

-- --- the report -----------------------------------------------------------------------------------

function done(summary, latency, requests_)
  local total, good, bad, first, last = 0, 0, 0, nil, nil
  local samples, status_maps = {}, {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("received")
    good = good + thread:get("ok")
    bad = bad + thread:get("failed")
    local f, l = thread:get("first_us"), thread:get("last_us")
    if f > 0 and (first == nil or f < first) then
      first = f
    end
    if l > 0 and (last == nil or l > last) then
      last = l
    end
    local s = thread:get("sample")
    if s ~= "" then
      samples[#samples + 1] = json_string(s)
    end
    status_maps[#status_maps + 1] = thread:get("statuses")
  end
  local seconds = 0
  if first and last and last > first then
    seconds = (last - first) / 1000000
  end
  local e = summary.errors
  local report = string.format(
    '{"completed": %d, "ok": %d, "failed": %d, "seconds": %.6f, '
      .. '"p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f, '
      .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, '
      .. '"wrk_requests": %d, "statuses": [%s], "samples": [%s]}',
    total, good, bad, seconds,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.connect, e.read, e.write, e.timeout, summary.requests,
    table.concat(status_maps, ", "), table.concat(samples, ", ")
  )
  local out = io.open(os.getenv("BENCH_WRK_OUT"), "w")
  out:write(report)
  out:close()
end
