"""Chromium for the dashboard's browser tests: Debian's binary driven by Playwright, a page
whose failure leaves a screenshot behind, and a look at a chart's pixels."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]
# Screenshots of failed browser tests (ignored by git; CI keeps the folder as an artefact).
ARTEFACTS = Path(os.environ.get("VOICEGW_TEST_ARTEFACTS", "test-artefacts"))


def chromium() -> str:
    """Debian's chromium (Playwright's own browser download is not used): `make test`
    installs it where apt-get can; VOICEGW_CHROMIUM names another binary."""
    found = os.environ.get("VOICEGW_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("the browser tests need Chromium: `apt-get install chromium` "
                    "(make test does it when run as root), or set VOICEGW_CHROMIUM")
    return found


@asynccontextmanager
async def browser_page(name: str, *, width: int = 1280, height: int = 900
                       ) -> AsyncIterator[Page]:
    """A fresh page; when the block fails, a full-page screenshot and the page's console
    go to ARTEFACTS/<name>.png and .log before the failure goes on."""
    console: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium(), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": width, "height": height},
                                          accept_downloads=True)
            page.on("console", lambda message: console.append(
                f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            try:
                yield page
            except BaseException:
                stem = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
                _keep_log(stem, console)
                await page.screenshot(path=ARTEFACTS / f"{stem}.png", full_page=True)
                raise
        finally:
            await browser.close()


def _keep_log(stem: str, console: list[str]) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / f"{stem}.log").write_text("\n".join(console) + "\n")


# Pixels a chart painted in colour (its bars, lines, slices), not the grey of its axes
# and grid: a chart with data has many, an empty one none.
_COLOURED = """(id) => {
  const canvas = document.getElementById(id);
  if (!canvas || !canvas.width || !canvas.height) return -1;
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let coloured = 0;
  for (let i = 0; i < data.length; i += 4) {
    const hi = Math.max(data[i], data[i + 1], data[i + 2]);
    const lo = Math.min(data[i], data[i + 1], data[i + 2]);
    if (data[i + 3] > 0 && hi - lo > 60) coloured++;
  }
  return coloured;
}"""


async def coloured_pixels(page: Page, canvas_id: str) -> int:
    """How many pixels of the canvas are painted in colour (-1: no such canvas)."""
    return int(await page.evaluate(_COLOURED, canvas_id))
