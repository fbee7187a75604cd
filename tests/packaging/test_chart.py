"""The Helm chart: strict lint, rendering with the default and the full values, Kubernetes 1.30
validation of every object, the pod's hardening, the values schema, the rendered config.toml,
and the monitoring it ships: a PrometheusRule holding the alert rule file's groups and a
Grafana dashboard ConfigMap, both from the one copy in the chart's files/. And the config the
daemon documents: config/example.toml rendered through the chart, and the daemon's own schema
(which the chart's `config` schema is generated from) agreeing with its loader.

Helm runs through helm-python-sdk (Helm's Go SDK as a shared library), so no helm binary is
needed; kubernetes-validate holds the Kubernetes 1.30 OpenAPI schemas.
"""

import copy
import json
import shutil
import subprocess
import tomllib
from collections import Counter
from pathlib import Path

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import yaml

from conftest import CHART, REPO, report

KUBE_VERSION = "1.30.0"
RELEASE = {"name": "rotator", "namespace": "ops", "is_install": True}
VALUE_SETS = {
    "default": {},
    "full": yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text()),
}
# Keys of config.toml that hold secrets, by where they sit; each must be a reference.
SECRET_KEYS = {
    "integration": ["consumer_key", "consumer_secret"],
    "login": ["password", "totp_secret"],
    "m2m": ["client_id"],
    "alert": ["secret", "webhook_url", "routing_key"],
    "vault_auth": ["token", "role_id", "secret_id"],
}


@pytest.fixture(scope="module")
def chart():
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart, values: dict) -> list[dict]:
    """Every object the chart renders (NOTES.txt left out), in template order."""
    manifests = chart.render(values, **RELEASE)
    objects = []
    for template, text in sorted(manifests.items()):
        if template.endswith("NOTES.txt"):
            continue
        objects += [doc for doc in yaml.safe_load_all(text) if doc]
    return objects


def only(objects: list[dict], kind: str) -> dict:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, rendered {len(found)}"
    return found[0]


def config_map(objects: list[dict]) -> dict:
    """The ConfigMap holding config.toml (the dashboard has a ConfigMap of its own)."""
    found = [o for o in objects if o["kind"] == "ConfigMap" and "config.toml" in o["data"]]
    assert len(found) == 1, f"expected one config.toml ConfigMap, rendered {len(found)}"
    return found[0]


def config_toml(objects: list[dict]) -> dict:
    return tomllib.loads(config_map(objects)["data"]["config.toml"])


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_lint_strict_finds_nothing_of_warning_level(value_set):
    result = helm.lint(
        CHART, VALUE_SETS[value_set] or None, strict=True, kube_version=f"v{KUBE_VERSION}"
    )
    names = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
    for m in result["messages"]:
        report(f"lint ({value_set}): [{names[m['severity']]}] {m['path']}: {m['error'].strip()}")
    if not result["messages"]:
        report(f"lint ({value_set}): no findings")
    serious = [m for m in result["messages"] if m["severity"] >= 2 or m["severity"] == 0]
    assert not serious and not result["errors"], f"helm lint --strict: {serious or result['errors']}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_every_rendered_object_is_valid_kubernetes_1_30(chart, value_set):
    objects = render(chart, VALUE_SETS[value_set])
    kinds = Counter(o["kind"] for o in objects)
    report(f"rendered ({value_set}): " + ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items())))
    for obj in objects:
        where = f"{obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            {"ServiceMonitor": check_service_monitor, "PrometheusRule": check_prometheus_rule}[
                obj["kind"]
            ](obj)
            report(f"validated ({value_set}): {where} (CRD: structural check, no upstream schema)")
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{where} ({value_set}): {e.message} at {list(e.path)}")
        report(f"validated ({value_set}): {where} against Kubernetes {KUBE_VERSION} (strict)")


