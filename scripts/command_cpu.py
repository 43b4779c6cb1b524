"""The host CPU of each remote command a no-op check sends, measured inside a running sandbox.

    .venv/bin/python scripts/command_cpu.py --sandbox NAME capture DIR                # the check's commands
    .venv/bin/python scripts/command_cpu.py --sandbox NAME measure DIR/cmd-0.sh OTHER.sh ... [--rounds 7] [--ssh]

``capture`` runs the drift check's dry run against the sandbox NAME (``pyinfra inventory.py deploy.py --dry
-vvv``) and writes each command it sent, exactly as sent, to ``DIR/cmd-N.sh``. ``measure`` copies each file
into the sandbox and runs it ``--runs`` times (default 10) in one ``podman exec``, between two reads of the
container's CPU (its cgroup, as ``scripts/benchmark.py`` reads it), less the container's idle rate over the
block's wall time (measured for 5 s first); the files take turns, ``--rounds`` times, and each file's figure
is the median of its rounds, in ms per run. Add a file holding ``true`` to see what the harness itself costs.
With ``--ssh`` each run is an SSH session of its own carrying the file's text as its command (sshd, PAM, logind
and root's login shell count too; a ``true`` file is then the SSH session's own cost).
With ``--ssh`` the client offers only ``curve25519-sha256``, the key exchange pyinfra's paramiko makes.
Compare two versions of a command by capturing each from its own checkout against the same host.

    .venv/bin/python scripts/command_cpu.py --sandbox NAME tree FILE [--rounds 3] [--runs 30]

``tree`` runs FILE ``--runs`` times inside the sandbox and counts only what it costs: its own process tree
(``RUSAGE_CHILDREN``: the shell, root's interpreter and the children it waits for), the account's manager and
PID 1 (``/proc/PID/schedstat``), and the PostgreSQL backends the postmaster reaped (its ``cutime``). The
proxy's and the other services' background work is left out, so two versions of the check's command (each
captured by its own checkout, each sandbox converged by it) can be compared to a few ms.

    .venv/bin/python scripts/command_cpu.py --sandbox NAME checks [--other SANDBOX:CHECKOUT] [--rounds 5] [--batch 6]

``checks`` runs whole no-op checks of NAME from this checkout (with ``--other``, in turns with checks of SANDBOX
from CHECKOUT, each sandbox converged by its own checkout) and counts only the processes a check makes work:
sshd's sessions with everything they start, PostgreSQL's backends, PID 1 and the account's manager, dbus-daemon,
logind. Each one's CPU comes from ``/proc/PID/stat`` (the kernel keeps it in ns and shows it in 10 ms ticks,
read before and after a batch of BATCH checks); the proxy's, redis's and node's own background work is left
out, where the benchmark's figure subtracts an idle rate measured beforehand, about 15 ms per second of a check
on a sandbox: that is why this figure is steadier, and higher (autovacuum's workers, reaped by PostgreSQL, count).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from benchmark import containers_cpu, idle_rate  # noqa: E402

from tests.support.hosts import ssh_argv  # noqa: E402


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


def measure(sandbox: str, files: list[pathlib.Path], rounds: int, runs: int, ssh: bool) -> dict[str, list[float]]:
    """Each FILE's host CPU per run (ms, less the container's idle rate), one figure per round. With SSH each run
    is its own SSH session carrying the file's text as its command, as pyinfra sends it (sshd, PAM, logind and
    root's login shell included), not ``sh FILE`` inside one ``podman exec``."""
    for path in files:
        subprocess.run(["podman", "cp", str(path), f"{sandbox}:/root/{path.name}"], check=True, timeout=60)
    idle = idle_rate([sandbox], 5.0) or 0.0
    # the key exchange pyinfra's paramiko makes (OpenSSH's client picks sntrup761x25519, about 10 ms more of sshd)
    argv = [*ssh_argv(sandbox), "-o", "KexAlgorithms=curve25519-sha256", "root@127.0.0.1"] if ssh else []
    found: dict[str, list[float]] = {path.name: [] for path in files}
    for _ in range(rounds):
        for path in files:
            loop = f"for i in $(seq {runs}); do sh /root/{path.name} >/dev/null 2>&1; done"
            before, start = containers_cpu([sandbox]), time.monotonic()
            if ssh:
                for _ in range(runs):
                    subprocess.run([*argv, path.read_text()], stdout=subprocess.DEVNULL, check=True, timeout=120)
            else:
                subprocess.run(["podman", "exec", sandbox, "sh", "-c", loop], check=True, timeout=600)
            after, wall = containers_cpu([sandbox]), time.monotonic() - start
            if before is None or after is None:
                raise SystemExit(f"{sandbox}: its cgroup's CPU cannot be read")
            found[path.name].append((after - before - idle * wall) / runs * 1000)
    return found


