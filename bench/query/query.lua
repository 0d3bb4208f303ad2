-- Filtered reads: an actor's latest events, one record's history, a word, the
-- tenant's newest page (what a tenant-bound key sees first), its failures,
-- a day's stats, a day's stats of one action, and one event by id.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")
local mode = os.getenv("QUERY") or "actor"
-- RECORDS: as in load.lua (the records the loaded events touch).
local records = tonumber(os.getenv("RECORDS") or "1000000")
-- QUERY=event: one event by id, from the ids in IDS_FILE (one a line).
local ids = {}
if mode == "event" then
  for line in io.lines(os.getenv("IDS_FILE")) do
    ids[#ids + 1] = line
  end
end

function request()
  if mode == "history" then
    return wrk.format("GET", string.format("/v1/resources/Invoice/%d/history?tenant=bench", math.random(1, records)))
  elseif mode == "feed" then
    return wrk.format("GET", "/v1/events?tenant=bench&limit=50")
  elseif mode == "failures" then
    return wrk.format("GET", "/v1/events?tenant=bench&outcome=failure&limit=50")
  elseif mode == "stats" then
    return wrk.format("GET", "/v1/stats?tenant=bench&days=1")
  elseif mode == "stats_delete" then
    -- A filter beside the window: counted entry by entry, not from the hourly counts.
    return wrk.format("GET", "/v1/stats?tenant=bench&days=1&action=delete")
  elseif mode == "event" then
    return wrk.format("GET", "/v1/events/" .. ids[math.random(#ids)] .. "?tenant=bench")
  elseif mode == "q" then
    return wrk.format("GET", string.format("/v1/events?tenant=bench&q=user%d&limit=50", math.random(1, 100000)))
  end
  return wrk.format("GET", string.format("/v1/events?tenant=bench&actor=u%d&limit=50", math.random(1, 100000)))
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
