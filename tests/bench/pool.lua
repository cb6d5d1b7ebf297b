-- pool.lua: wrk sends requests from a pre-generated pool file.
--
--   wrk -t T -c C -d 8s -s tests/bench/pool.lua http://127.0.0.1:PORT/ -- POOL T
--
-- POOL has one request per line, four tab-separated fields:
--   METHOD <TAB> PATH?QUERY <TAB> HEADERS <TAB> BODY
-- HEADERS are "Name: value" items joined by \1 (empty for none); BODY may
-- be empty. Thread k of T takes lines k, k+T, k+2T, ... so the threads
-- never share a line: a pool of unique requests (callback pushes, login
-- codes) sends each one once. A thread that reaches the end of its slice
-- starts again and counts a wrap: unique-pool results with wraps > 0 are
-- not clean, and the driver says so.
--
-- done() prints one line "BENCH-RESULT {json}" for tests/bench/bench.py:
-- requests, duration, errors, latency percentiles (microseconds), wraps.
-- Every workload goes through this script (even a one-line pool), so the
-- Lua cost on wrk's side is the same for the ceilings and the programs.

local threads = {}
local count = 0

function setup(thread)
   count = count + 1
   thread:set("id", count)
   table.insert(threads, thread)
end

function init(args)
   local file = args[1]
   local nthreads = tonumber(args[2]) or 1
   reqs = {}
   local i = 0
   for line in io.lines(file) do
      if line ~= "" and (i % nthreads) == (id - 1) then
         local method, path, hdrs, body =
            line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
         local headers = {}
         for item in hdrs:gmatch("[^\1]+") do
            local k, v = item:match("^([^:]+):%s*(.*)$")
            headers[k] = v
         end
         if body == "" then
            body = nil
         end
         reqs[#reqs + 1] = wrk.format(method, path, headers, body)
      end
      if line ~= "" then
         i = i + 1
      end
   end
   nreqs = #reqs
   n = 0
   wraps = 0
end

function request()
   n = n + 1
   if n > nreqs then
      n = 1
      wraps = wraps + 1
   end
   return reqs[n]
end

function done(summary, latency, requests)
   local w, sent, slice = 0, 0, 0
   for _, t in ipairs(threads) do
      local tw = t:get("wraps") or 0
      local tn = t:get("nreqs") or 0
      w = w + tw
      sent = sent + tw * tn + (t:get("n") or 0)
      slice = slice + tn
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH-RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
      '"wraps":%d,"sent":%d,"pool":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max, w, sent, slice))
end