# the processes a check makes work (``checks``): sshd and what its sessions start, PostgreSQL (its backends are
# reaped by the postmaster), PID 1 and the account's manager (both ``systemd``), the system bus, logind
WORKED = ("sshd", "postgres", "systemd", "dbus-daemon", "systemd-logind")
PROC_TIMES = r"""for d in /proc/[0-9]*; do s=$(cat $d/stat 2>/dev/null) || continue; c=${s#*(}; c=${c%%)*}
set -- ${s##*) }; echo "${d#/proc/} $c $((${12} + ${13} + ${14} + ${15}))"; done"""


def worked_ticks(sandbox: str) -> dict[tuple[str, str], int]:
    """``{(pid, name): ticks}`` of the WORKED processes in SANDBOX: their own CPU and their reaped children's."""
    out = subprocess.run(
        ["podman", "exec", sandbox, "bash", "-c", PROC_TIMES], capture_output=True, text=True, timeout=60
    )
    found = {}
    for line in out.stdout.splitlines():
        pid, rest = line.split(" ", 1)
        name, ticks = rest.rsplit(" ", 1)
        if name in WORKED:
            found[(pid, name)] = int(ticks)
    return found


# ``tree``: run inside the sandbox, as root (argv: the command file, the runs); prints one JSON object
TREE = r"""import json, os, resource, subprocess, sys
def sched(pid):
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6
def reaped(pid):  # the CPU of the children PID waited for (cutime + cstime), in ms
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) * 1000 / os.sysconf("SC_CLK_TCK")
def postmaster():
    with open(next(p for p in __import__("glob").glob("/var/run/postgresql/*.pid"))) as f:
        return int(f.readline())
manager = int(subprocess.run(["pgrep", "-u", sys.argv[3], "-x", "systemd"], capture_output=True,
                             text=True, check=True).stdout.split()[0])
command, runs, pm = open(sys.argv[1]).read(), int(sys.argv[2]), postmaster()
def now():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"tree": (r.ru_utime + r.ru_stime) * 1000, "manager": sched(manager), "pid1": sched(1),
            "backends": reaped(pm)}
before = now()
for _ in range(runs):
    subprocess.run(["sh", "-c", command], stdout=subprocess.DEVNULL, check=True, timeout=120)
after = now()
print(json.dumps({k: (after[k] - before[k]) / runs for k in before}))
"""


def tree(sandbox: str, path: pathlib.Path, rounds: int, runs: int, account: str) -> list[dict]:
    """PATH's CPU per run inside SANDBOX, counted only where it goes, one dict (ms) per round: its own process tree
    (sh, root's interpreter and the children it waits for), the ACCOUNT's manager and PID 1 (their schedstat),
    and the PostgreSQL backends the postmaster reaped. The proxy's, redis's and node's background work is not
    in it, so it is steady enough to compare two versions of a command (each captured from its own checkout)."""
    subprocess.run(["podman", "cp", str(path), f"{sandbox}:/root/{path.name}"], check=True, timeout=60)
    found = []
    for _ in range(rounds):
        out = subprocess.run(
            ["podman", "exec", sandbox, "python3", "-c", TREE, f"/root/{path.name}", str(runs), account],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        )
        found.append(json.loads(out.stdout))
    return found


