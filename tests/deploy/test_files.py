"""The deployment files say what the gateway does: they parse, every ``CATALYST_*`` variable they
set is one the gateway reads (with a value it accepts), the ports agree from the load balancer
to the container, and the probes use ``/ready`` and ``/health``. ``haproxy -c`` checks the load
balancer's file when haproxy is installed (.ci/run installs it)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.configsources import OTHER_VARIABLES, read_environment
from catalyst_mcp.settings import Settings, load_settings, parse_settings
from catalyst_mcp.yamlsource import LocatedYaml
from tests.conftest import ROOT

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
HAPROXY = ROOT / "deploy" / "compose" / "haproxy.cfg"
CHART = ROOT / "deploy" / "helm" / "catalyst"
PORT = 8765  # the image's port (CATALYST_GATEWAY__PORT) and the default


def check_environment(environ: dict[str, str], where: str) -> Settings:
    """Every CATALYST_* name is read by the gateway, and the values make valid settings."""
    names = [n for n in environ if n.startswith("CATALYST_")]
    settings_vars = {n: v for n, v in environ.items() if n not in OTHER_VARIABLES}
    unknown = read_environment(Settings, settings_vars).unknown
    assert not unknown, f"{where}: variables no setting reads: {[p.message for p in unknown]}"
    assert names, f"{where} sets no CATALYST_* variable"
    return parse_settings(LocatedYaml(where, {}), settings_vars)


def dockerfile_env() -> dict[str, str]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    env: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"(\w+)=(\S+)", line[4:]))
    return env


# ---- Dockerfile ---------------------------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_slim_and_runs_as_a_user() -> None:
    text = DOCKERFILE.read_text()
    stages = re.findall(r"^FROM (\S+) AS (\w+)", text, flags=re.MULTILINE)
    assert [name for _, name in stages] == ["build", "runtime"]
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.\d+-slim", text, flags=re.MULTILINE)
    assert "COPY --from=build /opt/catalyst /opt/catalyst" in text
    user = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    runtime = text.split(" AS runtime", 1)[1]
    assert re.search(r"apt-get install .*\bnodejs npm\b", runtime)  # npm packages
    assert "uv" in re.findall(r"pip install [^\n]*", text)[-1].split()  # PyPI packages
    assert f"EXPOSE {PORT}" in text


def test_the_dockerfile_copies_what_exists() -> None:
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for part in source.split():
            assert (ROOT / part).exists(), f"Dockerfile copies {part}, which does not exist"


def test_the_images_environment_and_config_are_valid() -> None:
    env = dockerfile_env()
    settings = check_environment(env, "Dockerfile")
    assert settings.gateway.port == PORT and settings.gateway.host == "0.0.0.0"
    assert env["CATALYST_CONFIG"] == "/etc/catalyst/catalyst.yaml"
    load_settings(ROOT / "deploy" / "docker" / "catalyst.yaml")  # the file it copies there


def test_the_images_healthcheck_asks_health_on_its_port() -> None:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (check,) = re.findall(r"^HEALTHCHECK (.+)$", text, flags=re.MULTILINE)
    assert "/health" in check and "CATALYST_GATEWAY__PORT" in check and str(PORT) in check


def test_docker_build() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on this machine")
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        pytest.skip("no docker daemon (`docker info` failed): the image is checked structurally")
    done = subprocess.run(  # as docs/deploy.md says it
        ["docker", "build", "-t", "catalyst-mcp", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]


# ---- compose.yaml and haproxy -------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_compose_runs_two_gateways_postgres_redis_and_a_load_balancer() -> None:
    services = compose()["services"]
    assert set(services) == {"gateway-1", "gateway-2", "lb", "postgres", "redis"}
    assert services["gateway-1"] == services["gateway-2"]  # one definition, twice
    assert services["gateway-1"]["build"] == "."
    assert services["lb"]["ports"] == [f"127.0.0.1:{PORT}:{PORT}"]


def test_compose_gateways_environment_points_at_its_services() -> None:
    gateway = compose()["services"]["gateway-1"]
    env = {k: str(v) for k, v in gateway["environment"].items()}
    env["CATALYST_SECRET_KEY"] = "x"  # compose requires it from the caller's environment
    settings = check_environment({**dockerfile_env(), **env}, "compose.yaml")
    assert settings.auth.enabled  # they listen beyond loopback
    assert settings.rate_limits.backend == "redis"
    assert settings.rate_limits.redis_url.startswith("redis://redis:6379/")
    assert "@postgres:5432/" in env["CATALYST_DATABASE_URL"]
    assert "${CATALYST_SECRET_KEY:?" in COMPOSE.read_text()  # never a key in the file
    for mount in gateway["volumes"]:
        source, target, *_ = mount.split(":")
        assert target == dockerfile_env()["CATALYST_CONFIG"]
        load_settings(ROOT / source)
    assert set(gateway["depends_on"]) == {"postgres", "redis"}


def test_haproxy_balances_the_gateways_on_their_port_checking_ready() -> None:
    text = HAPROXY.read_text()
    services = compose()["services"]
    assert f"bind :{PORT}" in text
    assert "balance roundrobin" in text
    assert "option httpchk GET /ready" in text
    servers = re.findall(r"^\s+server (\S+) (\S+):(\d+)", text, flags=re.MULTILINE)
    assert {(name, host, int(port)) for name, host, port in servers} == {
        ("gateway-1", "gateway-1", PORT),
        ("gateway-2", "gateway-2", PORT),
    }
    assert services["lb"]["volumes"] == [
        "./deploy/compose/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
    ]
    assert "stick match req.hdr(mcp-session-id)" in text  # legacy sessions stay put


def test_haproxy_accepts_the_file() -> None:
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if haproxy is None:
        if os.environ.get("CI") == "true":
            pytest.fail("haproxy is not installed (.ci/run installs it)")
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    argv = [haproxy, "-c", "-f", "deploy/compose/haproxy.cfg"]  # as docs/deploy.md says it
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ---- the Helm chart -----------------------------------------------------------------------------


def values() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return data


def template(name: str) -> str:
    return (CHART / "templates" / name).read_text()


def test_the_chart_has_its_parts() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "catalyst"
    kinds = {
        name: re.findall(r"^kind: (\w+)", template(name), flags=re.MULTILINE)
        for name in ("deployment.yaml", "service.yaml", "configmap.yaml", "secret.yaml", "hpa.yaml")
    }
    assert kinds == {
        "deployment.yaml": ["Deployment"],
        "service.yaml": ["Service"],
        "configmap.yaml": ["ConfigMap"],
        "secret.yaml": ["Secret", "Secret"],
        "hpa.yaml": ["HorizontalPodAutoscaler"],
    }


def test_the_charts_config_and_environment_are_valid() -> None:
    vals = values()
    parse_settings(LocatedYaml("values.yaml config", vals["config"]))
    fixed = dict(
        re.findall(
            r"- name: (CATALYST_\w+)\n\s+value: \"?([^\"\n]+)\"?", template("deployment.yaml")
        )
    )
    from_secrets = re.findall(r"- name: (CATALYST_\w+)\n\s+valueFrom:", template("deployment.yaml"))
    assert sorted(from_secrets) == ["CATALYST_DATABASE_URL", "CATALYST_SECRET_KEY"]
    environ = {**fixed, **{k: str(v) for k, v in vals["env"].items()}}
    environ.update(dict.fromkeys(from_secrets, "x"))
    settings = check_environment(environ, "the chart")
    assert settings.gateway.port == PORT and settings.auth.enabled
    assert fixed["CATALYST_CONFIG"] == "/etc/catalyst/catalyst.yaml"
    assert "mountPath: /etc/catalyst\n" in template("deployment.yaml")
    assert "catalyst.yaml: |" in template("configmap.yaml")


def test_the_charts_ports_and_probes() -> None:
    vals = values()
    deployment = template("deployment.yaml")
    assert f"containerPort: {PORT}" in deployment
    assert vals["service"]["port"] == PORT and "targetPort: http" in template("service.yaml")
    assert vals["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert vals["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert "toYaml .Values.readinessProbe" in deployment
    assert "toYaml .Values.livenessProbe" in deployment


def test_the_charts_secret_holds_the_key_the_deployment_reads() -> None:
    secret, deployment = template("secret.yaml"), template("deployment.yaml")
    assert "secretKey: {{ .Values.secretKey.value | b64enc" in secret
    assert re.search(
        r"name: CATALYST_SECRET_KEY\n\s+valueFrom:\n\s+secretKeyRef:\n.*\n\s+key: secretKey",
        deployment,
    )
    assert values()["secretKey"] == {"value": "", "existingSecret": ""}  # never a key in values


def test_the_charts_pods_run_as_the_images_user() -> None:
    vals = values()
    uid = re.search(r"useradd --system --uid (\d+)", DOCKERFILE.read_text())
    assert uid is not None
    assert vals["podSecurityContext"]["runAsUser"] == int(uid.group(1))
    assert vals["podSecurityContext"]["runAsNonRoot"] is True
