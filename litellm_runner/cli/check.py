"""Drift check with detailed exit codes: has any host drifted from group_data?

    litellm-runner check [--json REPORT.json] [--junit REPORT.xml] [--quiet] [--parallel N] [pyinfra args...]
    python -m litellm_runner.cli.check ...                               # the same

Runs this project's deploy in pyinfra's change detection (``--dry``) against
the inventory and prints, per host, each drifted item and what differs.
Exit codes (litellm_runner.exitcodes; like ``terraform plan -detailed-exitcode``):

    0  every host matches its desired state
    2  at least one host has drifted (and every host was reached and checked)
    1  the check itself could not run (bad input, failed fact), a host could not be reached
       (named, one line each; every host that was reached is still checked and reported), or an
       item of a host could not be checked (its database unreachable: named with ``!``; that
       host's other items are still checked and reported)
    64 usage error

On a terminal (stdout a tty, no ``--quiet``) each host's result is printed the moment its check
finishes, with a status line while hosts are still being checked; the full report follows. SSH
connections are at most ``--parallel`` (default 10) in flight, and retried as
litellm_runner.inventory.CONNECT_DEFAULTS says.

``-y``/``--yes`` and ``PYINFRA_YES`` are refused/removed: with them pyinfra
skips change detection and would report no drift at all.

The JSON report (schema ``litellm-runner/drift-report`` version 1)::

    {"schema": "litellm-runner/drift-report", "version": 1,
     "generated_at": "2026-11-23T06:00:00Z", "status": "ok"|"drift"|"error",
     "hosts": {"<host>": {"status": "ok"|"drift"|"error"|"unreachable",
                          "reason": "<why it could not be reached>",        (unreachable hosts only)
                          "items": [{"id": "<operation name with control id>",
                                     "kind": "directory|file|secret-file|package|unit|linger|database|error|...",
                                     "status": "drift"|"follows"|"error", "before": ..., "after": ...,
                                     "diff": [...]}]}},
     "totals": {"hosts": N, "drifted_hosts": N, "unreachable_hosts": N, "items": N}}

Secret-bearing items carry ``sha256:xxxxxxxx`` fingerprints, never values. Every string of the
report (host names, reasons, item values, diff lines) is ``litellm_runner.shown.safe``: control
characters escaped, in the terminal, the JSON and the JUnit alike; the dry run already redacted
the host's known secret values in its drift records, and its log is escaped line by line.

The check reads one channel: the dry run's records (``litellm_runner.cli.dryrun``), one JSON object a
line on its standard output, as each host is reached and checked. pyinfra's log is shown only when the check could
not run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import IO, TextIO
from xml.sax.saxutils import escape

from litellm_runner import exitcodes, shown, validate
from litellm_runner.cli.validate import validate_project
from litellm_runner.resources import project

SCHEMA = "litellm-runner/drift-report"
PARALLEL = 10  # SSH connections in flight: sshd's default MaxStartups starts dropping beyond 10 unauthenticated
DRY_COMMAND = ("-m", "litellm_runner.cli.dryrun", "inventory.py", "deploy.py", "--dry", "--json")
INTERRUPT_GRACE = 15  # seconds the dry run has to end itself after a Ctrl-C (its gate stops pip-audit, removes files)


@dataclass
class Dry:
    """What the dry run left: pyinfra's exit code and log, and the records of its one channel (cli.dryrun)."""

    returncode: int = -1
    log: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)
    connected: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    checked: dict[str, dict] = field(default_factory=dict)  # host -> its last ``checked`` record
    end: dict | None = None


