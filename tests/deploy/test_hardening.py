"""The base deployment's hardening (security review, issue #14: "held up — keep it so"), read straight from the
YAML of deploy/base (no kustomize needed): non-root, read-only root filesystem, no capabilities, no privilege
escalation, the runtime's default seccomp profile, no host namespaces or host paths, and the API credential
mounted only into the container that needs it. tests/deploy/test_deploy.py checks part of this on every rendered
kustomization; this file pins the whole list on the base every overlay starts from."""
import os
import re

import pytest
import yaml

import kostest

BASE = os.path.join(kostest.ROOT, "deploy", "base")


def docs(name):
    with open(os.path.join(BASE, name)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def deployment():
    (dep,) = [d for d in docs("deployment.yaml") if d["kind"] == "Deployment"]
    return dep


def pod_spec():
    return deployment()["spec"]["template"]["spec"]


def containers():
    spec = pod_spec()
    return spec["containers"] + spec.get("initContainers", []) + spec.get("ephemeralContainers", [])


def test_pod_runs_as_non_root_with_runtime_default_seccomp():
    sc = pod_spec()["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert sc.get("runAsUser", 1) != 0


def test_no_host_namespaces_host_paths_or_host_ports():
    spec = pod_spec()
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        assert spec.get(k) in (None, False), k
    for v in spec.get("volumes", []):
        assert "hostPath" not in v, v["name"]
    for c in containers():
        for p in c.get("ports", []):
            assert "hostPort" not in p and "hostIP" not in p, (c["name"], p)


@pytest.mark.parametrize("name", [c["name"] for c in containers()])
def test_container_security_context(name):
    (c,) = [c for c in containers() if c["name"] == name]
    sc = c.get("securityContext") or {}
    assert sc.get("allowPrivilegeEscalation") is False, name
    assert sc.get("readOnlyRootFilesystem") is True, name
    assert sc.get("privileged") in (None, False), name
    assert sc.get("capabilities", {}).get("drop") == ["ALL"], name
    assert not sc.get("capabilities", {}).get("add"), name
    assert sc.get("runAsNonRoot", True) is True, name
    assert sc.get("runAsUser", 1) != 0 and sc.get("runAsGroup", 1) != 0, name
    # a container-level seccomp profile may only tighten the pod's RuntimeDefault
    assert sc.get("seccompProfile", {}).get("type", "RuntimeDefault") in ("RuntimeDefault", "Localhost"), name
    assert sc.get("procMount", "Default") == "Default", name


def test_every_container_has_a_verifiable_non_root_user():
    """runAsNonRoot only works with a numeric user: a container without runAsUser relies on its image's USER,
    which must then be numeric and not 0 (the agent's image is built by the Dockerfile here)."""
    with open(os.path.join(kostest.ROOT, "Dockerfile")) as f:
        dockerfile = f.read()
    for c in containers():
        if "runAsUser" in (c.get("securityContext") or {}):
            continue
        assert c["image"] == "kube-oidc-spoa", f"{c['name']}: no runAsUser and an image not built here"
        # the USER of the stage the agent's image is (the last USER before the end of that stage)
        stage = re.search(r"^FROM \S+ AS agent\n(.*?)(?=^FROM |\Z)", dockerfile, re.M | re.S)
        assert stage, "no 'agent' stage in the Dockerfile"
        users = re.findall(r"^USER\s+(\S+)", stage.group(1), re.M)
        assert users, "the agent stage sets no USER"
        uid = users[-1].split(":")[0]
        assert uid.isdigit() and int(uid) != 0, users[-1]


def test_service_account_token_only_where_needed():
    """No automounted token at all (pod and ServiceAccount); the agent's own projected, expiring token is mounted
    into the agent container only (HAProxy forwards what the agent hands it and never reads the token)."""
    spec = pod_spec()
    assert spec["automountServiceAccountToken"] is False
    (sa,) = [d for d in docs("serviceaccount.yaml") if d["kind"] == "ServiceAccount"]
    assert sa["automountServiceAccountToken"] is False
    projected = {v["name"] for v in spec["volumes"]
                 if any("serviceAccountToken" in s for s in v.get("projected", {}).get("sources", []))}
    assert projected, "no projected service-account token volume"
    for v in spec["volumes"]:
        for s in v.get("projected", {}).get("sources", []):
            if "serviceAccountToken" in s:
                assert s["serviceAccountToken"].get("expirationSeconds", 3600) <= 3600
    mounted_in = {c["name"] for c in containers() for m in c.get("volumeMounts", []) if m["name"] in projected}
    assert mounted_in == {"agent"}, mounted_in


def test_every_mount_is_read_only_but_the_agents_socket_directory():
    """Nothing is writable but the in-memory emptyDir where the agent creates its SPOP socket (HAProxy mounts it
    read-only: connecting needs write permission on the socket, not on the mount)."""
    spec = pod_spec()
    vols = {v["name"]: v for v in spec["volumes"]}
    for c in containers():
        for m in c.get("volumeMounts", []):
            if m.get("readOnly") is True:
                continue
            assert c["name"] == "agent" and set(vols[m["name"]]) == {"name", "emptyDir"}, (c["name"], m["name"])
            assert vols[m["name"]]["emptyDir"]["medium"] == "Memory"
            assert any(a == f"--listen=unix:{m['mountPath'].rstrip('/')}/spop.sock" for a in c["args"]), c["args"]


def test_spop_socket_group_is_the_pods_fsgroup():
    """The agent (65532) makes its socket 0660; HAProxy (99) may connect only through a group both have: the pod's
    fsGroup, which kubelet adds to every container and sets (set-group-ID) on the emptyDir the socket is in."""
    sc = pod_spec()["securityContext"]
    assert isinstance(sc.get("fsGroup"), int) and sc["fsGroup"] not in (0, 99, 65532), sc
    for c in containers():
        # a supplementalGroups/runAsGroup of 0 would give root's group files; none may drop the fsGroup either
        assert (c.get("securityContext") or {}).get("runAsGroup", 1) != 0, c["name"]


def test_no_service_links():
    assert pod_spec().get("enableServiceLinks") is False
