"""Kubernetes manifests: strict schema validation offline (kubernetes-validate for the core
kinds, KEDA's CRD schemas for ScaledObject and TriggerAuthentication), and the layout DESIGN
section 7 and the containers issue ask for. No cluster needed (nor used)."""

from __future__ import annotations

import copy
import functools
import os
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agentsys import defaults
from agentsys.settings import PLACEHOLDER_SECRETS
from tests.static.tools import ROOT

K8S = ROOT / "k8s"
K8S_VERSION = "1.30"
"""Kubernetes version the manifests are validated against (the oldest we support)."""
KEDA_SCHEMAS = Path(os.environ.get("AGENTSYS_KEDA_SCHEMAS", ROOT.parent / "shared" / "schemas" / "keda"))
"""KEDA's CRDs (test data shared by the project, read in place, never copied here)."""
KEDA_GROUP = "keda.sh"
AGENT_QUEUES = ("price", "indicator", "bang")
COMPOSE_NAMES = {"agent-redis", "agent-postgres", "agent-orchestrator", "agent-gateway"}

MANIFESTS = sorted(K8S.rglob("*.yaml"))


@functools.cache
def _parsed(path: Path) -> tuple[dict[str, Any], ...]:
    return tuple(d for d in yaml.safe_load_all(path.read_text()) if d)


def docs(path: Path) -> list[dict[str, Any]]:
    """The documents of a manifest (parsed once; tests that change one work on a deep copy)."""
    return list(_parsed(path))


