"""The Helm chart: it renders valid Kubernetes for every value set and keeps its promises."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from sidecar.catalog import parse_catalog
from sidecar.ledger.settings import SOURCE as LEDGER_SOURCE
from sidecar.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "creditgate"
VALUE_SETS = {
    p.stem: yaml.safe_load(p.read_text())
    for p in (Path(__file__).parent / "chart_values").glob("*.yaml")
}
VALUE_SETS["default"] = {}
KUBERNETES = "1.35"
LOGGING = {"CREDITGATE_LOG_LEVEL", "CREDITGATE_LOG_FORMAT"}
SIDECAR_ENV = {"CREDITGATE_" + field.upper() for field in Settings.__struct_fields__} | LOGGING
LEDGER_ENV = {LEDGER_SOURCE.variable(f) for f in LEDGER_SOURCE.kind.__struct_fields__} | LOGGING

Manifest = dict[str, Any]


# The fields the chart uses of the prometheus-operator CRDs (monitoring.coreos.com/v1, from its
# API reference): selector is required; port is a port name; interval is a Duration.
def _closed(required: tuple[str, ...] = (), **properties: Any) -> dict[str, Any]:
    """A JSON schema of an object with only these properties."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": list(required),
        "properties": properties,
    }


_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_DURATION = {"type": "string", "pattern": r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$"}
_STRING = {"type": "string"}
_ENDPOINTS = {"type": "array", "items": _closed(port=_STRING, path=_STRING, interval=_DURATION)}
CRDS = {
    kind: _closed(
        ("apiVersion", "kind", "metadata", "spec"),
        apiVersion={"const": "monitoring.coreos.com/v1"},
        kind={"const": kind},
        metadata={"type": "object", "required": ["name"], "properties": {"labels": _LABELS}},
        spec=_closed(("selector",), selector=_closed(matchLabels=_LABELS), **{field: _ENDPOINTS}),
    )
    for kind, field in [("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")]
}
# A parent chart's gateway, as the README shows it: the sidecar from the named templates.
PARENT_GATEWAY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: gateway}
spec:
  selector: {matchLabels: {app: gateway}}
  template:
    metadata: {labels: {app: gateway}}
    spec:
      initContainers:
        {{- include "creditgate.sidecar.container" .Subcharts.creditgate | nindent 8 }}
      containers:
        - {name: gateway, image: "example/gateway:1"}
      volumes:
        {{- include "creditgate.sidecar.volumes" .Subcharts.creditgate | nindent 8 }}
"""


def render(values: dict[str, Any] | None = None) -> list[Manifest]:
    with helm_python.Chart.load(CHART) as chart:
        files = chart.render(values or {}, name="cg", namespace="billing")
    return [
        doc
        for path, text in sorted(files.items())
        if path.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def named(manifests: list[Manifest], kind: str, suffix: str) -> Manifest:
    [found] = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(suffix)]
    return found


def pod_specs(manifests: list[Manifest]) -> list[Manifest]:
    """Every pod spec: the Deployments', and the one of the sidecar patch."""
    specs = [m["spec"]["template"]["spec"] for m in manifests if m["kind"] == "Deployment"]
    patches = [m for m in manifests if m["metadata"]["name"].endswith("-sidecar-patch")]
    specs += [yaml.safe_load(p["data"]["patch.yaml"])["spec"]["template"]["spec"] for p in patches]
    return specs


def containers(manifests: list[Manifest], name: str | None = None) -> list[Manifest]:
    every = [
        c
        for s in pod_specs(manifests)
        for c in s.get("initContainers", []) + s.get("containers", [])
    ]
    return [c for c in every if name is None or c["name"] == name]