def run_dry(extra: list[str], timeout: float, on_event=lambda event: None, command=DRY_COMMAND) -> Dry:
    """``pyinfra inventory.py deploy.py --dry --json EXTRA`` (cli.dryrun, or COMMAND's arguments to this
    interpreter), each record to ON_EVENT as it comes.

    The records come on its standard output; pyinfra's log (stderr) is kept aside. Raises
    subprocess.TimeoutExpired when it has not finished within TIMEOUT seconds (it is killed). On Ctrl-C (the
    terminal sends it to the dry run too: one process group) it gets ``INTERRUPT_GRACE`` seconds to end itself,
    as its gate stops its own pip-audit and removes its files, before it is killed; a second Ctrl-C kills it.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYINFRA_YES"}
    env["PYINFRA_PROGRESS"] = "off"
    command = [sys.executable, *command]
    expired = threading.Event()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(
            [*command, *extra], cwd=project(), env=env, stdout=subprocess.PIPE, stderr=log, text=True
        )

        def expire() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(timeout, expire)
        timer.start()
        try:
            dry = read_records(proc.stdout, on_event)
            proc.wait()
        except KeyboardInterrupt:
            try:
                proc.wait(INTERRUPT_GRACE)
            except (subprocess.TimeoutExpired, KeyboardInterrupt):
                pass
            raise
        finally:
            timer.cancel()
            if proc.poll() is None:  # interrupted while reading: never leave pyinfra running
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
        if expired.is_set():
            raise subprocess.TimeoutExpired(command, timeout)
        log.seek(0)
        dry.returncode, dry.log = proc.returncode, log.read().splitlines(keepends=True)
    return dry


def read_records(stream: IO[str] | None, on_event=lambda event: None) -> Dry:
    """The dry run's records (litellm_runner.cli.dryrun), line by line, each to ON_EVENT as it comes."""
    dry = Dry()
    for line in stream or ():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # not a record (the channel is the dry run's own: never expected)
        kind = event.get("event") if isinstance(event, dict) else None
        if kind == "hosts":
            dry.hosts = event["names"]
        elif kind == "connected":
            dry.connected.append(event["host"])
        elif kind == "unreachable":
            dry.unreachable[event["host"]] = event["reason"]
        elif kind == "checked":
            dry.checked[event["host"]] = event
        elif kind == "end":
            dry.end = event
        else:
            continue
        on_event(event)
    return dry


def build_report(checked: dict[str, dict], hosts: list[str], unreachable: dict[str, str] | None = None) -> dict:
    """The report of HOSTS from CHECKED (each host's last ``checked`` record) and UNREACHABLE (name -> why).

    A host neither checked nor unreachable is an error: it was not checked."""
    unreachable = unreachable or {}
    report_hosts: dict[str, dict] = {}
    for name in hosts:
        if name in unreachable:
            report_hosts[name] = {"status": "unreachable", "reason": unreachable[name], "items": []}
        elif name in checked:
            report_hosts[name] = _host_result(host_plan(checked[name]), checked[name].get("records", []), name)
        else:
            report_hosts[name] = {"status": "error", "items": []}
    drifted = [h for h, r in report_hosts.items() if r["status"] in ("drift", "error")]
    errors = [h for h, r in report_hosts.items() if r["status"] in ("error", "unreachable")]
    return shown.safe(
        {
            "schema": SCHEMA,
            "version": 1,
            "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": "error" if errors else ("drift" if drifted else "ok"),
            "hosts": report_hosts,
            "totals": {
                "hosts": len(report_hosts),
                "drifted_hosts": len(drifted),
                "unreachable_hosts": len(unreachable),
                "items": sum(1 for r in report_hosts.values() for i in r["items"] if i["status"] == "drift"),
            },
        }
    )


def _host_result(plan: list, records: list[dict], name: str) -> dict:
    """One reached host's status and items: each operation that would change it, with its drift records."""
    items = []
    recorded: dict[str, list[dict]] = {}
    for item in records:
        recorded.setdefault(item["id"], []).append(item)
    for op in plan:
        if name in op["hosts_with_change"] or name in op["hosts_with_conditional_change"]:
            found = recorded.get(op["name"]) or [{"id": op["name"], "kind": "operation", "before": None, "after": None}]
            for item in found:
                follows = item["kind"] == "restart" or name not in op["hosts_with_change"]
                status = "error" if item["kind"] == "error" else "follows" if follows else "drift"
                items.append({**item, "status": status})
    statuses = {i["status"] for i in items}
    return {"status": "error" if "error" in statuses else "drift" if "drift" in statuses else "ok", "items": items}


