"""Nothing the service account plants stops a repair; output shows only what is safe (issue #22, items 2-4).

On the root-owned layout (docs/trust-boundary.md) the account ``litellm`` writes only its state folders
(``litellm_dirs`` under ``/home/litellm/litellm``) and its own ``~/.config``. There the runner still
reads and writes: each state folder is a managed directory (``directory``: made, owned, moved aside when
something else is there), each is searched for what is in a write's way at the runner's temporary and
backup names (``no_leftovers``), and the account's unit search paths are read and emptied into the
quarantine (``no_account_plants``). The account plants, as the account, at those places only:

- a symlink to ``/etc/shadow``, a FIFO and a 20 GB sparse file at three managed state folders;
- directories at the runner's temporary and backup names, one holding 1,100 nested directories, one
  named with terminal escape codes;
- a directory at a managed unit's name and a link to ``/etc/shadow`` in ``~/.config/systemd/user.control``,
  a drop-in folder of 1,100 nested directories, a unit file named with terminal escape codes;

and root (the operator) leaves the master key as a literal in ``/etc/litellm/config.generated.yaml``
while a ``LiteLLM_Config`` value carries terminal escape codes. Each test plants several items at once
and runs one check and two converges. For each item, by path:

- the drift check exits 2 and names it (escaped);
- a converge as root finishes (exit 0) and moves the item aside (``PATH.displaced-TIME``) or into the
  quarantine (with a manifest), never following, reading or running it; the rest of the host
  converged (``litellm.service`` active);
- the second converge changes nothing (pyinfra's structured results);
- root's files are unchanged, nothing of the account's ran;
- no raw control character of the plants' and no secret in any output: the check's terminal output,
  JSON and JUnit reports, the first converge's output at ``--diff -vvv`` and the second's.
"""

from __future__ import annotations

import json
import re
import shlex

import pytest

from litellm_runner import envfile, layout, sandbox, shown
from tests.support.hosts import drift_check, pyinfra

HOME = "/home/litellm"
ROOT = f"{HOME}/litellm"
STATE = f"{ROOT}/state"
UNITS = f"{HOME}/.config/systemd/user"
CONTROL = f"{HOME}/.config/systemd/user.control"
ESCAPES = "\x1b]0;PWNED\x07\x1b[2J\x1b[8m"  # window title, clear screen, concealed text
PLANTED_RAW = ("\x1b]0;PWNED", "PWNED\x07", "\x1b[2J", "\x1b[8m")  # click strips CSI codes off a pipe, not OSC
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # none in the check's own output (TAB, LF allowed)
MARKER = "/tmp/h22-plants-marker.log"  # world-writable: whatever runs a plant appends "uid tag"
SHADOW = "stat -c '%U %G %a %s %Y' /etc/shadow && sha256sum /etc/shadow"
PSQL = "runuser -u postgres -- psql -p 5434 -d litellm -AtX -v ON_ERROR_STOP=1"
DEEP = "i=0; while [ $i -lt 1100 ]; do mkdir d && cd d || exit 1; i=$((i+1)); done"  # 1,100 nested directories
LITERAL = "master_key: os.environ/LITELLM_MASTER_KEY"


def master_key() -> str:
    return envfile.read(sandbox.secrets_file())["LITELLM_MASTER_KEY"]


def as_account(host, script: str) -> None:
    host.ssh(f"cd / && runuser -u litellm -- sh -c {shlex.quote(script)}", timeout=300)


def strings(value) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


def check_names(host, tmp_path, paths: list[str]) -> tuple[list[str], dict]:
    """The drift check: exit 2, each of PATHS named (escaped) in its terminal output and its JSON report,
    no raw control character in either or in the JUnit report; (its outputs, its report)."""
    proc, report = drift_check(host, tmp_path)
    junit = (tmp_path / "drift.xml").read_text()
    terminal = proc.stdout
    assert proc.returncode == 2, (terminal + proc.stderr)[-3000:]
    found = strings(report)
    for path in paths:
        escaped = shown.escape(path)
        # a list is shown as Python shows it (a backslash doubled)
        assert escaped in terminal or escaped.replace("\\", "\\\\") in terminal, f"the check does not name {escaped}"
        assert any(escaped in s for s in found), f"the JSON report does not name {escaped}"
    for text in (terminal, json.dumps(report, ensure_ascii=False), (tmp_path / "drift.json").read_text(), junit):
        assert not RAW_CONTROL.search(text), "a raw control character in the check's output"
    return [terminal, proc.stderr, json.dumps(report, ensure_ascii=False), junit], report


