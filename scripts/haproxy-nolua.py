#!/usr/bin/python3
"""Builds an HAProxy WITHOUT Lua from Debian's haproxy source package, so the integration suite can prove that conf/
needs no Lua (issue 15, part 4): a configuration with `lua-load`, `tune.lua.*` or a `lua.` action is refused by it.

  1. For each suite of --suites in turn (default sid, the current LTS 3.2, then trixie, the 3.0 LTS, then bookworm,
     this machine's 2.6, whose whole source package this mirror does serve), a private apt
     configuration with a `deb-src` line under build/haproxy/nolua/apt/<suite>/ (scripts/haproxy-versions.py's
     PrivateApt: mirror and keyring read from the machine's own apt sources, which are never changed) finds that
     suite's `haproxy` source package and `apt-get source --download-only`s it; apt checks every file against the
     suite's signed Sources index.
  2. With the whole package (.dsc, orig tarball, debian tarball) `dpkg-source -x` unpacks it, Debian's patches
     applied. A mirror that carries only the orig tarball of a suite (this machine's mirror serves no 3.2 source
     at all, and of 3.0 only haproxy_3.0.11.orig.tar.gz) gets that tarball unpacked as it is — upstream's source,
     its SHA-256 checked again here against the Sources entry — and the report says so. A suite whose source the
     mirror does not serve is skipped with its reason; none at all is an error.
  3. `make -j<cores> TARGET=linux-glibc USE_OPENSSL=1 USE_PCRE2=1 USE_PCRE2_JIT=1 USE_PROMEX=1 USE_LUA=` in the
     unpacked tree: the haproxy binary only, -O2, no debug info, against bookworm's -dev packages (libssl-dev,
     libpcre2-dev, libcrypt-dev; compression is HAProxy's bundled libslz, sd_notify its own code).
  4. Copies the binary to build/haproxy/nolua/haproxy, drops the tree, and checks: `-vv` lists -LUA and no +LUA
     and no "Built with Lua"; a configuration whose only fault is `lua-load` of an existing empty file is refused
     for that keyword; `-c` and a real run of a trivial configuration answer one HTTP request on 127.0.0.1.
  5. Writes build/haproxy/nolua/stamp (suite, source version, HAProxy version, how it was unpacked, make
     arguments). A later run whose stamp has the same make arguments and whose binary runs costs nothing and
     touches no network; --refresh fetches and builds again.

Output: what was built, then a KOS_HAPROXY_BINS entry (format of tests/kostest.py) labelled <branch>-nolua, e.g.
3.0-nolua=/…/build/haproxy/nolua/haproxy. With --bins only that entry is printed. scripts/haproxy-versions.py
--nolua appends the same entry to its own list (the Makefile's TEST_NOLUA=1).
"""
import argparse
import fcntl
import glob
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("haproxy_versions", os.path.join(HERE, "haproxy-versions.py"))
hv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hv)

SOURCE_SUITES = ("sid", "trixie", "bookworm")
# Only the binary, -O2 (HAProxy's default OPT_CFLAGS, said explicitly), ARCH_FLAGS= drops the default -g.
# USE_LUA= is the point: Debian builds with USE_LUA=1, upstream's default is off; saying it keeps it off.
MAKE_ARGS = ["TARGET=linux-glibc", "USE_OPENSSL=1", "USE_PCRE2=1", "USE_PCRE2_JIT=1", "USE_PROMEX=1", "USE_LUA=",
             "OPT_CFLAGS=-O2", "ARCH_FLAGS="]
LABEL_SUFFIX = "-nolua"


def log(msg):
    hv.log(msg)


# ---- checks (also used by tests/matrix/test_nolua_build.py) --------------------------------------------------------

def lua_in_vv(vv):
    """The lines of `haproxy -vv` that say Lua is built in; [] for a binary without Lua."""
    out = [line.strip() for line in vv.splitlines() if re.match(r"\s*Built with Lua", line)]
    out += [f"feature +LUA in: {line.strip()}" for line in vv.splitlines()
            if line.startswith("Feature list") and re.search(r"(^|\s)\+LUA(\s|$)", line)]
    out += [f"option in: {line.strip()}" for line in vv.splitlines()
            if line.strip().startswith("OPTIONS") and re.search(r"USE_LUA=[^\s]", line)]
    return out