def env(container: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    """What each value set renders: default, and every file in chart_values/."""
    return render(VALUE_SETS[request.param])


def test_every_manifest_is_valid_kubernetes(manifests: list[Manifest]) -> None:
    for manifest in manifests:
        if manifest["kind"] in CRDS:
            jsonschema.validate(manifest, CRDS[manifest["kind"]])
        else:
            kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


def test_the_sidecar_patch_makes_a_valid_gateway_deployment(manifests: list[Manifest]) -> None:
    [patch] = pod_specs([named(manifests, "ConfigMap", "-sidecar-patch")])
    gateway = {"name": "gateway", "image": "example/gateway:1"}
    pod = {**patch, "containers": [gateway, *patch.get("containers", [])]}
    labels = {"app": "gateway"}
    template = {"metadata": {"labels": labels}, "spec": pod}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "gateway"},
        "spec": {"selector": {"matchLabels": labels}, "template": template},
    }
    kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


def test_a_parent_chart_injects_the_sidecar_with_the_named_templates(tmp_path: Path) -> None:
    shutil.copytree(CHART, tmp_path / "charts" / "creditgate")
    (tmp_path / "Chart.yaml").write_text(
        "apiVersion: v2\nname: shop\nversion: 1.0.0\n"
        "dependencies: [{name: creditgate, version: 0.1.0}]\n"
    )
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "gateway.yaml").write_text(PARENT_GATEWAY)
    with helm_python.Chart.load(tmp_path) as chart:
        files = chart.render({}, name="cg", namespace="billing")
    gateway = yaml.safe_load(files["shop/templates/gateway.yaml"])
    kubernetes_validate.validate(gateway, KUBERNETES, strict=True)
    catalog = yaml.safe_load(files["shop/charts/creditgate/templates/catalog-configmap.yaml"])
    volumes = gateway["spec"]["template"]["spec"]["volumes"]
    assert {"name": catalog["metadata"]["name"]} in [v.get("configMap") for v in volumes]


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_strict_passes(name: str) -> None:
    report = helm_python.lint(CHART, VALUE_SETS[name], strict=True)
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


@pytest.mark.parametrize(
    ("values", "named_value"),
    [
        ({"sidecar": {"hots": "0.0.0.0"}}, "'/sidecar': additional properties 'hots'"),
        ({"sidecar": {"ports": {"metrics": 70000}}}, "/sidecar/ports/metrics"),
        ({"ledger": {"ports": {"query": "7074"}}}, "/ledger/ports/query"),
        ({"ledger": {"database": {"existingSecret": {"name": ""}}}}, "/ledger/database/"),
        ({"monitoring": {"podMonitor": {"enabled": "yes"}}}, "/monitoring/podMonitor/enabled"),
        ({"log": {"level": "verbose"}}, "/log/level"),
        ({"redisUrl": {"value": "http://redis:6380"}}, "/redisUrl/value"),
        ({"shards": 0}, "/shards"),
        ({"shards": 16385}, "/shards"),
        ({"environment": "Sand-Box"}, "/environment"),
        ({"gateway": {"enabled": True}}, "/gateway/image/repository"),
    ],
)
def test_the_schema_rejects_bad_values_naming_them(values: Any, named_value: str) -> None:
    with helm_python.Chart.load(CHART) as chart, pytest.raises(helm_python.HelmValuesError) as e:
        chart.validate_schema(values)
    assert named_value in str(e.value)


@pytest.mark.parametrize(
    ("values", "named_value"),
    [
        ({"sidecar": {"http": False, "grpc": False}}, "sidecar.http and sidecar.grpc"),
        ({"ledger": {"workers": 4, "poolMax": 8}}, "ledger.poolMax must be at least"),
        ({"networkPolicy": {"sidecar": {"enabled": True}}}, "needs sidecar.podSelector"),
        (
            {
                "networkPolicy": {"sidecar": {"enabled": True}},
                "sidecar": {"podSelector": {"a": "b"}},
            },
            "needs networkPolicy.sidecar.gatewayPorts",
        ),
        ({"redisUrl": {"existingSecret": {"name": ""}}}, "set redisUrl.value"),
    ],
)
def test_impossible_combinations_fail_naming_the_value(values: Any, named_value: str) -> None:
    with pytest.raises(helm_python.HelmRenderError, match=named_value):
        render(values)


