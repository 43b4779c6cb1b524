"""Lock the pins of the managed hosts' venv: their full dependency closure, with hashes.

    litellm-runner lock [--project DIR] [PINS]    # PINS: default files/litellm-venv-requirements.txt
    make lock                                     # in the runner's clone: the same code (scripts/lock-venv)

For every Python version in PYTHONS it runs uv (``uv==0.13.9``, the Makefile's pin; it resolves for a
target Python and platform without that interpreter)::

    uv pip compile --generate-hashes --only-binary :all: --python-version X
        --python-platform x86_64-manylinux_2_28 --no-header PINS

and writes ``<pins dir>/locks/<pins stem>.pyX.txt`` (litellm_runner.gates.cve.lock_path) with a header
naming the pins file, its sha256 and the Python version. A project's own ``litellm_venv_requirements``
is locked the same way, in the project (``--project DIR``, default: this folder). The deploy installs
the lock of the host's Python with ``pip install --require-hashes --no-deps``; the CVE gate refuses pins
without a current lock. Wheels only: an sdist would need build tools that --require-hashes cannot pin.

Exit codes (litellm_runner.exitcodes): 0 locked, 1 could not lock (no uv, unresolvable pins), 64 usage.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

from litellm_runner import exitcodes
from litellm_runner.gates.cve import PYTHONS, lock_path

PLATFORM = "x86_64-manylinux_2_28"  # Debian 12 and 13 on x86_64 (glibc 2.36, 2.41)
TIMEOUT = 600  # seconds for one resolution
UV = "uv==0.13.9"  # the Makefile's pin


class LockError(RuntimeError):
    pass


def uv() -> str:
    """The uv beside this Python (the clone's .venv, a project's venv), else on PATH."""
    here = pathlib.Path(sys.executable).parent / "uv"
    found = str(here) if here.exists() else shutil.which("uv")
    if not found:
        raise LockError(f"uv not found: expected it beside {sys.executable} or on PATH (pip install {UV})")
    return found


def header(pins: pathlib.Path, python: str, root: pathlib.Path) -> str:
    rel = pins.resolve().relative_to(root) if pins.resolve().is_relative_to(root) else pins
    digest = hashlib.sha256(pins.read_bytes()).hexdigest()
    return (
        f"# Lock of the managed host's venv for Python {python} on {PLATFORM}: the full dependency\n"
        f"# closure of {rel}, with hashes. Do not edit: run `litellm-runner lock` (`make lock`).\n"
        f"# pins: {rel}\n# pins-sha256: {digest}\n# python: {python}\n"
    )


def lock(pins: pathlib.Path, python: str, root: pathlib.Path) -> pathlib.Path:
    """Resolve PINS for PYTHON and write its lock file; returns the path."""
    out = lock_path(pins, python)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [uv(), "pip", "compile", "--quiet", "--generate-hashes", "--only-binary", ":all:"]
    command += ["--python-version", python, "--python-platform", PLATFORM, "--no-header", str(pins)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        raise LockError(f"uv did not resolve {pins} for Python {python} within {TIMEOUT}s") from None
    if proc.returncode != 0:
        raise LockError(f"uv could not resolve {pins} for Python {python}:\n{proc.stderr}")
    out.write_text(header(pins, python, root) + proc.stdout)
    return out


def main(argv: list[str] | None = None, prog: str = "python -m litellm_runner.cli.lock") -> int:
    """Lock PINS for every host Python; exit codes of litellm_runner.exitcodes."""
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument(
        "--project", type=pathlib.Path, metavar="DIR", help="the project holding the pins (default: this folder)"
    )
    parser.add_argument(
        "pins", nargs="?", metavar="PINS", help="the pins file (default files/litellm-venv-requirements.txt)"
    )
    args = parser.parse_args(argv)
    root = (args.project or pathlib.Path(os.getcwd())).resolve()
    pins = root / (args.pins or "files/litellm-venv-requirements.txt")
    if not pins.is_file():
        print(
            f"{prog}: {pins}: no pins file: expected the file litellm_venv_requirements names, in the project "
            "(--project DIR; the shipped pins are locked already)",
            file=sys.stderr,
        )
        return exitcodes.FAILED
    try:
        for python in PYTHONS:
            print(f"locked {lock(pins, python, root)}", flush=True)
    except LockError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
