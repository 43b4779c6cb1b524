"""The remediation report: what was found, what was changed, how it was verified, what is still open.

    litellm-runner report [--before CHECK.json] [--converge RUN.json] [--second RUN.json]
                          [--json REPORT.json] [--markdown REPORT.md] [--timeout S] [--parallel N] [pyinfra args...]

Per host and for the run, in Markdown (stdout, or ``--markdown F``) and JSON (``--json F``), built
from what the runner already reads (docs/report.md):

- found: the drift items with their control ids and the account sweep's findings with their evidence
  (from ``--before``, the drift check's JSON report taken before the converge, else from this
  report's own check), and the CVE and compromised-release findings of the venv's SBOM;
- changed: the operations a converge changed or failed (``--converge``: pyinfra's ``--json`` output
  of that converge; the runner keeps no record of a converge on the host), and root's quarantine
  manifests, item by item;
- verified: the second converge's changes (``--second``, its ``--json`` output; 0 is idempotent),
  the proxy's ``/health/readiness`` asked once from the host, ``litellm-status`` as the service
  account (its database checks among them), the controls the check found in sync (``db-*`` the
  database's) and the units' ``systemd-analyze security`` exposure against the gate's threshold;
- open: the drift this report's check found, and every verification that failed.

The host is read by one dry run: the drift check's (deploy.py) followed by
litellm_runner/cli/report_facts.py (no operation, only bounded reads, each failing alone), read from its
one channel (each host's last ``checked`` record: its plan, drift records and report parts).
Nothing is changed. Every string from a host is escaped and the host's known secrets are shown as
fingerprints (``litellm_runner.shown``), in the JSON and the Markdown alike.

Exit codes (litellm_runner.exitcodes): 0 nothing open, 2 something open, 1 a host or a part of
the report could not be read (named in the report and on stderr), 64 usage error.
"""

from __future__ import annotations

import datetime
import json
import pathlib
import re
import subprocess
import sys

from packaging.utils import canonicalize_name

from litellm_runner import exitcodes, shown
from litellm_runner.cli.check import PARALLEL, plan_of, positive, report_of, run_dry
from litellm_runner.cli.check import SCHEMA as CHECK_SCHEMA
from litellm_runner.resources import project

SCHEMA = "litellm-runner/remediation-report"
FACTS_FILE = pathlib.Path(__file__).resolve().parent / "report_facts.py"
CONTROL = re.compile(r"\|\s*([a-z]+-[0-9]+)\s*$")
SWEEP = "sweep "  # the kind prefix of the account sweep's drift records (pyinfra_ext/sweep.py)
PARTS = ("quarantine", "sbom", "status", "readiness", "units")


def control(op_name: str) -> str | None:
    """The control id an operation's name ends with (``Directory ... | fs-01`` -> ``fs-01``), or None."""
    found = CONTROL.search(op_name)
    return found.group(1) if found else None


# -- inputs ---------------------------------------------------------------------------------------------
class InputError(ValueError):
    """An input file the report cannot use: names the file, the key and the expected form."""


def load_input(path: str, kind: str) -> dict:
    """The JSON document at PATH: a drift report (KIND ``check``) or pyinfra's ``--json`` output of a converge
    (KIND ``run``); InputError naming the file, the key and what was expected."""
    try:
        doc = json.loads(pathlib.Path(path).read_text())
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    except ValueError:
        raise InputError(f"{path}: not JSON") from None
    if kind == "check":
        if not isinstance(doc, dict) or doc.get("schema") != CHECK_SCHEMA or not isinstance(doc.get("hosts"), dict):
            raise InputError(f'{path}: key "schema": expected "{CHECK_SCHEMA}" (litellm-runner check --json F)')
    elif not isinstance(doc, dict) or not isinstance(doc.get("results"), dict):
        raise InputError(
            f'{path}: key "results": expected an object (pyinfra inventory.py deploy.py -y --json > F; '
            "a --dry run has none)"
        )
    elif not isinstance(doc["results"].get("operations"), list):
        raise InputError(f'{path}: key "results.operations": expected a list')
    return doc