def all_docs(paths: list[Path] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    return [(p, d) for p in (paths if paths is not None else MANIFESTS) for d in docs(p)]


def by_kind(kind: str, paths: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in all_docs(paths) if d["kind"] == kind}


def base() -> list[Path]:
    """What `kubectl apply -f k8s/` applies: the folder's own files, not its subfolders."""
    return sorted(K8S.glob("*.yaml"))


def is_keda(doc: dict[str, Any]) -> bool:
    return doc["apiVersion"].split("/")[0] == KEDA_GROUP


# ---- schema validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_validates_strictly(path: Path) -> None:
    found = docs(path)
    assert found, "an empty manifest"
    for doc in found:
        if is_keda(doc):
            continue  # test_keda_objects_validate_against_the_crds
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(p) for p in error.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {where}: {error.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as error:
            pytest.fail(error.message)


def test_strict_validation_is_live() -> None:
    """An unknown field fails: the check would catch a typo."""
    worker = copy.deepcopy(by_kind("Deployment")["agent-worker"])
    worker["spec"]["template"]["spec"]["terminationGracePeriod"] = 660
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(worker, K8S_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """A CRD's structural schema with unknown fields refused, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def keda_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    if not KEDA_SCHEMAS.is_dir():
        pytest.skip(f"KEDA CRD schemas not found at {KEDA_SCHEMAS} (set AGENTSYS_KEDA_SCHEMAS): "
                    "KEDA objects not validated")
    schemas = {}
    for path in sorted(KEDA_SCHEMAS.glob("*.yaml")):
        for crd in docs(path):
            for version in crd["spec"]["versions"]:
                schema = _strict(version["schema"]["openAPIV3Schema"])
                schema["properties"]["metadata"] = {"type": "object"}  # ObjectMeta: the API server's own
                schemas[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = schema
    assert schemas, f"no CRDs in {KEDA_SCHEMAS}"
    return schemas


def test_keda_objects_validate_against_the_crds() -> None:
    schemas = keda_schemas()
    keda = [(p, d) for p, d in all_docs() if is_keda(d)]
    assert {d["kind"] for _, d in keda} == {"ScaledObject", "TriggerAuthentication"}
    for path, doc in keda:
        schema = schemas.get((doc["apiVersion"], doc["kind"]))
        assert schema is not None, f"{path}: no CRD for {doc['apiVersion']} {doc['kind']}"
        errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        assert not errors, f"{path.relative_to(ROOT)}: " + "; ".join(
            f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_keda_validation_is_live() -> None:
    schemas = keda_schemas()
    scaled = copy.deepcopy(by_kind("ScaledObject")["agent-worker"])
    scaled["spec"]["maxReplicas"] = 10  # the field is maxReplicaCount
    schema = schemas[(scaled["apiVersion"], "ScaledObject")]
    assert list(jsonschema.Draft7Validator(schema).iter_errors(scaled))


# ---- layout ----------------------------------------------------------------------------------------

def test_base_is_what_kubectl_apply_f_k8s_applies() -> None:
    kinds = Counter(d["kind"] for _, d in all_docs(base()))
    assert kinds["Namespace"] == 1 and kinds["ConfigMap"] >= 1 and kinds["Secret"] == 1
    assert set(by_kind("StatefulSet", base())) == {"agent-redis", "agent-postgres"}
    assert set(by_kind("Deployment", base())) == {"agent-orchestrator", "agent-gateway", "agent-worker",
                                                    "agent-scheduler"}
    assert set(by_kind("Service", base())) == COMPOSE_NAMES, "Service names are the compose container names"
    # Autoscaling is applied apart (kubectl apply -f is not recursive): none of it in the base.
    assert not kinds["HorizontalPodAutoscaler"] and not kinds["ScaledObject"]
    # Files apply in name order: the namespace first.
    assert docs(base()[0])[0]["kind"] == "Namespace"
    for _, doc in all_docs():
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "agent-system", f"{doc['kind']}/{doc['metadata']['name']}"


def test_service_names_match_the_compose_container_names() -> None:
    names = set()
    for service in ("redis", "postgres", "orchestrator", "gateway"):
        compose = yaml.safe_load((ROOT / "services" / service / "docker-compose.yml").read_text())
        names.add(compose["services"][service]["container_name"])
    assert names == set(by_kind("Service", base()))


def test_statefulsets_keep_data_in_volume_claims() -> None:
    for name, sts in by_kind("StatefulSet").items():
        claims = sts["spec"]["volumeClaimTemplates"]
        assert claims and claims[0]["spec"]["resources"]["requests"]["storage"], name
        mounts = {m["name"] for c in sts["spec"]["template"]["spec"]["containers"] for m in c["volumeMounts"]}
        assert claims[0]["metadata"]["name"] in mounts, name


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]) for _, d in all_docs()
            if d["kind"] in {"Deployment", "StatefulSet"}]


@pytest.mark.parametrize(("name", "spec"), pod_specs(), ids=[n for n, _ in pod_specs()])
def test_pods_are_non_root_read_only_and_bounded(name: str, spec: dict[str, Any]) -> None:
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    for container in spec.get("initContainers", []) + spec["containers"]:
        ctx = container["securityContext"]
        assert ctx["allowPrivilegeEscalation"] is False, (name, container["name"])
        assert ctx["readOnlyRootFilesystem"] is True, (name, container["name"])
        assert ctx["capabilities"]["drop"] == ["ALL"], (name, container["name"])
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, container["name"], kind)
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image


def test_probes() -> None:
    deployments = by_kind("Deployment")
    for name in ("agent-orchestrator", "agent-gateway"):
        c = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz", name
    workers = [n for n in deployments if n.startswith("agent-worker")]
    assert len(workers) == 1 + len(AGENT_QUEUES)
    for name in workers:
        spec = deployments[name]["spec"]["template"]["spec"]
        c = spec["containers"][0]
        assert c["livenessProbe"]["exec"]["command"] == ["agent-worker-health"], name
        assert c["startupProbe"]["exec"]["command"] == ["agent-worker-health"], name
        # Above the longest job: a stopping worker finishes it (RQ's warm shutdown).
        assert spec["terminationGracePeriodSeconds"] > defaults.JOB_TIMEOUT, name
    for name, sts in by_kind("StatefulSet").items():
        c = sts["spec"]["template"]["spec"]["containers"][0]
        assert "exec" in c["readinessProbe"] and "exec" in c["livenessProbe"], name


def test_migrations_run_before_the_apps() -> None:
    for name in ("agent-orchestrator", "agent-worker", "agent-scheduler"):
        init = by_kind("Deployment")[name]["spec"]["template"]["spec"]["initContainers"]
        assert [c["command"] for c in init] == [["agentsys-migrate"]], name


def test_scheduler_is_one_replica_replaced_not_rolled() -> None:
    scheduler = by_kind("Deployment")["agent-scheduler"]
    assert scheduler["spec"]["replicas"] == 1 and scheduler["spec"]["strategy"]["type"] == "Recreate"
    assert scheduler["spec"]["template"]["spec"]["containers"][0]["command"] == ["agent-scheduler"]


def test_workers_have_a_disruption_budget() -> None:
    pdbs = by_kind("PodDisruptionBudget", base())
    selectors = [p["spec"]["selector"]["matchLabels"] for p in pdbs.values()]
    labels = by_kind("Deployment")["agent-worker"]["spec"]["template"]["metadata"]["labels"]
    assert any(sel.items() <= labels.items() for sel in selectors)


def test_images_match_compose() -> None:
    images = {c["image"] for _, spec in pod_specs() for c in spec["containers"]}
    for service in ("redis", "postgres"):
        compose = yaml.safe_load((ROOT / "services" / service / "docker-compose.yml").read_text())
        assert compose["services"][service]["image"] in images, service
    for service in ("orchestrator", "worker", "gateway"):
        assert f"agent-system/{service}:local" in images, service


def test_redis_config_is_the_repository_redis_conf() -> None:
    conf = by_kind("ConfigMap")["agent-redis-config"]["data"]["redis.conf"]
    assert conf == (ROOT / "services/redis/redis_service/redis.conf").read_text()
    args = by_kind("StatefulSet")["agent-redis"]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[1] == "/usr/local/etc/redis/redis.conf" and args[args.index("--requirepass") + 1] == "$(REDIS_PASSWORD)"


def test_secret_is_an_example_without_secrets() -> None:
    (secret,) = by_kind("Secret").values()
    assert set(secret["stringData"]) == {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "API_TOKEN"}
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert value.lower() in PLACEHOLDER_SECRETS, f"{key} looks real: the example holds placeholders only"


def test_env_references_resolve() -> None:
    """Every $(VAR) in a container's env is defined before it (ConfigMap or earlier entries)."""
    import re

    config = by_kind("ConfigMap")["agent-system-config"]["data"]
    for name, spec in pod_specs():
        for c in spec.get("initContainers", []) + spec["containers"]:
            known = set(config) if c.get("envFrom") else set()
            for item in c.get("env", []):
                for ref in re.findall(r"\$\((\w+)\)", item.get("value", "")):
                    assert ref in known, (name, c["name"], item["name"], ref)
                known.add(item["name"])
            for ref in re.findall(r"\$\((\w+)\)", " ".join(c.get("args", []))):
                assert ref in known, (name, c["name"], ref)


# ---- autoscaling: KEDA or HPA, never both on one Deployment ---------------------------------------

def test_keda_scales_the_worker_on_the_rq_queue_lists() -> None:
    keda_dir = sorted((K8S / "autoscaling" / "keda").glob("*.yaml"))
    scaled = by_kind("ScaledObject", keda_dir)
    auths = by_kind("TriggerAuthentication", keda_dir)
    (so,) = scaled.values()
    assert so["spec"]["scaleTargetRef"]["name"] == "agent-worker"
    lists = set()
    for trigger in so["spec"]["triggers"]:
        assert trigger["type"] == "redis"
        assert trigger["authenticationRef"]["name"] in auths
        assert trigger["metadata"]["address"].startswith("agent-redis.")
        lists.add(trigger["metadata"]["listName"])
    assert lists == {f"rq:queue:{q}" for q in AGENT_QUEUES}
    secret = next(iter(by_kind("Secret").values()))
    for auth in auths.values():
        for ref in auth["spec"]["secretTargetRef"]:
            assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"]


def test_hpa_scales_the_worker_on_cpu_70() -> None:
    (hpa,) = by_kind("HorizontalPodAutoscaler", sorted((K8S / "autoscaling" / "hpa").glob("*.yaml"))).values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "agent-worker"}
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and metric["resource"]["target"]["averageUtilization"] == 70


def test_no_deployment_has_two_autoscalers_in_one_apply() -> None:
    folders = {p.parent for p in MANIFESTS}
    for folder in folders:
        targets = [d["spec"]["scaleTargetRef"]["name"] for _, d in all_docs(sorted(folder.glob("*.yaml")))
                   if d["kind"] in {"ScaledObject", "HorizontalPodAutoscaler"}]
        assert len(targets) == len(set(targets)), f"{folder}: {targets}"
        kinds = {d["kind"] for _, d in all_docs(sorted(folder.glob("*.yaml")))}
        assert not {"ScaledObject", "HorizontalPodAutoscaler"} <= kinds, f"{folder} mixes KEDA and HPA"


def test_per_agent_mirrors_the_compose_profile() -> None:
    deployments = by_kind("Deployment", sorted((K8S / "per-agent").glob("*.yaml")))
    scaled = by_kind("ScaledObject", sorted((K8S / "per-agent" / "keda").glob("*.yaml")))
    for queue in AGENT_QUEUES:
        name = f"agent-worker-{queue}"
        env = {e["name"]: e.get("value") for e in deployments[name]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["WORKER_QUEUES"] == queue
        (trigger,) = scaled[name]["spec"]["triggers"]
        assert scaled[name]["spec"]["scaleTargetRef"]["name"] == name
        assert trigger["metadata"]["listName"] == f"rq:queue:{queue}"
    assert (K8S / "per-agent/keda/triggerauthentication.yaml").read_text() == \
        (K8S / "autoscaling/keda/triggerauthentication.yaml").read_text()


def test_readme_names_every_manifest() -> None:
    readme = (K8S / "README.md").read_text()
    for path in MANIFESTS:
        assert str(path.relative_to(K8S)) in readme, f"k8s/README.md does not mention {path.relative_to(K8S)}"
