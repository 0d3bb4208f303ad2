-- Reads mixed into the soak: a tenant's newest page, an actor's events, a
-- record's history, a word, its failures; each connection pausing 100 ms.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TRAILMARK_KEY")

function init(args)
  math.randomseed(os.time() * 17 + 3)
end

function delay()
  return 100
end

function request()
  local pick = math.random(5)
  if pick == 1 then
    return wrk.format("GET", "/v1/events?tenant=soak&limit=50")
  elseif pick == 2 then
    return wrk.format("GET", string.format("/v1/events?tenant=soak&actor=u%d&limit=50", math.random(1, 100000)))
  elseif pick == 3 then
    return wrk.format("GET", string.format("/v1/resources/Invoice/%d/history?tenant=soak", math.random(1, 1000000)))
  elseif pick == 4 then
    return wrk.format("GET", string.format("/v1/events?tenant=soak&q=u%d&limit=50", math.random(1, 100000)))
  end
  return wrk.format("GET", "/v1/events?tenant=soak&outcome=failure&limit=50")
end

function response(status, headers, body)
  if status ~= 200 then
    io.stderr:write("unexpected status " .. status .. "\n")
  end
end
