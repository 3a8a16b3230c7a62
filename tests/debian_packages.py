"""Debian packages the test command needs, installed when missing.

The README's test command must work on a clean machine of this kind, so
the tests that need Debian's Chromium or PostgreSQL install them themselves
(as root, under a file lock so that two pytest-xdist workers never run apt
at once), and fail, never skip, when they cannot: a skipped suite would
hide that a part went untested.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from typing import Callable


class PackagesUnavailable(Exception):
    """The packages are missing and could not be installed."""


def _apt(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Another apt (not ours) may hold dpkg's lock: wait for it rather than fail.
    return subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", *args], env=env, capture_output=True,
                          text=True, timeout=1200)


def ensure(packages: tuple[str, ...], installed: Callable[[], bool], what: str) -> None:
    """Make sure ``installed()`` holds, installing ``packages`` with apt-get if
    not; raise PackagesUnavailable, saying what went wrong, if that is
    impossible.  ``what`` names what is missing, for the messages."""
    if installed():
        return
    lock_path = os.path.join(tempfile.gettempdir(), f"shoal-install-{packages[0]}.lock")
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker installs; we wait and find it done
        if installed():
            return
        if os.geteuid() != 0:
            raise PackagesUnavailable(f"{what} missing and installing it needs root: run "
                                      f"`apt-get install -y --no-install-recommends {' '.join(packages)}` as root")
        if shutil.which("apt-get") is None:
            raise PackagesUnavailable(f"{what} missing and there is no apt-get to install Debian's "
                                      f"{' and '.join(packages)}")
        install = ("install", "-y", "--no-install-recommends", *packages)
        done = _apt(*install)
        if done.returncode != 0:  # the package lists may be missing or stale
            updated = _apt("update")
            done = _apt(*install)
            if done.returncode != 0:
                raise PackagesUnavailable(
                    f"apt-get could not install {' '.join(packages)} (exit {done.returncode}):\n"
                    f"{updated.stderr[-1500:]}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}")
        if not installed():
            raise PackagesUnavailable(f"apt-get installed {' '.join(packages)} but {what} still missing")
