#!/usr/bin/python3
"""Builds the project's container images with podman, on a machine that reaches no container registry.

The Dockerfile starts from two registry images, debian:12-slim and haproxy:3.2. This script makes local
stand-ins for both, under those very names, in a podman storage of its own (build/images/storage: the
machine's own podman images are never touched, and nothing here can be mistaken for the registry's images
outside this project's tests), then builds the Dockerfile unchanged:

  debian:12-slim   `debootstrap --variant=minbase bookworm` from the machine's Debian mirror, trimmed like the
                   official slim image (no docs, man pages, locales, apt lists), `podman import`ed
  haproxy:3.2      that base plus Debian sid's HAProxy 3.2 package tree, unpacked with its own libraries and
                   loader by scripts/haproxy-versions.py (no apt in the image), laid out like the official image:
                   /usr/local/sbin/haproxy, config under /usr/local/etc/haproxy, user haproxy (uid 99), an
                   entrypoint that runs `haproxy -W -db <args>`, STOPSIGNAL SIGUSR1
  the agent        `podman build --target agent` of the Dockerfile
  kos haproxy      `podman build --target haproxy` of the Dockerfile

Base images are kept between runs (labelled with what made them; --refresh remakes them); the Dockerfile's layers
are cached by podman itself. Every podman call goes through podman_cmd(): runc (crun refuses hybrid cgroup
hosts), the private storage, and ulimits below this machine's limits (podman's defaults are above them).

    scripts/images.py            make what is missing, build both images, print one JSON line with names/timings
    scripts/images.py --refresh  remake the stand-ins too
    scripts/images.py --podman   print the podman command prefix (for poking at the images by hand)
"""
import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "images")
STORAGE = os.path.join(WORK, "storage")
# Run-time state (locks, mounts) belongs in /run, not with the persistent layers; one per storage directory.
RUNSTATE = os.path.join("/run", "kube-oidc-spoa-images-" + hashlib.sha256(STORAGE.encode()).hexdigest()[:12])
STANDIN_DIR = os.path.join(ROOT, "tests", "image", "standin")

DEBIAN = "docker.io/library/debian:12-slim"
HAPROXY = "docker.io/library/haproxy:3.2"
AGENT_IMAGE = "localhost/kube-oidc-spoa:test"
HAPROXY_IMAGE = "localhost/kube-oidc-spoa-haproxy:test"
STANDIN_LABEL = "org.kube-oidc-spoa.stand-in"
# Below this machine's limits (podman's defaults exceed them and runc then refuses to start the container).
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"]
# Bump when the way a stand-in is made changes, so cached ones are remade.
STANDIN_RECIPE = "1"

VERBOSE = True


def log(msg):
    if VERBOSE:
        sys.stderr.write(f"images: {msg}\n")
        sys.stderr.flush()


def podman_cmd():
    return ["podman", "--root", STORAGE, "--runroot", os.path.join(RUNSTATE, "storage"),
            "--tmpdir", os.path.join(RUNSTATE, "libpod"), "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file", "--storage-driver", "overlay"]


def run(args, timeout=1800, input=None, capture=True, cwd=None):
    args = [str(a) for a in args]
    p = subprocess.run(args, stdout=subprocess.PIPE if capture else None, stderr=subprocess.STDOUT,
                       text=input is None or isinstance(input, str), input=input, timeout=timeout, cwd=cwd)
    if p.returncode != 0:
        out = p.stdout if isinstance(p.stdout, str) else (p.stdout or b"").decode(errors="replace")
        raise RuntimeError(f"{shlex.join(args)} exited with {p.returncode}:\n{(out or '')[-6000:]}")
    return p.stdout


def podman(*args, **kw):
    return run(podman_cmd() + list(args), **kw)


def image_label(name, label):
    """The label's value on a local image, or None when the image (or the label) is missing."""
    p = subprocess.run(podman_cmd() + ["image", "inspect", "--format", "{{json .Labels}}", name],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=120)
    if p.returncode != 0:
        return None
    labels = json.loads(p.stdout.strip() or "null") or {}
    return labels.get(label)


def image_size(name):
    return int(podman("image", "inspect", "--format", "{{.Size}}", name, timeout=120).strip())


