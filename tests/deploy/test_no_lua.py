"""Nothing we ship loads or calls Lua (issue 15: the HAProxy↔agent contract v2 has no Lua).

`grep -rn lua conf deploy` made into a test that tells a mention from a use. Over conf/, deploy/, Dockerfile and
docker-compose.yml, it fails on:
  - any *.lua file;
  - outside comments, any HAProxy Lua keyword: lua-load, lua-load-per-thread, lua-prepend-path, tune.lua.*, or a
    `lua.<name>` action, service, sample fetch or converter (http-request lua.x, use-service lua.x, %[lua.x],
    ,lua.x) — in *.cfg and in every other file that could carry configuration (YAML values, scripts);
  - outside comments, a reference to a .lua file (a kustomization's configMapGenerator, a copy in a script).
Markdown is prose and is not read. Comments (# ...) may say "Lua" freely. The HAProxy built without Lua
(tests/matrix/test_nolua_build.py) catches what this reads past: the integration suite fails on it if conf/ uses Lua.
"""
import os
import re

import kostest

ROOT = kostest.ROOT
PLACES = ["conf", "deploy", "Dockerfile", "docker-compose.yml"]

LUA_KEYWORD = re.compile(r"(?<![\w.-])(lua-load(-per-thread)?|lua-prepend-path|tune\.lua\.[\w.-]+|lua\.\w+)")
LUA_FILE = re.compile(r"[\w./${}-]*\.lua\b", re.I)


def shipped_files():
    for place in PLACES:
        path = os.path.join(ROOT, place)
        if os.path.isfile(path):
            yield path
            continue
        for d, dirs, files in os.walk(path):
            dirs.sort()
            for f in sorted(files):
                yield os.path.join(d, f)


def uses_of_lua():
    found = []
    for path in shipped_files():
        rel = os.path.relpath(path, ROOT)
        if path.lower().endswith(".lua"):
            found.append(f"{rel}: a Lua file")
            continue
        if path.lower().endswith(".md"):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (UnicodeDecodeError, OSError):
            continue
        for n, line in enumerate(lines, 1):
            if line.lstrip().startswith("#"):
                continue
            m = LUA_KEYWORD.search(line) or LUA_FILE.search(line)
            if m:
                found.append(f"{rel}:{n}: {m.group(0)!r} in: {line.strip()}")
    return found


def test_the_patterns_catch_what_they_must():
    # The reader itself, on the forms Lua takes in an HAProxy configuration and around it.
    for text in ['    lua-load "${KOS_CONF_DIR}/kos.lua"', "    lua-load-per-thread x.lua", "  lua-prepend-path /x/?.lua",
                 "    tune.lua.bool-sample-conversion normal", "    http-request lua.kos_extras if { var(a) }",
                 "    http-request use-service lua.svc", '    http-request set-var(txn.x) lua.fetch',
                 '    http-request set-header X "%[var(txn.a),lua.conv]"', "      - kos.lua",
                 "for f in haproxy.cfg spoe-kos.conf kos.lua; do"]:
        assert LUA_KEYWORD.search(text) or LUA_FILE.search(text), text
    for text in ["    http-request set-var(txn.kos.nx) int(1)", "    filter spoe engine kos config x.conf",
                 "  evaluation: lua_state", "    http-request set-header X-Value-Lua %[var(txn.a)]"]:
        assert not (LUA_KEYWORD.search(text) or LUA_FILE.search(text)), text


def test_conf_and_deploy_load_and_call_no_lua():
    found = uses_of_lua()
    assert not found, "Lua is still loaded or called:\n  " + "\n  ".join(found)
