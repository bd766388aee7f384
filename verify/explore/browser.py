"""Drive an explorer page in a real headless browser (Debian's ``chromium`` and ``chromium-driver`` through
selenium): load it, move the slider, read what it renders, take a screenshot.

:func:`find_browser` says why no browser can be used (selenium missing, no chromium or chromedriver on the PATH);
callers skip with that reason, never pass silently.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
PAGE_LOAD_SECONDS = 60


@dataclass(frozen=True)
class BrowserFound:
    """The browser and driver executables, or ``reason`` why there are none."""

    browser: str | None
    driver: str | None
    reason: str = ""


def find_browser() -> BrowserFound:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return BrowserFound(None, None, "selenium is not installed (pip install -e '.[test]')")
    browser = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    driver = next((path for name in DRIVERS if (path := shutil.which(name))), None)
    if browser is None or driver is None:
        missing = " and ".join(n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None)
        return BrowserFound(
            browser, driver, f"no {missing} on the PATH (Debian: apt-get install chromium chromium-driver)"
        )
    return BrowserFound(browser, driver)


class Page:
    """An explorer page open in headless chromium (use as a context manager)."""

    def __init__(self, path: str | Path, found: BrowserFound | None = None, size: tuple[int, int] = (1400, 1000)):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        found = found or find_browser()
        if found.reason:
            raise RuntimeError(f"no browser: {found.reason}")
        options = webdriver.ChromeOptions()
        options.binary_location = found.browser
        for flag in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={size[0]},{size[1]}",
        ):
            options.add_argument(flag)
        self.driver = webdriver.Chrome(service=Service(found.driver), options=options)
        self.driver.set_page_load_timeout(PAGE_LOAD_SECONDS)
        self.driver.get(Path(path).resolve().as_uri())
        self.errors = self._wait_ready()

    def __enter__(self) -> "Page":
        return self

    def __exit__(self, *exc: object) -> None:
        self.driver.quit()

    def _wait_ready(self) -> list[str]:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, PAGE_LOAD_SECONDS).until(
            lambda d: d.execute_script("return document.body.dataset.ready")
        )
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    def press(self, key: str, times: int = 1) -> None:
        """Press ``key`` (``"ArrowRight"``, ``"ArrowLeft"``, ``"w"``) ``times`` times, as a student does."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        named = {"ArrowRight": Keys.ARROW_RIGHT, "ArrowLeft": Keys.ARROW_LEFT}.get(key, key)
        for _ in range(times):
            ActionChains(self.driver).send_keys(named).perform()

    def slide_to(self, position: int) -> None:
        """Move the timeline slider to ``position`` (as dragging it does: the value, then an ``input`` event)."""
        self.driver.execute_script(
            "const s = document.getElementById('slider'); s.value = arguments[0];s.dispatchEvent(new Event('input'));",
            str(position),
        )

    def snapshot(self) -> dict[str, Any]:
        """What the page shows now, read in one round trip: the position line (hook, step, first and last
        sublayer, text), every stream cell (block, token, text, the values it carries, its classes) and every row
        of the reference tables (label, token, the transformer's and the reference's values and their text, and for
        a head's pattern the key columns shown)."""
        return self.driver.execute_script(_SNAPSHOT)

    def screenshot(self, path: str | Path, max_height: int = 4000) -> Path:
        """Save the whole page (up to ``max_height`` pixels tall) as a PNG at ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        width, height = self.driver.get_window_size()["width"], self.driver.get_window_size()["height"]
        full = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
        self.driver.set_window_size(width, min(max(full, height), max_height))
        self.driver.save_screenshot(str(path))
        self.driver.set_window_size(width, height)
        return path


_SNAPSHOT = """
const position = document.getElementById('position');
const cells = Array.from(document.querySelectorAll('td.cell')).map((td) => ({
  block: td.dataset.block, token: Number(td.dataset.token), text: td.textContent,
  value: JSON.parse(td.dataset.value), before: JSON.parse(td.dataset.before), classes: td.className.split(' '),
}));
const checkpoints = Array.from(document.querySelectorAll('table.checkpoint')).flatMap((table) =>
  Array.from(table.querySelectorAll('tr.checkpoint-row')).map((row) => ({
    label: table.dataset.label, hook: table.dataset.hook, token: Number(row.dataset.token),
    columns: JSON.parse(table.dataset.columns),
    actual: JSON.parse(row.dataset.actual), expected: JSON.parse(row.dataset.expected),
    actual_text: row.cells[1].textContent, expected_text: row.cells[2].textContent,
  })));
return {
  hook: position.dataset.hook, step: position.dataset.step, first: Number(position.dataset.first),
  last: Number(position.dataset.last), text: position.textContent, cells, checkpoints,
};
"""