def check_service_monitor(obj: dict) -> None:
    """kubernetes-validate has no schemas for CRDs; check the fields the chart writes."""
    assert obj["kind"] == "ServiceMonitor"
    spec = obj["spec"]
    assert set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints"}, set(spec)
    # The job name the shipped metrics-absent alert selects.
    assert spec["jobLabel"] == "app.kubernetes.io/part-of"
    assert spec["selector"]["matchLabels"], "an empty selector would scrape every Service"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout"}, set(endpoint)
        assert endpoint["port"] == "http-metrics" and endpoint["path"] == "/metrics"


def check_prometheus_rule(obj: dict) -> None:
    """The PrometheusRule CRD's fields the chart writes (monitoring.coreos.com/v1)."""
    assert obj["kind"] == "PrometheusRule"
    assert set(obj["spec"]) == {"groups"}
    for group in obj["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["rules"], group
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert isinstance(rule["expr"], str) and rule["alert"]
            assert all(isinstance(v, str) for v in rule["annotations"].values()), rule


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_deployment_is_hardened_single_replica_with_probes(chart, value_set):
    deployment = only(render(chart, VALUE_SETS[value_set]), "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["args"] == ["--config", "/etc/netsuite-token-rotator/config.toml", "run"]
    annotations = spec["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64
    labels = deployment["metadata"]["labels"]
    for key in ("name", "instance", "version", "managed-by"):
        assert f"app.kubernetes.io/{key}" in labels, key
    report(f"hardening ({value_set}): Deployment passes all checks")


def test_config_checksum_follows_the_config(chart):
    def checksum(values):
        deployment = only(render(chart, values), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    assert checksum({}) != checksum({"config": {"daemon": {"max_concurrent_rotations": 7}}})


def test_full_values_turn_on_every_optional_object(chart):
    kinds = {o["kind"] for o in render(chart, VALUE_SETS["full"])}
    assert {"ServiceMonitor", "NetworkPolicy", "PersistentVolumeClaim", "ServiceAccount",
            "PrometheusRule"} <= kinds
    default = render(chart, {})
    default_kinds = {o["kind"] for o in default}
    assert not {"ServiceMonitor", "NetworkPolicy", "PersistentVolumeClaim", "PrometheusRule"} & default_kinds
    assert not [o for o in default if "grafana_dashboard" in o["metadata"]["labels"]]


RULE_FILE = REPO / "monitoring" / "prometheus" / "alerts.yaml"
DASHBOARD_FILE = REPO / "monitoring" / "grafana" / "netsuite-token-rotator.json"
RUNBOOK_PLACEHOLDER = "https://netsuite-token-rotator.invalid"


def test_monitoring_files_are_links_to_the_charts_one_copy():
    """One source: the plain files the docs point at are the chart's, not copies."""
    for link, target in [
        (RULE_FILE, CHART / "files" / "alerts.yaml"),
        (DASHBOARD_FILE, CHART / "files" / "netsuite-token-rotator.json"),
    ]:
        assert link.is_symlink(), f"{link} should be a symbolic link into the chart"
        assert link.resolve() == target.resolve(), f"{link} -> {link.resolve()}"


def test_prometheus_rule_holds_the_rule_files_groups(chart):
    """With the default base, the PrometheusRule's groups are the file's, unchanged."""
    rule_file = yaml.safe_load(RULE_FILE.read_text())
    rule = only(render(chart, {"prometheusRule": {"enabled": True}}), "PrometheusRule")
    assert rule["spec"]["groups"] == rule_file["groups"]
    report(f"PrometheusRule: {sum(len(g['rules']) for g in rule_file['groups'])} rules, as in {RULE_FILE.name}")


def test_prometheus_rule_runbook_links_follow_the_configured_base(chart):
    """Only the runbook links change with runbookBaseUrl, each to <base>/docs/runbook.md#..."""
    base = "https://git.example.com/ops/netsuite-token-rotator/-/blob/main"
    values = {"prometheusRule": {"enabled": True, "runbookBaseUrl": base + "/", "labels": {"release": "kps"}}}
    rule = only(render(chart, values), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    expected = yaml.safe_load(RULE_FILE.read_text())["groups"]
    for group in expected:
        for r in group["rules"]:
            link = r["annotations"]["runbook_url"]
            assert link.startswith(RUNBOOK_PLACEHOLDER + "/docs/runbook.md#"), link
            r["annotations"]["runbook_url"] = base + link.removeprefix(RUNBOOK_PLACEHOLDER)
    assert rule["spec"]["groups"] == expected


def test_dashboard_config_map_holds_the_dashboard_for_the_grafana_sidecar(chart):
    values = {"grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "NetSuite"}}}
    (dashboard,) = [o for o in render(chart, values) if o["kind"] == "ConfigMap"
                    and "config.toml" not in o["data"]]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "NetSuite"}
    (text,) = dashboard["data"].values()
    assert json.loads(text) == json.loads(DASHBOARD_FILE.read_text())
    kubernetes_validate.validate(dashboard, KUBE_VERSION, strict=True)
    report(f"dashboard ConfigMap: {len(text)} bytes, equal to {DASHBOARD_FILE.name}")


@pytest.mark.parametrize(
    "values, why",
    [
        ({"replicaCount": 2}, "unknown top-level key"),
        ({"image": {"tga": "1.0"}}, "misspelt nested key"),
        ({"config": {"daemon": {"listen": "0.0.0.0:1"}}}, "listen is the chart's (containerPort)"),
        ({"containerPort": "9464"}, "port as a string"),
        ({"config": {"netsuite": {"max_attempts": "four"}}}, "count as a string"),
        ({"state": {"enabled": "yes"}}, "boolean as a string"),
        ({"securityContext": {"runAsUser": 0}}, "root user"),
        ({"config": {"telemetry": {"log_format": "xml"}}}, "unknown log format"),
        ({"prometheusRule": {"enabled": "true"}}, "boolean as a string"),
        ({"prometheusRule": {"runbookBaseUrl": "git.example.com/x"}}, "runbook base without scheme"),
        ({"grafanaDashboard": {"enable": True}}, "misspelt dashboard key"),
    ],
)
def test_schema_refuses_unknown_and_mistyped_values(chart, values, why):
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmValuesError):
        chart.render(values, **RELEASE)


def integration(**overrides) -> dict:
    base = {
        "name": "x",
        "account_id": "1",
        "consumer_key": {"env": "CK"},
        "consumer_secret": {"env": "CS"},
        "login": {"email": "a@b.c", "password": {"env": "PW"}, "role": "3"},
        "store": {"kind": "file", "path": "/var/lib/netsuite-token-rotator/x.json"},
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    "bad, why",
    [
        (integration(consumer_secret="a-literal-secret"), "literal secret"),
        (integration(consumer_secret={"credential": "cs"}), "systemd credential in Kubernetes"),
        (integration(consumer_secret={"env": "CS", "file": "/x"}), "two sources"),
        (integration(store={"kind": "s3", "path": "/x"}), "unknown store kind"),
        (integration(store={"kind": "file", "path": "/x", "mode": "0600"}), "unknown store key"),
        (integration(store={"kind": "file", "path": "x.json"}), "relative path: in the read-only ConfigMap mount"),
        (integration(consumer_key={"env": "NOT A NAME"}), "not an environment variable name"),
        (integration(store={"kind": "vault", "address": "https://v", "path": "p",
                            "auth": {"method": "token", "token": "hvs.literal"}}), "literal token"),
        (integration(revoke_after=3600), "duration as a number"),
        (integration(m2m={"client_id": {"env": "CID"}, "role": "3", "entity": "4"}),
         "both login and m2m"),
        ({k: v for k, v in integration(m2m={"role": "3", "entity": "4"}).items()
          if k not in ("login", "consumer_key", "consumer_secret")}, "m2m without client_id"),
        ({k: v for k, v in integration(m2m={"client_id": {"env": "CID"}, "role": "3", "entity": "4",
                                            "scopes": ["restlets"]}).items()
          if k not in ("login", "consumer_key", "consumer_secret")}, "m2m scopes without rest_webservices"),
    ],
)
def test_schema_refuses_literal_secrets_and_wrong_integrations(chart, bad, why):
    with pytest.raises(helm.HelmValuesError):
        chart.validate_schema({"config": {"integrations": [bad]}})


def secret_values(config: dict):
    """(where, value) of every secret-bearing key in a parsed config.toml."""
    for i, alert in enumerate(config.get("alerts", [])):
        for key in SECRET_KEYS["alert"]:
            if key in alert:
                yield f"alerts[{i}].{key}", alert[key]
    for i, integ in enumerate(config["integrations"]):
        for key in SECRET_KEYS["integration"]:
            if key in integ:
                yield f"integrations[{i}].{key}", integ[key]
        for table in ("login", "m2m"):
            for key in SECRET_KEYS[table]:
                if key in integ.get(table, {}):
                    yield f"integrations[{i}].{table}.{key}", integ[table][key]
        auth = integ["store"].get("auth", {})
        for key in SECRET_KEYS["vault_auth"]:
            if key in auth:
                yield f"integrations[{i}].store.auth.{key}", auth[key]


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_config_toml_parses_and_holds_references_only(chart, value_set):
    objects = render(chart, VALUE_SETS[value_set])
    config = config_toml(objects)
    found = list(secret_values(config))
    assert found, "the config should hold secret references to check"
    for where, value in found:
        assert isinstance(value, dict) and len(value) == 1 and set(value) <= {"env", "file"}, (
            f"{where} is not an {{ env = .. }} / {{ file = .. }} reference"
        )
    # Every reference points at something the pod has: an env var from a Secret, or a file
    # under a mounted Secret.
    (container,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    env_names = {e["name"] for e in container["env"]}
    mounts = [m["mountPath"] for m in container["volumeMounts"]]
    for where, ref in found:
        if "env" in ref:
            assert ref["env"] in env_names, f"{where}: ${ref['env']} is not set in the pod"
        else:
            assert any(ref["file"].startswith(m + "/") for m in mounts), f"{where}: {ref['file']}"
    report(f"config.toml ({value_set}): parses; {len(found)} secret keys, all references")


def daemon_loads(rotator_binary, text: str, path: Path) -> tuple[bool, str]:
    """Whether the daemon's own loader (types, unknown keys, formats) accepts config text, with
    its message: asking for an integration that does not exist gets past loading and fails on
    the name only."""
    path.write_text(text)
    path.chmod(0o600)
    run = subprocess.run(
        [rotator_binary, "--config", path, "revoke", "--integration", "no-such-integration"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60,
    )
    if "no integration named" in run.stderr:
        assert "error: config:" not in run.stderr, run.stderr
        return True, run.stderr
    assert "error: config:" in run.stderr, f"neither loaded nor refused: {run.stderr}"
    return False, run.stderr


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_config_toml_is_accepted_by_the_daemon(chart, value_set, rotator_binary, tmp_path):
    text = config_map(render(chart, VALUE_SETS[value_set]))["data"]["config.toml"]
    accepted, message = daemon_loads(rotator_binary, text, tmp_path / "config.toml")
    assert accepted, message
    report(f"config.toml ({value_set}): accepted by {Path(rotator_binary).name}'s config loader")


def test_config_loader_check_can_fail(rotator_binary, tmp_path):
    """The check above tells a refused config apart: an unknown key is reported as such."""
    text = "[daemon]\nlisten = \"0.0.0.0:1\"\nbogus = 1\n"
    accepted, message = daemon_loads(rotator_binary, text, tmp_path / "config.toml")
    assert not accepted and "bogus" in message, message


def test_every_documented_daemon_telemetry_and_schedule_key_reaches_config_toml(chart):
    """Keys the schema used to refuse (issue 17): they pass it and arrive in config.toml, and a
    dotted resource attribute stays one key, not nested tables."""
    config = config_toml(render(chart, VALUE_SETS["full"]))
    assert config["daemon"]["shutdown_grace"] == "20s"
    assert config["daemon"]["max_concurrent_per_account"] == 1
    telemetry = config["telemetry"]
    assert telemetry["otlp_protocol"] == "http/protobuf"
    assert telemetry["service_name"] == "netsuite-token-rotator-prod"
    assert telemetry["resource_attributes"] == {
        "deployment.environment.name": "prod",
        "service.namespace": "erp",
    }
    erp = config["integrations"][0]
    assert (erp["timezone"], erp["jitter"]) == ("Europe/Berlin", "10m")
    report("config.toml (full): shutdown_grace, max_concurrent_per_account, otlp_protocol, "
           "service_name, resource_attributes, timezone and jitter rendered")


EXAMPLE = REPO / "config" / "example.toml"
# Where the example's systemd credentials go in a pod: a Secret mounted by secretMounts, one
# file per key, as LoadCredential= puts one file per credential in $CREDENTIALS_DIRECTORY.
CREDENTIALS_MOUNT = "/etc/netsuite-credentials"


def credentials_to_files(node, where: str, swapped: list[str]):
    """`node` with every { credential = name } reference made { file = <mount>/name }."""
    if isinstance(node, dict) and set(node) == {"credential"}:
        swapped.append(where)
        return {"file": f"{CREDENTIALS_MOUNT}/{node['credential']}"}
    if isinstance(node, dict):
        return {k: credentials_to_files(v, f"{where}.{k}" if where else k, swapped) for k, v in node.items()}
    if isinstance(node, list):
        return [credentials_to_files(v, f"{where}[{i}]", swapped) for i, v in enumerate(node)]
    return node


def test_example_config_renders_through_the_chart(chart, rotator_binary, tmp_path):
    """config/example.toml, every key the daemon documents, as `config` values: the schema takes
    it, and the chart renders the same configuration, which the daemon loads. Two changes make
    the example Kubernetes values, each one the chart's rule: `[daemon] listen` is the chart's
    (from containerPort), and { credential } references, systemd's LoadCredential=, have no
    meaning in a pod (no $CREDENTIALS_DIRECTORY); the schema refuses them, naming the key, and
    their equivalent is a { file } in a mounted Secret."""
    example = tomllib.loads(EXAMPLE.read_text())
    swapped: list[str] = []
    config = credentials_to_files(copy.deepcopy(example), "", swapped)
    listen = config["daemon"].pop("listen")
    assert swapped and listen, "the example shows a credential reference and listen"

    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema({"config": {**config, "daemon": example["daemon"]}})
    assert "/config/daemon" in str(refused.value) and "listen" in str(refused.value)
    as_is = copy.deepcopy(example)
    del as_is["daemon"]["listen"]
    with pytest.raises(helm.HelmValuesError) as refused:
        chart.validate_schema({"config": as_is})
    message = str(refused.value)
    assert "/config/integrations/0/consumer_secret" in message and "'credential'" in message, message

    values = {
        "config": config,
        "secretMounts": [{"secretName": "netsuite-credentials", "mountPath": CREDENTIALS_MOUNT}],
    }
    chart.validate_schema(values)
    objects = render(chart, values)
    rendered = config_toml(objects)
    expected = copy.deepcopy(config)
    port = yaml.safe_load((CHART / "values.yaml").read_text())["containerPort"]
    expected["daemon"]["listen"] = f"0.0.0.0:{port}"
    assert rendered == expected

    text = config_map(objects)["data"]["config.toml"]
    accepted, message = daemon_loads(rotator_binary, text, tmp_path / "config.toml")
    assert accepted, message
    report(f"config/example.toml: {len(example['integrations'])} integrations rendered as they are, "
           f"listen from containerPort, {len(swapped)} credential reference(s) as files: {swapped}")


@pytest.fixture(scope="module")
def daemon_schema(rotator_binary) -> dict:
    """The daemon's own schema of config.toml, as `config-schema` prints it."""
    run = subprocess.run([rotator_binary, "config-schema"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL, timeout=60, check=True)
    schema = json.loads(run.stdout)
    jsonschema.Draft7Validator.check_schema(schema)
    return schema


# (what, a change of config/example.toml, the schema accepts it, the daemon accepts it). Where
# the two differ, the schema is the wider: a value only the loader can judge.
STORE_BLOCK = """kind = "file"
# Readers read this JSON file; bookkeeping goes to <path>.state.json, a lock to <path>.lock.
# Relative paths are relative to this config file.
path = "/var/lib/netsuite-token-rotator/erp-sync.json"
"""
VAULT_STORE = """kind = "vault"
address = "https://vault.internal:8200"
path = "netsuite/erp-sync"
auth = { method = "approle", role_id = { env = "ROLE_ID" }, secret_id = { env = "SECRET_ID" } }
"""
AGREEMENT = [
    ("the example as it is", None, None, True, True),
    ("a literal secret", '{ env = "ERP_CONSUMER_KEY" }', '"a-literal"', True, True),
    ("a reference with two sources", '{ env = "ERP_CONSUMER_KEY" }',
     '{ env = "ERP_CONSUMER_KEY", file = "/x" }', False, False),
    ("an empty reference", '{ env = "ERP_CONSUMER_KEY" }', "{}", False, False),
    ("an unknown reference kind", '{ env = "ERP_CONSUMER_KEY" }', '{ vault = "x" }', False, False),
    ("an unknown daemon key", "max_concurrent_rotations = 4", "max_concurrent_rotations = 4\nlisten_on = 1",
     False, False),
    ("a count of zero", "max_attempts = 4", "max_attempts = 0", False, False),
    ("a count as a string", "max_attempts = 4", 'max_attempts = "4"', False, False),
    ("an unknown log format", 'log_format = "json"', 'log_format = "xml"', False, False),
    ("an unknown OTLP protocol", 'otlp_protocol = "http/protobuf"', 'otlp_protocol = "http/json"',
     False, False),
    ("an unknown alert kind", 'kind = "pagerduty"', 'kind = "email"', False, False),
    ("an unknown store kind", STORE_BLOCK, STORE_BLOCK.replace('"file"', '"s3"'), False, False),
    ("a key of another store kind", STORE_BLOCK, STORE_BLOCK + 'region = "eu-west-1"\n', False, False),
    ("a store without kind", STORE_BLOCK, STORE_BLOCK.replace('kind = "file"', ""), False, False),
    ("a Vault store", STORE_BLOCK, VAULT_STORE, True, True),
    ("Vault KV version 3", STORE_BLOCK, VAULT_STORE + "kv_version = 3\n", False, False),
    ("a Vault path with an empty segment", STORE_BLOCK,
     VAULT_STORE.replace("netsuite/erp-sync", "netsuite//erp-sync"), False, False),
    ("an unknown Vault login method", STORE_BLOCK,
     VAULT_STORE.replace('method = "approle"', 'method = "ldap"'), False, False),
    ("an AWS store", STORE_BLOCK, 'kind = "aws"\nsecret_id = "netsuite/erp-sync"\ntags = { team = "erp" }\n',
     True, True),
    ("an account id of letters and digits", 'account_id = "123456_SB1"\n# Base URL replacing https://<account>.restlets',
     'account_id = "TSTDRV1234567"\n# Base URL replacing https://<account>.restlets', True, True),
    ("a bad account id", 'account_id = "123456_SB1"\n# Base URL replacing https://<account>.restlets',
     'account_id = "123 456"\n# Base URL replacing https://<account>.restlets', False, False),
    ("a fractional duration", 'revoke_after = "1h"\n# Issued', 'revoke_after = "1.5h"\n# Issued', True, True),
    ("a duration in words", 'revoke_after = "1h"\n# Issued', 'revoke_after = "soon"\n# Issued', False, False),
    ("a duration as a number", 'revoke_after = "1h"\n# Issued', "revoke_after = 3600\n# Issued", False, False),
    ("a five-field cron expression", 'schedule = "0 0 3 * * Sun"', 'schedule = "0 3 * * Sun"', False, False),
    ("a time zone not in the IANA database", "# timezone = \"Europe/Berlin\"", 'timezone = "Mars/Olympus"',
     True, False),
    ("a 41-character token name prefix", 'token_name_prefix = "erp-sync"', f'token_name_prefix = "{"x" * 41}"',
     False, False),
    ("an M2M key kind in capitals", 'key = "ec-p256"', 'key = "EC-P384"', True, True),
    ("an unknown M2M key kind", 'key = "ec-p256"', 'key = "ed25519"', False, False),
    ("M2M scopes without rest_webservices", 'scopes = ["rest_webservices"]', 'scopes = ["restlets"]',
     False, False),
    ("an M2M integration with expect", 'client_id = { env = "ERP_CLIENT_ID" }',
     'client_id = { env = "ERP_CLIENT_ID" }\n[integrations.expect]\nrole_id = "3"', False, False),
    ("a TBA integration without its consumer secret", 'consumer_secret = { credential = "erp-consumer-secret" }',
     "", False, False),
]


@pytest.mark.parametrize("what, old, new, schema_accepts, daemon_accepts", AGREEMENT,
                         ids=[case[0] for case in AGREEMENT])
def test_daemon_schema_and_loader_agree(daemon_schema, rotator_binary, tmp_path,
                                        what, old, new, schema_accepts, daemon_accepts):
    """The schema `config-schema` prints (the chart's is made from it) says what the daemon's
    loader says, on the example and on changes of it, one per rule of either."""
    text = EXAMPLE.read_text()
    if old is not None:
        assert text.count(old) >= 1, f"{what}: {old!r} is not in the example any more"
        text = text.replace(old, new, 1)
    errors = list(jsonschema.Draft7Validator(daemon_schema).iter_errors(tomllib.loads(text)))
    assert (not errors) == schema_accepts, f"{what}: schema says {[e.message for e in errors]}"
    accepted, message = daemon_loads(rotator_binary, text, tmp_path / "config.toml")
    assert accepted == daemon_accepts, f"{what}: daemon says {message}"


def test_top_level_keys_the_template_does_not_know_are_rendered(tmp_path):
    """A top-level key the daemon gains passes the generated schema; the renderer writes it
    rather than dropping it: a list (of tables) before the first table, a table after the
    sections. Rendered with the schema removed, as no such key exists today."""
    copied = tmp_path / "chart"
    shutil.copytree(CHART, copied)
    (copied / "values.schema.json").unlink()
    tables = [{"start": "0 0 0 28 * *", "duration": "4d", "timezone": "Europe/Berlin"}]
    with helm.Chart.load(copied) as loaded:
        objects = render(loaded, {"config": {"future_list": tables, "future": {"on": True, "empty": ""}}})
    text = config_map(objects)["data"]["config.toml"]
    config = tomllib.loads(text)
    assert config["future_list"] == tables
    assert config["future"] == {"on": True}
    assert text.index("future_list =") < text.index("[daemon]"), text


def test_freeze_windows_render_as_tables_the_daemon_reads(chart):
    """[[freeze]] and an integration's freeze list (ci/full-values.yaml) reach config.toml."""
    values = yaml.safe_load((CHART / "ci" / "full-values.yaml").read_text())
    text = config_map(render(chart, values))["data"]["config.toml"]
    config = tomllib.loads(text)
    assert config["freeze"] == values["config"]["freeze"], text
    assert config["integrations"][0]["freeze"] == values["config"]["integrations"][0]["freeze"], text
    assert "[[freeze]]" in text, text
