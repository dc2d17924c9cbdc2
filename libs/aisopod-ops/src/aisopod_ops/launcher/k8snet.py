"""NetworkPolicies of the `aisopod` namespace: nothing talks to anything unless listed here.

Default deny, both ways, for every pod of the namespace; then, per peer:

- Traefik's pods (namespace `traefik`) reach the workloads Traefik routes to on their
  `http` port: the edges (`ws-gateway`, `http-api`, `static-ui`), `edge-sync` (its HTTP
  provider) and whatever a forwardAuth middleware still calls (read from the middlewares,
  so the list follows traefik.py).
- Our services (pods labelled `part-of: aisopod`) reach NATS's client port (4222).
- NATS pods reach each other's route port (6222). The monitoring port (8222) is reached by
  nobody: the kubelet's probes come from the node, which NetworkPolicies never block.
- Every pod may ask the cluster DNS (kube-system, `k8s-app: kube-dns`, port 53).
- http-api (its /v1 proxy) and runtime (model calls, `exec`) reach model providers: any
  address outside the pod network is allowed to them, as a provider may be anywhere.

Pod labels are ours (`app.kubernetes.io/name`, `part-of`) and the official charts' (NATS:
`app.kubernetes.io/name: nats`, `component: nats`; Traefik: `app.kubernetes.io/name:
traefik` in the namespace `traefik`, where its install line puts it).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

NATS_CLIENT_PORT = 4222
NATS_ROUTE_PORT = 6222
NATS_MONITOR_PORT = 8222
TRAEFIK_NAMESPACE = "traefik"
PART_OF = {"app.kubernetes.io/part-of": "aisopod"}
NATS_PODS = {"app.kubernetes.io/name": "nats", "app.kubernetes.io/component": "nats"}
TRAEFIK_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": TRAEFIK_NAMESPACE}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
}
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}
# Model providers: anywhere but the private ranges a cluster's pods and services live in.
PRIVATE_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]
PROVIDER_CLIENTS = ("http-api", "runtime")


def traefik_backends(routed: list[str], middlewares: dict[str, Any], provider: str) -> list[str]:
    """Workloads Traefik connects to: the routed services, the HTTP provider, and the host
    of every forwardAuth address (`http://auth:8000/verify` → `auth`)."""
    names = [*routed, provider]
    for spec in middlewares.values():
        address = spec.get("forwardAuth", {}).get("address")
        if address:
            names.append(urlsplit(address).hostname or "")
    return sorted({n for n in names if n})


def _policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": name, "labels": dict(PART_OF)},
        "spec": spec,
    }


def _name_in(names: list[str] | tuple[str, ...]) -> dict[str, Any]:
    return {
        "matchLabels": dict(PART_OF),
        "matchExpressions": [
            {"key": "app.kubernetes.io/name", "operator": "In", "values": list(names)}
        ],
    }


def policies(backends: list[str]) -> list[dict[str, Any]]:
    tcp = "TCP"
    return [
        _policy("default-deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
        _policy(
            "dns",
            {
                "podSelector": {},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [DNS_PEER],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": tcp, "port": 53}],
                    }
                ],
            },
        ),
        _policy(
            "from-traefik",
            {
                "podSelector": _name_in(backends),
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [TRAEFIK_PEER], "ports": [{"protocol": tcp, "port": "http"}]}],
            },
        ),
        _policy(
            "services-to-nats",
            {
                "podSelector": {"matchLabels": dict(PART_OF)},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": dict(NATS_PODS)}}],
                        "ports": [{"protocol": tcp, "port": NATS_CLIENT_PORT}],
                    }
                ],
            },
        ),
        _policy(
            "nats-ingress",
            {
                "podSelector": {"matchLabels": dict(NATS_PODS)},
                "policyTypes": ["Ingress"],
                "ingress": [
                    {
                        "from": [{"podSelector": {"matchLabels": dict(PART_OF)}}],
                        "ports": [{"protocol": tcp, "port": NATS_CLIENT_PORT}],
                    },
                    {
                        "from": [{"podSelector": {"matchLabels": dict(NATS_PODS)}}],
                        "ports": [{"protocol": tcp, "port": NATS_ROUTE_PORT}],
                    },
                ],
            },
        ),
        _policy(
            "nats-routes-egress",
            {
                "podSelector": {"matchLabels": dict(NATS_PODS)},
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [{"podSelector": {"matchLabels": dict(NATS_PODS)}}],
                        "ports": [{"protocol": tcp, "port": NATS_ROUTE_PORT}],
                    }
                ],
            },
        ),
        _policy(
            "to-model-providers",
            {
                "podSelector": _name_in(PROVIDER_CLIENTS),
                "policyTypes": ["Egress"],
                "egress": [
                    {
                        "to": [
                            {"ipBlock": {"cidr": "0.0.0.0/0", "except": PRIVATE_V4}},
                            {"ipBlock": {"cidr": "::/0", "except": ["fc00::/7", "fe80::/10"]}},
                        ]
                    }
                ],
            },
        ),
    ]
