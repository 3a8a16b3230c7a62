"""Debian's Chromium driven by Selenium, for the console's browser tests.

The test command must work on a clean machine, so ``ensure_chromium``
installs Debian's ``chromium`` and ``chromium-driver`` when they are missing
(as root, under a file lock so that two pytest-xdist workers never run apt at
once) and fails, never skips, when it cannot.  Selenium is given the driver's
and the browser's paths so that its own manager never downloads anything.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PACKAGES = ("chromium", "chromium-driver")
LOCK = os.path.join(tempfile.gettempdir(), "shoal-chromium-install.lock")

# The machine's network may be closed: without these Chromium waits on
# connections of its own (updates, sync, field trials) and pages hang.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync")


class BrowserUnavailable(Exception):
    """Chromium and its driver are missing and could not be installed."""


def _installed() -> bool:
    return os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Another apt (not ours) may hold dpkg's lock: wait for it rather than fail.
    return subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", *args], env=env, capture_output=True,
                          text=True, timeout=1200)


def ensure_chromium() -> None:
    """Make sure ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` exist,
    installing Debian's packages if not; raise BrowserUnavailable, with what
    went wrong, if that is impossible."""
    if _installed():
        return
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other worker installs; we wait and find it done
        if _installed():
            return
        if os.geteuid() != 0:
            raise BrowserUnavailable(
                f"{CHROMIUM} and {CHROMEDRIVER} are missing and installing them needs root: "
                f"run `apt-get install -y --no-install-recommends {' '.join(PACKAGES)}` as root")
        if shutil.which("apt-get") is None:
            raise BrowserUnavailable(f"{CHROMIUM} and {CHROMEDRIVER} are missing and there is no apt-get to "
                                     f"install Debian's {' and '.join(PACKAGES)}")
        install = ("install", "-y", "--no-install-recommends", *PACKAGES)
        done = _apt(*install)
        if done.returncode != 0:  # the package lists may be missing or stale
            updated = _apt("update")
            done = _apt(*install)
            if done.returncode != 0:
                raise BrowserUnavailable(
                    f"apt-get could not install {' '.join(PACKAGES)} (exit {done.returncode}):\n"
                    f"{updated.stderr[-1500:]}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
        if not _installed():
            raise BrowserUnavailable(f"apt-get installed {' '.join(PACKAGES)} but {CHROMIUM} or {CHROMEDRIVER} "
                                     "is still missing")


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