def test_the_schema_forbids_unknown_keys_in_every_object() -> None:
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    objects = [schema, *schema["definitions"].values()]
    open_ = []
    while objects:
        node = objects.pop()
        if "properties" in node:
            open_ += [] if node.get("additionalProperties") is False else [node]
            objects += node["properties"].values()
    assert open_ == []


def test_every_value_in_values_yaml_has_a_comment() -> None:
    text = (CHART / "values.yaml").read_text()
    lines = text.splitlines()
    undocumented, nodes = [], [yaml.compose(text)]
    while nodes:
        for key, value in nodes.pop().value:
            above, line = lines[key.start_mark.line - 1], lines[key.start_mark.line]
            if not above.lstrip().startswith("#") and " # " not in line:
                undocumented.append(key.value)
            if isinstance(value, yaml.MappingNode):
                nodes.append(value)
    assert undocumented == []


def test_the_default_render_keeps_admin_closed_and_the_api_pod_local() -> None:
    manifests = render()
    [sidecar] = containers(manifests, "creditgate")
    assert "CREDITGATE_ADMIN_TOKEN" not in env(sidecar)
    assert [p["name"] for p in sidecar["ports"]] == ["cg-metrics"]
    assert env(sidecar)["CREDITGATE_HOST"] == "127.0.0.1"
    assert not [m for m in manifests if m["kind"] == "Secret"]


