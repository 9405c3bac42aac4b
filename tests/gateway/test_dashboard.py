"""The dashboard's files: served from the gateway's own origin, nothing from the internet."""

from __future__ import annotations

import re

import httpx

from gateway.app import STATIC

URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.I)


def test_page_and_assets_are_served_locally(stack, gateway):
    with httpx.Client(base_url=gateway, timeout=10) as http:
        page = http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert "/static/vendor/uPlot.iife.min.js" in assets and "/static/js/main.js" in assets
        for asset in assets:
            assert http.get(asset).status_code == 200, f"{asset} is missing: run make setup"
        for module in (STATIC / "js").glob("*.js"):
            assert http.get(f"/static/js/{module.name}").status_code == 200
        icon = http.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_no_file_of_the_page_loads_anything_from_elsewhere():
    for path in [*STATIC.glob("*.*"), *(STATIC / "js").glob("*.js")]:
        text = path.read_text()
        found = [u for u in URL.findall(text) if not u.endswith("//www.w3.org")]  # the SVG namespace is a name, not a fetch
        assert not found, f"{path.name} refers to {found}"
