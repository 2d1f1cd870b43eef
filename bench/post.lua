-- wrk script: POST one modern (2026-07-28) tools/call per request and count bad answers.
-- The body and headers come from the environment (set by gateway_overhead.py):
--   BENCH_BODY  the JSON-RPC body      BENCH_TOOL  the tool name (Mcp-Name header)
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = os.getenv("BENCH_TOOL")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

function init(args)
   bad = 0
   good = 0
end

function response(status, headers, body)
   if status == 200 and string.find(body, '"result"', 1, true)
      and not string.find(body, '"isError":true', 1, true) then
      good = good + 1
   else
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local b, g = 0, 0
   for _, thread in ipairs(threads) do
      b = b + thread:get("bad")
      g = g + thread:get("good")
   end
   io.write(string.format('BENCH_RESULT {"bad": %d, "good": %d, "p50_us": %.1f, "p99_us": %.1f}\n',
      b, g, latency:percentile(50), latency:percentile(99)))
end
