"""Secrets arrive exactly and leak nowhere (issue #12 item 3), against the sandbox's real systemd.

1. Every tricky value of tests/unit/test_envfile.py's VALUES, written by ``envfile.dumps`` and
   loaded by the sandbox's systemd through ``EnvironmentFile=`` into a transient service, is in
   that process's /proc/PID/environ byte for byte, and nothing else of the file is.
   (A system-manager unit: ``EnvironmentFile=`` is read by the same load_env_file() of
   src/core/execute.c in the system and the user manager.)
2. Each hand-written file of test_envfile.READ reads in systemd as ``envfile.loads`` reads it.
3. The previous raw ``KEY=value`` writer's text for the same values is misread by systemd (so 1.
   can fail) and refused by ``envfile.loads``.
4. The real deploy refuses a secret the env file cannot carry (a line break from the environment,
   a quote left open over two lines or a trailing backslash in the secrets file): exit 1, the key
   and the source named, no value printed, no fact read, the host's env file untouched.
"""

from __future__ import annotations

import base64
import os
import subprocess

import pytest
import yaml

from litellm_runner import envfile, sandbox
from tests.support.hosts import PYINFRA, REPO
from tests.unit.test_envfile import READ, VALUES

UNIT = "litellm-envfile-roundtrip"
ENV_PATH = "/root/envfile-roundtrip.env"
ROOT = "/home/litellm/litellm"
CANARY = "sk-canary-linebreak-6b2d"
SECRET_SRC = "secret source ({path} or the environment)"
ITEMS = {f"RT_{i}": value for i, (_, value) in enumerate(VALUES)}


def environ_of(host, text: str) -> dict[str, bytes]:
    """KEY -> value in /proc/PID/environ of a service started with EnvironmentFile= holding TEXT."""
    b64 = base64.b64encode(text.encode()).decode()
    host.ssh(f"systemctl stop {UNIT}.service", check=False, timeout=30)
    host.ssh(f"umask 077 && printf %s {b64} | base64 -d > {ENV_PATH}", timeout=30)
    try:
        host.ssh(
            f"systemd-run --unit={UNIT} --collect --property=Type=exec "
            f"--property=EnvironmentFile={ENV_PATH} /bin/sleep 600",
            timeout=60,
        )
        pid = host.out(f"systemctl show -P MainPID {UNIT}.service", timeout=30)
        assert pid.isdigit() and pid != "0", pid
        raw = base64.b64decode(host.out(f"base64 -w0 /proc/{pid}/environ", timeout=30))
    finally:
        host.ssh(f"systemctl stop {UNIT}.service; rm -f {ENV_PATH}", check=False, timeout=30)
    environ = dict(entry.split(b"=", 1) for entry in raw.split(b"\0") if entry)
    return {k.decode(): v for k, v in environ.items()}


@pytest.fixture(scope="module")
def systemd_reads(host):
    """environ_of TEXT without what the manager sets in every service (seen with an empty env file)."""
    own = set(environ_of(host, ""))
    assert "RT_0" not in own and "A" not in own
    return lambda text: {k: v for k, v in environ_of(host, text).items() if k not in own}


def test_real_systemd_reads_back_every_value_byte_for_byte(host, systemd_reads):
    items = {**ITEMS, "RT_LAST": "end"}
    got = systemd_reads(envfile.dumps(items, header="test: envfile round trip"))
    want = {k: v.encode() for k, v in items.items()}
    version = host.out("systemctl --version", timeout=30).splitlines()[0]
    assert got == want, (
        f"{version}: differs for {sorted(set(got) ^ set(want) | {k for k in want if got.get(k) != want[k]})}"
    )


@pytest.mark.parametrize("case, text, expected", READ, ids=[r[0] for r in READ])
def test_hand_written_files_read_as_loads_reads_them(systemd_reads, case, text, expected):
    """envfile.loads on hand-written KEY=value files is systemd's reading (rows of test_envfile.READ)."""
    assert (
        systemd_reads(text)
        == {k: v.encode() for k, v in envfile.loads(text).items()}
        == {k: v.encode() for k, v in expected.items()}
    )