def hapv():
    """scripts/haproxy-versions.py as a module (its mirror discovery and tree layout are reused here)."""
    spec = importlib.util.spec_from_file_location("haproxy_versions",
                                                  os.path.join(ROOT, "scripts", "haproxy-versions.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.VERBOSE = VERBOSE
    return mod


# ---- debian:12-slim ------------------------------------------------------------------------------------------------

# What the official slim image leaves out, kept out of later package installs too.
DPKG_EXCLUDES = """# Like the official slim image: no documentation, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
"""

APT_CLEAN = """# No package cache left behind in image layers.
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
"""


def security_mirror(mod):
    for uri, suites, comps, _ in mod.apt_sources():
        if "bookworm-security" in suites and "main" in comps:
            return uri.rstrip("/")
    return "http://deb.debian.org/debian-security"


def make_debian(mod):
    mirror, keyring = mod.debian_mirror()
    tree = os.path.join(WORK, "debian-rootfs")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(WORK, exist_ok=True)
    t0 = time.monotonic()
    log(f"debootstrap --variant=minbase bookworm from {mirror} (once; cached afterwards)")
    run(["debootstrap", "--variant=minbase", f"--keyring={keyring}", "bookworm", tree, mirror], timeout=1800)
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/info",
                "usr/share/locale", "var/log"):
        d = os.path.join(tree, sub)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            p = os.path.join(d, name)
            if name in ("partial", "lock"):
                continue
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
    for p in ("var/cache/apt/pkgcache.bin", "var/cache/apt/srcpkgcache.bin", "etc/apt/sources.list"):
        if os.path.lexists(os.path.join(tree, p)):
            os.unlink(os.path.join(tree, p))
    with open(os.path.join(tree, "etc/apt/sources.list.d/debian.sources"), "w") as f:
        f.write(f"Types: deb\nURIs: {mirror}\nSuites: bookworm bookworm-updates\nComponents: main\n"
                f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
                f"Types: deb\nURIs: {security_mirror(mod)}\nSuites: bookworm-security\nComponents: main\n"
                f"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    with open(os.path.join(tree, "etc/dpkg/dpkg.cfg.d/kos-slim"), "w") as f:
        f.write(DPKG_EXCLUDES)
    with open(os.path.join(tree, "etc/apt/apt.conf.d/kos-slim"), "w") as f:
        f.write(APT_CLEAN)
    # /dev, /proc and /sys come from the container runtime.
    for sub in ("dev", "proc", "sys"):
        d = os.path.join(tree, sub)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    tar = subprocess.Popen(["tar", "--numeric-owner", "-C", tree, "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        p = subprocess.run(podman_cmd() + [
            "import", "--change", 'CMD ["bash"]',
            "--change", f"LABEL {STANDIN_LABEL}=debootstrap-bookworm-minbase-{STANDIN_RECIPE}",
            "--message", "local stand-in for debian:12-slim (debootstrap --variant=minbase bookworm)",
            "-", DEBIAN], stdin=tar.stdout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=900)
    finally:
        tar.stdout.close()
        tar.wait(timeout=300)
    if p.returncode != 0 or tar.returncode != 0:
        raise RuntimeError(f"podman import of the debian stand-in failed:\n{p.stdout[-4000:]}")
    shutil.rmtree(tree, ignore_errors=True)
    log(f"{DEBIAN} (stand-in) made in {time.monotonic() - t0:.0f}s")


# ---- haproxy:3.2 ---------------------------------------------------------------------------------------------------

def make_haproxy(mod, tree, version, label):
    arch = run(["dpkg", "--print-architecture"]).strip()
    triplet, loader_rel = mod.ARCHES[arch]
    loader = os.path.relpath(mod.resolve_in_tree(tree, loader_rel), tree)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kos-haproxy-standin-", dir=WORK) as ctx:
        run(["cp", "-a", tree, os.path.join(ctx, "haproxy")])
        for name in ("Containerfile", "docker-entrypoint.sh"):
            shutil.copy(os.path.join(STANDIN_DIR, f"haproxy.{name}" if name == "Containerfile" else name),
                        os.path.join(ctx, name))
        # The official image has the binary at /usr/local/sbin/haproxy; ours runs sid's through sid's loader.
        # --argv0 keeps argv[0] the wrapper's path: HAProxy's master re-executes itself by that name.
        with open(os.path.join(ctx, "haproxy-wrapper"), "w") as f:
            f.write("#!/bin/sh\n"
                    f"# HAProxy {version} from Debian sid with its own libraries (stand-in for haproxy:3.2).\n"
                    f"exec /opt/haproxy/{loader} --argv0 \"$0\" "
                    f"--library-path /opt/haproxy/usr/lib/{triplet}:/opt/haproxy/lib/{triplet} "
                    "/opt/haproxy/usr/sbin/haproxy \"$@\"\n")
        os.chmod(os.path.join(ctx, "haproxy-wrapper"), 0o755)
        podman("build", "--pull=never", "--network", "none", *ULIMITS, "--layers=false",
               "--label", f"{STANDIN_LABEL}={label}", "-f", os.path.join(ctx, "Containerfile"), "-t", HAPROXY, ctx,
               timeout=1800)
    log(f"{HAPROXY} (stand-in, HAProxy {version}) made in {time.monotonic() - t0:.0f}s")


def sid_haproxy(mod):
    """(tree, version) of Debian sid's HAProxy as scripts/haproxy-versions.py provides it (cached in build/)."""
    out = run([sys.executable, os.path.join(ROOT, "scripts", "haproxy-versions.py"), "--suites", "sid",
               "--no-system", "--bins"], timeout=1800)
    cmd = out.strip().split("=", 1)[1]
    sdir = os.path.dirname(cmd)
    with open(os.path.join(sdir, "stamp")) as f:
        version = f.read().split()[1]
    return os.path.join(sdir, "root"), version


# ---- the project's images ------------------------------------------------------------------------------------------

def build_project(target, tag):
    t0 = time.monotonic()
    # Host network: the build stage's apt reaches the Debian archive directly (no container network is set up here).
    podman("build", "--pull=never", "--network", "host", *ULIMITS, "--target", target, "-t", tag,
           "-f", os.path.join(ROOT, "Dockerfile"), ROOT, timeout=3600)
    took = time.monotonic() - t0
    log(f"{tag} (Dockerfile --target {target}) built in {took:.0f}s")
    return took


def ensure(refresh=False, build=True):
    for tool in ("podman", "runc", "debootstrap"):
        if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
            raise RuntimeError(f"{tool} is missing: run scripts/deps.sh (make deps)")
    if not os.path.isdir(STORAGE):
        # A storage removed by hand (make clean) must not meet the run-time state of the old one.
        shutil.rmtree(RUNSTATE, ignore_errors=True)
    os.makedirs(WORK, exist_ok=True)
    timings = {}
    with open(os.path.join(WORK, ".lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)  # one run at a time per storage
        mod = hapv()
        t0 = time.monotonic()
        if refresh or image_label(DEBIAN, STANDIN_LABEL) != f"debootstrap-bookworm-minbase-{STANDIN_RECIPE}":
            make_debian(mod)
            refresh = True  # haproxy:3.2 is built on it
        tree, version = sid_haproxy(mod)
        label = f"debian-sid-{version}-{STANDIN_RECIPE}"
        if refresh or image_label(HAPROXY, STANDIN_LABEL) != label:
            make_haproxy(mod, tree, version, label)
        timings["base_images_s"] = round(time.monotonic() - t0, 1)
        if build:
            timings["agent_build_s"] = round(build_project("agent", AGENT_IMAGE), 1)
            timings["haproxy_build_s"] = round(build_project("haproxy", HAPROXY_IMAGE), 1)
            # Layers of earlier builds would otherwise pile up in build/images/storage; a day's worth stays as the
            # build cache (the build stage's package layer among them).
            subprocess.run(podman_cmd() + ["image", "prune", "-f", "--filter", "until=24h"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=300)
    info = {"podman": podman_cmd(), "ulimits": ULIMITS, "debian": DEBIAN, "haproxy": HAPROXY,
            "haproxy_version": version, "agent_image": AGENT_IMAGE, "haproxy_image": HAPROXY_IMAGE,
            "timings": timings}
    if build:
        info["sizes"] = {n: image_size(n) for n in (DEBIAN, HAPROXY, AGENT_IMAGE, HAPROXY_IMAGE)}
    return info


def main():
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refresh", action="store_true", help="remake the stand-in base images")
    ap.add_argument("--base-only", action="store_true", help="only the stand-in base images")
    ap.add_argument("--podman", action="store_true", help="print the podman command prefix and exit")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if a.podman:
        print(shlex.join(podman_cmd()))
        return 0
    VERBOSE = not a.quiet
    info = ensure(refresh=a.refresh, build=not a.base_only)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        sys.stderr.write(f"images: {e}\n")
        sys.exit(1)