def _op(name: str, changes: list[str], conditional: list[str]) -> dict:
    return {"name": name, "hosts_with_change": changes, "hosts_with_conditional_change": conditional}


def host_plan(checked: dict) -> list[dict]:
    """A ``checked`` record (litellm_runner.cli.dryrun) as a plan of that one host, in its order, as pyinfra's
    ``--json`` plan has it: every operation with the host in ``hosts_with_change``,
    ``hosts_with_conditional_change`` or neither (in sync)."""
    name = checked["host"]
    return (
        [_op(n, [name], []) for n in checked["changes"]]
        + [_op(n, [], [name]) for n in checked["conditional"]]
        + [_op(n, [], []) for n in checked.get("in_sync", [])]
    )


def plan_of(checked: dict[str, dict]) -> list[dict]:
    """Every host's ``checked`` record as one plan of the run, as pyinfra's ``--json`` plan has it."""
    ops: dict[str, dict] = {}
    for _name, record in sorted(checked.items()):
        for op in host_plan(record):
            entry = ops.setdefault(op["name"], _op(op["name"], [], []))
            entry["hosts_with_change"] += op["hosts_with_change"]
            entry["hosts_with_conditional_change"] += op["hosts_with_conditional_change"]
    return list(ops.values())


def _fmt(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return "absent" if value is None else str(value)


def headline(name: str, result: dict) -> str:
    """A host's result in one line: ``NAME: STATUS`` with its drifted item count, or why it was not reached."""
    if result["status"] == "unreachable":
        return f"{name}: unreachable: {result['reason']}"
    drifted = [i for i in result["items"] if i["status"] == "drift"]
    return f"{name}: {result['status']}" + (f" ({len(drifted)} items)" if drifted else "")


def human(report: dict) -> str:
    lines = []
    for name, result in report["hosts"].items():
        lines.append(headline(name, result))
        for item in result["items"]:
            if item["status"] == "error":
                lines.append(f"  ! {item['id']}: could not be checked: {item['before']}")
            if item["status"] != "drift":
                continue
            lines.append(f"  ~ {item['id']}")
            if item.get("before") is not None or item.get("after") is not None:
                lines.append(f"      {_fmt(item.get('before'))} -> {_fmt(item.get('after'))}")
            for line in item.get("diff", [])[:200]:
                lines.append(f"      {line}")
        follows = [i["id"] for i in result["items"] if i["status"] == "follows"]
        if follows:
            lines.append(f"  then: {'; '.join(follows)}")
    t = report["totals"]
    unreachable = f", {t['unreachable_hosts']} unreachable" if t.get("unreachable_hosts") else ""
    lines.append(f"{t['drifted_hosts']} of {t['hosts']} hosts drifted, {t['items']} items{unreachable}")
    return "\n".join(lines)


def junit(report: dict) -> str:
    cases = []
    for name, result in report["hosts"].items():
        if result["status"] == "unreachable":
            message = escape(f"unreachable: {result['reason']}", {'"': "&quot;"})
            cases.append(f'<testcase classname="{escape(name)}" name="check"><error message="{message}"/></testcase>')
        elif result["status"] == "error" and not result["items"]:
            cases.append(
                f'<testcase classname="{escape(name)}" name="check"><error message="check failed"/></testcase>'
            )
        for item in result["items"]:
            if item["status"] == "error":
                cases.append(
                    f'<testcase classname="{escape(name)}" name="{escape(item["id"])}">'
                    f'<error message="{escape(str(item["before"]), {chr(34): "&quot;"})}"/></testcase>'
                )
            if item["status"] == "drift":
                msg = escape(f"{_fmt(item.get('before'))} -> {_fmt(item.get('after'))}", {'"': "&quot;"})
                cases.append(
                    f'<testcase classname="{escape(name)}" name="{escape(item["id"])}">'
                    f'<failure message="{msg}"/></testcase>'
                )
        if result["status"] == "ok":
            cases.append(f'<testcase classname="{escape(name)}" name="no drift"/>')
    failures = sum(1 for r in report["hosts"].values() for i in r["items"] if i["status"] == "drift")
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="litellm-drift" tests="{len(cases)}" '
        f'failures="{failures}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )


class Progress:
    """Each host's result on a terminal the moment it is known, and a status line redrawn every second.

    Silent when OUT is not a terminal or QUIET: the report at the end is then the only output.
    """

    def __init__(self, out: TextIO, quiet: bool = False) -> None:
        self.out, self.enabled = out, out.isatty() and not quiet
        self.started, self.total, self.done = time.monotonic(), 0, 0
        self.shown: set[str] = set()
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> Progress:
        if self.enabled:
            self.ticker.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.ticker.is_alive():
            self.ticker.join()
        self._write("\r\033[K")

    def event(self, event: dict) -> None:
        """One record of the dry run (litellm_runner.cli.dryrun): a host's result becomes a line, once."""
        if event["event"] == "hosts":
            self.total = len(event["names"])
        elif event["event"] == "unreachable" and event["host"] not in self.shown:
            self.shown.add(event["host"])
            self._line(headline(event["host"], {"status": "unreachable", "reason": event["reason"]}))
        elif event["event"] == "checked" and event["host"] not in self.shown:
            self.shown.add(event["host"])
            self._line(headline(event["host"], _host_result(host_plan(event), event["records"], event["host"])))

    def _line(self, text: str) -> None:
        self.done += 1
        self._write(f"\r\033[K{shown.escape(text)}\n" + self._status())

    def _status(self) -> str:
        elapsed = time.monotonic() - self.started
        if elapsed < 2:
            return ""
        return f"checking: {self.done} of {self.total or '?'} hosts done, {elapsed:.0f}s"

    def _tick(self) -> None:
        while not self.stop.wait(1):
            self._write("\r\033[K" + self._status())

    def _write(self, text: str) -> None:
        if self.enabled:
            with self.lock:
                self.out.write(text)
                self.out.flush()


def positive(text: str) -> int:
    """``--parallel``: a whole number of at least 1 (argparse's usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of hosts, at least 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a whole number of hosts, at least 1")
    return value


def report_path_problem(path: str) -> str | None:
    """Why a report cannot be written at PATH (checked before the run, so no report is lost at its end), or None."""
    target = pathlib.Path(path)
    parent = target.parent if str(target.parent) else pathlib.Path(".")
    if target.is_dir():
        return f"{path}: is a folder: expected a file path"
    if not parent.is_dir():
        return f"{path}: the folder {parent} does not exist: expected a path in an existing folder"
    if not os.access(parent, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        return f"{path}: not writable: expected a path this user can write"
    return None


def pyinfra_usage_problem(extra: list[str]) -> str | None:
    """What pyinfra's own command line would refuse in EXTRA (checked without running it), or None. With no
    EXTRA there is nothing to refuse, and pyinfra's CLI (about 0.9 s of this machine's CPU to import) stays out
    of the check's own process."""
    if not extra:
        return None
    from litellm_runner.run import compat

    return compat.pyinfra_usage_problem(["inventory.py", "deploy.py", "--dry", "--json", *extra])