def converge_twice(host) -> list[str]:
    """A converge that finishes (at -vvv: every command and fact output printed), then one that changes
    nothing; their output."""
    first = pyinfra([host.name], "-y", "--diff", "-vvv")
    assert first.returncode == 0, first.stderr[-4000:]
    second = pyinfra([host.name], "-y")
    assert second.returncode == 0 and second.changed() == [], (second.changed(), second.stderr[-2000:])
    return [first.stdout, first.stderr, second.stdout, second.stderr]


def outputs_are_safe(texts: list[str]) -> None:
    """No secret and no raw escape code of the plants' in any of TEXTS."""
    key = master_key()
    for text in texts:
        assert key not in text, "the master key reached an output"
        for raw in PLANTED_RAW:
            assert raw not in text, f"a planted escape code reached an output raw: {raw!r}"


def displaced(host, path: str) -> list[str]:
    """The type (``stat -c %F``) of each thing a converge moved aside from PATH (``PATH.displaced-TIME``)."""
    return host.out(
        f'for p in {shlex.quote(path)}.displaced-*; do [ -e "$p" ] || [ -L "$p" ] && stat -c \'%F\' "$p"; done; true'
    ).splitlines()


def quarantined(host, since: set[str]) -> dict[str, dict]:
    """path -> manifest item of what the quarantine folders made after SINCE hold."""
    read = (
        "import glob, json, sys; skip = set(sys.argv[1:]); "
        f"[print(json.dumps(json.load(open(f)))) for f in sorted(glob.glob('{layout.QUARANTINE}/*/manifest.json')) "
        "if f.split('/')[-2] not in skip]"
    )
    out = host.out(f"python3 -c {shlex.quote(read)} {' '.join(since)}")
    return {item["path"]: item for line in out.splitlines() for item in json.loads(line)["items"]}


def folders(host) -> set[str]:
    return set(host.out(f"ls {layout.QUARANTINE}").split())


def unit_active(host, unit: str) -> str:
    return host.ssh(f"systemctl --user --machine=litellm@.host is-active {unit}", check=False).stdout.strip()


def test_the_account_cannot_hold_create_or_replace_the_run_lock(host, converged):
    """The guard lives in a directory only root enters (0700), the lock and guard are 0600: the account
    can neither open, flock, create nor replace them, and a converge takes the lock as before."""
    assert host.out("stat -c '%U %a %F' /run/litellm-runner.lock.d /run/litellm-runner.lock.d/guard") == (
        "root 700 directory\nroot 600 regular empty file"
    )
    for attempt in (
        "exec 9</run/litellm-runner.lock.d/guard",
        "flock -n /run/litellm-runner.lock.d/guard true",
        "exec 9>>/run/litellm-runner.lock",
        "touch /run/litellm-runner.lock.x && mv -f /run/litellm-runner.lock.x /run/litellm-runner.lock",
        "ls /run/litellm-runner.lock.d",
    ):
        proc = host.ssh(f"runuser -u litellm -- sh -c {shlex.quote(attempt)}", check=False)
        assert proc.returncode != 0, f"the account could: {attempt}"


