"""A worker's traceback text as structure: the exception line and its frames."""

from __future__ import annotations

import re
from typing import Any

FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<function>.+)$')


def structure(stored: Any) -> Any:
    """``{"exception", "frames": [{"file", "line", "function", "code"}], "text"}``.

    Workers store ``{"text": <formatted traceback>}``; anything else is returned as is.
    """
    if not isinstance(stored, dict) or not isinstance(stored.get("text"), str) or "frames" in stored:
        return stored
    text: str = stored["text"]
    frames: list[dict[str, Any]] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = FRAME.match(line)
        if match:
            following = lines[i + 1] if i + 1 < len(lines) else ""
            code = following.strip() if following.startswith("    ") and not FRAME.match(following) else None
            frames.append({"file": match["file"], "line": int(match["line"]), "function": match["function"],
                           "code": code or None})
    tail = [line.strip() for line in lines if line.strip() and not line.startswith((" ", "\t"))]
    exception = tail[-1] if tail else None
    return {**stored, "exception": exception, "frames": frames}
