"""The README's curl example works as written, against a real orchestrator process."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from tests.orchestrator.conftest import TOKEN, serving

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_original_designs_curl_example(stack, tmp_path):
    text = README.read_text()
    match = re.search(r"^curl -X POST localhost:8000/tasks .*?'\{\"description\": \"\.\.\.\", \"priority\": 1\}'$",
                      text, re.M | re.S)
    assert match, "README lost the original design's curl example"
    with serving(stack, tmp_path / "orchestrator.log", token=TOKEN) as url:
        command = match.group(0).replace("localhost:8000", url.removeprefix("http://"))
        done = subprocess.run(["bash", "-c", command + " -s -w '\\n%{http_code}'"], capture_output=True, text=True,
                              timeout=30, env={"API_TOKEN": TOKEN, "PATH": "/usr/bin:/bin"}, check=False)
    body, _, status = done.stdout.rpartition("\n")
    assert status == "202", done.stdout + done.stderr
    task = json.loads(body)
    assert task["type"] == "note" and task["params"] == {"description": "..."} and task["priority"] == "normal"