# -- the report (pure: data in, data out) ---------------------------------------------------------------
def _item(item: dict) -> dict:
    out = {"id": item["id"], "control": control(item["id"]), "kind": item.get("kind"), "status": item.get("status")}
    out.update({k: item[k] for k in ("before", "after", "diff") if k in item})
    return out


def _found(check_host: dict | None) -> tuple[list[dict], list[dict]]:
    """(drift items, sweep findings) of one host's drift-check result."""
    items = [_item(i) for i in (check_host or {}).get("items", []) if i.get("status") in ("drift", "error")]
    return [i for i in items if not str(i["kind"]).startswith(SWEEP)], [
        i for i in items if str(i["kind"]).startswith(SWEEP)
    ]


def _run_result(run: dict | None, name: str) -> dict | None:
    """One host's part of pyinfra's --json output of a converge: changed and failed operations."""
    if run is None:
        return None
    ops = run["results"]["operations"]

    def pick(key: str) -> list[dict]:
        return [{"id": o["name"], "control": control(o["name"])} for o in ops if name in o.get(key, [])]

    return {"changed": pick("success"), "failed": pick("error"), "unchanged": len(pick("no_change"))}


def venv_findings(components: dict[str, str], advisories: list[str]) -> dict:
    """The SBOM's COMPONENTS judged: compromised releases (cve.COMPROMISED) and the ADVISORIES lines found."""
    from litellm_runner.gates.cve import COMPROMISED

    bad = [
        f"{name} {version}: compromised release"
        for name, version in sorted(components.items())
        if version in COMPROMISED.get(canonicalize_name(name), ())
    ]
    advisories = [a for a in advisories if "compromised release" not in a]  # the gate's own line for BAD
    return {"components": len(components), "compromised": bad, "advisories": advisories}


def _open(host: dict, remaining: list[dict]) -> list[dict]:
    """What is still open on a host: its REMAINING drift, and each verification of HOST that failed."""
    items = [{"what": "drift", **i} for i in remaining]
    v = host["verified"]
    if v["second_run"] is not None and v["second_run"]["changed"]:
        items.append({"what": "second run", "id": f"{len(v['second_run']['changed'])} operations changed again"})
    ready = v["readiness"]
    if isinstance(ready, dict) and "url" in ready and ready.get("status") != 200:
        items.append({"what": "readiness", "id": f"{ready.get('url')}: HTTP {ready.get('status')}"})
    status = v["status"]
    for check in status.get("checks", []) if isinstance(status, dict) else []:
        if not check["ok"]:
            items.append({"what": "litellm-status", "id": f"{check['check']}: {check['detail']}"})
    units = v["units"]
    if isinstance(units, dict) and "scores" in units:
        for unit, score in sorted(units["scores"].items()):
            if score > units["threshold"]:
                items.append({"what": "unit exposure", "id": f"{unit}: {score} > {units['threshold']}"})
    venv = host["found"]["venv"]
    for line in venv.get("compromised", []) + venv.get("advisories", []):
        items.append({"what": "venv", "id": line})
    return items


