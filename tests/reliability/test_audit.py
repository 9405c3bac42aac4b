"""``make audit``: pip-audit is pinned with the rest, and every accepted advisory in
audit-exceptions.txt has an id and a reason and reaches pip-audit as ``--ignore-vuln``."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ADVISORY = re.compile(r"^(GHSA(-[23456789cfghjmpqrvwx]{4}){3}|PYSEC-\d{4}-\d+|CVE-\d{4}-\d{4,}|OSV-\d{4}-\d+)$")


def exceptions(path: Path) -> list[tuple[str, str]]:
    found = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        advisory, _, reason = line.strip().partition(" ")
        assert ADVISORY.match(advisory), f"{path.name}:{number}: {advisory!r} is not an advisory id"
        assert len(reason.strip()) >= 10, f"{path.name}:{number}: {advisory} needs a reason"
        found.append((advisory, reason.strip()))
    return found


def test_pip_audit_is_pinned_and_listed():
    pins = (REPO / "constraints.txt").read_text().lower().replace("_", "-")
    assert re.search(r"^pip-audit==\d", pins, re.M)
    assert "pip-audit" in (REPO / "requirements-dev.txt").read_text().split()


def test_every_exception_has_an_id_and_a_reason_and_reaches_pip_audit(tmp_path):
    listed = exceptions(REPO / "audit-exceptions.txt")
    sample = tmp_path / "exceptions.txt"
    sample.write_text("# comment\nGHSA-9wx4-h78v-vm56  only the CLI's --download option, never run\n\n"
                      "PYSEC-2024-48 fixed upstream, waiting for the release\n")
    assert exceptions(sample) == [("GHSA-9wx4-h78v-vm56", "only the CLI's --download option, never run"),
                                  ("PYSEC-2024-48", "fixed upstream, waiting for the release")]
    for path, ids in ((REPO / "audit-exceptions.txt", [a for a, _ in listed]),
                      (sample, ["GHSA-9wx4-h78v-vm56", "PYSEC-2024-48"])):
        out = subprocess.run(["make", "-s", "-n", "audit", f"AUDIT_EXCEPTIONS={path}"], cwd=REPO,
                             capture_output=True, text=True, check=True).stdout
        assert "pip-audit" in out and "-r constraints.txt" in out
        assert re.findall(r"--ignore-vuln (\S+)", out) == ids
