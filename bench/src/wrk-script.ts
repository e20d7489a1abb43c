import { writeFileSync } from 'node:fs';

/**
 * Sends the keys of `BENCH_KEYS_FILE` in `x-api-key` in turn (one wrk thread, so one counter),
 * and prints wrk's summary as one `WRK {...}` JSON line.
 */
const WRK_SCRIPT = `
local keys = {}
local file = os.getenv("BENCH_KEYS_FILE")
if file and #file > 0 then
  for line in io.lines(file) do
    if #line > 0 then keys[#keys + 1] = line end
  end
end
local n = #keys
local i = 0
local path = os.getenv("BENCH_PATH")

function init(args)
  math.randomseed(os.time())
  if n > 0 then i = math.random(n) end
end

function request()
  if n == 0 then return wrk.format("GET", path) end
  i = i % n + 1
  return wrk.format("GET", path, { ["x-api-key"] = keys[i] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests":%d,"durationUs":%d,"p50Us":%d,"p99Us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
`;

/** Writes wrk's script to `file` for the load generator. */
export function writeWrkScript(file: string): string {
  writeFileSync(file, WRK_SCRIPT);
  return file;
}