def test_the_sidecar_probes_hit_its_metrics_listener_and_readiness_is_opt_in() -> None:
    """A Redis outage must not take every gateway pod out of its Service at once."""
    [sidecar] = containers(render(), "creditgate")
    metrics = env(sidecar)["CREDITGATE_METRICS_PORT"]
    assert [p["containerPort"] for p in sidecar["ports"]] == [int(metrics)]
    for probe in ("startupProbe", "livenessProbe"):
        assert sidecar[probe]["httpGet"] == {"path": "/healthz", "port": "cg-metrics"}
    assert "readinessProbe" not in sidecar
    values = {"sidecar": {"probes": {"readiness": {"enabled": True}}}}
    [ready] = containers(render(values), "creditgate")
    assert ready["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "cg-metrics"}


def test_the_sidecar_policy_opens_the_gateway_and_metrics_ports_only() -> None:
    for name, gateway_port in [("trial", 4000), ("production", 8080)]:
        policy = named(render(VALUE_SETS[name]), "NetworkPolicy", "-sidecar")
        ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert ports == {gateway_port, 9464}, name


def test_the_catalog_is_mounted_as_a_directory(manifests: list[Manifest]) -> None:
    for container in containers(manifests):
        for mount in container.get("volumeMounts", []):
            assert "subPath" not in mount
            if mount["name"] == "creditgate-catalog":
                assert env(container)["CREDITGATE_CATALOG"].startswith(mount["mountPath"] + "/")


def test_the_sidecar_spools_to_an_emptydir_of_its_pod(manifests: list[Manifest]) -> None:
    for spec in pod_specs(manifests):
        sidecars = [c for c in spec.get("initContainers", []) + spec.get("containers", [])
                    if "env" in c and "CREDITGATE_SPOOL_DIR" in env(c)]  # fmt: skip
        for container in sidecars:
            [mount] = [m for m in container["volumeMounts"] if m["name"] == "creditgate-spool"]
            assert env(container)["CREDITGATE_SPOOL_DIR"] == mount["mountPath"]
            [volume] = [v for v in spec["volumes"] if v["name"] == "creditgate-spool"]
            assert volume["emptyDir"]["sizeLimit"] == "128Mi"
            assert int(env(container)["CREDITGATE_SPOOL_MAX_BYTES"]) < 128 * 1024 * 1024


def test_creditgate_containers_run_non_root_read_only(
    manifests: list[Manifest],
) -> None:
    for spec in pod_specs(manifests):
        pod_non_root = spec.get("securityContext", {}).get("runAsNonRoot")
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            if container["name"] == "gateway":  # the user's own image
                continue
            context = container["securityContext"]
            assert context.get("runAsNonRoot", pod_non_root) is True, container["name"]
            assert context["readOnlyRootFilesystem"] is True, container["name"]
            assert context["capabilities"]["drop"] == ["ALL"], container["name"]


def test_the_ledger_rolls_when_its_config_changes_and_not_when_it_scales() -> None:
    def checksum(values: dict[str, Any]) -> str:
        ledger = named(render(values), "Deployment", "-ledger")
        return str(ledger["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    default = checksum({})
    assert checksum({"ledger": {"batchMax": 100}}) != default
    assert checksum({"catalog": {"content": "name: other\n"}}) != default
    assert checksum({"ledger": {"replicas": 3}}) == default


def test_the_bundled_redis_appears_only_when_enabled() -> None:
    assert not [m for m in render() if m["metadata"]["name"].endswith("-redis")]
    trial = render(VALUE_SETS["trial"])
    assert named(trial, "Service", "-redis")["metadata"]["name"] == "cg-creditgate-redis"
    url = "redis://cg-creditgate-redis.billing.svc:6390/0"  # the trial's own port
    assert {
        env(c)["CREDITGATE_REDIS"]
        for c in containers(trial)
        if c["name"] in ("creditgate", "ledger")
    } == {url}


def test_the_chart_points_every_process_at_a_cluster_with_the_shards_set() -> None:
    url = "redis+cluster://redis-cluster.cache.svc:7000"
    cluster = render({"redisUrl": {"value": url}, "shards": 1024})
    processes = [c for c in containers(cluster) if c["name"] in ("creditgate", "ledger")]
    assert {c["name"] for c in processes} == {"creditgate", "ledger"}
    assert {(env(c)["CREDITGATE_REDIS"], env(c)["CREDITGATE_SHARDS"]) for c in processes} == {
        (url, "1024")
    }
    # The default is explicit too: a Redis that lost its data is laid out as before.
    assert {env(c)["CREDITGATE_SHARDS"] for c in containers(render())} == {"256"}


def test_the_chart_runs_every_process_in_the_environment_set() -> None:
    processes = [c for c in containers(render({"environment": "sandbox"}))
                 if c["name"] in ("creditgate", "ledger")]  # fmt: skip
    assert {c["name"] for c in processes} == {"creditgate", "ledger"}
    assert {env(c)["CREDITGATE_ENVIRONMENT"] for c in processes} == {"sandbox"}
    assert {env(c)["CREDITGATE_ENVIRONMENT"] for c in containers(render())} == {"live"}


def test_env_names_are_the_ones_the_settings_accept(manifests: list[Manifest]) -> None:
    sidecars, ledgers = containers(manifests, "creditgate"), containers(manifests, "ledger")
    assert sidecars
    for container in sidecars:
        assert set(env(container)) <= SIDECAR_ENV
    for container in ledgers:
        assert set(env(container)) <= LEDGER_ENV


def test_monitors_render_when_forced_and_not_offline_on_auto() -> None:
    kinds = {m["kind"] for m in render()}
    assert not kinds & set(CRDS)
    assert {m["kind"] for m in render(VALUE_SETS["trial"])} >= set(CRDS)


def test_the_default_catalog_is_the_example_and_loads() -> None:
    example = (ROOT / "policies" / "example.yaml").read_text()
    assert (CHART / "files" / "example-catalog.yaml").read_text() == example
    catalog = named(render(), "ConfigMap", "-catalog")["data"]["catalog.yaml"]
    assert parse_catalog(catalog).version == parse_catalog(example).version