# the state rows: (what, path, planted as the account, what stat -c %F says of the displaced copy)
LINK, FIFO, SPARSE = f"{ROOT}/logs", f"{STATE}/redis", f"{ROOT}/artifacts"
TEMP, BACKUP = f"{STATE}/x.tmp-litellm-runner", f"{STATE}/config.generated.yaml.bak-20260101T000000"
ESCAPED_TEMP = f"{STATE}/{ESCAPES}.tmp-litellm-runner"
STATE_ROWS = [
    ("symlink to /etc/shadow at a state folder", LINK, f"rm -rf {LINK} && ln -s /etc/shadow {LINK}", "symbolic link"),
    ("FIFO at a state folder", FIFO, f"rm -rf {FIFO} && mkfifo {FIFO}", "fifo"),
    ("20 GB sparse file at a state folder", SPARSE, f"rm -rf {SPARSE} && truncate -s 20G {SPARSE}", "regular file"),
    ("1,100 nested directories at the temporary name", TEMP, f"mkdir {TEMP} && cd {TEMP} && {DEEP}", "directory"),
    ("directory at a backup name", BACKUP, f"mkdir {BACKUP}", "directory"),
    ("escape codes in a temporary name", ESCAPED_TEMP, f"mkdir {shlex.quote(ESCAPED_TEMP)}", "directory"),
]


@pytest.fixture
def state_plants(host, converged):
    """The state rows planted; afterwards each plant and its displaced copy removed, each state folder a
    folder again (as root: rm has no depth limit)."""
    shadow = host.out(SHADOW)
    for _what, _path, plant, _kind in STATE_ROWS:
        as_account(host, plant)
    yield shadow
    paths = " ".join(shlex.quote(p) for _w, p, _p, _k in STATE_ROWS)
    host.ssh(f"cd / && rm -rf -- {ROOT}/*.displaced-* {STATE}/*.displaced-* {paths}", timeout=300, check=False)
    host.ssh(f"install -d -o litellm -g litellm -m 0750 {LINK} {FIFO} {SPARSE}", check=False)


def test_plants_in_the_state_are_displaced_alone(host, state_plants, tmp_path):
    outputs, _ = check_names(host, tmp_path, [path for _w, path, _p, _k in STATE_ROWS])
    outputs += converge_twice(host)
    outputs_are_safe(outputs)

    for what, path, _plant, kind in STATE_ROWS:
        assert displaced(host, path) == [kind], f"{what}: {path} not moved aside whole"
        if path in (LINK, FIFO, SPARSE):  # a managed state folder: made again
            assert host.out(f"stat -c '%F %a %U' {path}") == "directory 750 litellm", what
        else:
            assert host.ssh(f"test -e {shlex.quote(path)}", check=False).returncode == 1, f"{what}: still there"
    assert host.out(f"readlink {LINK}.displaced-*") == "/etc/shadow"  # moved as a link, never followed
    assert host.out(SHADOW) == state_plants, "root's /etc/shadow changed"
    held = host.out(f"find /proc/[0-9]*/fd -lname '{FIFO}*' 2>/dev/null || true")
    assert held == "", f"a process holds the planted FIFO: {held}"
    assert unit_active(host, "litellm.service") == "active"


# the unit and output rows, as the account (the marker shows whether anything ran a plant)
RUN = f"/bin/sh -c 'echo $(id -u) %s >> {MARKER}'"
ESCAPED_UNIT = f"{UNITS}/{ESCAPES}.service"
DROPIN = f"{UNITS}/litellm-metrics.service.d"
UNIT_ROWS = [
    ("directory at a managed unit's name in user.control", f"{CONTROL}/litellm.service", "directory"),
    ("link to /etc/shadow at a managed unit's name in user.control", f"{CONTROL}/litellm-metrics.service", "symlink"),
    ("drop-in folder of 1,100 nested directories", DROPIN, "directory"),
    ("unit file named with escape codes", ESCAPED_UNIT, "file"),
]
UNIT_FILES = {  # written as the account from stdin
    f"{DROPIN}/x.conf": f"[Service]\nExecStartPre={RUN % 'dropin'}\n",
    ESCAPED_UNIT: f"[Service]\nExecStart={RUN % 'escaped'}\n[Install]\nWantedBy=default.target\n",
}
UNIT_PLANTS = f"mkdir -p {CONTROL}/litellm.service {DROPIN} && ln -s /etc/shadow {CONTROL}/litellm-metrics.service"
SETTING = "UPDATE \"LiteLLM_Config\" SET param_value = jsonb_set(param_value, '{store_prompts_in_spend_logs}', %s) "
SETTING += "WHERE param_name = 'general_settings'"
HOSTILE = "to_jsonb(E'\\x1b]0;PWNED\\x07\\x1b[2J\\x1b[8m'::text)"  # the same escape codes, as PostgreSQL's
VALUE = (
    "SELECT param_value->'store_prompts_in_spend_logs' FROM \"LiteLLM_Config\" WHERE param_name = 'general_settings'"
)
# root writes the master key into the rendered config as a literal (from stdin: never on a command line), and back
REPLACE = "import sys; p = sys.argv[1]; t = open(p).read(); k = sys.stdin.read().strip(); open(p, 'w').write(%s)"
WRITE_KEY = REPLACE % f"t.replace({LITERAL!r}, 'master_key: ' + k)"
UNWRITE_KEY = REPLACE % f"t.replace('master_key: ' + k, {LITERAL!r})"


