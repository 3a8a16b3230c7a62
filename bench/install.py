"""Install what the benchmark needs, once, into bench/.cache (gitignored).

* wrk (Debian package) and Java 17 (Debian openjdk-17-jre-headless), with apt-get;
* DynamoDB Local (inside npm ``amplify-dynamodb-simulator``) and ``dynalite``, with npm,
  into bench/.cache/npm;
* moto's server and matplotlib, with pip, into a venv at bench/.cache/venv that
  also sees the system's packages (so Shoal's own dependencies are not duplicated).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from systems import CACHE_DIR, DDB_LOCAL_DIR, DYNALITE_CLI, NPM_DIR, VENV_DIR

NPM_PACKAGES = ("amplify-dynamodb-simulator", "dynalite")
PIP_PACKAGES = ("moto[server]", "matplotlib")


def _run(command: list[str], **kwargs) -> None:
    print("  $", " ".join(command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def _apt(package: str) -> None:
    _run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)
    _run(["apt-get", "install", "-y", "-q", package], stdout=subprocess.DEVNULL)


def ensure_wrk() -> None:
    if not shutil.which("wrk"):
        _apt("wrk")


def ensure_java() -> None:
    if not shutil.which("java"):
        _apt("openjdk-17-jre-headless")


def ensure_npm_packages() -> None:
    if os.path.exists(os.path.join(DDB_LOCAL_DIR, "DynamoDBLocal.jar")) and os.path.exists(DYNALITE_CLI):
        return
    os.makedirs(NPM_DIR, exist_ok=True)
    manifest = os.path.join(NPM_DIR, "package.json")
    if not os.path.exists(manifest):
        with open(manifest, "w") as handle:
            handle.write('{"name": "shoal-bench-systems", "private": true}\n')
    _run(["npm", "install", "--no-audit", "--no-fund", *NPM_PACKAGES], cwd=NPM_DIR)


def venv_python() -> str:
    return os.path.join(VENV_DIR, "bin", "python")


def ensure_venv() -> None:
    python = venv_python()
    if not os.path.exists(python):
        os.makedirs(CACHE_DIR, exist_ok=True)
        _run([sys.executable, "-m", "venv", "--system-site-packages", VENV_DIR])
    probe = subprocess.run([python, "-c", "import matplotlib, flask, flask_cors, moto.server"],
                           capture_output=True)
    if probe.returncode != 0:
        _run([python, "-m", "pip", "install", "-q", *PIP_PACKAGES])


def ensure(systems: list[str]) -> None:
    """Install whatever the named systems (and the report's plot) need."""
    ensure_wrk()
    if "dynamodb-local" in systems:
        ensure_java()
    if "dynamodb-local" in systems or "dynalite" in systems:
        ensure_npm_packages()
    ensure_venv()
