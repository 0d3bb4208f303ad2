-- 1000 events per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local one = [[{"tenant":"bench","actor":{"id":"42","type":"user","name":"alice@example.com"},"action":"update","resource":{"type":"Customer","id":"61"},"changes":{"price":{"old":"19.99","new":"24.99"}},"context":{"ip":"203.0.113.7","user_agent":"Mozilla/5.0"}}]]
local events = {}
for i = 1, 1000 do events[i] = one end
wrk.body = "[" .. table.concat(events, ",") .. "]"

function response(status, headers, body)
  if status ~= 201 then
    io.stderr:write("unexpected status " .. status .. ": " .. body .. "\n")
  end
end