@pytest.fixture
def unit_plants(host, converged):
    """The unit rows planted, the escape codes in LiteLLM_Config, the master key in the config; afterwards
    what this test quarantined, the marker and any config backup holding the key removed (and, had the
    converge not repaired them, the plants, the value and the key too)."""
    before = folders(host)
    host.ssh(f"rm -f {MARKER}; touch {MARKER}; chmod 0666 {MARKER}")
    as_account(host, UNIT_PLANTS)
    as_account(host, f"cd {DROPIN} && {DEEP}")
    for path, text in UNIT_FILES.items():
        host.ssh(f"cd / && runuser -u litellm -- tee {shlex.quote(path)} >/dev/null", input=text)
    host.ssh(PSQL, input=SETTING % HOSTILE)
    key = master_key()
    host.ssh(f"python3 -c {shlex.quote(WRITE_KEY)} {layout.CONFIG_FILE}", input=key)
    assert f"master_key: {key}" in host.out(f"cat {layout.CONFIG_FILE}")
    yield before
    made = " ".join(f"{layout.QUARANTINE}/{name}" for name in folders(host) - before)
    left = " ".join(shlex.quote(path) for _w, path, _k in UNIT_ROWS)
    host.ssh(f"cd / && rm -rf -- {made} {left} {MARKER}", timeout=300, check=False)
    host.ssh(f"grep -lF -f - {layout.CONFIG_FILE}.bak-* | xargs -r rm -f --", input=key, check=False)
    host.ssh(f"python3 -c {shlex.quote(UNWRITE_KEY)} {layout.CONFIG_FILE}", input=key, check=False)
    host.ssh(PSQL, input=SETTING % "'false'::jsonb", check=False)


def test_plants_in_the_unit_paths_and_hostile_values_are_quarantined_and_never_shown(host, unit_plants, tmp_path):
    shadow = host.out(SHADOW)
    outputs, report = check_names(host, tmp_path, [path for _w, path, _k in UNIT_ROWS])
    for text in (outputs[0], "\n".join(strings(report))):
        assert "store_prompts_in_spend_logs" in text and "\\x1b]0;PWNED\\x07" in text, "the value is not shown escaped"
        assert "master_key: <secret sha256:" in text, "the config diff does not show where the master key was"
    outputs += converge_twice(host)
    outputs_are_safe(outputs)

    moved = quarantined(host, unit_plants)
    for what, path, kind in UNIT_ROWS:
        assert path in moved and moved[path]["moved_to"], f"{what}: {path} not quarantined ({sorted(moved)})"
        assert moved[path]["type"] == kind, (what, moved[path])
        assert host.ssh(f"test -e {shlex.quote(path)} || test -L {shlex.quote(path)}", check=False).returncode == 1
    assert moved[f"{CONTROL}/litellm-metrics.service"]["target"] == "/etc/shadow"  # read as data, never followed
    assert host.out(SHADOW) == shadow, "root's /etc/shadow changed"
    assert host.out(f"cat {MARKER}") == "", "a plant ran"
    config = host.out(f"cat {layout.CONFIG_FILE}")
    assert master_key() not in config and LITERAL in config, "the config was not rendered again"
    assert host.out(PSQL, input=VALUE) == "false"
    for unit in ("litellm.service", "litellm-metrics.service"):
        assert unit_active(host, unit) == "active", unit
