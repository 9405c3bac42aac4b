"""Dockerfiles: hadolint-clean, and built the way the containers issue asks (multi-stage, slim,
non-root, only the service's own package, exec-form entrypoint, HEALTHCHECK, no secrets in layers)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.static.tools import PYTHON_SERVICES, ROOT, hadolint_binary

DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile")) + sorted(ROOT.glob("scripts/compose/standins/*/Dockerfile"))
SECRET_WORDS = re.compile(r"(PASSWORD|TOKEN|SECRET|PIP_CERT=/(?!run/secrets/))", re.IGNORECASE)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current = [], ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        current += line.rstrip("\\").strip() + " " if line.rstrip().endswith("\\") else line.strip()
        if not line.rstrip().endswith("\\"):
            if current.strip():
                word, _, rest = current.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            current = ""
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        result[-1].append(ins)
    return result


def test_every_service_with_python_has_a_dockerfile() -> None:
    assert {p.parent.name for p in ROOT.glob("services/*/Dockerfile")} == set(PYTHON_SERVICES)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint(path: Path) -> None:
    result = subprocess.run([hadolint_binary(), "--no-color", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_live() -> None:
    """The linter fails a Dockerfile that breaks its rules (an unpinned image, root at the end)."""
    bad = "FROM python:latest\nUSER root\nRUN pip install requests\n"
    result = subprocess.run([hadolint_binary(), "--no-color", "-"], input=bad, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "DL3007" in result.stdout


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_service_dockerfile_shape(service: str) -> None:
    path = ROOT / "services" / service / "Dockerfile"
    parts = stages(path)
    assert len(parts) >= 3, "multi-stage: a base, a build stage and the runtime stage"
    aliases = {part[0][1].split()[-1].lower() for part in parts if " as " in part[0][1].lower()}
    bases = {part[0][1].split()[0] for part in parts if part[0][1].split()[0].lower() not in aliases}
    assert len(bases) == 1, f"one base image for every stage, got {bases}"
    base = bases.pop()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), f"pin a slim Python 3.11 tag, not {base}"
    runtime = parts[-1]
    assert runtime[0][1].split()[-1].lower() == "runtime", "the last stage (the default target) is the runtime"
    kinds = dict(runtime)
    assert kinds.get("USER") == "10001:10001", "the runtime runs as a numeric non-root user"
    assert json.loads(kinds["ENTRYPOINT"]), "exec-form (JSON) ENTRYPOINT"
    assert "HEALTHCHECK" in kinds and "CMD [" in kinds["HEALTHCHECK"], "an exec-form HEALTHCHECK"
    if service == "worker":
        assert json.loads(kinds["HEALTHCHECK"].split("CMD", 1)[1]) == ["agent-worker-health"]
        assert json.loads(kinds["ENTRYPOINT"]) == ["agent-worker"]
    else:
        assert "/healthz" in kinds["HEALTHCHECK"]
        assert json.loads(kinds["ENTRYPOINT"]) == [f"agent-{service}"]


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_only_the_service_and_the_shared_library_are_installed(service: str) -> None:
    path = ROOT / "services" / service / "Dockerfile"
    allowed = {"constraints.txt", "libs/agentsys", f"services/{service}", "libs/agentsys/pyproject.toml",
               f"services/{service}/pyproject.toml"}
    for word, args in instructions(path):
        if word == "COPY" and not args.startswith("--from"):
            sources = args.split()[:-1]
            assert set(sources) <= allowed, f"COPY of {sources}: only {service} and libs/agentsys belong here"
        if word == "RUN" and "pip install" in args:
            paths = set(re.findall(r"\./(?:libs|services)/\w+", args))
            assert paths <= {"./libs/agentsys", f"./services/{service}"}, paths
            assert "-c constraints.txt" in args or "--no-deps" in args, "versions come from constraints.txt"


@pytest.mark.parametrize("service", PYTHON_SERVICES)
def test_pip_ca_bundle_is_a_build_secret_never_a_layer(service: str) -> None:
    path = ROOT / "services" / service / "Dockerfile"
    for word, args in instructions(path):
        if word == "RUN" and "pip install" in args:
            assert "--mount=type=secret,id=hostca,required=false" in args
            assert "PIP_CERT=/run/secrets/hostca" in args
        if word in {"ENV", "ARG", "LABEL"}:
            assert not SECRET_WORDS.search(args), f"{word} {args}: no secrets or certificates in the image"
        if word in {"COPY", "ADD"}:
            assert not re.search(r"\.(pem|crt|key)\b|\.env\b", args), f"{word} {args}"


def test_dockerignore_sends_only_what_images_install() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "exclude everything, then allow what the images need"
    allowed = {ln[1:].rstrip("/") for ln in lines if ln.startswith("!")}
    assert allowed == {"constraints.txt", "libs/agentsys", *(f"services/{s}" for s in PYTHON_SERVICES)}
    for pattern in ("**/.env", "**/__pycache__", "**/*.egg-info", "**/node_modules"):
        assert pattern in lines
