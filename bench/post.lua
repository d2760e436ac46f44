-- wrk script: POST the JSON body stored in the file named by WRK_BODY (one request body for the whole run).
-- usage: WRK_BODY=body.json wrk -t2 -c16 -d15s -s bench/post.lua http://127.0.0.1:8000/predict
local path = os.getenv("WRK_BODY")
assert(path, "set WRK_BODY to the file holding the request body")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = file:read("*a")
file:close()

-- after the run: the tail and the worst case, which --latency does not print
function done(summary, latency, requests)
  io.write(string.format("p99.9 latency: %.3f ms\nmax latency: %.3f ms\n",
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
