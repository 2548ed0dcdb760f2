#!/usr/bin/env python3
"""Runs every test suite that `make test` promises and prints one closing `N passed, N failed` line.

Suites (each can be picked with --only, repeatable):
  unit         build/asan/tests/test_*        cmocka binaries built under ASan+UBSan
  fuzz         build/fuzz/fuzz_*              libFuzzer targets, KOS_FUZZ_SECONDS each (default 30), one per core at a time on the
                                              committed corpus tests/fuzz/corpus/<target> (+ <target>.dict)
  integration  pytest over tests/             real HAProxy, kubectl, agent; junit XML is read for counts
               (but tests/image)
  image        pytest over tests/image/       builds both container images with podman and runs them (make test-image)

A binary that dies without a summary counts as one failure, so a crash can never look like a pass.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)

totals = {"passed": 0, "failed": 0, "skipped": 0}
failures = []
# What this run did, per suite, for scripts/security-table.py (build/security-table.md): build/test-summary.json
summary = {"unit": [], "fuzz": [], "integration": None, "image": None}


def record(suite, name, passed, failed, skipped=0):
    totals["passed"] += passed
    totals["failed"] += failed
    totals["skipped"] += skipped
    if failed:
        failures.append(f"{suite}:{name}")


def run_unit():
    d = os.path.join("build", "asan", "tests")
    bins = sorted(f for f in os.listdir(d) if f.startswith("test_")) if os.path.isdir(d) else []
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    for b in bins:
        path = os.path.join(d, b)
        t0 = time.time()
        p = subprocess.run([path], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, errors="replace", timeout=600)
        out = p.stdout
        ok = sum(int(x) for x in re.findall(r"\[  PASSED  \] (\d+) test", out))
        bad = sum(int(x) for x in re.findall(r"\[  FAILED  \] (\d+) test", out))
        if p.returncode != 0 and bad == 0:
            bad = 1  # crashed, sanitizer report, or exit without a summary
        if ok == 0 and bad == 0:
            bad = 1  # ran nothing: that is not a pass
        sys.stdout.write(f"unit  {b:32s} {ok:4d} passed {bad:3d} failed  ({time.time()-t0:.1f}s)\n")
        if bad:
            sys.stdout.write(out[-6000:] + "\n")
        record("unit", b, ok, bad)
        summary["unit"].append({"name": b, "passed": ok, "failed": bad})


def fuzz_one(d, b, secs):
    """Runs one libFuzzer target on a scratch copy of its corpus; returns (name, ok, execs, cov, secs, output)."""
    target = b[len("fuzz_"):]
    corpus = os.path.join("tests", "fuzz", "corpus", target)
    work = tempfile.mkdtemp(prefix=f"kos-fuzz-{target}-")  # new inputs go here, never into the repo
    args = [os.path.join(d, b), work]
    if os.path.isdir(corpus):
        args.append(corpus)
    dict_path = os.path.join("tests", "fuzz", f"{target}.dict")
    if os.path.exists(dict_path):
        args.append(f"-dict={dict_path}")
    args += [f"-max_total_time={secs}", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1",
             "-artifact_prefix=" + os.path.join(ROOT, "build", "fuzz", f"crash-{target}-")]
    t0 = time.time()
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                           timeout=secs + 300)
        out, ok = p.stdout, p.returncode == 0
    except subprocess.TimeoutExpired as e:
        out, ok = (e.stdout or b"").decode(errors="replace") + "\n(fuzzer overran its time)", False
    finally:
        shutil.rmtree(work, ignore_errors=True)
    execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
    cov = re.findall(r"cov: (\d+)", out)
    return (b, target, ok, int(execs[-1]) if execs else None, int(cov[-1]) if cov else None, time.time() - t0, out)


def run_fuzz():
    d = os.path.join("build", "fuzz")
    bins = sorted(f for f in os.listdir(d) if f.startswith("fuzz_") and os.access(os.path.join(d, f), os.X_OK)) \
        if os.path.isdir(d) else []
    secs = int(os.environ.get("KOS_FUZZ_SECONDS", "30"))
    # One fuzzer per core at a time: libFuzzer runs single-threaded, so this halves the wall time on 2 cores.
    jobs = int(os.environ.get("KOS_FUZZ_JOBS", str(os.cpu_count() or 1)))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        results = list(ex.map(lambda b: fuzz_one(d, b, secs), bins))
    for b, target, ok, execs, cov, took, out in results:
        sys.stdout.write(f"fuzz  {b:32s} {'ok' if ok else 'FAILED'}  execs={execs if execs is not None else '?'} "
                         f"cov={cov if cov is not None else '?'}  ({took:.1f}s)\n")
        if not ok:
            sys.stdout.write(out[-8000:] + "\n")
        record("fuzz", b, 1 if ok else 0, 0 if ok else 1)
        summary["fuzz"].append({"target": target, "ok": ok, "seconds": secs, "execs": execs, "cov": cov})


def run_pytest(suite, paths, xml, extra=()):
    """pytest over paths with junit XML in build/; its counts are recorded under suite."""
    if os.path.exists(xml):
        os.remove(xml)
    cmd = [sys.executable, "-m", "pytest", *paths, "-p", "no:cacheprovider", "-q", "-rfE",
           f"--junitxml={xml}", *extra]
    t0 = time.time()
    p = subprocess.run(cmd, timeout=3600)
    if not os.path.exists(xml):
        record(suite, "pytest", 0, 1)
        return
    root = ET.parse(xml).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    n = sum(int(s.get("tests", 0)) for s in suites)
    f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    sk = sum(int(s.get("skipped", 0)) for s in suites)
    if p.returncode not in (0, 1, 5) and f == 0:
        f = 1  # pytest itself broke (internal error, usage error, interrupted)
    if n == 0 and f == 0:
        f = 1  # collected nothing: that is not a pass
    sys.stdout.write(f"pytest {suite}: {n - f - sk} passed, {f} failed, {sk} skipped ({time.time()-t0:.1f}s)\n")
    record(suite, "pytest", n - f - sk, f, sk)
    summary[suite] = {"passed": n - f - sk, "failed": f, "skipped": sk, "junit": xml}


def run_integration():
    stale = os.path.join("build", "security-figures.json")  # the table must describe this run
    if os.path.exists(stale):
        os.remove(stale)
    run_pytest("integration", ["tests"], os.path.join("build", "pytest.xml"), ["--ignore=tests/image"])


def run_image():
    run_pytest("image", ["tests/image"], os.path.join("build", "pytest-image.xml"))


def write_summary():
    """build/test-summary.json, then build/security-table.md rendered from it (a failure there is reported
    but does not change the verdict of the tests)."""
    summary["totals"] = dict(totals)
    summary["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.makedirs("build", exist_ok=True)
    with open(os.path.join("build", "test-summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    table = os.path.join("scripts", "security-table.py")
    if os.path.exists(table):
        p = subprocess.run([sys.executable, table], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(p.stdout)


SUITES = {"unit": run_unit, "fuzz": run_fuzz, "integration": run_integration, "image": run_image}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", choices=sorted(SUITES))
    a = ap.parse_args()
    for name in (a.only or ["unit", "fuzz", "integration", "image"]):
        SUITES[name]()
    write_summary()
    if failures:
        print("failed: " + " ".join(failures))
    line = f"{totals['passed']} passed, {totals['failed']} failed"
    if totals["skipped"]:
        line += f", {totals['skipped']} skipped"
    print(line)
    if totals["passed"] + totals["failed"] == 0:
        print("no test ran", file=sys.stderr)
        return 1
    return 1 if totals["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