def host_report(name: str, check: dict, facts: dict, before: dict | None, runs: dict, plan: list, audit) -> dict:
    """One host's report from the CHECK (this run's), its FACTS (report_facts), BEFORE (a check before the
    converge), RUNS (``converge``/``second``: pyinfra --json), PLAN (this dry run's) and AUDIT (SBOM -> lines)."""
    now = check["hosts"].get(name, {"status": "error", "items": []})
    if now["status"] == "unreachable":
        return {"status": "unreachable", "reason": now.get("reason"), "errors": {}}
    errors = {p: facts[p]["error"] for p in PARTS if isinstance(facts.get(p), dict) and "error" in facts[p]}
    errors.update({p: "not read: the host's dry run stopped before it" for p in PARTS if p not in facts})
    if name not in (before or check)["hosts"]:
        errors["found"] = "the check before the converge has no such host"
    drift, sweep = _found((before or check)["hosts"].get(name))
    venv: dict = {}
    if "sbom" not in errors and isinstance(facts.get("sbom"), dict):
        try:
            venv = venv_findings(facts["sbom"], audit(facts["sbom"]))
        except Exception as exc:  # the advisories could not be read: the SBOM's other findings still shown
            errors["venv"] = f"{exc.__class__.__name__}: {exc}"[:500]
            venv = venv_findings(facts["sbom"], [])
    ops = [o for o in plan if name not in o.get("hosts_with_change", []) + o.get("hosts_with_conditional_change", [])]
    in_sync = sorted({c for c in (control(o["name"]) for o in ops) if c})
    drifted_now, sweep_now = _found(now)
    remaining = [*drifted_now, *sweep_now]
    drifted_controls = {i["control"] for i in remaining if i["control"]}
    in_sync = [c for c in in_sync if c not in drifted_controls]
    status = facts.get("status", {})
    report: dict = {
        "found": {
            "from": "drift check before the converge (--before)" if before else "drift check of this report",
            "drift": drift,
            "sweep": sweep,
            "venv": venv,
        },
        "changed": {
            "converge": _run_result(runs.get("converge"), name),
            "quarantine": (facts.get("quarantine") or {}).get("folders", []),
        },
        "verified": {
            "second_run": _run_result(runs.get("second"), name),
            "readiness": facts.get("readiness"),
            "status": status,
            "database": {
                "controls_in_sync": [c for c in in_sync if c.startswith("db-")],
                "controls_drifted": sorted(c for c in drifted_controls if c.startswith("db-")),
                "status_checks": [c for c in status.get("checks", []) if c["check"] in ("database", "proxy-database")]
                if isinstance(status, dict)
                else [],
            },
            "units": facts.get("units"),
            "controls_in_sync": in_sync,
        },
        "errors": errors,
    }
    report["open"] = _open(report, remaining)
    bad = errors or now["status"] == "error"
    report["status"] = "error" if bad else "open" if report["open"] else "clean"
    return report


def build(
    check: dict, facts: dict, plan: list, before=None, converge=None, second=None, audit=None, secrets=()
) -> dict:
    """The run's report (schema SCHEMA): see the module docstring. Every string is escaped and each of SECRETS
    (the hosts' known secret values) shown as its fingerprint, wherever it appears."""
    audit = audit or _audit
    runs = {"converge": converge, "second": second}
    hosts = {name: host_report(name, check, facts.get(name, {}), before, runs, plan, audit) for name in check["hosts"]}
    statuses = {h["status"] for h in hosts.values()}
    return shown.safe(
        {
            "schema": SCHEMA,
            "version": 1,
            "generated_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "status": "error" if statuses & {"error", "unreachable"} else "open" if "open" in statuses else "clean",
            "inputs": {
                "before": before is not None,
                "converge": converge is not None,
                "second": second is not None,
            },
            "hosts": hosts,
            "totals": {
                "hosts": len(hosts),
                "open_hosts": sum(1 for h in hosts.values() if h["status"] != "clean"),
                "found": sum(len(h.get("found", {}).get("drift", [])) for h in hosts.values()),
                "sweep": sum(len(h.get("found", {}).get("sweep", [])) for h in hosts.values()),
                "quarantined": sum(
                    len(f.get("items", [])) for h in hosts.values() for f in h.get("changed", {}).get("quarantine", [])
                ),
                "open": sum(len(h.get("open", [])) for h in hosts.values()),
            },
        },
        secrets,
    )


def known_secrets() -> list[str]:
    """Every inventory host's known secret values (``secrets.known``: the operator's secret source)."""
    from types import SimpleNamespace

    from litellm_runner import secrets, validate
    from litellm_runner.cli.validate import load_inventory

    inventory, _ = load_inventory(project(), "inventory.py")
    if inventory is None:  # the dry run refuses the same, and says why
        return []
    return sorted({v for _, data, _ in validate.hosts(inventory) for v in secrets.known(SimpleNamespace(**data))})


def _audit(components: dict[str, str]) -> list[str]:
    """The CVE gate's findings (offline advisories unless LITELLM_CVE_GATE=online) for COMPONENTS."""
    from litellm_runner.gates import cve

    return cve.installed_findings(components)


