"""A new user's first steps in a fresh virtual environment (issue 14).

The README's serve command installs Shoal alone (no test extra), so an
example that needs a package only the tests bring (boto3 once did) fails for
a new user while every other test passes.  Here: a new virtual environment
without this machine's packages, ``pip install`` of the tree (a wheel built
from it, not an editable install), ``shoal serve`` and ``shoal demo`` from that
environment, and the README's first Python example run by its interpreter.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv

import pytest

from tests.server.test_readme import README, blocks
from tests.shoal_process import _URL

ROOT = README.parent


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A virtual environment with Shoal installed from this tree, and nothing else."""
    home = tmp_path_factory.mktemp("fresh")
    venv.EnvBuilder(with_pip=True, symlinks=True).create(home / "venv")
    python = home / "venv" / "bin" / "python"
    source = home / "src"  # a copy of the tracked tree: the build must not write into the checkout
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy2(ROOT / name, target)
    # --no-compile: pip would byte-compile every module of every dependency (botocore's are most
    # of the install's time); the commands below compile what they import, as Python does.
    done = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-compile", "--disable-pip-version-check",
                           str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return python, home


def test_serve_demo_and_the_first_example_work_in_a_fresh_environment(fresh):
    python, home = fresh
    bin_dir = python.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AWS_"))}
    env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
    server = subprocess.Popen([str(bin_dir / "shoal"), "serve", "--port", "0", "--data-dir", str(home / "data")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=home)
    try:
        url = None
        for line in server.stdout:
            match = _URL.search(line)
            if match:
                url = match.group(1)
                break
        assert url, server.stderr.read()
        demo = subprocess.run([str(bin_dir / "shoal"), "demo", "--endpoint-url", url, "--events", "500",
                               "--snippets", "none"], capture_output=True, text=True, env=env, cwd=home, timeout=300)
        assert demo.returncode == 0, demo.stderr[-3000:]
        assert re.search(r"Loaded 500 events", demo.stdout), demo.stdout
        first = next(code for lang, code, marker, _ in blocks() if lang == "python" and marker is None)
        for endpoint in ("http://127.0.0.1:8000", "http://localhost:8000"):
            first = first.replace(endpoint, url)
        example = subprocess.run([str(python), "-c", first], capture_output=True, text=True, env=env, cwd=home,
                                 timeout=120)
        assert example.returncode == 0, example.stderr[-3000:]
        assert re.search(r"\d+ events", example.stdout), example.stdout
        # the installed package is the one this environment runs, not the checkout
        where = subprocess.run([str(python), "-c", "import shoal; print(shoal.__file__)"], capture_output=True,
                               text=True, env=env, cwd=home)
        assert str(home / "venv") in where.stdout
    finally:
        server.terminate()
        server.wait(30)
    assert sys.executable != str(python)
