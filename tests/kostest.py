"""Shared helpers for the python test suites: ports, processes, HAProxy binaries, paths.

Every server a test starts listens on loopback, on a port picked at run time, and is stopped by the test (or by
the fixture that started it) — several test runs may share this machine.
"""
import os
import re
import shlex
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tests run the sanitizer build by default (issue 8); KOS_BUILD=build runs the release build.
BUILD = os.path.join(ROOT, os.environ.get("KOS_BUILD", "build/asan"))
PYTHON = "/usr/bin/python3"  # Debian's, with pytest/cryptography/jwcrypto


def build_path(*parts):
    return os.path.join(BUILD, *parts)


_handed_out = set()


def free_port(host="127.0.0.1"):
    """A port that was free a moment ago. Racy by nature; callers retry a start that fails to bind. Never the same
    port twice in this process: two picks in a row can be handed the same released port, and a test would then
    start two servers on one port (other processes can still take it: hence the retries)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(100):
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise RuntimeError("free_port: 100 picks in a row were ports this process had already handed out")


def wait_port(port, host="127.0.0.1", timeout=10.0, proc=None):
    """Waits until host:port accepts a TCP connection; raises if proc dies or timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


class Proc:
    """A child process with its output in a log file; stop() is idempotent and always reaps."""

    def __init__(self, args, env=None, name=None, cwd=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.logf = tempfile.NamedTemporaryFile(prefix=f"kos-{self.name}-", suffix=".log", delete=False)
        full_env = dict(os.environ)
        full_env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        full_env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        if env:
            full_env.update(env)
        self.p = subprocess.Popen(self.args, stdout=self.logf, stderr=subprocess.STDOUT, env=full_env, cwd=cwd,
                                  start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def poll(self):
        return self.p.poll()

    def log(self):
        with open(self.logf.name, "r", errors="replace") as f:
            return f.read()

    def send_signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.p.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        """Stops the process; returns its exit code."""
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait(timeout=10)
        return self.p.returncode

    def sanitizer_report(self):
        """The first sanitizer or valgrind report in the log, or None."""
        text = self.log()
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "ERROR: UndefinedBehaviorSanitizer", "Invalid read", "Invalid write"):
            i = text.find(marker)
            if i >= 0:
                return text[max(0, i - 200):i + 3000]
        return None

    def __repr__(self):
        return f"Proc({shlex.join(self.args)})"


# ---- HAProxy binaries ---------------------------------------------------------------------------------------
# KOS_HAPROXY_BINS lists the HAProxy commands to test against, "label=command" separated by ';' (a command may be
# a wrapper script that runs another suite's HAProxy through its own loader). Default: the machine's haproxy.

def haproxy_binaries():
    spec = os.environ.get("KOS_HAPROXY_BINS", "").strip()
    if not spec:
        return [("system", "haproxy")]
    out = []
    for item in spec.split(";"):
        item = item.strip()
        if not item:
            continue
        label, _, cmd = item.partition("=")
        out.append((label.strip(), cmd.strip() or label.strip()))
    return out


def haproxy_version(cmd):
    out = subprocess.run([cmd, "-v"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=30).stdout
    first = out.splitlines()[0] if out else ""
    parts = first.split()
    ver = parts[2] if len(parts) > 2 else "?"
    return ver


def haproxy_section(cfg_text, header):
    """The body of the section `header` ("backend kos_agents") of an HAProxy configuration, or None. A section ends
    at the next unindented line that is neither a conditional (.if/.else/.endif) nor a comment."""
    m = re.search(r"^" + re.escape(header) + r"\n(.*?)(?=^(?![.#\s])\S|\Z)", cfg_text, re.M | re.S)
    return m.group(1) if m else None


def server_stat(stats_path, backend, server, column):
    """One column ("status", "connect", ...) of a server's row in HAProxy's stats socket `show stat`, or None."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(stats_path)
        s.sendall(b"show stat\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    lines = data.decode(errors="replace").splitlines()
    names = lines[0].lstrip("# ").split(",") if lines else []
    if column not in names:
        return None
    at = names.index(column)
    for line in lines[1:]:
        f = line.split(",")
        if len(f) > at and f[0] == backend and f[1] == server:
            return f[at]
    return None


def server_status(stats_path, backend="spoe_agents", server="agent1"):
    """A server's status column ("UP", "DOWN", ...) from HAProxy's stats socket, or None."""
    return server_stat(stats_path, backend, server, "status")


def haproxy_at_least(cmd, major, minor):
    v = haproxy_version(cmd).split("-")[0].split(".")
    try:
        return (int(v[0]), int(v[1])) >= (major, minor)
    except (ValueError, IndexError):
        return False


class HAProxy(Proc):
    """HAProxy in the foreground (-db) with a config written to a temp file."""

    def __init__(self, cmd, cfg_text, env=None, wait_ports=(), name="haproxy"):
        self.cfg = tempfile.NamedTemporaryFile("w", prefix="kos-haproxy-", suffix=".cfg", delete=False)
        self.cfg.write(cfg_text)
        self.cfg.close()
        # -dR: no SO_REUSEPORT, so a port another process listens on is a bind failure (callers retry on another
        # port) instead of a listener shared with it, where wait_port() and the test could reach the other one.
        super().__init__([cmd, "-db", "-dR", "-f", self.cfg.name], env=env, name=name)
        for port in wait_ports:
            wait_port(port, proc=self.p)

    @staticmethod
    def check(cmd, cfg_text, env=None):
        """Runs haproxy -c; returns (ok, output)."""
        with tempfile.NamedTemporaryFile("w", prefix="kos-haproxy-check-", suffix=".cfg", delete=False) as f:
            f.write(cfg_text)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        p = subprocess.run([cmd, "-c", "-f", f.name], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           env=full_env, timeout=60)
        os.unlink(f.name)
        return p.returncode == 0, p.stdout


# ---- stacks in module fixtures -------------------------------------------------------------------------------

def stack_fixture(new_stack):
    """Body of a module fixture (`yield from kostest.stack_fixture(...)`) that hands out make(**kw): a stack from
    new_stack(**kw), started. At the end every stack is stopped; sanitizer reports from their processes fail the
    module (those stacks, and any after them, keep their temp files for the post-mortem)."""
    import pytest

    stacks = []

    def make(**kw):
        s = new_stack(**kw)
        stacks.append(s)
        return s.start()

    yield make
    reports = []
    for s in stacks:
        s.stop()
        for p in [s.agent, s.haproxy, s.api] + list(getattr(s, "extra_procs", [])):  # extra_procs: SecStack's
            rep = p.sanitizer_report() if p is not None else None
            if rep:
                reports.append(f"{p!r}:\n{rep}")
        if not reports:
            s.cleanup()
    if reports:
        pytest.fail("sanitizer report(s):\n" + "\n\n".join(reports))