# -- Markdown -----------------------------------------------------------------------------------------
MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def _plain(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return " ".join(_plain(v) for v in value) or "-"
    return "absent" if value is None else str(value)


def md(value) -> str:
    """VALUE as inline Markdown text (a dict as ``k=v, ...``, a list space-separated): control characters
    escaped (shown.escape), Markdown's specials too."""
    return MD_SPECIAL.sub(r"\\\1", shown.escape(_plain(value)))


def _op(item: dict) -> str:
    """An item's control id in bold and its operation's name without it."""
    return f"**{md(item.get('control') or '-')}** {md(CONTROL.sub('', item['id']).rstrip())}"


def _items(lines: list[str], items: list[dict], empty: str) -> None:
    if not items:
        lines.append(f"- {empty}")
    for i in items:
        lines.append(f"- {_op(i)}")
        if "before" in i or "after" in i:
            lines.append(f"  - before: {md(i.get('before'))}")
            lines.append(f"  - after: {md(i.get('after'))}")


def _host_markdown(name: str, h: dict) -> list[str]:
    lines = [f"## Host {md(name)}: {h['status']}"]
    if h["status"] == "unreachable":
        return [*lines, f"Not reached: {md(h.get('reason'))}", ""]
    for part, why in h["errors"].items():
        lines.append(f"- could not read **{md(part)}**: {md(why)}")
    f, c, v = h["found"], h["changed"], h["verified"]
    lines += ["", "### What was found", "", f"From the {md(f['from'])}.", "", f"Drift ({len(f['drift'])} items):", ""]
    _items(lines, f["drift"], "none")
    lines += ["", f"Account sweep ({len(f['sweep'])} items):", ""]
    _items(lines, f["sweep"], "none")
    venv = f["venv"]
    lines += ["", "Installed venv (its SBOM):", ""]
    if venv:
        lines.append(f"- {venv['components']} components")
        for line in venv["compromised"] + venv["advisories"]:
            lines.append(f"- {md(line)}")
        if not venv["compromised"] + venv["advisories"]:
            lines.append("- no compromised release, no known advisory")
    else:
        lines.append("- not read")
    lines += ["", "### What was changed", ""]
    run = c["converge"]
    if run is None:
        lines.append("- converge: not given (--converge)")
    else:
        lines.append(f"- converge: {len(run['changed'])} operations changed, {len(run['failed'])} failed")
        for op in run["changed"]:
            lines.append(f"  - changed: {_op(op)}")
        for op in run["failed"]:
            lines.append(f"  - FAILED: {_op(op)}")
    quarantined = [(q, i) for q in c["quarantine"] for i in q.get("items", [])]
    lines.append(f"- quarantined: {len(quarantined)} items in {len(c['quarantine'])} folders")
    for q in c["quarantine"]:
        if "error" in q:
            lines.append(f"  - {md(q['folder'])}: could not be read: {md(q['error'])}")
    for q, i in quarantined:
        where = i.get("moved_to") or i.get("stopped") or "-"
        source = q.get("source") or "unit plants"
        where += " (no longer there)" if i.get("present") is False else ""
        lines.append(f"  - {md(i.get('kind') or 'unit plant')} {md(i.get('path'))} -> {md(where)} ({md(source)})")
    lines += ["", "### How it was verified", ""]
    second = v["second_run"]
    lines.append(
        "- second run: not given (--second)"
        if second is None
        else f"- second run: {len(second['changed'])} changes, {len(second['failed'])} failed"
    )
    ready = v["readiness"] or {}
    if "url" not in ready:
        lines.append(f"- readiness: not read: {md(ready.get('error'))}")
    elif ready["status"] is None:
        lines.append(f"- readiness: {md(ready['url'])}: no answer ({md(ready.get('failure'))})")
    else:
        said = f"status {md(ready.get('status_field', '-'))}, db {md(ready.get('db', '-'))}"
        lines.append(f"- readiness: {md(ready['url'])}: HTTP {ready['status']}, {said}")
    status = v["status"] or {}
    if "checks" in status:
        lines.append(f"- litellm-status (exit {md(status.get('exit'))}):")
        for check in status["checks"]:
            lines.append(f"  - {'OK' if check['ok'] else 'FAIL'} {md(check['check'])}: {md(check['detail'])}")
    db = v["database"]
    lines.append(
        f"- database: controls in sync {md(', '.join(db['controls_in_sync']) or 'none')}; "
        f"drifted {md(', '.join(db['controls_drifted']) or 'none')}"
    )
    units = v["units"] or {}
    if "scores" in units:
        scores = ", ".join(f"{u} {s}" for u, s in sorted(units["scores"].items()))
        lines.append(f"- unit exposure (systemd {md(units['systemd'])}, threshold {units['threshold']}): {md(scores)}")
    lines.append(f"- controls in sync: {md(', '.join(v['controls_in_sync']) or 'none')}")
    lines += ["", "### Still open", ""]
    if not h["open"]:
        lines.append("- nothing")
    for i in h["open"]:
        lines.append(f"- {md(i['what'])}: {_op(i)}")
        if "before" in i:
            lines.append(f"  - now: {md(i.get('before'))}; wanted: {md(i.get('after'))}")
    return [*lines, ""]


def markdown(report: dict) -> str:
    """REPORT (``build``'s) as a Markdown document."""
    t = report["totals"]
    lines = [
        "# Remediation report",
        "",
        f"Generated {report['generated_at']}: {t['hosts']} hosts, status **{report['status']}**; "
        f"{t['found']} drift items and {t['sweep']} sweep findings found, {t['quarantined']} items quarantined, "
        f"{t['open']} still open.",
        "",
    ]
    for name, h in report["hosts"].items():
        lines += _host_markdown(name, h)
    return "\n".join(lines)


def verdict(report: dict) -> int:
    if report["status"] == "error":
        return exitcodes.FAILED
    return exitcodes.FINDINGS if report["status"] == "open" else exitcodes.OK


# -- the command --------------------------------------------------------------------------------------
def main(argv: list[str] | None = None, prog: str = "python -m litellm_runner.cli.report") -> int:
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--before", metavar="F", help="the drift check's JSON report taken before the converge")
    parser.add_argument("--converge", metavar="F", help="pyinfra's --json output of the converge")
    parser.add_argument("--second", metavar="F", help="pyinfra's --json output of the second converge")
    parser.add_argument("--json", dest="json_path", metavar="F", help="write the JSON report here")
    parser.add_argument("--markdown", metavar="F", help="write the Markdown report here (default: stdout)")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S", help="seconds for the dry run")
    parser.add_argument("--parallel", type=positive, default=PARALLEL, metavar="N", help="hosts read at once")
    args, extra = parser.parse_known_args(argv)
    if any(a in ("-y", "--yes") for a in extra):
        parser.error("-y/--yes: the report reads the hosts in a dry run, it never converges")
    try:
        before = load_input(args.before, "check") if args.before else None
        runs = {k: load_input(getattr(args, k), "run") if getattr(args, k) else None for k in ("converge", "second")}
    except InputError as exc:
        print(f"{prog}: {exc}: no host was contacted", file=sys.stderr)
        return exitcodes.FAILED
    try:
        dry = run_dry(["--parallel", str(args.parallel), *extra, str(FACTS_FILE)], args.timeout)
    except subprocess.TimeoutExpired:
        print(f"{prog}: pyinfra did not finish within {args.timeout:.0f}s", file=sys.stderr)
        return exitcodes.FAILED
    check = report_of(dry)
    if check is None:
        sys.stderr.write("".join(shown.escape(line.rstrip("\n")) + "\n" for line in dry.log)[-5000:])
        print(f"{prog}: the hosts could not be read (pyinfra exited {dry.returncode})", file=sys.stderr)
        return exitcodes.FAILED
    facts = {name: record["report"] for name, record in dry.checked.items() if "report" in record}
    plan = plan_of(dry.checked)
    report = build(check, facts, plan, before, runs["converge"], runs["second"], secrets=known_secrets())
    text = markdown(report)
    if args.json_path:
        pathlib.Path(args.json_path).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        pathlib.Path(args.markdown).write_text(text + "\n")
    else:
        print(text)
    for name, h in report["hosts"].items():
        for part, why in h.get("errors", {}).items():
            print(f"{prog}: {name}: {part} could not be read: {why}", file=sys.stderr)
    return verdict(report)


if __name__ == "__main__":
    sys.exit(main())
