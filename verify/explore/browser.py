"""Drive an explorer page in a real headless browser (Debian's ``chromium`` and ``chromium-driver`` through
selenium): load it, move the slider, read what it renders, take a screenshot.

:func:`find_browser` says why no browser can be used (selenium missing, no chromium or chromedriver on the PATH);
callers skip with that reason, never pass silently.
"""

from __future__ import annotations

import json
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
        """Press ``key`` (``"ArrowRight"``, ``"ArrowLeft"``, ``"w"``) on the page ``times`` times."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.keys import Keys

        named = {"ArrowRight": Keys.ARROW_RIGHT, "ArrowLeft": Keys.ARROW_LEFT}.get(key, key)
        self.driver.find_element("tag name", "body").click()
        for _ in range(times):
            ActionChains(self.driver).send_keys(named).perform()

    def go_to(self, hook: str, limit: int = 10_000) -> None:
        """Press the right arrow until the page shows sublayer ``hook`` (from the start)."""
        self.press("Home") if False else None
        for _ in range(limit):
            if self.position()["hook"] == hook:
                return
            before = self.position()
            self.press("ArrowRight")
            if self.position() == before:
                break
        raise LookupError(f"the page never showed sublayer {hook!r}")

    def position(self) -> dict[str, str]:
        """What the position line says: the hook (sublayer view), step, first and last sublayer, and its text."""
        node = self.driver.find_element("id", "position")
        return {key: node.get_attribute(f"data-{key}") or "" for key in ("hook", "step", "first", "last")} | {
            "text": node.text
        }

    def cells(self, block: str) -> dict[int, dict[str, Any]]:
        """The stream cells of ``block``: token -> the text shown and the values it carries (before and after)."""
        found = {}
        for cell in self.driver.find_elements("css selector", f"td.cell[data-block='{block}']"):
            found[int(cell.get_attribute("data-token"))] = {
                "text": cell.text,
                "value": json.loads(cell.get_attribute("data-value")),
                "before": json.loads(cell.get_attribute("data-before")),
                "classes": (cell.get_attribute("class") or "").split(),
            }
        return found

    def checkpoint(self, label: str) -> list[dict[str, Any]]:
        """The rows of the reference table ``label`` shown now: token, the transformer's and the reference's values."""
        rows = []
        for table in self.driver.find_elements("css selector", "table.checkpoint"):
            if table.get_attribute("data-label") != label:
                continue
            for row in table.find_elements("css selector", "tr.checkpoint-row"):
                texts = [td.text for td in row.find_elements("tag name", "td")]
                rows.append(
                    {
                        "token": int(row.get_attribute("data-token")),
                        "actual": json.loads(row.get_attribute("data-actual")),
                        "expected": json.loads(row.get_attribute("data-expected")),
                        "actual_text": texts[0],
                        "expected_text": texts[1],
                    }
                )
        return rows

    def screenshot(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.driver.save_screenshot(str(path))
        return path
