-- One event per request, varied actors, records and actions (as load.lua's).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local actions = {"create", "update", "update", "update", "delete", "login", "export"}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  math.randomseed(id * 7919 + 29)
end

function request()
  local actor = math.random(1, 100000)
  local resource = math.random(1, 1000000)
  return wrk.format(nil, nil, nil, string.format(
    '{"tenant":"bench","actor":{"id":"u%d","type":"user","name":"user%d@example.com"},"action":"%s","resource":{"type":"Invoice","id":"%d"},"changes":{"total":{"old":"%d.00","new":"%d.50"}},"context":{"ip":"10.%d.%d.%d"}}',
    actor, actor, actions[math.random(#actions)], resource, resource % 997, resource % 991,
    actor % 256, resource % 256, (actor + resource) % 256))
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