def lua_load_refused(cmd):
    """(refused, output) for `cmd -c` on a configuration whose only Lua is `lua-load` of an existing empty file:
    a binary with Lua accepts it, one without must fail on that keyword."""
    with tempfile.TemporaryDirectory(prefix="kos-nolua-") as tmp:
        lua = os.path.join(tmp, "empty.lua")
        open(lua, "w").close()
        cfg = os.path.join(tmp, "t.cfg")
        with open(cfg, "w") as f:
            f.write(f"global\n    lua-load \"{lua}\"\n"
                    "defaults\n    mode http\n    timeout connect 1s\n    timeout client 1s\n    timeout server 1s\n"
                    "frontend f\n    bind 127.0.0.1:8\n"
                    "    http-request return status 200 content-type text/plain string ok\n")
        p = subprocess.run([cmd, "-c", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=60)
        refused = p.returncode != 0 and "unknown keyword 'lua-load'" in p.stdout
        return refused, p.stdout


def check_nolua(cmd):
    """Every check of step 4; returns the -vv output."""
    vv = hv.check_binary(cmd)  # -vv sane, -c and one real request on 127.0.0.1
    found = lua_in_vv(vv)
    if found:
        raise RuntimeError(f"{cmd} has Lua built in:\n" + "\n".join(found))
    if not re.search(r"^Feature list .*(^|\s)-LUA(\s|$)", vv, re.M):
        raise RuntimeError(f"{cmd} -vv does not list -LUA in its features:\n{vv}")
    refused, out = lua_load_refused(cmd)
    if not refused:
        raise RuntimeError(f"{cmd} did not refuse a configuration with lua-load:\n{out}")
    return vv


# ---- fetch and build -----------------------------------------------------------------------------------------------

def source_stanza(apt):
    """(version, {file name: sha256}) of the haproxy source package of the private apt's only suite."""
    text = apt.cache("showsrc", "--only-source", "haproxy")
    best = None
    for block in text.split("\n\n"):
        m = re.search(r"^Version: (\S+)", block, re.M)
        if not m:
            continue
        sums = {}
        sec = re.search(r"^Checksums-Sha256:\n((?: .*\n?)*)", block, re.M)
        for line in (sec.group(1) if sec else "").splitlines():
            parts = line.split()
            if len(parts) == 3:
                sums[parts[2]] = parts[0]
        if best is None or subprocess.run(["dpkg", "--compare-versions", m.group(1), "gt", best[0]]).returncode == 0:
            best = (m.group(1), sums)
    if best is None:
        raise RuntimeError("no haproxy source package in this suite's Sources")
    return best


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_source(suite, base, mirror, keyring, arch):
    """Unpacks the suite's haproxy source under base/tree; returns (version, tree, how)."""
    apt = hv.PrivateApt(os.path.join(base, "apt", suite), mirror, keyring, [suite], arch, types=("deb-src",))
    log(f"nolua: {suite}: apt-get update (deb-src) against {mirror}")
    apt.get("update")
    version, sums = source_stanza(apt)
    dl = os.path.join(base, "dl")
    shutil.rmtree(dl, ignore_errors=True)
    os.makedirs(dl)
    tree = os.path.join(base, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    try:
        apt.get("source", "--download-only", f"haproxy={version}", cwd=dl)
        full = None
    except RuntimeError as e:
        full = "; ".join(line for line in str(e).splitlines() if line.startswith("E: Failed to fetch")) or str(e)
    if full is None:
        dsc = glob.glob(os.path.join(dl, "*.dsc"))
        run_out = hv.run(["dpkg-source", "--no-check", "-x", dsc[0], tree], cwd=dl)
        log(run_out.strip())
        return version, tree, f"Debian source package {version} (dpkg-source -x, Debian patches applied)"
    origs = [f for f in sums if re.match(r"haproxy_[^_]+\.orig\.tar\.(gz|xz|bz2)$", f)]
    have = [f for f in origs if os.path.exists(os.path.join(dl, f))]
    if not have:
        raise RuntimeError(f"the mirror serves no part of haproxy {version}'s source ({full})")
    orig = os.path.join(dl, have[0])
    if sha256(orig) != sums[have[0]]:
        raise RuntimeError(f"{have[0]}: SHA-256 differs from {suite}'s Sources")
    log(f"nolua: {suite}: the mirror lacks the .dsc/.debian tarball of {version} ({full}); "
        f"building upstream's tarball {have[0]} (SHA-256 matches {suite}'s Sources)")
    unpack = tree + ".unpack"
    shutil.rmtree(unpack, ignore_errors=True)
    os.makedirs(unpack)
    hv.run(["tar", "-xf", orig, "-C", unpack])
    tops = os.listdir(unpack)
    if len(tops) != 1:
        raise RuntimeError(f"{have[0]} does not unpack to one directory: {tops}")
    os.rename(os.path.join(unpack, tops[0]), tree)
    shutil.rmtree(unpack)
    return version, tree, f"upstream tarball {have[0]} of Debian {suite}'s source {version} (no Debian patches: " \
                          f"the mirror serves no .dsc/.debian tarball for it)"


def recipe():
    return " ".join(MAKE_ARGS)


def read_stamp(stamp):
    try:
        with open(stamp) as f:
            return dict(line.rstrip("\n").split(": ", 1) for line in f if ": " in line)
    except OSError:
        return {}


def provide(cache, suites=SOURCE_SUITES, refresh=False, check=False):
    """Returns (label, binary, stamp dict, timings or None when the cache served)."""
    base = os.path.join(os.path.abspath(cache), "nolua")  # apt reads relative Dir:: paths under /etc/apt
    os.makedirs(base, exist_ok=True)
    binary = os.path.join(base, "haproxy")
    stamp_path = os.path.join(base, "stamp")
    st = read_stamp(stamp_path)
    if not refresh and st.get("make") == recipe() and os.access(binary, os.X_OK):
        try:
            v = hv.version_of(binary)
            if v == st.get("haproxy"):
                if check:
                    check_nolua(binary)
                return hv.label(v) + LABEL_SUFFIX, binary, st, None
            log(f"nolua: cached binary says {v}, stamp says {st.get('haproxy')}: rebuilding")
        except (RuntimeError, subprocess.SubprocessError, OSError):
            log("nolua: cached binary is broken, rebuilding")
    elif st and not refresh:
        log("nolua: make arguments changed since the cached build, rebuilding")
    t0 = time.monotonic()
    arch = hv.run(["dpkg", "--print-architecture"]).strip()
    mirror, keyring = hv.debian_mirror()
    why = []
    for suite in suites:
        try:
            version, tree, how = fetch_source(suite, base, mirror, keyring, arch)
            break
        except RuntimeError as e:
            why.append(f"{suite}: {e}")
            log(f"nolua: {suite}: no usable source: {e}")
    else:
        raise RuntimeError("no haproxy source from any of " + ", ".join(suites) + ":\n" + "\n".join(why))
    t_dl = time.monotonic() - t0
    jobs = str(len(os.sched_getaffinity(0)))
    log(f"nolua: make -j{jobs} {recipe()}  (in {tree}, log in {base}/build.log)")
    with open(os.path.join(base, "build.log"), "w") as logf:
        p = subprocess.run(["make", f"-j{jobs}"] + MAKE_ARGS, cwd=tree, stdout=logf, stderr=subprocess.STDOUT,
                           timeout=3600)
    if p.returncode != 0:
        with open(os.path.join(base, "build.log")) as f:
            raise RuntimeError(f"make failed ({p.returncode}), tail of {base}/build.log:\n{f.read()[-4000:]}")
    t_build = time.monotonic() - t0 - t_dl
    shutil.copy2(os.path.join(tree, "haproxy"), binary + ".tmp")
    os.rename(binary + ".tmp", binary)
    shutil.rmtree(tree)
    shutil.rmtree(os.path.join(base, "dl"), ignore_errors=True)
    check_nolua(binary)
    v = hv.version_of(binary)
    st = {"suite": suite, "source": version, "haproxy": v, "from": how, "make": recipe()}
    if why:
        st["skipped"] = " | ".join(w.replace("\n", " ") for w in why)
    with open(stamp_path + ".tmp", "w") as f:
        f.writelines(f"{k}: {val}\n" for k, val in st.items())
    os.rename(stamp_path + ".tmp", stamp_path)
    return hv.label(v) + LABEL_SUFFIX, binary, st, (t_dl, t_build, time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default=",".join(SOURCE_SUITES),
                    help="source suites to try in order (default: %(default)s)")
    ap.add_argument("--cache", default=os.environ.get("KOS_HAPROXY_CACHE", hv.DEFAULT_CACHE))
    ap.add_argument("--refresh", action="store_true", help="fetch and build again")
    ap.add_argument("--check", action="store_true", help="also re-run the checks on a cached binary")
    ap.add_argument("--bins", action="store_true", help="print only the KOS_HAPROXY_BINS entry")
    a = ap.parse_args()
    hv.VERBOSE = not a.bins
    suites = [s.strip() for s in a.suites.split(",") if s.strip()]
    os.makedirs(a.cache, exist_ok=True)
    with open(os.path.join(a.cache, ".lock"), "w") as lockf:  # the lock scripts/haproxy-versions.py takes
        fcntl.flock(lockf, fcntl.LOCK_EX)
        lab, binary, st, times = provide(a.cache, suites, a.refresh, a.check)
    if times:
        log(f"nolua: source in {times[0]:.1f}s, built in {times[1]:.1f}s, ready and checked in {times[2]:.1f}s")
    if a.bins:
        print(f"{lab}={binary}")
        return 0
    for k, val in st.items():
        print(f"{k:8s} {val}")
    print(f"KOS_HAPROXY_BINS entry: {lab}={binary}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        sys.stderr.write(f"haproxy-nolua: {e}\n")
        sys.exit(1)
