"""Tests of the Helm chart helm/scimtrail.

They lint and render the chart with Helm (scripts/helm), check the rendered
manifests, and run the real service binaries with `--check-config` on exactly the
configuration file and environment each rendered workload would get, so a chart
value that a service does not understand fails here rather than in a cluster.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from conftest import CHART, HELM_SCRIPT, NAMESPACE, REPO, pretty, values_files

SERVICES = ("ingest", "enricher", "detector", "sink")
TRANSACTIONAL = ("ingest", "enricher", "detector")
ADMIN_PORT = 9100
CONFIG_PATH = "/etc/scimtrail/config.toml"

# Values exercising every secret reference at once, with the Secret created by the
# chart (so secretKeyRefs resolve to real rendered data), plus pass-through
# properties of every type and extra environment.
ALL_SECRETS_CREATED = {
    "config": {
        "kafka": {
            "brokers": "b-1.example.test:9096, b-2.example.test:9096",
            "properties": {"socket.keepalive.enable": True, "client.id": "scimtrail"},
            "consumer_properties": {"session.timeout.ms": 45000, "fetch.max.bytes": 1000000},
            "producer_properties": {"linger.ms": 5, "compression.type": "zstd"},
        },
        "topics": {"settings": {"retention.ms": 604800000, "cleanup.policy": "delete"}},
        "log": {"level": "debug", "format": "text"},
        "detector": {"allowed_lateness_secs": 0.5, "max_keys": 250000, "rules_reload_secs": 10},
        "enricher": {"include_snapshots": False, "ignored_attributes": ["meta", "lastLogin"]},
    },
    "kafkaSasl": {"enabled": True, "mechanism": "SCRAM-SHA-256", "usernameKey": "sasl-username"},
    "kafkaTls": {"enabled": True, "clientCert": True, "keyPasswordKey": "tls-key-password"},
    "schemaRegistryAuth": {"enabled": True},
    "secrets": {
        "create": True,
        "kafkaSaslUsername": "svc-scimtrail",
        "kafkaSaslPassword": "s3cr3t-sasl-password",
        "kafkaTlsCa": "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n",
        "kafkaTlsCert": "-----BEGIN CERTIFICATE-----\nCERT\n-----END CERTIFICATE-----\n",
        "kafkaTlsKey": "-----BEGIN PRIVATE KEY-----\nKEY\n-----END PRIVATE KEY-----\n",
        "kafkaTlsKeyPassword": "s3cr3t-key-password",
        "webhooks": ["https://hooks.example.test/a", "http://receiver.alerts.svc:8088/x"],
        "schemaRegistryUrl": "https://registry-user:s3cr3t-registry@registry.example.test:8081",
    },
    "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
    "sink": {"extraEnv": [{"name": "SCIMTRAIL__SINK__REQUEST_TIMEOUT_MS", "value": "5000"}]},
    "ingest": {"autoscaling": {"enabled": True, "maxReplicas": 3}},
}
SECRET_STRINGS = [
    "s3cr3t-sasl-password",
    "s3cr3t-key-password",
    "s3cr3t-registry",
    "hooks.example.test",
    "PRIVATE KEY",
]

SCHEMA_REGISTRY_URL = {
    "config": {"schema_registry": {"url": "http://schema-registry.kafka.svc:8081"}},
    "webhooks": {"existingSecret": "my-hooks", "key": "urls"},
    "podAnnotations": {"example.com/team": "identity"},
    "sink": {"podAnnotations": {"example.com/team": "soc"}},
}

# The enricher's new settings: a role directory inline (ids and names YAML must
# quote), privileged lists, strict PATCH handling and a checkpoint key from a Secret.
ROLES = {
    "principals": {
        "okta-provisioner": {"display_name": "Okta: SCIM connector #1", "roles": ["service-connector"]},
        "alice@example.com": {"roles": ["provisioning-admin", "on", "true"]},
        "12345": {"display_name": "no", "roles": []},
        "svc:entra provisioning": {"roles": ["service-connector"]},
    }
}
PRIVILEGED = {
    "groups": ["Domain Admins", "github-org-owners"],
    "roles": ["admin", "owner"],
    "entitlements": ["billing-admin"],
    "attributes": ["urn:example:params:scim:schemas:extension:acme:2.0:User:isAdmin"],
}
ENRICHER_FEATURES = {
    "config": {
        "enricher": {
            "patch_compat": "strict",
            "roles_reload_secs": 30,
            "checkpoint_every_events": 250,
            "privileged": PRIVILEGED,
        }
    },
    "enricher": {
        "roles": ROLES,
        "checkpointKey": {"existingSecret": "st-checkpoint-key", "key": "ed25519.pem"},
    },
}
ROLES_EXISTING_CONFIGMAP = {
    "enricher": {"rolesExistingConfigMap": {"name": "corp-scim-roles", "key": "directory.yaml"}},
}
ROLES_DIR = "/etc/scimtrail/roles"
CHECKPOINT_KEY_DIR = "/etc/scimtrail/checkpoint-key"

# The detector's rules file inline (docs/rules.md): one rule of every kind, with
# strings YAML must quote (conditions with quotes and backslashes, numbers and
# booleans as label values, times), a kind section left empty and one null (the
# detector reads `match:` as `match: {}`).
RULES = {
    "version": 1,
    "rules": [
        {
            "id": "burst.principal",
            "title": "Burst of changes by one principal",
            "severity": "critical",
            "description": "More than 50 changes by one principal within 5 minutes.\n",
            "runbook_url": "https://wiki.example.test/runbooks/scim#burst.principal",
            "labels": {"team": "iam", "tier": "1", "paging": "yes", "on": "true"},
            "where": 'action eq "CREATE" or action eq "REPLACE" or action eq "PATCH" or action eq "DELETE"',
            "group_by": ["principal.id"],
            "threshold": {"more_than": 50, "window": "5m"},
        },
        {
            "id": "work-email-changed",
            "title": "Work email changed: #1",
            "severity": "medium",
            "description": "A user's work email changed.",
            "where": 'diff[path eq "emails[type eq \\"work\\"].value"]',
            "match": {},
        },
        {
            "id": "privileged-group-escalation",
            "title": "Member added to a privileged group",
            "severity": "critical",
            "description": "A member was added to a privileged group.",
            "where": 'resource.type eq "Group" and flags eq "PRIVILEGED" and memberships[kind eq "ADDED"]',
            "match": None,
        },
        {
            "id": "change-after-deactivation",
            "title": "Change after deactivation",
            "severity": "High",
            "description": "A deactivated user was changed again.",
            "suppress_for": "2h",
            "match": {
                "sequence": {
                    "first": 'flags eq "DEACTIVATED"',
                    "then": 'action eq "PATCH" and not (flags eq "ACTIVATED")',
                    "within": "30m",
                }
            },
        },
        {
            "id": "error-spike",
            "title": "Provisioning errors spike",
            "severity": "medium",
            "description": "Server errors of one target.",
            "group_by": ["target.system"],
            "error_rate": {"window": "5m", "ratio": 0.25, "min_count": 20, "failure": "response.status ge 500"},
        },
        {
            "id": "non-admin-change",
            "title": "Change not allowed",
            "severity": "high",
            "description": "A change the principal's roles do not allow.",
            "where": "actor pr",
            "policy": {
                "unknown_principal": "allow",
                "access_denied": "ignore",
                "roles": {
                    "provisioning-admin": {"actions": ["*"], "privileged": True},
                    "helpdesk": {"actions": ["PATCH"], "resource_types": ["User"], "attributes": ["active", "phoneNumbers"]},
                },
            },
        },
        {
            "id": "new-source-ip",
            "title": "Principal from a new address",
            "severity": "low",
            "description": "A principal seen from an address new to it.",
            "enabled": False,
            "new_value": {"field": "source.ip", "lookback": "30d", "max_values": 10000, "alert_on_first": False},
        },
        {
            "id": "off-hours-human-change",
            "title": "Change outside working hours",
            "severity": "info",
            "description": "A person changing resources at night.",
            "where": 'principal.type eq "user"',
            "schedule": {"time_zone": "Europe/Berlin", "days": ["mon-fri", "sat"], "hours": ["08:00-18:00", "22:00-06:00"]},
        },
    ],
}
DETECTOR_RULES = {"config": {"detector": {"rules_reload_secs": 30}}, "detector": {"rules": RULES}}
RULES_EXISTING_CONFIGMAP = {
    "detector": {"rulesExistingConfigMap": {"name": "corp-detection-rules", "key": "scim.yaml"}},
}
RULES_DIR = "/etc/scimtrail/rules"
DEFAULT_PACK = REPO / "services" / "detector" / "rules" / "default.yaml"


def ed25519_pem(seed: bytes = bytes(range(32))) -> str:
    """A PKCS#8 PEM Ed25519 private key (what `openssl genpkey -algorithm ed25519`
    writes): the fixed DER prefix of the algorithm, then the 32-byte seed."""
    der = bytes.fromhex("302e020100300506032b657004220420") + seed
    return "-----BEGIN PRIVATE KEY-----\n" + base64.b64encode(der).decode() + "\n-----END PRIVATE KEY-----\n"


# Dummy values for secretKeyRefs to Secrets the chart does not render.
SECRET_DUMMIES = {
    "SCIMTRAIL__SINK__WEBHOOKS": "https://hooks.example.test/x",
    "SCIMTRAIL__SCHEMA_REGISTRY__URL": "https://user:password@registry.example.test:8081",
}
# Dummy content of volumes from Secrets and ConfigMaps the chart does not render,
# by volume name (anything else: a placeholder).
VOLUME_DUMMIES = {
    "checkpoint-key": ed25519_pem(),
    "roles": "principals:\n  okta-provisioner: {roles: [service-connector]}\n",
    "rules": (
        "version: 1\nrules:\n  - id: deletions\n    title: Deletions\n    severity: high\n"
        "    description: Deletions.\n    where: 'action eq \"DELETE\"'\n"
        "    threshold: {more_than: 10, window: 5m}\n"
    ),
}


def scenarios():
    """(id, kind, payload): kind "args" is a list of helm args, "values" a dict."""
    yield "defaults", "args", []
    for f in values_files():
        yield f"values/{f.name}", "args", ["-f", str(f)]
    yield "all-secrets-created", "values", ALL_SECRETS_CREATED
    yield "schema-registry-url", "values", SCHEMA_REGISTRY_URL
    yield "enricher-features", "values", ENRICHER_FEATURES
    yield "roles-existing-configmap", "values", ROLES_EXISTING_CONFIGMAP
    yield "detector-rules", "values", DETECTOR_RULES
    yield "rules-existing-configmap", "values", RULES_EXISTING_CONFIGMAP


SCENARIOS = list(scenarios())
SCENARIO_IDS = [s[0] for s in SCENARIOS]


def args_of(helm, scenario) -> list[str]:
    name, kind, payload = scenario
    if kind == "args":
        return list(payload)
    if name not in helm.scenario_files:
        helm.scenario_files[name] = helm.values_file(payload)
    return ["-f", helm.scenario_files[name]]


# --------------------------------------------------------------- helpers


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def workloads(docs):
    return [d for d in docs if d["kind"] in ("StatefulSet", "Deployment")]


def component(doc) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def config_map(docs) -> dict:
    """The ConfigMap with config.toml (the enricher's role directory and the
    detector's rules may be others)."""
    cms = [c for c in by_kind(docs, "ConfigMap") if "config.toml" in (c.get("data") or {})]
    assert len(cms) == 1, "exactly one ConfigMap with config.toml"
    assert cms[0]["metadata"]["name"].endswith("-config")
    return cms[0]


def roles_config_map(docs) -> dict | None:
    cms = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-enricher-roles")]
    assert len(cms) <= 1
    return cms[0] if cms else None


def rules_config_map(docs) -> dict | None:
    cms = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"].endswith("-detector-rules")]
    assert len(cms) <= 1
    return cms[0] if cms else None


def workload(docs, svc) -> dict:
    (w,) = [w for w in workloads(docs) if component(w) == svc]
    return w


def config_toml(docs) -> str:
    return config_map(docs)["data"]["config.toml"]


def container(workload) -> dict:
    cs = workload["spec"]["template"]["spec"]["containers"]
    assert len(cs) == 1, f"{workload['metadata']['name']}: one container"
    return cs[0]


def container_port(c, port):
    if isinstance(port, int):
        return port
    for p in c.get("ports", []):
        if p["name"] == port:
            return p["containerPort"]
    raise AssertionError(f"{c['name']}: no container port named {port!r}")


def secret_data(docs) -> dict[str, dict[str, str]]:
    out = {}
    for s in by_kind(docs, "Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        data.update(s.get("stringData") or {})
        out[s["metadata"]["name"]] = data
    return out


def pod_name(workload) -> str:
    name = workload["metadata"]["name"]
    return f"{name}-0" if workload["kind"] == "StatefulSet" else f"{name}-5d8f7c9b6-x2x7q"


def resolve_env(workload, docs) -> dict[str, str]:
    """The container's environment as the kubelet would build it, with Secrets the
    chart does not render replaced by dummies."""
    c = container(workload)
    assert not c.get("envFrom"), "envFrom would hide what the service gets"
    secrets = secret_data(docs)
    cm = config_map(docs)
    env = {}
    for e in c.get("env", []):
        name = e["name"]
        assert name not in env, f"{workload['metadata']['name']}: env {name} set twice"
        if "value" in e:
            env[name] = str(e["value"])
            continue
        src = e["valueFrom"]
        if "fieldRef" in src:
            path = src["fieldRef"]["fieldPath"]
            assert path == "metadata.name", f"unexpected fieldRef {path}"
            env[name] = pod_name(workload)
        elif "secretKeyRef" in src:
            ref = src["secretKeyRef"]
            if ref["name"] in secrets:
                assert ref["key"] in secrets[ref["name"]], f"{name}: key {ref['key']} not in rendered Secret {ref['name']}"
                env[name] = secrets[ref["name"]][ref["key"]]
            else:
                env[name] = SECRET_DUMMIES.get(name, "dummy-secret-value")
        elif "configMapKeyRef" in src:
            env[name] = cm["data"][src["configMapKeyRef"]["key"]]
        else:
            raise AssertionError(f"{name}: unsupported valueFrom {src}")
    return env


def pod_files(w, docs, root: Path) -> dict[str, Path]:
    """Writes the files of the workload's ConfigMap and Secret volumes mounted as
    directories (not subPath) under root, as the kubelet projects them (items, or
    every key). Returns {path in the container: path here}. Objects the chart does
    not render get VOLUME_DUMMIES."""
    c = container(w)
    vols = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
    rendered_cms = {cm["metadata"]["name"]: cm.get("data") or {} for cm in by_kind(docs, "ConfigMap")}
    rendered_secrets = secret_data(docs)
    files = {}
    for m in c["volumeMounts"]:
        if m.get("subPath"):
            continue
        vol = vols[m["name"]]
        if "configMap" in vol:
            src, objects = vol["configMap"], rendered_cms
            name = src["name"]
        elif "secret" in vol:
            src, objects = vol["secret"], rendered_secrets
            name = src["secretName"]
        else:
            continue
        data = objects.get(name)
        items = src.get("items") or [{"key": k, "path": k} for k in (data or {})]
        assert items, f"{m['name']}: no items and no rendered data to project"
        for item in items:
            if data is not None:
                assert item["key"] in data, f"volume {m['name']}: key {item['key']} not in rendered {name}"
                content = data[item["key"]]
            else:
                content = VOLUME_DUMMIES.get(m["name"], "placeholder")
            local = root / m["name"] / item["path"]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_text(content)
            files[f"{m['mountPath'].rstrip('/')}/{item['path']}"] = local
    return files


# The file paths the chart sets, by service (section of config.toml).
SERVICE_FILE_KEYS = {
    "enricher": ("roles_file", "checkpoint_key_file"),
    "detector": ("rules_file",),
}


def localize_files(toml_text: str, svc: str, files: dict[str, Path]) -> str:
    """config.toml with the service's file paths pointing at the projected files;
    every path it names must be a file of one of the pod's volumes."""
    section = tomllib.loads(toml_text).get(svc, {})
    for key in SERVICE_FILE_KEYS.get(svc, ()):
        if key in section:
            path = section[key]
            assert path in files, f"{svc}.{key} = {path} is not a file of any mounted volume: {sorted(files)}"
            toml_text = toml_text.replace(f'{key} = "{path}"', f'{key} = "{files[path]}"')
    return toml_text


def check_config(bin_dir, svc, cfg: Path, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(bin_dir / f"scimtrail-{svc}"), "--check-config", "--config", str(cfg)],
        env={**env, "SCIMTRAIL_CONFIG": str(cfg), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=30,
    )


# ------------------------------------------------------------------ lint


@pytest.mark.parametrize("values", [None, *values_files()], ids=lambda v: "defaults" if v is None else v.name)
def test_lint_strict(helm, values):
    args = [str(HELM_SCRIPT), "lint", "--strict", "helm/scimtrail"]
    if values is not None:
        args += ["-f", str(values.relative_to(REPO))]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_values_files_exist():
    names = {f.name for f in values_files()}
    assert {"minimal.yaml", "production.yaml"} <= names


# ----------------------------------------------------- workload structure


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_workloads(helm, scenario):
    docs = helm.template(*args_of(helm, scenario))
    wls = workloads(docs)
    assert sorted(component(w) for w in wls) == sorted(SERVICES)
    for w in wls:
        name = w["metadata"]["name"]
        svc = component(w)
        pod = w["spec"]["template"]["spec"]
        c = container(w)

        # Transactional services need stable pod names: StatefulSets.
        if svc in TRANSACTIONAL:
            assert w["kind"] == "StatefulSet", name
            assert w["spec"]["podManagementPolicy"] == "Parallel", name
            headless = [
                s for s in by_kind(docs, "Service") if s["metadata"]["name"] == w["spec"]["serviceName"]
            ]
            assert len(headless) == 1, f"{name}: governing Service {w['spec']['serviceName']} not rendered"
            assert headless[0]["spec"]["clusterIP"] == "None"
            assert headless[0]["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]
        else:
            assert w["kind"] == "Deployment", name
        instance = [e for e in c["env"] if e["name"] == "SCIMTRAIL__KAFKA__INSTANCE_ID"]
        assert instance and instance[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name", name

        assert c["command"] == [f"/usr/local/bin/scimtrail-{svc}"], name
        assert {e["name"]: e.get("value") for e in c["env"]}["SCIMTRAIL__ADMIN__LISTEN"] == f"0.0.0.0:{ADMIN_PORT}"

        # Security contexts.
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] == 10001, name
        assert psc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        csc = c["securityContext"]
        assert csc["runAsNonRoot"] is True and csc["runAsUser"] == 10001, name
        assert csc["readOnlyRootFilesystem"] is True, name
        assert csc["allowPrivilegeEscalation"] is False, name
        assert csc["capabilities"]["drop"] == ["ALL"], name
        assert csc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert pod["automountServiceAccountToken"] is False, name
        assert pod["enableServiceLinks"] is False, name

        # Probes on the admin port.
        for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            get = c[probe]["httpGet"]
            assert get["path"] == path, f"{name} {probe}"
            assert container_port(c, get["port"]) == ADMIN_PORT, f"{name} {probe}"
        assert container_port(c, "admin") == ADMIN_PORT

        # Resources, shutdown, scheduling, scratch space.
        for kind in ("requests", "limits"):
            assert c["resources"][kind].get("cpu") and c["resources"][kind].get("memory"), f"{name} {kind}"
        assert pod["terminationGracePeriodSeconds"] > 30, name
        assert pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"], name
        assert pod["topologySpreadConstraints"], name
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        vols = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in vols[mounts["/tmp"]["name"]], name
        # The config file is the ConfigMap's config.toml, where SCIMTRAIL_CONFIG says.
        cfg = mounts[CONFIG_PATH]
        assert cfg["subPath"] == "config.toml" and cfg.get("readOnly") is True
        assert vols[cfg["name"]]["configMap"]["name"] == config_map(docs)["metadata"]["name"]
        assert {e["name"]: e.get("value") for e in c["env"]}["SCIMTRAIL_CONFIG"] == CONFIG_PATH


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_checksum_annotation_is_sha256_of_config(helm, scenario):
    docs = helm.template(*args_of(helm, scenario))
    want = hashlib.sha256(config_toml(docs).encode()).hexdigest()
    for w in workloads(docs):
        got = w["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        assert got == want, w["metadata"]["name"]


def test_checksum_follows_config_changes_only(helm):
    base = helm.template()
    changed = helm.template("--set", "config.detector.max_evidence=50")
    scaled = helm.template("--set", "ingest.replicas=5")

    def sums(docs):
        return {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for w in workloads(docs)}

    assert "max_evidence = 50" in config_toml(changed)
    new = hashlib.sha256(config_toml(changed).encode()).hexdigest()
    assert set(sums(changed).values()) == {new}
    assert set(sums(base).values()).isdisjoint(sums(changed).values()), "a config change must roll every pod"
    assert sums(scaled) == sums(base), "a non-config change must not change the checksum"


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_secrets_only_when_created_and_never_in_config(helm, scenario):
    docs = helm.template(*args_of(helm, scenario))
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    args = args_of(helm, scenario)
    for f in args[1::2]:
        values.setdefault("secrets", {}).update((yaml.safe_load(Path(f).read_text()) or {}).get("secrets", {}))
    secrets = by_kind(docs, "Secret")
    if values["secrets"].get("create"):
        assert len(secrets) == 1
        assert secrets[0]["metadata"]["name"].endswith("-credentials")
    else:
        assert secrets == [], "no Secret may be rendered unless secrets.create"
    toml = config_toml(docs)
    for s in SECRET_STRINGS + [str(u) for u in values["secrets"].get("webhooks") or []]:
        assert s not in toml, f"secret value {s!r} leaked into the ConfigMap"


def test_secret_volumes_use_rendered_keys(helm):
    docs = helm.template(*args_of(helm, SCENARIOS[SCENARIO_IDS.index("all-secrets-created")]))
    data = secret_data(docs)
    toml = config_toml(docs)
    for w in workloads(docs):
        c = container(w)
        vols = {v["name"]: v for v in w["spec"]["template"]["spec"]["volumes"]}
        tls = vols["kafka-tls"]["secret"]
        mount = next(m for m in c["volumeMounts"] if m["name"] == "kafka-tls")["mountPath"]
        paths = {}
        for item in tls["items"]:
            assert item["key"] in data[tls["secretName"]], item
            paths[item["path"]] = f"{mount}/{item['path']}"
        for prop, path in (("ssl.ca.location", "ca.crt"), ("ssl.certificate.location", "tls.crt"), ("ssl.key.location", "tls.key")):
            assert f'"{prop}" = "{paths[path]}"' in toml
    assert '"security.protocol" = "SASL_SSL"' in toml
    assert '"sasl.mechanism" = "SCRAM-SHA-256"' in toml


# ------------------------------------------- the services accept their config


@pytest.mark.parametrize("scenario", SCENARIOS, ids=SCENARIO_IDS)
def test_services_accept_rendered_config_and_env(helm, bin_dir, scenario, tmp_path):
    """Runs each service's real binary with --check-config on exactly the rendered
    config.toml and the workload's environment (secrets resolved)."""
    docs = helm.template(*args_of(helm, scenario))
    for w in workloads(docs):
        svc = component(w)
        # The enricher's role directory and checkpoint key, the detector's rules
        # file: the files of their volumes, projected here, with config.toml
        # pointing at them.
        files = pod_files(w, docs, tmp_path / svc)
        cfg = tmp_path / f"{svc}.toml"
        cfg.write_text(localize_files(config_toml(docs), svc, files))
        env = resolve_env(w, docs)
        assert env["SCIMTRAIL_CONFIG"] == CONFIG_PATH
        env["SCIMTRAIL_CONFIG"] = str(cfg)  # where the ConfigMap is "mounted" here
        binary = bin_dir / f"scimtrail-{svc}"
        proc = subprocess.run(
            [str(binary), "--check-config", "--config", str(cfg)],
            env={**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == 0, (
            f"scimtrail-{svc} rejects what the chart gives it ({scenario[0]}):\n"
            f"{proc.stderr}{proc.stdout}\n--- env ---\n{pretty(env)}\n--- config.toml ---\n{cfg.read_text()}"
        )
        assert f"scimtrail-{svc}: configuration ok" in proc.stdout


def test_check_config_really_checks(helm, bin_dir, tmp_path):
    """The binaries reject an unknown key and a bad value, naming them: the test
    above would prove nothing otherwise."""
    docs = helm.template()
    cfg = tmp_path / "config.toml"
    w = next(w for w in workloads(docs) if component(w) == "detector")
    env = resolve_env(w, docs)
    for extra, key in (
        ({"SCIMTRAIL__KAFKA__BROKRES": "x:1"}, "brokres"),
        ({"SCIMTRAIL__DETECTOR__MAX_EVIDENCE": "0"}, "detector.max_evidence"),
        # The rules file is loaded and checked, not just named.
        ({"SCIMTRAIL__DETECTOR__RULES_FILE": str(tmp_path / "missing.yaml")}, "detector.rules_file"),
    ):
        cfg.write_text(config_toml(docs))
        proc = subprocess.run(
            [str(bin_dir / "scimtrail-detector"), "--check-config", "--config", str(cfg)],
            env={**env, **extra, "SCIMTRAIL_CONFIG": str(cfg), "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode != 0, f"{extra} accepted"
        assert key in proc.stderr + proc.stdout


# ------------------------- enricher: role directory, checkpoint key, privileged


def enricher_docs(helm, values):
    return helm.template("-f", helm.values_file(values))


def test_roles_rendered_and_mounted_as_a_directory(helm):
    docs = enricher_docs(helm, ENRICHER_FEATURES)
    cm = roles_config_map(docs)
    assert cm is not None, "enricher.roles renders a ConfigMap"
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "enricher"
    assert list(cm["data"]) == ["roles.yaml"]
    # The rendered directory is the values' one, every id and name intact.
    assert yaml.safe_load(cm["data"]["roles.yaml"]) == ROLES

    w = workload(docs, "enricher")
    c = container(w)
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "roles"]
    assert mount["mountPath"] == ROLES_DIR and mount.get("readOnly") is True
    assert "subPath" not in mount and "subPathExpr" not in mount, "a subPath mount never sees ConfigMap updates"
    (vol,) = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "roles"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert vol["configMap"]["items"] == [{"key": "roles.yaml", "path": "roles.yaml"}]
    assert tomllib.loads(config_toml(docs))["enricher"]["roles_file"] == f"{ROLES_DIR}/roles.yaml"
    # Only the enricher mounts it.
    for other in workloads(docs):
        if component(other) != "enricher":
            assert "roles" not in [v["name"] for v in other["spec"]["template"]["spec"]["volumes"]]


def test_rendered_roles_pass_the_enrichers_check_config(helm, bin_dir, tmp_path):
    """The rendered roles.yaml, written to a file, is a role directory the real
    enricher accepts; the same file with a typo is rejected, naming roles_file."""
    docs = enricher_docs(helm, ENRICHER_FEATURES)
    roles = tmp_path / "roles.yaml"
    roles.write_text(roles_config_map(docs)["data"]["roles.yaml"])
    key = tmp_path / "key.pem"
    key.write_text(ed25519_pem())
    w = workload(docs, "enricher")
    env = resolve_env(w, docs)
    text = localize_files(
        config_toml(docs),
        "enricher",
        {f"{ROLES_DIR}/roles.yaml": roles, f"{CHECKPOINT_KEY_DIR}/key.pem": key},
    )
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    proc = check_config(bin_dir, "enricher", cfg, env)
    assert proc.returncode == 0, proc.stderr + proc.stdout + "\n--- roles.yaml ---\n" + roles.read_text()
    assert "scimtrail-enricher: configuration ok" in proc.stdout

    roles.write_text(roles.read_text().replace("roles:", "role:", 1))
    proc = check_config(bin_dir, "enricher", cfg, env)
    assert proc.returncode != 0, "a role directory with an unknown key was accepted"
    assert "enricher.roles_file" in proc.stderr + proc.stdout


def test_roles_changes_are_reloaded_not_rolled(helm):
    """Editing the role directory changes only its ConfigMap: every pod template
    stays the same (the enricher reloads the file). Changing config still rolls."""
    base = enricher_docs(helm, ENRICHER_FEATURES)
    edited = yaml.safe_load(yaml.safe_dump(ENRICHER_FEATURES))
    edited["enricher"]["roles"]["principals"]["mallory"] = {"roles": ["provisioning-admin"]}
    edited["enricher"]["roles"]["principals"]["okta-provisioner"]["roles"] = ["service-connector", "admin"]
    changed = enricher_docs(helm, edited)

    assert roles_config_map(changed)["data"] != roles_config_map(base)["data"]
    assert "mallory" in roles_config_map(changed)["data"]["roles.yaml"]
    def templates(docs):
        return {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(docs)}

    def sums(docs):
        return {w["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for w in workloads(docs)}

    assert templates(changed) == templates(base), "a role directory edit must not restart any pod"
    assert config_toml(changed) == config_toml(base)

    lenient = yaml.safe_load(yaml.safe_dump(ENRICHER_FEATURES))
    lenient["config"]["enricher"]["patch_compat"] = "lenient"
    assert sums(enricher_docs(helm, lenient)).isdisjoint(sums(base)), "a config change still rolls every pod"
    # Turning the role directory on adds a volume and roles_file: that rolls, as it must.
    assert sums(helm.template()).isdisjoint(sums(base))


def test_roles_from_an_existing_configmap(helm):
    docs = enricher_docs(helm, ROLES_EXISTING_CONFIGMAP)
    assert roles_config_map(docs) is None, "no chart-managed role directory with rolesExistingConfigMap"
    w = workload(docs, "enricher")
    (vol,) = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "roles"]
    assert vol["configMap"]["name"] == "corp-scim-roles"
    assert vol["configMap"]["items"] == [{"key": "directory.yaml", "path": "roles.yaml"}]
    (mount,) = [m for m in container(w)["volumeMounts"] if m["name"] == "roles"]
    assert mount["mountPath"] == ROLES_DIR and "subPath" not in mount
    assert tomllib.loads(config_toml(docs))["enricher"]["roles_file"] == f"{ROLES_DIR}/roles.yaml"


def test_checkpoint_key_secret_mounted_and_referenced(helm):
    docs = enricher_docs(helm, ENRICHER_FEATURES)
    w = workload(docs, "enricher")
    (vol,) = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "checkpoint-key"]
    assert vol["secret"]["secretName"] == "st-checkpoint-key"
    assert vol["secret"]["items"] == [{"key": "ed25519.pem", "path": "key.pem"}]
    assert vol["secret"]["defaultMode"] == 0o440, "readable by the pod's group (fsGroup), nobody else"
    (mount,) = [m for m in container(w)["volumeMounts"] if m["name"] == "checkpoint-key"]
    assert mount["mountPath"] == CHECKPOINT_KEY_DIR and mount.get("readOnly") is True
    assert "subPath" not in mount
    assert tomllib.loads(config_toml(docs))["enricher"]["checkpoint_key_file"] == f"{CHECKPOINT_KEY_DIR}/key.pem"
    assert by_kind(docs, "Secret") == [], "the chart references the key's Secret, it never creates one"
    for other in workloads(docs):
        if component(other) != "enricher":
            assert "checkpoint-key" not in [v["name"] for v in other["spec"]["template"]["spec"]["volumes"]]

    # Default key name; and without a Secret no key and no checkpoint_key_file.
    docs = helm.template("--set", "enricher.checkpointKey.existingSecret=ck")
    (vol,) = [v for v in workload(docs, "enricher")["spec"]["template"]["spec"]["volumes"] if v["name"] == "checkpoint-key"]
    assert vol["secret"]["items"] == [{"key": "key.pem", "path": "key.pem"}]
    docs = helm.template()
    assert "checkpoint_key_file" not in tomllib.loads(config_toml(docs))["enricher"]
    assert "roles_file" not in tomllib.loads(config_toml(docs))["enricher"]
    assert not [v for v in workload(docs, "enricher")["spec"]["template"]["spec"]["volumes"] if v["name"] in ("roles", "checkpoint-key")]


def test_checkpoint_key_really_checked(helm, bin_dir, tmp_path):
    """The enricher's --check-config loads the key: a file that is not one fails,
    naming checkpoint_key_file (so the scenario runs above check the dummy key)."""
    docs = enricher_docs(helm, ENRICHER_FEATURES)
    w = workload(docs, "enricher")
    files = pod_files(w, docs, tmp_path)
    files[f"{CHECKPOINT_KEY_DIR}/key.pem"].write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(localize_files(config_toml(docs), "enricher", files))
    proc = check_config(bin_dir, "enricher", cfg, resolve_env(w, docs))
    assert proc.returncode != 0
    assert "enricher.checkpoint_key_file" in proc.stderr + proc.stdout


def test_enricher_settings_pass_through(helm, bin_dir, tmp_path):
    docs = enricher_docs(helm, ENRICHER_FEATURES)
    text = config_toml(docs)
    enricher = tomllib.loads(text)["enricher"]
    assert enricher["privileged"] == PRIVILEGED
    assert "[enricher.privileged]" in text
    assert enricher["patch_compat"] == "strict"
    assert enricher["roles_reload_secs"] == 30 and enricher["checkpoint_every_events"] == 250
    # The defaults render too, and the service reads them back as they are.
    defaults = tomllib.loads(config_toml(helm.template()))["enricher"]
    assert defaults["patch_compat"] == "lenient"
    assert defaults["privileged"] == {"groups": [], "roles": [], "entitlements": [], "attributes": []}
    # An empty privileged table is left out; null leaves a key to the service's default.
    docs = helm.template("--set", "config.enricher.privileged=null", "--set", "config.enricher.patch_compat=null")
    text = config_toml(docs)
    assert "[enricher.privileged]" not in text and "patch_compat" not in text
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    w = workload(docs, "enricher")
    proc = check_config(bin_dir, "enricher", cfg, resolve_env(w, docs))
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_disabled_enricher_gets_no_role_directory(helm):
    docs = helm.template("-f", helm.values_file({**ENRICHER_FEATURES, "enricher": {**ENRICHER_FEATURES["enricher"], "enabled": False}}))
    assert roles_config_map(docs) is None
    enricher = tomllib.loads(config_toml(docs))["enricher"]
    assert "roles_file" not in enricher and "checkpoint_key_file" not in enricher


def test_readme_enricher_example_renders(helm):
    readme = (CHART / "README.md").read_text()
    section = readme[readme.index("### Enricher: role directory and checkpoint key"):]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    docs = enricher_docs(helm, example)
    assert yaml.safe_load(roles_config_map(docs)["data"]["roles.yaml"]) == example["enricher"]["roles"]
    enricher = tomllib.loads(config_toml(docs))["enricher"]
    assert enricher["privileged"] == example["config"]["enricher"]["privileged"]
    assert enricher["checkpoint_key_file"] == f"{CHECKPOINT_KEY_DIR}/key.pem"


def test_enricher_schema_has_every_service_key():
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    service = schema["definitions"]["service"]
    enricher = schema["definitions"]["enricherService"]
    assert schema["properties"]["enricher"] == {"$ref": "#/definitions/enricherService"}
    assert enricher["required"] == service["required"]
    for key in service["properties"]:
        assert enricher["properties"].get(key) == {"$ref": f"#/definitions/service/properties/{key}"}, key
    assert set(enricher["properties"]) - set(service["properties"]) == {"roles", "rolesExistingConfigMap", "checkpointKey"}


# ------------------------------------------------------- detector: rules


def detector_docs(helm, values):
    return helm.template("-f", helm.values_file(values))


def rules_volume(w) -> dict | None:
    vols = [v for v in w["spec"]["template"]["spec"]["volumes"] if v["name"] == "rules"]
    assert len(vols) <= 1
    return vols[0] if vols else None


def check_rules_file(bin_dir, tmp_path, docs, text: str) -> subprocess.CompletedProcess:
    """Runs the real detector's --check-config on the rendered config.toml with
    rules_file pointing at `text`, written to a file."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(text)
    w = workload(docs, "detector")
    cfg = tmp_path / "config.toml"
    cfg.write_text(localize_files(config_toml(docs), "detector", {f"{RULES_DIR}/rules.yaml": rules}))
    return check_config(bin_dir, "detector", cfg, resolve_env(w, docs))


def test_rules_rendered_and_mounted_as_a_directory(helm):
    docs = detector_docs(helm, DETECTOR_RULES)
    cm = rules_config_map(docs)
    assert cm is not None, "detector.rules renders a ConfigMap"
    assert cm["metadata"]["name"] == "st-scimtrail-detector-rules"
    assert cm["metadata"]["labels"]["app.kubernetes.io/component"] == "detector"
    assert list(cm["data"]) == ["rules.yaml"]
    # The rendered file is the values' one, every rule and string intact.
    assert yaml.safe_load(cm["data"]["rules.yaml"]) == RULES

    w = workload(docs, "detector")
    (mount,) = [m for m in container(w)["volumeMounts"] if m["name"] == "rules"]
    assert mount["mountPath"] == RULES_DIR and mount.get("readOnly") is True
    assert "subPath" not in mount and "subPathExpr" not in mount, "a subPath mount never sees ConfigMap updates"
    vol = rules_volume(w)
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert vol["configMap"]["items"] == [{"key": "rules.yaml", "path": "rules.yaml"}]
    detector = tomllib.loads(config_toml(docs))["detector"]
    assert detector["rules_file"] == f"{RULES_DIR}/rules.yaml"
    assert detector["rules_reload_secs"] == 30
    # Only the detector mounts it.
    for other in workloads(docs):
        if component(other) != "detector":
            assert rules_volume(other) is None, other["metadata"]["name"]


def test_rendered_rules_pass_the_detectors_check_config(helm, bin_dir, tmp_path):
    """The rendered rules.yaml, written to a file, is a rules file the real detector
    loads; the same file with a typo, or a rule the detector cannot parse, is
    rejected naming rules_file."""
    docs = detector_docs(helm, DETECTOR_RULES)
    text = rules_config_map(docs)["data"]["rules.yaml"]
    proc = check_rules_file(bin_dir, tmp_path, docs, text)
    assert proc.returncode == 0, proc.stderr + proc.stdout + "\n--- rules.yaml ---\n" + text
    assert "scimtrail-detector: configuration ok" in proc.stdout

    for broken, named in (
        (text.replace("more_than:", "more_then:", 1), "more_then"),
        (text.replace("principal.id", "principal.idd", 1), "principal.idd"),
    ):
        proc = check_rules_file(bin_dir, tmp_path, docs, broken)
        assert proc.returncode != 0, f"a rules file with {named} was accepted"
        assert "detector.rules_file" in proc.stderr + proc.stdout
        assert named in proc.stderr + proc.stdout


def test_default_pack_inline_renders_and_loads(helm, bin_dir, tmp_path):
    """The shipped default pack, given as detector.rules, passes the values schema
    and the template checks, renders unchanged and loads in the real detector: the
    schema accepts what the detector accepts."""
    pack = yaml.safe_load(DEFAULT_PACK.read_text())
    docs = detector_docs(helm, {"detector": {"rules": pack}})
    text = rules_config_map(docs)["data"]["rules.yaml"]
    assert yaml.safe_load(text) == pack
    proc = check_rules_file(bin_dir, tmp_path, docs, text)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_rules_changes_are_reloaded_not_rolled(helm):
    """Editing the rules changes only their ConfigMap: every pod template stays the
    same (the detector reloads the file). Changing config still rolls."""
    base = detector_docs(helm, DETECTOR_RULES)
    edited = yaml.safe_load(yaml.safe_dump(DETECTOR_RULES))
    edited["detector"]["rules"]["rules"][0]["threshold"]["more_than"] = 80
    edited["detector"]["rules"]["rules"].append(
        {"id": "mallory", "title": "Mallory", "severity": "high", "description": "Mallory acts.",
         "where": 'principal.id eq "mallory"', "match": {}}
    )
    changed = detector_docs(helm, edited)

    assert rules_config_map(changed)["data"] != rules_config_map(base)["data"]
    assert "mallory" in rules_config_map(changed)["data"]["rules.yaml"]

    def templates(docs):
        return {w["metadata"]["name"]: w["spec"]["template"] for w in workloads(docs)}

    def sums(docs):
        return {w["spec"]["template"]["metadata"]["annotations"]["checksum/config"] for w in workloads(docs)}

    assert templates(changed) == templates(base), "a rules edit must not restart any pod"
    assert config_toml(changed) == config_toml(base)

    slower = yaml.safe_load(yaml.safe_dump(DETECTOR_RULES))
    slower["config"]["detector"]["rules_reload_secs"] = 60
    assert sums(detector_docs(helm, slower)).isdisjoint(sums(base)), "a config change still rolls every pod"
    # Turning the rules file on adds a volume and rules_file: that rolls, as it must.
    assert sums(helm.template()).isdisjoint(sums(base))


def test_rules_from_an_existing_configmap(helm):
    docs = detector_docs(helm, RULES_EXISTING_CONFIGMAP)
    assert rules_config_map(docs) is None, "no chart-managed rules with rulesExistingConfigMap"
    w = workload(docs, "detector")
    vol = rules_volume(w)
    assert vol["configMap"]["name"] == "corp-detection-rules"
    assert vol["configMap"]["items"] == [{"key": "scim.yaml", "path": "rules.yaml"}]
    (mount,) = [m for m in container(w)["volumeMounts"] if m["name"] == "rules"]
    assert mount["mountPath"] == RULES_DIR and "subPath" not in mount
    assert tomllib.loads(config_toml(docs))["detector"]["rules_file"] == f"{RULES_DIR}/rules.yaml"
    # The default key name.
    docs = helm.template("--set", "detector.rulesExistingConfigMap.name=rules")
    assert rules_volume(workload(docs, "detector"))["configMap"]["items"] == [{"key": "rules.yaml", "path": "rules.yaml"}]


def test_without_rules_the_detector_runs_the_default_pack(helm, bin_dir, tmp_path):
    """Neither detector.rules nor rulesExistingConfigMap: no rules_file, no volume,
    no ConfigMap, and the detector accepts that (its built-in default pack)."""
    docs = helm.template()
    assert rules_config_map(docs) is None
    assert "rules_file" not in tomllib.loads(config_toml(docs))["detector"]
    assert rules_volume(workload(docs, "detector")) is None
    cfg = tmp_path / "config.toml"
    cfg.write_text(config_toml(docs))
    w = workload(docs, "detector")
    proc = check_config(bin_dir, "detector", cfg, resolve_env(w, docs))
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_disabled_detector_gets_no_rules(helm):
    docs = detector_docs(helm, {**DETECTOR_RULES, "detector": {**DETECTOR_RULES["detector"], "enabled": False}})
    assert rules_config_map(docs) is None
    assert "rules_file" not in tomllib.loads(config_toml(docs))["detector"]
    docs = helm.template("--set", "detector.enabled=false", "--set", "detector.rulesExistingConfigMap.name=rules")
    assert "rules_file" not in tomllib.loads(config_toml(docs))["detector"]


def test_detector_settings_pass_through(helm, bin_dir, tmp_path):
    defaults = tomllib.loads(config_toml(helm.template()))["detector"]
    assert defaults == {"rules_reload_secs": 5, "allowed_lateness_secs": 2, "max_evidence": 20, "max_keys": 1000000}
    docs = helm.template(*args_of(helm, SCENARIOS[SCENARIO_IDS.index("all-secrets-created")]))
    detector = tomllib.loads(config_toml(docs))["detector"]
    assert detector["allowed_lateness_secs"] == 0.5 and detector["max_keys"] == 250000
    # null leaves a key to the service's default.
    docs = helm.template("--set", "config.detector.allowed_lateness_secs=null", "--set", "config.detector.max_keys=null")
    text = config_toml(docs)
    assert "allowed_lateness_secs" not in text and "max_keys" not in text
    cfg = tmp_path / "config.toml"
    cfg.write_text(text)
    proc = check_config(bin_dir, "detector", cfg, resolve_env(workload(docs, "detector"), docs))
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_production_values_give_rules(helm):
    prod = next(f for f in values_files() if f.name == "production.yaml")
    docs = helm.template("-f", str(prod))
    rules = yaml.safe_load(rules_config_map(docs)["data"]["rules.yaml"])
    burst = next(r for r in rules["rules"] if r["id"] == "burst.principal")
    assert burst["severity"] == "critical" and burst["threshold"] == {"more_than": 50, "window": "5m"}
    assert tomllib.loads(config_toml(docs))["detector"]["rules_file"] == f"{RULES_DIR}/rules.yaml"


def test_readme_detector_example_renders(helm, bin_dir, tmp_path):
    readme = (CHART / "README.md").read_text()
    section = readme[readme.index("### Detector: rules"):]
    example = yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.S).group(1))
    docs = detector_docs(helm, example)
    text = rules_config_map(docs)["data"]["rules.yaml"]
    assert yaml.safe_load(text) == example["detector"]["rules"]
    proc = check_rules_file(bin_dir, tmp_path, docs, text)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_detector_schema_has_every_service_key():
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())
    service = schema["definitions"]["service"]
    detector = schema["definitions"]["detectorService"]
    assert schema["properties"]["detector"] == {"$ref": "#/definitions/detectorService"}
    assert detector["required"] == service["required"]
    for key in service["properties"]:
        assert detector["properties"].get(key) == {"$ref": f"#/definitions/service/properties/{key}"}, key
    assert set(detector["properties"]) - set(service["properties"]) == {"rules", "rulesExistingConfigMap"}


def notes(helm, tmp_path, *args) -> str:
    """NOTES.txt as `helm install` prints it (`helm template` does not render it):
    a copy of the chart renders it through `tpl` into a ConfigMap."""
    chart = tmp_path / "chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "notes-under-test.txt").write_text((CHART / "templates" / "NOTES.txt").read_text())
        (chart / "templates" / "zz-notes.yaml").write_text(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n"
            '  NOTES.txt: {{ tpl (.Files.Get "notes-under-test.txt") . | toJson }}\n'
        )
    proc = helm.run("template", "st", str(chart), "--namespace", NAMESPACE, "--show-only", "templates/zz-notes.yaml", *args)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)["data"]["NOTES.txt"]


def test_notes_say_where_the_detector_rules_come_from(helm, tmp_path):
    text = notes(helm, tmp_path)
    assert "The detector runs its built-in default rule pack" in text
    text = notes(helm, tmp_path, "-f", helm.values_file(DETECTOR_RULES))
    assert "Detector rules: ConfigMap st-scimtrail-detector-rules (from detector.rules)" in text
    assert "default rule pack" not in text
    text = notes(helm, tmp_path, "-f", helm.values_file(RULES_EXISTING_CONFIGMAP))
    assert 'Detector rules: ConfigMap corp-detection-rules, key "scim.yaml"' in text
    text = notes(helm, tmp_path, "--set", "detector.enabled=false")
    assert "Detector rules" not in text and "default rule pack" not in text


def valid_rule(**changes) -> dict:
    rule = {"id": "r", "title": "R", "severity": "high", "description": "d", "threshold": {"more_than": 1, "window": "1m"}}
    rule.update(changes)
    return {k: v for k, v in rule.items() if v is not None}


@pytest.mark.parametrize(
    "values,named",
    [
        (
            {"detector": {"rules": {"rules": [valid_rule()]}, "rulesExistingConfigMap": {"name": "cm"}}},
            "detector.rulesExistingConfigMap",
        ),
        ({"detector": {"rules": {"version": 1}}}, "/detector/rules"),
        ({"detector": {"rules": {"version": 2, "rules": [valid_rule()]}}}, "/detector/rules/version"),
        ({"detector": {"rules": {"rule": [valid_rule()]}}}, "'rule'"),
        ({"detector": {"rules": {"rules": [valid_rule(wher='action eq "DELETE"')]}}}, "'wher'"),
        ({"detector": {"rules": {"rules": [valid_rule(title=None)]}}}, "/detector/rules/rules/0"),
        ({"detector": {"rules": {"rules": [valid_rule(id="a b")]}}}, "/detector/rules/rules/0/id"),
        ({"detector": {"rules": {"rules": [valid_rule(severity="urgent")]}}}, "/detector/rules/rules/0/severity"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold={"more_than": 1, "window": "5x"})]}}}, "/detector/rules/rules/0/threshold/window"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold={"more_than": 1})]}}}, "/detector/rules/rules/0/threshold"),
        ({"detector": {"rules": {"rules": [valid_rule(group_by=["a", "b", "c", "d"])]}}}, "/detector/rules/rules/0/group_by"),
        ({"detector": {"rules": {"rules": [valid_rule(labels={"tier": 1})]}}}, "/detector/rules/rules/0/labels/tier"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold=None, error_rate={"window": "5m", "ratio": 1.5, "min_count": 1})]}}}, "/detector/rules/rules/0/error_rate/ratio"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold=None, policy={"roles": {"x": {"actions": ["WRITE"]}}})]}}}, "/detector/rules/rules/0/policy/roles/x/actions/0"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold=None, new_value={"field": "source.ip", "lookback": "30d", "max_values": 0})]}}}, "/detector/rules/rules/0/new_value/max_values"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold=None, schedule={"time_zone": "UTC", "days": [], "hours": ["08:00-18:00"]})]}}}, "/detector/rules/rules/0/schedule/days"),
        ({"detector": {"rules": {"rules": [valid_rule(match={})]}}}, "detector.rules.rules[0] (id \"r\"): a rule has exactly one kind section"),
        ({"detector": {"rules": {"rules": [valid_rule(threshold=None)]}}}, "found none"),
        ({"detector": {"rules": {"rules": [valid_rule(), valid_rule(title="Again")]}}}, "detector.rules.rules[1] (id \"r\"): duplicate id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_detector_rules_fail_naming_the_rule(helm, values, named):
    proc = helm.template_raw("-f", helm.values_file(values))
    assert proc.returncode != 0, f"{values} rendered"
    assert named in proc.stderr, proc.stderr


# ------------------------------------------------------------ bad values


@pytest.mark.parametrize(
    "setting,named",
    [
        ("config.detector.allowed_lateness_secs=-1", "/config/detector/allowed_lateness_secs"),
        ("ingest.replicas=-1", "/ingest/replicas"),
        ("config.log.format=xml", "/config/log/format"),
        ("config.log.level=loud", "/config/log/level"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("config.kafka.brokers=", "/config/kafka/brokers"),
        ("config.kafka.brokers=null", "brokers"),
        ("config.topics.partitions=0", "/config/topics/partitions"),
        ("config.detector.burst_threshold=3", "burst_threshold"),
        ("config.detector.allowed_lateness_secs=3601", "/config/detector/allowed_lateness_secs"),
        ("config.detector.allowed_lateness_secs=soon", "/config/detector/allowed_lateness_secs"),
        ("config.detector.rules_reload_secs=0", "/config/detector/rules_reload_secs"),
        ("config.detector.max_evidence=0", "/config/detector/max_evidence"),
        ("config.detector.max_keys=0", "/config/detector/max_keys"),
        ("config.detector.rules_file=/etc/rules.yaml", "config.detector.rules_file"),
        ("detector.rulesExistingConfigMap.name=Bad_Name", "/detector/rulesExistingConfigMap/name"),
        ("detector.rulesExistingConfigMap.key=a/b", "/detector/rulesExistingConfigMap/key"),
        ("detector.rules.version=1", "/detector/rules"),
        ("detector.rulez.x=1", "rulez"),
        ("sink.rules.version=1", "/sink"),
        ("config.ingest.max_record_bytes=10", "/config/ingest/max_record_bytes"),
        ("config.schema_registry.url=ftp://x", "/config/schema_registry/url"),
        ("config.topics.alerts=bad topic", "/config/topics/alerts"),
        ("sink.terminationGracePeriodSeconds=20", "/sink/terminationGracePeriodSeconds"),
        ("enricher.resources.limits.memory=lots", "/enricher/resources/limits/memory"),
        ("config.sink.max_backoff_ms=100", "config.sink.max_backoff_ms"),
        ("config.topics.alerts=audit.events.v1", "config.topics"),
        ("kafkaSasl.enabled=true", "kafkaSasl.existingSecret"),
        ("kafkaTls.enabled=true", "kafkaTls.existingSecret"),
        ("webhooks.existingSecret=", "webhooks.existingSecret"),
        ("secrets.create=true", "secrets.webhooks"),
        ("unknownTopLevel=1", "unknownTopLevel"),
        ("detector.autoscaling.enabled=true,detector.autoscaling.minReplicas=5", "detector.autoscaling.minReplicas"),
        ("config.kafka.properties.sasl\\.password=x", "config.kafka.properties.sasl.password"),
        ("config.kafka.producer_properties.ssl\\.key\\.password=x", "config.kafka.producer_properties.ssl.key.password"),
        ("config.schema_registry.url=https://user:pw@registry:8081", "config.schema_registry.url"),
        ("config.topics.checkpoints=audit.dlq.v1", "config.topics"),
        ("config.topics.checkpoints=bad topic", "/config/topics/checkpoints"),
        ("config.enricher.patch_compat=loose", "/config/enricher/patch_compat"),
        ("config.enricher.patch_compat=Strict", "/config/enricher/patch_compat"),
        ("config.enricher.roles_reload_secs=0", "/config/enricher/roles_reload_secs"),
        ("config.enricher.privileged.groups[0]=", "/config/enricher/privileged/groups/0"),
        ("config.enricher.privileged.admins[0]=x", "admins"),
        ("config.enricher.roles_file=/etc/roles.yaml", "config.enricher.roles_file"),
        ("config.enricher.checkpoint_key_file=/etc/key.pem", "config.enricher.checkpoint_key_file"),
        ("enricher.roles.principals.okta.role[0]=x", "/enricher/roles/principals/okta"),
        ("enricher.roles.principals.okta.roles[0]=", "/enricher/roles/principals/okta/roles/0"),
        ("enricher.roles.users.okta.roles[0]=x", "/enricher/roles"),
        ("enricher.roles.principals.okta.roles[0]=x,enricher.rolesExistingConfigMap.name=cm", "enricher.rolesExistingConfigMap"),
        ("enricher.rolesExistingConfigMap.name=Bad_Name", "/enricher/rolesExistingConfigMap/name"),
        ("enricher.checkpointKey.key=a/b", "/enricher/checkpointKey/key"),
        ("enricher.checkpointKey.existingSecret=Bad_Name", "/enricher/checkpointKey/existingSecret"),
        ("enricher.rolez.x=1", "rolez"),
        ("ingest.roles.principals.okta.roles[0]=x", "/ingest"),
        ("enricher.replicas=-1", "/enricher/replicas"),
    ],
)
def test_bad_values_fail_naming_the_key(helm, setting, named):
    proc = helm.template_raw("--set", setting)
    assert proc.returncode != 0, f"--set {setting} rendered"
    assert named in proc.stderr, proc.stderr


def test_kafka_properties_must_be_flat(helm):
    proc = helm.template_raw("--set", "config.kafka.properties.security.protocol=SSL")
    assert proc.returncode != 0
    assert "/config/kafka/properties/security" in proc.stderr, proc.stderr
    ok = helm.template("--set", "config.kafka.properties.security\\.protocol=SSL")
    assert '"security.protocol" = "SSL"' in config_toml(ok)


# ----------------------------------------------------- other resources


def test_services_serviceaccount_pdb(helm):
    docs = helm.template()
    svcs = {s["metadata"]["name"]: s for s in by_kind(docs, "Service")}
    for w in workloads(docs):
        s = svcs[w["metadata"]["name"]]
        assert s["spec"]["selector"] == w["spec"]["selector"]["matchLabels"]
        assert [(p["name"], p["port"]) for p in s["spec"]["ports"]] == [("admin", ADMIN_PORT)]
    (sa,) = by_kind(docs, "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False
    assert all(w["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"] for w in workloads(docs))
    pdbs = by_kind(docs, "PodDisruptionBudget")
    assert sorted(p["metadata"]["labels"]["app.kubernetes.io/component"] for p in pdbs) == sorted(SERVICES)
    assert all(p["spec"]["maxUnavailable"] == 1 for p in pdbs)
    for kind in ("HorizontalPodAutoscaler", "NetworkPolicy", "ServiceMonitor", "PrometheusRule", "Ingress"):
        assert by_kind(docs, kind) == [], f"{kind} must be off by default"


def test_image_defaults_to_app_version(helm):
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["version"] == "0.1.0" and chart["appVersion"] == "0.1.0"
    for w in workloads(helm.template()):
        assert container(w)["image"] == f"ghcr.io/scimtrail/scimtrail:{chart['appVersion']}"
    for w in workloads(helm.template("--set", "image.tag=1.2.3", "--set", "image.repository=registry.example/st")):
        assert container(w)["image"] == "registry.example/st:1.2.3"


def test_autoscaling_drops_replicas_and_targets_the_workload(helm):
    docs = helm.template("--set", "ingest.autoscaling.enabled=true", "--set", "sink.autoscaling.enabled=true")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(docs, "HorizontalPodAutoscaler")}
    for w in workloads(docs):
        name = w["metadata"]["name"]
        if component(w) in ("ingest", "sink"):
            assert "replicas" not in w["spec"], name
            assert hpas[name]["spec"]["scaleTargetRef"]["kind"] == w["kind"]
        else:
            assert name not in hpas and w["spec"]["replicas"] == 2


def test_disabled_service_renders_nothing(helm):
    docs = helm.template("--set", "detector.enabled=false", "--set", "networkPolicy.enabled=true")
    assert not [d for d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "detector"]
    assert "[detector]" in config_toml(docs)  # harmless: a shared file


def test_extra_env_and_pod_metadata_merge(helm):
    docs = helm.template(
        "--set", "extraEnv[0].name=RUST_LOG", "--set", "extraEnv[0].value=info",
        "--set", "sink.extraEnv[0].name=RUST_LOG", "--set", "sink.extraEnv[0].value=debug",
        "--set", "podAnnotations.team=identity", "--set", "sink.podAnnotations.team=soc",
        "--set", "tolerations[0].key=dedicated", "--set", "tolerations[0].operator=Exists",
    )
    for w in workloads(docs):
        env = [e for e in container(w)["env"] if e["name"] == "RUST_LOG"]
        want = "debug" if component(w) == "sink" else "info"
        assert [e["value"] for e in env] == [want], w["metadata"]["name"]
        ann = w["spec"]["template"]["metadata"]["annotations"]
        assert ann["team"] == ("soc" if component(w) == "sink" else "identity")
        assert "checksum/config" in ann
        assert w["spec"]["template"]["spec"]["tolerations"] == [{"key": "dedicated", "operator": "Exists"}]


def test_sink_disabled_needs_no_webhooks(helm):
    docs = helm.template("--set", "sink.enabled=false", "--set", "webhooks.existingSecret=")
    assert "sink" not in [component(w) for w in workloads(docs)]


def test_servicemonitor_scrapes_each_pod_once(helm):
    docs = helm.template("--set", "monitoring.serviceMonitor.enabled=true")
    (sm,) = by_kind(docs, "ServiceMonitor")
    sel = sm["spec"]["selector"]["matchLabels"]
    matched = [s for s in by_kind(docs, "Service") if sel.items() <= s["metadata"]["labels"].items()]
    assert sorted(s["metadata"]["labels"]["app.kubernetes.io/component"] for s in matched) == sorted(SERVICES)
    assert all(s["spec"].get("clusterIP") != "None" for s in matched), "headless Services would double-scrape"
    (ep,) = sm["spec"]["endpoints"]
    assert ep["port"] == "admin" and ep["path"] == "/metrics"


def test_prometheusrule_renders_the_rules_file(helm):
    docs = helm.template("--set", "monitoring.prometheusRule.enabled=true")
    (rule,) = by_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules_file = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"]["groups"] == rules_file["groups"]
    alerts = [r.get("alert") for g in rule["spec"]["groups"] for r in g["rules"]]
    assert alerts and all(alerts), "every rule is an alert with a name"


def test_chart_ships_the_same_alert_rules_as_deploy():
    # The chart cannot read files outside itself, so it keeps a copy of
    # deploy/prometheus/rules.yaml (the file promtool tests); the copy must not drift.
    shipped = (CHART / "files" / "prometheus-rules.yaml").read_text()
    source = (CHART.parent.parent / "deploy" / "prometheus" / "rules.yaml").read_text()
    assert shipped == source, "cp deploy/prometheus/rules.yaml helm/scimtrail/files/prometheus-rules.yaml"


def test_networkpolicy_allows_only_what_is_needed(helm):
    prod = next(f for f in values_files() if f.name == "production.yaml")
    docs = helm.template("-f", str(prod))
    nps = {n["metadata"]["labels"]["app.kubernetes.io/component"]: n for n in by_kind(docs, "NetworkPolicy")}
    assert sorted(nps) == sorted(SERVICES)
    for svc, np in nps.items():
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        for rule in np["spec"]["ingress"]:
            assert [p["port"] for p in rule["ports"]] == ["admin"], svc
            assert rule["from"], svc
        ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
        want = {53, 9093, 8081} | ({443} if svc == "sink" else set())
        assert ports == want, f"{svc}: egress ports {ports}"
        assert all(rule.get("to") for rule in np["spec"]["egress"]), f"{svc}: production egress has destinations"


def test_render_is_deterministic(helm):
    a = helm.run("template", "x", str(CHART), "-f", str(values_files()[-1])).stdout
    b = helm.run("template", "x", str(CHART), "-f", str(values_files()[-1])).stdout
    assert a == b and a


# -------------------------------------------------------- documentation


def leaf_keys(d, prefix=""):
    """Dotted keys of values.yaml; maps that are empty or free-form are leaves."""
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and key not in FREE_FORM:
            yield from leaf_keys(v, key + ".")
        else:
            yield key


FREE_FORM = {
    "config.kafka.properties",
    "config.kafka.consumer_properties",
    "config.kafka.producer_properties",
    "config.topics.settings",
    "podSecurityContext",
    "containerSecurityContext",
    "networkPolicy.ingress.namespaceSelector",
    "networkPolicy.egress.dns.namespaceSelector",
    "networkPolicy.egress.dns.podSelector",
} | {f"{s}.{k}" for s in SERVICES for k in ("resources", "startupProbe", "livenessProbe", "readinessProbe")}


def test_readme_documents_every_value():
    readme = (CHART / "README.md").read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    documented = set(re.findall(r"^\| `([^`]+)` \|", readme, re.M))
    missing = []
    for key in leaf_keys(values):
        generic = re.sub(r"^(ingest|enricher|detector|sink)\.", "<service>.", key)
        if key not in documented and generic not in documented:
            missing.append(key)
    assert not missing, f"README.md lacks rows for: {missing}"
    schema_props = yaml.safe_load((CHART / "values.schema.json").read_text())["properties"]
    assert set(values) <= set(schema_props)


def test_scripts_helm_passes_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck not installed")
    proc = subprocess.run(["shellcheck", str(HELM_SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout


def test_namespace_is_the_release_namespace(helm):
    for d in helm.template():
        assert d["metadata"].get("namespace") == NAMESPACE, d["metadata"]["name"]
