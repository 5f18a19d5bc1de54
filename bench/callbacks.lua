-- wrk script of bench.ingest: POSTs pre-built signed + encrypted callbacks (one per line of the pool file:
-- "<query string>\t<body>"), so the compiled client does no crypto and the server, not the client, is the limit.
--
-- wrk -s callbacks.lua URL -- POOL_FILE FIRST LAST UNIQUE NTHREADS
--   lines FIRST .. LAST-1 (0-based) are this run's; thread k sends FIRST+k, FIRST+k+NTHREADS, … so no two requests
--   carry the same MsgId. UNIQUE=1 (full path): past its last line a thread marks the pool exhausted and sends
--   again from its first line (the run is then reported, not trusted); UNIQUE=0: round-robin on purpose.
-- Prints one line "SCRM_RESULT key=value …" with the counts the benchmark checks against the database: requests sent,
-- 200s and other answers received (sent − received = requests still in flight when wrk stopped: the server may or
-- may not have stored those).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local requests_ = {}
local n, pos = 0, 1
ok, other, exhausted, sent = 0, 0, 0, 0

function init(args)
  local path, first, last, unique, nthreads = args[1], tonumber(args[2]), tonumber(args[3]), args[4] == "1", tonumber(args[5])
  local headers = { ["Content-Type"] = "text/xml" }
  local index = 0
  for line in io.lines(path) do
    if index >= first and index < last and (index - first) % nthreads == id then
      local tab = string.find(line, "\t", 1, true)
      n = n + 1
      requests_[n] = wrk.format("POST", wrk.path .. "?" .. string.sub(line, 1, tab - 1), headers, string.sub(line, tab + 1))
    end
    index = index + 1
  end
  is_unique = unique
end

function request()
  if pos > n then
    if is_unique then exhausted = 1 end
    pos = 1
  end
  local r = requests_[pos]
  sent = sent + 1
  pos = pos + 1
  return r
end

function response(status, headers, body)
  if status == 200 then ok = ok + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_other, any_exhausted, total_sent = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    total_sent = total_sent + t:get("sent")
    total_ok = total_ok + t:get("ok")
    total_other = total_other + t:get("other")
    any_exhausted = math.max(any_exhausted, t:get("exhausted"))
  end
  local e = summary.errors
  io.write(string.format(
    "SCRM_RESULT sent=%d requests=%d duration_us=%d ok=%d other=%d exhausted=%d connect=%d read=%d write=%d timeout=%d p50_us=%d p99_us=%d\n",
    total_sent, summary.requests, summary.duration, total_ok, total_other, any_exhausted, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
