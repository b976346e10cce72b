-- wrk script of scripts/bench: POSTs the JSON file named by BENCH_BODY and
-- prints one machine-readable summary line at the end. With BENCH_STATUS set
-- it also counts 503 answers and those of them carrying Retry-After.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.body = file:read("*a")
file:close()

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  refused = 0
  with_retry_after = 0
end

if os.getenv("BENCH_STATUS") then
  function response(status, headers, body)
    if status == 503 then
      refused = refused + 1
      if headers["retry-after"] or headers["Retry-After"] then
        with_retry_after = with_retry_after + 1
      end
    end
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local n503, retry = 0, 0
  for _, thread in ipairs(threads) do
    n503 = n503 + thread:get("refused")
    retry = retry + thread:get("with_retry_after")
  end
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"socket_errors":%d,"non2xx":%d,"n503":%d,"retry_after":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status, n503, retry))
end
