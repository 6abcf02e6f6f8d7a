-- wrk script of bench/load.py: a mix of request kinds at fixed ratios, measured per kind.
--
-- wrk runs one connection per thread (-t equal to -c), so in each thread request() and response()
-- strictly alternate and the response in hand is the answer to the last request: that is what lets
-- this script attribute latency (clock_gettime through LuaJIT's ffi), status and socket errors to the
-- request's kind. A request that gets no response (the socket failed, wrk reconnected and asked for
-- a new request) counts as a socket error of its kind.
--
-- Environment: BENCH_LOAD_CONFIG (a Lua file returning the fixture: tokens, deals, sections, save
-- bodies), BENCH_LOAD_MIX ("kind=weight,..."), BENCH_LOAD_OUT (done() writes wrk's summary there;
-- each thread writes one line per response (and R, G, N, E marks) to BENCH_LOAD_OUT.t<n>: wrk's thread:get cannot carry
-- tables, and buffered files are flushed when wrk exits).
--
-- Saves (section PUTs, or whole-memo POST /save for save_memo) carry base_version, the version this
-- thread last saw for the deal (from a canvas GET or a save); a 409 carries current_version, and the
-- save is retried at once on it (at most SAVE_ATTEMPTS tries), as an editor client rebasing its edit
-- would.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_load_timespec;
int clock_gettime(int clk_id, bench_load_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_load_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) * 1000000 + math.floor(tonumber(timespec.tv_nsec) / 1000)
end

local SAVE_ATTEMPTS = 3
local CONTRACT_VERSION = "2026-02"
local cfg = dofile(os.getenv("BENCH_LOAD_CONFIG"))

-- the mix: cumulative weights
local mix, total_weight = {}, 0
for kind, weight in string.gmatch(os.getenv("BENCH_LOAD_MIX") or "canvas_get=1", "([%w_]+)=([%d.]+)") do
  total_weight = total_weight + tonumber(weight)
  table.insert(mix, { kind = kind, upto = total_weight })
end

-- main state: every thread, for done()
local all_threads = {}
local next_tid = 0

function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
  table.insert(all_threads, thread)
end

-- thread state (tid is set by setup() through thread:set)
tid = 0
local calls = 0
local out = nil

local versions, revisions = {}, {}
local pending_kind, pending_deal, started_us = nil, nil, 0
local retry_kind, retry_deal, retry_attempt = nil, nil, 0
local edit_seq = 0

function init(args)
  math.randomseed(tid * 7919 + os.time())
  out = assert(io.open(os.getenv("BENCH_LOAD_OUT") .. ".t" .. tid, "w"))
  out:setvbuf("full", 65536)
  for _, deal in ipairs(cfg.deals) do
    versions[deal.id] = deal.version
    revisions[deal.id] = deal.revision
  end
end