def hosts_file(checkout: pathlib.Path, sandbox: str, path: pathlib.Path) -> pathlib.Path:
    """The benchmark's one-host inventory of SANDBOX as CHECKOUT writes it (its own sandbox folder and data)."""
    code = (
        "import pathlib, sys; sys.path[:0] = ['scripts', '.']; import benchmark; from tests.support import fleet; "
        f"fleet.inventory(pathlib.Path({str(path)!r}), [{sandbox!r}], benchmark.SEED_DATA)"
    )
    subprocess.run([str(checkout / ".venv/bin/python"), "-c", code], cwd=checkout, check=True, timeout=120)
    return path


def checks(targets: list[tuple[str, pathlib.Path]], rounds: int, batch: int, tmp: pathlib.Path) -> dict[str, list]:
    """Per target (sandbox, checkout), the WORKED processes' CPU per no-op check (ms), one figure per round."""
    files = {name: hosts_file(checkout, name, tmp / f"{name}.yml") for name, checkout in targets}
    found: dict[str, list[float]] = {name: [] for name, _ in targets}
    for _ in range(rounds):
        for name, checkout in targets:
            env = {**os.environ, "LITELLM_INVENTORY": str(files[name]), "PYINFRA_PROGRESS": "off"}
            before = worked_ticks(name)
            for _ in range(batch):
                argv = [str(checkout / ".venv/bin/python"), "-m", "litellm_runner.cli.check"]
                proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
                if proc.returncode != 0:
                    raise SystemExit(f"{name}: the check exited {proc.returncode}, not a no-op check")
            after = worked_ticks(name)
            ticks = sum(t - before.get(key, 0) for key, t in after.items() if key in before or key[1] != "postgres")
            found[name].append(ticks * 10 / batch)
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
    m.add_argument("--ssh", action="store_true", help="each run through its own SSH session, as pyinfra sends it")
    t = sub.add_parser("tree", help="one command file's CPU where it goes: its tree, the managers, the backends")
    t.add_argument("file", type=pathlib.Path)
    t.add_argument("--rounds", type=int, default=3)
    t.add_argument("--runs", type=int, default=30)
    t.add_argument("--account", default="litellm", help="the service account (default litellm)")
    c = sub.add_parser("checks", help="the CPU of the processes whole no-op checks make work")
    c.add_argument("--other", metavar="SANDBOX:CHECKOUT", help="in turns with SANDBOX checked from CHECKOUT")
    c.add_argument("--rounds", type=int, default=5)
    c.add_argument("--batch", type=int, default=6, help="checks per round and target (default 6)")
    args = parser.parse_args(argv)
    if args.action == "checks":
        targets = [(args.sandbox, REPO)]
        if args.other:
            name, _, checkout = args.other.partition(":")
            targets.append((name, pathlib.Path(checkout).resolve()))
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as tmp:
            for name, figures in checks(targets, args.rounds, args.batch, pathlib.Path(tmp)).items():
                shown = " ".join(f"{f:.1f}" for f in figures)
                print(f"{name}: median {statistics.median(figures):.1f} ms per check (rounds: {shown})")
        print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
        return 0
    if args.action == "tree":
        for row in tree(args.sandbox, args.file, args.rounds, args.runs, args.account):
            parts = "  ".join(f"{key} {value:.1f}" for key, value in row.items())
            print(f"{args.file.name}: {parts}  sum {sum(row.values()):.1f} ms per run")
        return 0
    if args.action == "capture":
        for path in capture(args.sandbox, args.dir):
            print(f"{path}: {path.stat().st_size} bytes")
        return 0
    load = os.getloadavg()[0]
    for name, figures in measure(args.sandbox, args.files, args.rounds, args.runs, args.ssh).items():
        shown = " ".join(f"{f:.1f}" for f in figures)
        print(f"{name}: median {statistics.median(figures):.1f} ms per run (rounds: {shown})")
    print(f"load average {load:.1f} before, {os.getloadavg()[0]:.1f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
