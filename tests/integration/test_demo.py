"""make demo's script, run once (KOS_DEMO_ONCE=1): it must show whoami, a 401 and a 403, and clean up."""
import os
import re
import subprocess

import kostest


def test_demo_once(tmp_path):
    env = dict(os.environ, KOS_DEMO_ONCE="1", KOS_BUILD=os.path.relpath(kostest.BUILD, kostest.ROOT),
               HOME=str(tmp_path), TMPDIR=str(tmp_path))
    env.pop("KUBECONFIG", None)
    p = subprocess.run([os.path.join(kostest.ROOT, "scripts", "demo.sh")], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, env=env, timeout=180)
    out = p.stdout
    assert p.returncode == 0, out
    assert "$ kubectl auth whoami" in out and "alice@example.com" in out
    assert "error: You must be logged in to the server (Unauthorized)" in out
    assert "Error from server (Forbidden): Impersonation requests are disabled when using this proxy" in out
    assert re.search(r"^kubeconfig: \S+/kubeconfig$", out, re.M), out
    # Everything it started is gone, and so is its temp dir; ~/.kube (here: HOME) was never written.
    assert not [d for d in os.listdir(tmp_path) if d.startswith("kos-demo.")]
    assert not os.path.exists(tmp_path / ".kube")
