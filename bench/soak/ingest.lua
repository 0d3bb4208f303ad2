-- Steady ingest for the soak: batches of 50 varied events, each connection
-- pausing DELAY_MS between requests (the rate is set by the connection count
-- and the pause; run.sh reports the rate reached).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local actions = {"create", "update", "update", "update", "delete", "login", "export"}
local outcomes = {"success", "success", "success", "success", "success", "success", "failure"}
local pause = tonumber(os.getenv("DELAY_MS") or "38")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  math.randomseed(os.time() * 31 + id * 7919)
end

function delay()
  return pause
end

function request()
  local events = {}
  for i = 1, 50 do
    local actor = math.random(1, 100000)
    local resource = math.random(1, 1000000)
    events[i] = string.format(
      '{"tenant":"soak","actor":{"id":"u%d","type":"user"},"action":"%s","outcome":"%s","resource":{"type":"Invoice","id":"%d"},"changes":{"total":{"old":"%d.00","new":"%d.50"}},"context":{"ip":"10.%d.%d.%d"}}',
      actor, actions[math.random(#actions)], outcomes[math.random(#outcomes)], resource,
      resource % 997, resource % 991, actor % 256, resource % 256, (actor + resource) % 256)
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(events, ",") .. "]")
end

function response(status, headers, body)
  if status ~= 201 and status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
