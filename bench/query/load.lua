-- Events with varied actors, resources and actions: EVENTS per request (default 1000,
-- sent as an array; 1 sends one event as an object, as an application would).
-- IDS=1: each event carries its own id, a random UUIDv4: the server then looks up
-- whether each id is already used (the worst case; the client packages send UUIDv7 and
-- the capture drainers rising ids, which the embedded store answers without a lookup).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local actions = {"create", "update", "update", "update", "delete", "login", "export"}
local per = tonumber(os.getenv("EVENTS") or "1000")
local ids = os.getenv("IDS") == "1"
-- RECORDS: how many invoices the events touch (default 10^6); fewer gives each
-- record a longer history on a smaller trail.
local records = tonumber(os.getenv("RECORDS") or "1000000")
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end

function init(args)
  math.randomseed(id * 7919 + 17)
end

local function uuid4()
  return string.format("%08x-%04x-4%03x-%04x-%04x%08x", math.random(0, 0xffffffff),
    math.random(0, 0xffff), math.random(0, 0xfff), 0x8000 + math.random(0, 0x3fff),
    math.random(0, 0xffff), math.random(0, 0xffffffff))
end

local function one()
  local actor = math.random(1, 100000)
  local resource = math.random(1, records)
  local id = ids and string.format('"id":"%s",', uuid4()) or ""
  return string.format(
    '{%s"tenant":"bench","actor":{"id":"u%d","type":"user","name":"user%d@example.com"},"action":"%s","resource":{"type":"Invoice","id":"%d"},"changes":{"total":{"old":"%d.00","new":"%d.50"}},"context":{"ip":"10.%d.%d.%d"}}',
    id, actor, actor, actions[math.random(#actions)], resource, resource % 997, resource % 991,
    actor % 256, resource % 256, (actor + resource) % 256)
end

function request()
  if per == 1 then
    return wrk.format(nil, nil, nil, one())
  end
  local events = {}
  for i = 1, per do
    events[i] = one()
  end
  return wrk.format(nil, nil, nil, "[" .. table.concat(events, ",") .. "]")
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
