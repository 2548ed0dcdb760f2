"""conf/ as files: valid on every HAProxy of the matrix without a warning, the generated group lines match the
generator, every KOS_* variable has a documented default."""
import os
import re
import subprocess

import kostest
import kosstack

CONF = kosstack.CONF


def check_env(tmp_path):
    pki = kosstack.apiserver.make_pki(str(tmp_path))
    pem = tmp_path / "front.pem"
    pem.write_text(open(pki["cert"]).read() + open(pki["key"]).read())
    return {"KOS_LISTEN": f"127.0.0.1:{kostest.free_port()}", "KOS_TLS_CERT": str(pem),
            "KOS_APISERVER": "127.0.0.1:6443", "KOS_APISERVER_NAME": "localhost", "KOS_APISERVER_CA": pki["ca"],
            "KOS_CONF_DIR": CONF}


def cfg_text():
    with open(os.path.join(CONF, "haproxy.cfg")) as f:
        return f.read()


def test_config_valid_without_warnings(haproxy_bin, tmp_path):
    ok, out = kostest.HAProxy.check(haproxy_bin, cfg_text(), env=check_env(tmp_path))
    assert ok, out
    assert "WARNING" not in out and "ALERT" not in out, out


def test_config_rejects_a_bad_spoe_timeout(haproxy_bin, tmp_path):
    # Proves the SPOE file is parsed with the environment expanded (and that -c really checks it).
    env = dict(check_env(tmp_path), KOS_SPOE_TIMEOUT="soon")
    ok, out = kostest.HAProxy.check(haproxy_bin, cfg_text(), env=env)
    assert not ok and "spoe-kos.conf" in out, out


def test_group_lines_match_generator():
    p = subprocess.run([kostest.PYTHON, os.path.join(CONF, "gen-groups.py"), "--check"], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 0, p.stdout
    text = cfg_text()
    for i in range(64):
        assert f"var(txn.kos.g{i})" in text
    assert "var(txn.kos.g64)" not in text
    assert "var(txn.kos.ng) -m int gt 64 }" in text


def test_generator_detects_a_hand_edit(tmp_path):
    edited = cfg_text().replace("var(txn.kos.g17)]", "var(txn.kos.g71)]", 1)
    f = tmp_path / "haproxy.cfg"
    f.write_text(edited)
    p = subprocess.run([kostest.PYTHON, os.path.join(CONF, "gen-groups.py"), "--check", str(f)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    assert p.returncode == 1, p.stdout


def test_every_variable_has_a_documented_default():
    text = cfg_text()
    used = set(re.findall(r"\$\{(KOS_[A-Z_]+)\}", text))
    with open(os.path.join(CONF, "spoe-kos.conf")) as f:
        used |= set(re.findall(r"\$\{(KOS_[A-Z_]+)\}", f.read()))
    preset = set(re.findall(r"^\s*presetenv\s+(KOS_[A-Z_]+)\s", text, re.M))
    header = "\n".join(line for line in text.splitlines() if line.startswith("#"))
    assert used <= preset, used - preset
    for v in preset:
        assert v in header, f"{v} is not documented in the header of haproxy.cfg"


def test_no_token_in_log_format():
    for line in cfg_text().splitlines():
        if "log-format" in line:
            low = line.lower()
            assert "authorization" not in low and "txn.kos.sa" not in low and "%hr" not in low and "%hu" not in low