def test_the_old_raw_writer_was_misread(systemd_reads):
    """What the previous ``KEY=value`` writer produced for the same values: systemd changes them
    (so the round trip above can fail), and envfile.loads refuses that text instead of guessing."""
    raw = "".join(f"{k}={v}\n" for k, v in ITEMS.items())
    got = systemd_reads(raw)
    changed = {k for k, v in ITEMS.items() if got.get(k) != v.encode()}
    names = dict(VALUES)
    assert {
        k
        for k in changed
        if ITEMS[k]
        in (names["trailing-backslash"], names["leading-single-quote"], names["blanks-around"], names["backslash"])
    } == {
        k
        for k in ITEMS
        if ITEMS[k]
        in (names["trailing-backslash"], names["leading-single-quote"], names["blanks-around"], names["backslash"])
    }
    with pytest.raises(envfile.EnvFileError):
        envfile.loads(raw)


# (id, secret taken from the environment, secrets file lines, fragment of the message)
REFUSED = [
    (
        "environment-newline",
        f"{CANARY}\nINJECTED=1",
        None,
        SECRET_SRC + ": the environment: VLLM_API_KEY: the value contains a line break (\\n)",
    ),
    (
        "environment-carriage-return",
        f"{CANARY}\rINJECTED=1",
        None,
        SECRET_SRC + ": the environment: VLLM_API_KEY: the value contains a line break (\\r)",
    ),
    (
        "file-quote-over-two-lines",
        None,
        f"VLLM_API_KEY='{CANARY}\nINJECTED=1'",
        SECRET_SRC + ": {path}:{line}: VLLM_API_KEY: a quote is not closed on its line",
    ),
    (
        "file-trailing-backslash",
        None,
        f"VLLM_API_KEY={CANARY}\\\nINJECTED=1",
        SECRET_SRC + ": {path}:{line}: VLLM_API_KEY: a backslash ends the line",
    ),
]


def deploy(tmp_path, host, from_env, file_lines):
    """The real deploy with the sandbox's secrets, VLLM_API_KEY replaced; (exit code, output, {path, line})."""
    ssh = sandbox.host_data(host.name)
    ssh.pop("name", None)
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_SANDBOXES", "VLLM_API_KEY")}
    env["PYINFRA_PROGRESS"] = "off"
    lines = [
        line for line in open(ssh["litellm_secrets_file"]).read().splitlines() if not line.startswith("VLLM_API_KEY=")
    ]
    if from_env is not None:
        env["VLLM_API_KEY"] = from_env
        lines.append("VLLM_API_KEY=unused")
    else:
        lines.append(file_lines)
    path = tmp_path / "secrets.env"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    env["LITELLM_SECRETS_FILE"] = str(path)
    hosts = tmp_path / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"litellm_hosts": [{"name": host.name, "data": ssh}]}))
    env["LITELLM_INVENTORY"] = str(hosts)
    proc = subprocess.run(
        [PYINFRA, "inventory.py", "deploy.py", "-y", "-vv"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode, proc.stdout + proc.stderr, {"path": str(path), "line": len(lines)}


@pytest.mark.parametrize("case, from_env, file_lines, fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_deploy_refuses_a_secret_with_a_line_break(host, tmp_path, case, from_env, file_lines, fragment):
    before = host.out("sha256sum /etc/litellm/env.litellm; stat -c '%a %U %Y' /etc/litellm/env.litellm", check=False)
    code, out, fill = deploy(tmp_path, host, from_env, file_lines)
    assert code == 1, out[-3000:]
    assert "refusing to touch any host" in out, out[-3000:]
    assert fragment.format(**fill) in out, f"{fragment.format(**fill)!r} not in:\n{out[-3000:]}"
    assert CANARY not in out and "INJECTED" not in out
    assert "Loaded fact" not in out and "Getting fact" not in out and "Starting operation" not in out, out[-3000:]
    assert (
        host.out("sha256sum /etc/litellm/env.litellm; stat -c '%a %U %Y' /etc/litellm/env.litellm", check=False)
        == before
    )
