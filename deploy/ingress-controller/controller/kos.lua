-- kube-oidc-spoa — adds Impersonate-Extra-<key>: <value> headers from the agent's txn.kos.x variable.
--
-- The agent sends the extras as lines "<percent-encoded-key>=<value>\n" and their count in txn.kos.nx
-- (conf/CONTRACT.md); haproxy.cfg calls this action only when nx > 0. Anything that does not parse exactly, or a
-- count that does not match, sets txn.kos_xbad and haproxy.cfg answers 503: the request is never forwarded with a
-- partial identity. Everything is checked before the first header is added, and every header is checked after:
-- HAProxy's Lua req_add_header() adds nothing, silently, when the request buffer has no room left (a client can
-- pad its request to get there), so the added lines are counted and any shortfall is a 503 too.

local MAX_EXTRAS = 64

-- RFC 7230 token characters (percent-encoded keys only use a subset of them).
local function is_token(s)
    return #s > 0 and s:find("^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil
end

-- Header values: printable ASCII, space, tab and UTF-8 bytes; no control characters.
local function is_value(s)
    return s:find("[%z\1-\8\10-\31\127]") == nil
end

core.register_action("kos_extras", { "http-req" }, function(txn)
    local x = txn:get_var("txn.kos.x")
    local nx = tonumber(txn:get_var("txn.kos.nx"))
    if type(x) ~= "string" or nx == nil or nx < 1 or nx > MAX_EXTRAS or x:sub(-1) ~= "\n" then
        txn:set_var("txn.kos_xbad", 1)
        return
    end
    local keys, values = {}, {}
    for line in x:gmatch("([^\n]*)\n") do
        local k, v = line:match("^([^=]*)=(.*)$")
        if k == nil or not is_token(k) or not is_value(v) or #keys >= nx then
            txn:set_var("txn.kos_xbad", 1)
            return
        end
        keys[#keys + 1] = k
        values[#values + 1] = v
    end
    if #keys ~= nx then
        txn:set_var("txn.kos_xbad", 1)
        return
    end
    local want = {}
    for i = 1, #keys do
        local name = ("impersonate-extra-" .. keys[i]):lower()
        want[name] = (want[name] or 0) + 1
        txn.http:req_add_header("Impersonate-Extra-" .. keys[i], values[i])
    end
    -- haproxy.cfg deleted every client Impersonate-* header before this action, so each name holds ours only.
    local got = txn.http:req_get_headers()
    for name, n in pairs(want) do
        local have = 0
        for _ in pairs(got[name] or {}) do
            have = have + 1
        end
        if have ~= n then
            txn:set_var("txn.kos_xbad", 1)
            return
        end
    end
end)