def main(argv: list[str] | None = None, prog: str = "python -m litellm_runner.cli.check") -> int:
    """The drift check: exit codes of litellm_runner.exitcodes (0 no drift, 2 drift, 1 could not check)."""
    try:
        return _main(argv, prog)
    except KeyboardInterrupt:  # pyinfra (same process group) got it too, and was stopped by run_dry
        print(f"{prog}: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


def _main(argv: list[str] | None, prog: str) -> int:
    parser = exitcodes.ArgumentParser(
        prog=prog,
        description=__doc__.split("\n")[0],
        usage=f"{prog} [-h] [--project DIR] [--json F] [--junit F] [--timeout S] [--quiet] [--parallel N] "
        "[pyinfra args...]",
    )
    parser.add_argument(
        "--project",
        type=pathlib.Path,
        metavar="DIR",
        help="the pyinfra project (inventory.py, deploy.py, group_data/); default: this folder",
    )
    parser.add_argument("--json", dest="json_path", metavar="F", help="write the JSON report here")
    parser.add_argument("--junit", metavar="F", help="write a JUnit XML report here")
    parser.add_argument(
        "--timeout", type=float, default=1800, metavar="S", help="seconds for the whole check (default 1800)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, only the report (as when piped)")
    parser.add_argument(
        "--parallel",
        type=positive,
        default=PARALLEL,
        metavar="N",
        help=f"hosts connected and checked at once (default {PARALLEL})",
    )
    args, extra = parser.parse_known_args(argv)
    if any(a in ("-y", "--yes") for a in extra):
        print(f"{prog}: -y/--yes skips change detection, so it cannot be used for a drift check", file=sys.stderr)
        return exitcodes.FAILED
    if args.timeout <= 0:
        parser.error(f"--timeout {args.timeout:g}: expected seconds, more than 0")
    if problem := pyinfra_usage_problem(extra):
        parser.error(f"{problem} (the arguments after check's own are pyinfra's: see `pyinfra --help`)")
    for path in (args.json_path, args.junit):
        if path and (problem := report_path_problem(path)):
            parser.error(problem)
    if args.project:
        os.environ["LITELLM_PROJECT"] = str(args.project.resolve())
    if (project() / "inventory.py").is_file() and not (project() / "deploy.py").is_file():
        print(
            f"{prog}: {project('deploy.py')}: no deploy file: run from a pyinfra project's folder (inventory.py, "
            "deploy.py, group_data/) or name it with --project DIR",
            file=sys.stderr,
        )
        return exitcodes.FAILED
    found, warned, _count = validate_project(project())
    if found:  # the dry run would refuse the same before connecting; said here without pyinfra's log around it
        validate.report(found, warned)
        print(f"{prog}: the desired state is invalid: no host was contacted", file=sys.stderr)
        return exitcodes.FAILED
    with Progress(sys.stdout, args.quiet) as progress:
        try:
            dry = run_dry(["--parallel", str(args.parallel), *extra], args.timeout, progress.event)
        except subprocess.TimeoutExpired:
            print(f"{prog}: pyinfra did not finish within {args.timeout:.0f}s", file=sys.stderr)
            return exitcodes.FAILED
    report = report_of(dry)
    if report is None:
        sys.stderr.write("".join(shown.escape(line.rstrip("\n")) + "\n" for line in dry.log)[-5000:])
        print(f"{prog}: the check could not run (pyinfra exited {dry.returncode})", file=sys.stderr)
        return exitcodes.FAILED
    if args.json_path:
        pathlib.Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if args.junit:
        pathlib.Path(args.junit).write_text(junit(report))
    print(human(report))
    return verdict(report)


def report_of(dry: Dry) -> dict | None:
    """The report of a dry run, or None when pyinfra failed for another reason than hosts it could not reach:
    it stopped before the end of its change detection, or counted a reached host failed."""
    end = dry.end
    if end is None or not end["complete"] or set(end["failed"]) - set(dry.unreachable):
        return None
    if dry.returncode != 0 and not dry.unreachable:
        return None
    hosts = sorted(set(dry.hosts) | set(dry.checked) | set(dry.connected) | set(dry.unreachable))
    return build_report(dry.checked, hosts, dry.unreachable)


def verdict(report: dict) -> int:
    """The exit code of REPORT, with one stderr line saying why when it is not 0 or 2."""
    unreachable = [h for h, r in report["hosts"].items() if r["status"] == "unreachable"]
    if unreachable:
        print(
            f"check: {len(unreachable)} hosts could not be reached: {', '.join(unreachable)}: exit 1", file=sys.stderr
        )
    if any(r["status"] == "error" for r in report["hosts"].values()):
        print("check: items that could not be checked (! above): exit 1", file=sys.stderr)
    if report["status"] == "error":
        return exitcodes.FAILED
    return exitcodes.FINDINGS if report["status"] == "drift" else exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
