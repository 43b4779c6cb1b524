"""The host CPU of each remote command a no-op check sends, measured inside a running sandbox.

    .venv/bin/python scripts/command_cpu.py --sandbox NAME capture DIR                # the check's commands
    .venv/bin/python scripts/command_cpu.py --sandbox NAME measure DIR/cmd-0.sh OTHER.sh ... [--rounds 7]

``capture`` runs the drift check's dry run against the sandbox NAME (``pyinfra inventory.py deploy.py --dry
-vvv``) and writes each command it sent, exactly as sent, to ``DIR/cmd-N.sh``. ``measure`` copies each file
into the sandbox and runs it ``--runs`` times (default 10) in one ``podman exec``, between two reads of the
container's CPU (its cgroup, as ``scripts/benchmark.py`` reads it), less the container's idle rate over the
block's wall time (measured for 5 s first); the files take turns, ``--rounds`` times, and each file's figure
is the median of its rounds, in ms per run. Add a file holding ``true`` to see what the harness itself costs.
Compare two versions of a command by capturing each from its own checkout against the same host.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from benchmark import containers_cpu, idle_rate  # noqa: E402


def capture(sandbox: str, folder: pathlib.Path) -> list[pathlib.Path]:
    """The commands the drift check's dry run sends to SANDBOX, one file each in FOLDER."""
    env = {**os.environ, "LITELLM_SANDBOXES": sandbox, "PYINFRA_PROGRESS": "off"}
    env.pop("LITELLM_INVENTORY", None)
    proc = subprocess.run(
        [str(REPO / ".venv/bin/pyinfra"), "inventory.py", "deploy.py", "--dry", "-vvv"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    start = re.compile(rf"^\[{re.escape(sandbox)}\] >>> (.*)$")
    other = re.compile(rf"^(\s*\[{re.escape(sandbox)}\]|-->)")  # pyinfra's next line of its own
    commands: list[list[str]] = []
    current: list[str] | None = None
    for line in (proc.stdout + proc.stderr).splitlines():
        found = start.match(line)
        if found:
            current = [found.group(1)]
            commands.append(current)
        elif current is not None and other.match(line):
            current = None
        elif current is not None:
            current.append(line)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for number, lines in enumerate(commands):
        path = folder / f"cmd-{number}.sh"
        path.write_text("\n".join(lines).rstrip("\n") + "\n")
        files.append(path)
    return files


def measure(sandbox: str, files: list[pathlib.Path], rounds: int, runs: int) -> dict[str, list[float]]:
    """Each FILE's host CPU per run (ms, less the container's idle rate), one figure per round."""
    for path in files:
        subprocess.run(["podman", "cp", str(path), f"{sandbox}:/root/{path.name}"], check=True, timeout=60)
    idle = idle_rate([sandbox], 5.0) or 0.0
    found: dict[str, list[float]] = {path.name: [] for path in files}
    for _ in range(rounds):
        for path in files:
            loop = f"for i in $(seq {runs}); do sh /root/{path.name} >/dev/null 2>&1; done"
            before, start = containers_cpu([sandbox]), time.monotonic()
            subprocess.run(["podman", "exec", sandbox, "sh", "-c", loop], check=True, timeout=600)
            after, wall = containers_cpu([sandbox]), time.monotonic() - start
            if before is None or after is None:
                raise SystemExit(f"{sandbox}: its cgroup's CPU cannot be read")
            found[path.name].append((after - before - idle * wall) / runs * 1000)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sandbox", required=True, help="a running, converged sandbox (make sandbox-up)")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("capture", help="write the check's commands into DIR").add_argument("dir", type=pathlib.Path)
    m = sub.add_parser("measure", help="the host CPU of each command file, alternating")
    m.add_argument("files", nargs="+", type=pathlib.Path)
    m.add_argument("--rounds", type=int, default=7)
    m.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    if args.action == "capture":
        for path in capture(args.sandbox, args.dir):
            print(f"{path}: {path.stat().st_size} bytes")
        return 0
    load = os.getloadavg()[0]
    for name, figures in measure(args.sandbox, args.files, args.rounds, args.runs).items():
        shown = " ".join(f"{f:.1f}" for f in figures)
        print(f"{name}: median {statistics.median(figures):.1f} ms per run (rounds: {shown})")
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
