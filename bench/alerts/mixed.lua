-- 1000 events per request, varied: 1 in 10 a failed login (500 usernames,
-- 2,000 client IPs), 1 in 10 a deletion (5,000 actors), the rest updates;
-- 64 different bodies, taken in turn, so the rules keep many windows.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local bodies = {}
local seed = 7
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n
end
for b = 1, 64 do
  local events = {}
  for i = 1, 1000 do
    local kind = rand(10)
    local actor = "u" .. rand(5000)
    local ip = "10." .. rand(8) .. "." .. rand(250) .. "." .. rand(250)
    if kind == 0 then
      events[i] = string.format([[{"tenant":"bench","actor":{"id":"anonymous","type":"user","name":"user%d@example.com"},"action":"auth.login","outcome":"failure","context":{"ip":"%s"}}]], rand(500), ip)
    elseif kind == 1 then
      events[i] = string.format([[{"tenant":"bench","actor":{"id":"%s","type":"user"},"action":"invoice.delete","resource":{"type":"Invoice","id":"%d"},"context":{"ip":"%s"}}]], actor, rand(100000), ip)
    else
      events[i] = string.format([[{"tenant":"bench","actor":{"id":"%s","type":"user"},"action":"update","resource":{"type":"Customer","id":"%d"},"changes":{"price":{"old":"19.99","new":"24.99"}},"context":{"ip":"%s","user_agent":"Mozilla/5.0"}}]], actor, rand(100000), ip)
    end
  end
  bodies[b] = "[" .. table.concat(events, ",") .. "]"
end
local next_body = 0
function request()
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[next_body])
end

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
