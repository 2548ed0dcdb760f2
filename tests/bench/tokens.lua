-- wrk script for the end-to-end benchmark (tests/bench/bench_kos.py): every request carries
-- "Authorization: Bearer <token>" with the next token of a file (one per line). Thread k of n sends tokens
-- k, k+n, k+2n, … so that no two threads send the same token close together (a B5 "new token" stays new).
--   wrk -t N … -s tests/bench/tokens.lua URL -- TOKENFILE N
local toks = {}
local i, step = 0, 1
local nthreads = 0

function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then toks[#toks + 1] = line end
  end
  step = tonumber(args[2]) or 1
  i = tid or 0
end

function request()
  local t = toks[i % #toks + 1]
  i = i + step
  return wrk.format("GET", "/api/v1/namespaces/default/pods", { ["Authorization"] = "Bearer " .. t })
end