local function pick_kind()
  local r = math.random() * total_weight
  for _, entry in ipairs(mix) do
    if r < entry.upto then return entry.kind end
  end
  return mix[#mix].kind
end

local function member_token(deal)
  return cfg.tokens[deal.members[math.random(#deal.members)]]
end

local function writer_token(deal)
  return cfg.tokens[deal.writers[math.random(#deal.writers)]]
end

local function bearer(token)
  return { ["Authorization"] = "Bearer " .. token }
end

local function json_headers(token)
  return { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
end

local function context_request(deal, revision)
  local path = "/api/internal/canvas/context?agentId=" .. cfg.agent_id .. "&projectId=" .. deal.id ..
      "&threadId=" .. deal.thread .. "&maxNodes=200"
  if revision then path = path .. "&revision=" .. revision end
  return wrk.format("GET", path, {
    ["Authorization"] = "Bearer " .. cfg.engine_token,
    ["X-Contract-Version"] = CONTRACT_VERSION,
    ["X-User-Id"] = cfg.user_ids[deal.engine_user],
    ["X-Project-Id"] = deal.id,
    ["X-Thread-Id"] = deal.thread,
  })
end

local builders = {
  bare = function(deal)
    return wrk.format("GET", "/bench/bare", bearer(member_token(deal)))
  end,
  canvas_get = function(deal)
    return wrk.format("GET", "/api/canvas/" .. deal.id, bearer(member_token(deal)))
  end,
  presence = function(deal)
    local section = cfg.sections[math.random(#cfg.sections)]
    local at = math.random(0, 2000)
    local body = '{"section_key":"' .. section .. '","cursor":{"anchor":' .. at .. ',"head":' .. (at + math.random(0, 40)) .. '}}'
    return wrk.format("POST", "/api/canvas/" .. deal.id .. "/presence", json_headers(member_token(deal)), body)
  end,
  save = function(deal)
    local i = math.random(#cfg.sections)
    edit_seq = edit_seq + 1
    local body = '{"markdown":"' .. cfg.bodies[i] .. '\\n\\nEdited by load thread ' .. tid .. ', edit ' .. edit_seq ..
        '.","base_version":' .. versions[deal.id] .. '}'
    return wrk.format("PUT", "/api/canvas/" .. deal.id .. "/sections/" .. cfg.sections[i],
      json_headers(writer_token(deal)), body)
  end,
  save_memo = function(deal)
    edit_seq = edit_seq + 1
    local body = '{"content":"' .. cfg.memo .. '\\n\\nEdited by load thread ' .. tid .. ', edit ' .. edit_seq ..
        '.","base_version":' .. versions[deal.id] .. '}'
    return wrk.format("POST", "/api/canvas/" .. deal.id .. "/save", json_headers(writer_token(deal)), body)
  end,
  context = function(deal)
    return context_request(deal, nil)
  end,
  context_unchanged = function(deal)
    return context_request(deal, revisions[deal.id])
  end,
}

function request()
  calls = calls + 1
  -- wrk calls request() once on thread 1 to verify the script before any connection exists
  if pending_kind and not (tid == 1 and calls == 2) then
    out:write("E ", pending_kind, "\n")
  end
  local kind, deal
  if retry_deal then
    kind, deal, retry_deal = retry_kind, retry_deal, nil
    out:write("R\n")
  else
    kind, deal = pick_kind(), cfg.deals[math.random(#cfg.deals)]
    retry_attempt = 0
  end
  pending_kind, pending_deal = kind, deal
  local req = builders[kind](deal)
  started_us = now_us()
  return req
end

function response(status, headers, body)
  local kind, deal = pending_kind, pending_deal
  if not kind then return end
  local elapsed = now_us() - started_us
  pending_kind, pending_deal = nil, nil
  out:write(kind, " ", status, " ", elapsed, "\n")
  if kind == "save" or kind == "save_memo" then
    if status == 200 then
      local v = string.match(body, '"version":%s*(%d+)')
      if v then versions[deal.id] = tonumber(v) end
    elseif status == 409 then
      local v = string.match(body, '"current_version":%s*(%d+)')
      if v then versions[deal.id] = tonumber(v) end
      retry_attempt = retry_attempt + 1
      if retry_attempt < SAVE_ATTEMPTS then
        retry_kind, retry_deal = kind, deal
      else
        out:write("G\n")
      end
    end
  elseif kind == "canvas_get" and status == 200 and cfg.get_version then
    -- the session's top-level version: its first "version" key (bench/load.py checks that it is)
    local v = string.match(body, '"version":%s*(%d+)')
    if v and tonumber(v) > versions[deal.id] then versions[deal.id] = tonumber(v) end
  elseif kind == "context" and status == 200 then
    local r = string.match(body, '"revision":%s*"(%x+)"')
    if r then revisions[deal.id] = r end
  elseif kind == "context_unchanged" and status == 200 and not string.find(body, '"unchanged":%s*true') then
    out:write("N\n") -- the revision had moved on: this one listed the nodes
  end
end

function done(summary, latency, requests)
  local report = assert(io.open(os.getenv("BENCH_LOAD_OUT"), "w"))
  local e = summary.errors
  report:write(string.format(
    'WRK %d %d %d %d %d %d %d %d %d %d %d %d\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, #all_threads))
  report:close()
end
