"""Debian's Chromium driven by Selenium, for the console's browser tests.

The test command must work on a clean machine, so ``ensure_chromium``
installs Debian's ``chromium`` and ``chromium-driver`` when they are missing
(``tests.debian_packages``) and fails, never skips, when it cannot.  Selenium is given the driver's
and the browser's paths so that its own manager never downloads anything.
"""

from __future__ import annotations

import os
import time

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")

# The machine's network may be closed: without these Chromium waits on
# connections of its own (updates, sync, field trials) and pages hang.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync")


class BrowserUnavailable(Exception):
    """Chromium and its driver are missing and could not be installed."""


def _installed() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def ensure_chromium() -> None:
    """Make sure ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` exist,
    installing Debian's packages if not; raise BrowserUnavailable, with what
    went wrong, if that is impossible."""
    from tests.debian_packages import PackagesUnavailable, ensure

    try:
        ensure(PACKAGES, _installed, f"{CHROMIUM} and {CHROMEDRIVER} are")
    except PackagesUnavailable as exc:
        raise BrowserUnavailable(str(exc)) from None


def start_browser(user_data_dir: str, width: int = 1440, height: int = 900):
    """A headless Chromium (a laptop-sized window) with a fresh profile in ``user_data_dir``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``condition()`` until it returns something true; that value, or an AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = condition()
            if value:
                return value
        except Exception as exc:  # an element not there yet, a stale one
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f" (last error: {last_error!r})"
                                                                    if last_error else ""))
        time.sleep(interval)
