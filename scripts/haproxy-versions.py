#!/usr/bin/python3
"""Provides HAProxy 3.x binaries of newer Debian suites on this Debian 12 machine, for the version matrix (issue 5).

For each suite (trixie -> 3.0, sid -> 3.2, experimental -> 3.4 at the time of writing) this:
  1. writes a private apt configuration under build/haproxy/<suite>/apt/ (its own sources.list, lists, cache and an
     empty dpkg status) whose mirror and keyring are taken from the machine's own apt sources — the machine's apt
     configuration is only read, never changed;
  2. asks apt which packages installing `haproxy` from that suite would take (resolved against the suite alone,
     libc6 included, as if nothing were installed) and keeps the shared-library part of that closure;
  3. `apt-get download`s those packages and `dpkg -x`es them into build/haproxy/<suite>/root/;
  4. writes build/haproxy/<suite>/haproxy, a wrapper that runs that HAProxy through the suite's own dynamic loader
     and libraries (the host's glibc is older than what newer HAProxy packages need);
  5. checks the result: `haproxy -vv`, every library resolved inside the tree, `-c` and a real run of a trivial
     configuration answering one HTTP request.
The unpacked trees are cached between runs (a stamp file records the version); --refresh rebuilds them.

Output: one line per HAProxy with its exact version, then a KOS_HAPROXY_BINS line (format of tests/kostest.py),
including the machine's own HAProxy (bookworm, 2.6). With --bins only the KOS_HAPROXY_BINS value is printed, so a
Makefile can write  KOS_HAPROXY_BINS="$(scripts/haproxy-versions.py --bins)". --nolua appends an HAProxy built
without Lua from Debian's source package (scripts/haproxy-nolua.py, labelled e.g. 3.0-nolua).
"""
import argparse
import fcntl
import glob
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CACHE = os.path.join(ROOT, "build", "haproxy")
DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"

# suite -> (suites in its private sources.list, apt target release). experimental only carries what differs from
# sid, so it is resolved against sid + experimental with experimental preferred (-t experimental).
SUITES = {
    "trixie": (["trixie"], "trixie"),
    "sid": (["sid"], "sid"),
    "experimental": (["sid", "experimental"], "experimental"),
}

# dpkg architecture -> (multiarch triplet, loader path inside the tree as the brief names it)
ARCHES = {
    "amd64": ("x86_64-linux-gnu", "usr/lib64/ld-linux-x86-64.so.2"),
    "arm64": ("aarch64-linux-gnu", "usr/lib/ld-linux-aarch64.so.1"),
}

VERBOSE = True


def log(msg):
    if VERBOSE:
        sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def run(args, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    kw.setdefault("stderr", subprocess.STDOUT)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 600)
    p = subprocess.run([str(a) for a in args], **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(str(a) for a in args)} exited with {p.returncode}:\n{p.stdout}")
    return p.stdout


# ---- the machine's apt sources (read only) -----------------------------------------------------------------------

