"""The HAProxy built without Lua (scripts/haproxy-nolua.py, `make test TEST_NOLUA=1`) really has no Lua (issue 15).

The integration suite passing on that HAProxy is what proves conf/ needs no Lua; that proof holds only if the
binary cannot run Lua, so this checks it directly: `-vv` lists -LUA (not +LUA) and no "Built with Lua", and `-c`
refuses a configuration whose only fault is `lua-load` of an existing, empty Lua file. As a control, the machine's
stock Debian HAProxy (built with Lua) accepts that same configuration, so the refusal is the missing Lua and not
some other fault of the file. Runs for every entry of KOS_HAPROXY_BINS labelled *-nolua; skipped without one.
"""
import os
import re
import shutil
import subprocess

import pytest

import kostest

NOLUA = [(label, cmd) for label, cmd in kostest.haproxy_binaries() if label.endswith("-nolua")]
SKIP_REASON = ("no *-nolua HAProxy in KOS_HAPROXY_BINS: run `make test TEST_NOLUA=1`, or add the entry printed by "
               "`scripts/haproxy-nolua.py --bins` to KOS_HAPROXY_BINS")
pytestmark = pytest.mark.skipif(not NOLUA, reason=SKIP_REASON)


def vv(cmd):
    p = subprocess.run([cmd, "-vv"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    assert p.returncode == 0, p.stdout
    return p.stdout


def check_lua_load(cmd, tmp_path):
    lua = tmp_path / "empty.lua"
    lua.write_text("")
    cfg = tmp_path / "lua.cfg"
    cfg.write_text(f"global\n    lua-load \"{lua}\"\n"
                   "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
                   "frontend f\n    bind 127.0.0.1:8\n"
                   "    http-request return status 200 content-type text/plain string ok\n")
    return subprocess.run([cmd, "-c", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=60)


@pytest.mark.parametrize("label,cmd", NOLUA or [("none", "none")], ids=[lab for lab, _ in NOLUA] or ["none"])
def test_vv_lists_no_lua(label, cmd):
    out = vv(cmd)
    features = next((line for line in out.splitlines() if line.startswith("Feature list")), None)
    assert features is not None, out
    assert re.search(r"(^|\s)-LUA(\s|$)", features), features
    assert not re.search(r"(^|\s)\+LUA(\s|$)", features), features
    assert "Built with Lua" not in out, out
    options = next((line for line in out.splitlines() if line.strip().startswith("OPTIONS")), "")
    assert not re.search(r"USE_LUA=\S", options), options


@pytest.mark.parametrize("label,cmd", NOLUA or [("none", "none")], ids=[lab for lab, _ in NOLUA] or ["none"])
def test_refuses_lua_load(label, cmd, tmp_path):
    p = check_lua_load(cmd, tmp_path)
    assert p.returncode != 0, f"{cmd} accepted lua-load:\n{p.stdout}"
    assert "unknown keyword 'lua-load'" in p.stdout, p.stdout


def test_stock_haproxy_accepts_the_same_lua_load(tmp_path):
    stock = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(stock) or "Built with Lua" not in vv(stock):
        pytest.skip(f"{stock}: no HAProxy with Lua on this machine to show the configuration is otherwise valid")
    p = check_lua_load(stock, tmp_path)
    assert p.returncode == 0, p.stdout