def _deb822_stanzas(text):
    stanza, key = {}, None
    for line in text.splitlines() + [""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if stanza:
                yield stanza
            stanza, key = {}, None
            continue
        if line[0] in " \t" and key:
            stanza[key] += "\n" + line.strip()
            continue
        k, _, v = line.partition(":")
        key = k.strip().lower()
        stanza[key] = v.strip()


def apt_sources():
    """Every enabled `deb` source of the machine as (uri, [suites], [components], signed_by or None)."""
    out = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        with open(path) as f:
            for st in _deb822_stanzas(f.read()):
                if st.get("enabled", "yes").lower() == "no" or "deb" not in st.get("types", "").split():
                    continue
                signed = st.get("signed-by")
                if signed and "\n" in signed:
                    signed = None  # an inline key block: fall back to the archive keyring below
                for uri in st.get("uris", "").split():
                    out.append((uri, st.get("suites", "").split(), st.get("components", "").split(), signed))
    lists = (["/etc/apt/sources.list"] if os.path.exists("/etc/apt/sources.list") else []) + \
        sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in lists:
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                m = re.match(r"^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
                if not m:
                    continue
                opts = dict(o.split("=", 1) for o in (m.group(1) or "").split() if "=" in o)
                out.append((m.group(2), [m.group(3)], m.group(4).split(), opts.get("signed-by")))
    return out


def debian_mirror():
    """The mirror this machine installs its own release from: the source carrying `<codename> main`."""
    codename = None
    with open("/etc/os-release") as f:
        for line in f:
            if line.startswith("VERSION_CODENAME="):
                codename = line.split("=", 1)[1].strip().strip('"')
    for uri, suites, comps, signed in apt_sources():
        if codename in suites and "main" in comps:
            keyring = signed if signed and os.path.exists(signed) else DEFAULT_KEYRING
            return uri.rstrip("/"), keyring
    raise RuntimeError(f"no apt source for '{codename} main' in /etc/apt/sources.list{{,.d/*}}: "
                       "cannot tell which Debian mirror to use")


# ---- a private apt for one suite -----------------------------------------------------------------------------------

class PrivateApt:
    def __init__(self, base, mirror, keyring, suites, arch, types=("deb",)):
        self.base = base
        for d in ("lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d",
                  "etc/apt.conf.d"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        with open(os.path.join(base, "etc/sources.list"), "w") as f:
            for s in suites:
                for t in types:  # "deb-src" too for scripts/haproxy-nolua.py, which builds from the source package
                    f.write(f"{t} [signed-by={keyring}] {mirror} {s} main\n")
        open(os.path.join(base, "status"), "w").close()  # nothing installed: resolve everything from the suite
        self.opts = []
        for k, v in (("Dir::Etc::SourceList", "etc/sources.list"), ("Dir::Etc::SourceParts", "etc/sources.list.d"),
                     ("Dir::Etc::Preferences", "etc/preferences"), ("Dir::Etc::PreferencesParts", "etc/preferences.d"),
                     ("Dir::State::Lists", "lists"), ("Dir::State::status", "status"), ("Dir::Cache", "cache"),
                     ("Dir::Cache::archives", "cache/archives")):
            self.opts += ["-o", f"{k}={os.path.join(base, v)}"]
        self.opts += ["-o", "Acquire::Languages=none", "-o", f"APT::Architectures={arch}",
                      "-o", "APT::Get::List-Cleanup=true", "-o", "Debug::NoLocking=true"]
        if os.geteuid() == 0:
            # The private dirs belong to root; apt's _apt download sandbox could not write into them.
            self.opts += ["-o", "APT::Sandbox::User=root"]

    def get(self, *args, **kw):
        return run(["apt-get", "-q"] + self.opts + list(args), **kw)

    def cache(self, *args):
        return run(["apt-cache"] + self.opts + list(args))


def _parse_depends(field):
    """'a (>= 1) | b, c' -> [['a','b'], ['c']] (names only, arch qualifiers dropped)."""
    out = []
    for group in field.split(","):
        alts = [re.sub(r"[\s(\[<].*$", "", a.strip()).split(":")[0] for a in group.split("|")]
        alts = [a for a in alts if a]
        if alts:
            out.append(alts)
    return out


def _is_library(name):
    return name.startswith("lib") or name == "zlib1g"


def library_closure(apt, target):
    """{package: version} of haproxy plus every shared-library package it needs, resolved against the suite."""
    sim = apt.get("-s", "install", "--no-install-recommends", "-t", target, "haproxy")
    inst = {}
    for m in re.finditer(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", sim, re.M):
        inst[m.group(1)] = m.group(2)
    if "haproxy" not in inst:
        raise RuntimeError(f"apt would not install haproxy from {target}:\n{sim}")
    # Follow Depends/Pre-Depends from haproxy through library packages only: systemd, lsb-base and friends are
    # what the package needs to be *installed*, not what the binary needs to run.
    show = apt.cache("show", "--no-all-versions", *[f"{n}={v}" for n, v in sorted(inst.items())])
    deps = {}
    for block in show.split("\n\n"):
        m = re.search(r"^Package: (\S+)", block, re.M)
        if not m:
            continue
        fields = " , ".join(re.findall(r"^(?:Pre-)?Depends: (.*)$", block, re.M))
        deps[m.group(1)] = _parse_depends(fields)
    keep, todo = {}, ["haproxy"]
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = inst[name]
        for alts in deps.get(name, []):
            for a in alts:
                if a in inst and _is_library(a):
                    todo.append(a)
    return keep


# ---- one suite -----------------------------------------------------------------------------------------------------

def resolve_in_tree(root, rel):
    """rel resolved inside root: absolute symlinks are re-rooted so nothing escapes to the host's files."""
    path = os.path.join(root, rel)
    for _ in range(40):
        if not os.path.islink(path):
            return path
        dest = os.readlink(path)
        path = os.path.join(root, dest.lstrip("/")) if dest.startswith("/") else \
            os.path.normpath(os.path.join(os.path.dirname(path), dest))
    raise RuntimeError(f"symlink loop at {rel}")


WRAPPER = """#!/bin/sh
# HAProxy {version} from Debian {suite}, run through that suite's own loader and libraries.
# Generated by scripts/haproxy-versions.py; the tree next to this file is a cache, rebuilt with --refresh.
root="$(dirname "$(readlink -f "$0")")/root"
exec "$root/{loader}" --argv0 "$0" --library-path "$root/usr/lib/{triplet}:$root/lib/{triplet}" \\
    "$root/usr/sbin/haproxy" "$@"
"""


def version_of(cmd):
    out = run([cmd, "-v"], timeout=60)
    m = re.search(r"HAProxy version (\S+)", out)
    if not m:
        raise RuntimeError(f"{cmd} -v printed no version:\n{out}")
    return m.group(1)


def check_binary(cmd, root=None, triplet=None, loader=None):
    """-vv, libraries resolved inside the tree, -c and one real request on a trivial config."""
    vv = run([cmd, "-vv"], timeout=60)
    if "Built with" not in vv:
        raise RuntimeError(f"{cmd} -vv looks wrong:\n{vv}")
    if root:
        listing = run([os.path.join(root, loader), "--list", "--library-path",
                       f"{root}/usr/lib/{triplet}:{root}/lib/{triplet}", os.path.join(root, "usr/sbin/haproxy")])
        for line in listing.splitlines():
            m = re.search(r"=> (\S+)", line)
            if "not found" in line or (m and not os.path.realpath(m.group(1)).startswith(os.path.realpath(root))):
                raise RuntimeError(f"library not taken from the suite's tree: {line.strip()}\n{listing}")
    with tempfile.TemporaryDirectory(prefix="kos-hapv-") as tmp:
        for attempt in range(5):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cfg = os.path.join(tmp, "t.cfg")
            with open(cfg, "w") as f:
                f.write("global\n    log stderr format raw local0 err\n"
                        "defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n"
                        "    timeout server 5s\n"
                        f"frontend f\n    bind 127.0.0.1:{port}\n"
                        "    http-request return status 200 content-type text/plain string ok\n")
            run([cmd, "-c", "-f", cfg], timeout=60)
            p = subprocess.Popen([cmd, "-db", "-f", cfg], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)
            try:
                deadline = time.monotonic() + 10
                body = None
                while time.monotonic() < deadline and p.poll() is None and body is None:
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                            body = r.read().decode()
                    except OSError:
                        time.sleep(0.05)
            finally:
                if p.poll() is None:
                    os.killpg(p.pid, 15)
                out = p.communicate(timeout=10)[0]
            if body == "ok":
                return vv
            if "cannot bind" not in out and "Address already in use" not in out:
                raise RuntimeError(f"{cmd} did not serve a trivial config:\n{out}")
        raise RuntimeError(f"{cmd}: could not find a free port in 5 attempts")


def provide(suite, cache, mirror, keyring, refresh):
    suites, target = SUITES[suite]
    arch = run(["dpkg", "--print-architecture"]).strip()
    if arch not in ARCHES:
        raise RuntimeError(f"architecture {arch} not supported by this script")
    triplet, loader_rel = ARCHES[arch]
    sdir = os.path.join(os.path.abspath(cache), suite)  # apt reads relative Dir:: paths under /etc/apt
    wrapper = os.path.join(sdir, "haproxy")
    stamp = os.path.join(sdir, "stamp")
    root = os.path.join(sdir, "root")
    if not refresh and os.path.exists(stamp) and os.access(wrapper, os.X_OK):
        try:
            return wrapper, version_of(wrapper), None
        except (RuntimeError, subprocess.SubprocessError, OSError):
            log(f"{suite}: cached tree is broken, rebuilding")
    t0 = time.monotonic()
    apt = PrivateApt(os.path.join(sdir, "apt"), mirror, keyring, suites, arch)
    log(f"{suite}: apt-get update against {mirror} ({' + '.join(suites)})")
    apt.get("update")
    pkgs = library_closure(apt, target)
    log(f"{suite}: haproxy {pkgs['haproxy']} needs {len(pkgs) - 1} library packages: "
        + " ".join(sorted(p for p in pkgs if p != "haproxy")))
    debs = os.path.join(sdir, "debs")
    shutil.rmtree(debs, ignore_errors=True)
    os.makedirs(debs)
    apt.get("download", *[f"{n}={v}" for n, v in sorted(pkgs.items())], cwd=debs)
    t_dl = time.monotonic() - t0
    new_root = root + ".new"
    shutil.rmtree(new_root, ignore_errors=True)
    os.makedirs(new_root)
    for deb in sorted(glob.glob(os.path.join(debs, "*.deb"))):
        run(["dpkg", "-x", deb, new_root])
    # The packaged loader path may be an absolute symlink into the host's /usr: point the wrapper at the real file.
    loader = resolve_in_tree(new_root, loader_rel)
    if not os.path.isfile(loader):
        raise RuntimeError(f"{suite}: no dynamic loader at {loader_rel} in the unpacked tree")
    loader_in_tree = os.path.relpath(loader, new_root)
    shutil.rmtree(root, ignore_errors=True)
    os.rename(new_root, root)
    shutil.rmtree(debs, ignore_errors=True)
    with open(wrapper + ".tmp", "w") as f:
        f.write(WRAPPER.format(version=pkgs["haproxy"], suite=suite, loader=loader_in_tree, triplet=triplet))
    os.chmod(wrapper + ".tmp", 0o755)
    os.rename(wrapper + ".tmp", wrapper)
    check_binary(wrapper, root, triplet, loader_in_tree)
    version = version_of(wrapper)
    with open(stamp, "w") as f:
        f.write(f"{suite} {pkgs['haproxy']} {version}\n")
    return wrapper, version, (t_dl, time.monotonic() - t0)


def load_nolua():
    """scripts/haproxy-nolua.py as a module (its file name is not an importable one)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("haproxy_nolua", os.path.join(ROOT, "scripts", "haproxy-nolua.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def label(version):
    m = re.match(r"(\d+)\.(\d+)", version)
    return f"{m.group(1)}.{m.group(2)}" if m else version


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suites", default="trixie,sid,experimental",
                    help="comma-separated, from: " + ", ".join(SUITES))
    ap.add_argument("--cache", default=os.environ.get("KOS_HAPROXY_CACHE", DEFAULT_CACHE))
    ap.add_argument("--refresh", action="store_true", help="rebuild cached trees")
    ap.add_argument("--check", action="store_true", help="also re-run the checks on cached trees")
    ap.add_argument("--no-system", action="store_true", help="leave the machine's haproxy out of the list")
    ap.add_argument("--bins", action="store_true", help="print only the KOS_HAPROXY_BINS value")
    ap.add_argument("--nolua", action="store_true",
                    help="append an HAProxy built without Lua (scripts/haproxy-nolua.py; cached, --refresh rebuilds)")
    a = ap.parse_args()
    VERBOSE = not a.bins
    suites = [s.strip() for s in a.suites.split(",") if s.strip()]
    for s in suites:
        if s not in SUITES:
            ap.error(f"unknown suite {s}")
    os.makedirs(a.cache, exist_ok=True)
    entries = []
    if not a.no_system:
        sysbin = shutil.which("haproxy") or "/usr/sbin/haproxy"
        v = version_of(sysbin)
        if a.check:
            check_binary(sysbin)
        entries.append((label(v), sysbin, v, "system"))
    # One run at a time per cache: several engineers share this machine and this tree.
    with open(os.path.join(a.cache, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        mirror, keyring = debian_mirror()
        for s in suites:
            wrapper, v, times = provide(s, a.cache, mirror, keyring, a.refresh)
            if times:
                log(f"{s}: downloaded in {times[0]:.1f}s, ready and checked in {times[1]:.1f}s")
            elif a.check:
                check_binary(wrapper)
            entries.append((label(v), wrapper, v, s))
        if a.nolua:
            nolua = load_nolua()
            nolua.hv.VERBOSE = VERBOSE
            lab, binary, st, times = nolua.provide(a.cache, refresh=a.refresh, check=a.check)
            if times:
                log(f"nolua: source in {times[0]:.1f}s, built in {times[1]:.1f}s, ready and checked in {times[2]:.1f}s")
            entries.append((lab, binary, st["haproxy"], f"{st['suite']} src"))
    bins = ";".join(f"{lab}={cmd}" for lab, cmd, _, _ in entries)
    if a.bins:
        print(bins)
        return 0
    for lab, cmd, v, s in entries:
        print(f"{lab:9s} {v:28s} {s:13s} {cmd}")
    print(f"KOS_HAPROXY_BINS={bins}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        sys.stderr.write(f"haproxy-versions: {e}\n")
        sys.exit(1)
