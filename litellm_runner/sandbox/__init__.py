"""Throwaway LiteLLM hosts: Debian 12 or 13 with systemd as PID 1 in podman.

    python -m litellm_runner.sandbox up [--name litellm-sandbox] [--port 2222] [--release 12|13]
                                        [--operator password|nopasswd] [--no-root-login]
    python -m litellm_runner.sandbox down [--name litellm-sandbox | --all]
    python -m litellm_runner.sandbox build [--release 12|13] | list

``--release`` (12 or bookworm, the default; 13 or trixie) picks the Debian
release and with it the host's own PostgreSQL, Python and systemd (RELEASES);
the incident's state is the same on both. Images are tagged per release and
hash of sandbox/, so both stay cached side by side.

A sandbox is reached like production, over SSH (127.0.0.1:PORT, key in
.sandbox/id_ed25519). It starts in the state of the incident this runner
exists to fix (sandbox/incident/). Up and down are idempotent; several
sandboxes run side by side with distinct names and ports.

``--operator password`` adds a login user ``deploy`` (same SSH key) with sudo
rights that need its password (``nopasswd``: a NOPASSWD rule) and makes the
sandbox's inventory connect as that user through sudo; the password is only in
the sandbox's own secret source (``.sandbox/NAME/secrets.env``, as
LITELLM_SUDO_PASSWORD). ``--no-root-login`` makes sshd refuse root.

Differences from production (see docs/sandbox.md): Prisma's engines cannot be downloaded
here, so the proxy uses its database through the query engine the runner ships
(``litellm_query_engine``, docs/query-engine.md); its model routes to the stub
model server (``SANDBOX_MODELS``); the secrets come from a generated
.sandbox/secrets.env.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from litellm_runner import exitcodes

REPO = pathlib.Path(__file__).resolve().parents[2]  # the clone: the sandbox is a tool of the repository
STATE = REPO / ".sandbox"
CONTEXT = REPO / "sandbox"
ROOTFS_IMAGE = "localhost/litellm-sandbox-rootfs"  # tagged by release codename
IMAGE = "localhost/litellm-sandbox"  # tagged CODENAME-HASH
# codename -> what the release ships (verified in the images; see docs/real-hosts.md, Supported releases)
RELEASES = {
    "bookworm": {"version": "12", "postgresql": "15", "python": "3.11", "systemd": "252"},
    "trixie": {"version": "13", "postgresql": "17", "python": "3.13", "systemd": "257"},
}
DEFAULT_RELEASE = "bookworm"
DEFAULT_NAME = "litellm-sandbox"
DEFAULT_PORT = 2222
# crun cannot run on these hosts' hybrid cgroups; podman's default rlimits
# exceed what the host may grant (no CAP_SYS_RESOURCE). See ../shared/sandbox.md.
RUN_FLAGS = ["--runtime", "runc", "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
DEBIAN_PACKAGES = "systemd,systemd-sysv,dbus,dbus-user-session,python3,sudo,procps"
# The sandbox's model list: local-vllm on the stub model server of litellm-rerank (it answers every
# model name; files/bin/litellm-stub-server). Production keeps group_data's own list.
SANDBOX_MODELS = [
    {
        "model_name": "local-vllm",
        "litellm_params": {
            "model": "hosted_vllm/local-model",
            "api_base": "http://127.0.0.1:8079/v1",
            "api_key": "os.environ/VLLM_API_KEY",
        },
    },
]
# The wheels a sandbox's venvs install, downloaded once per clone (``wheelhouse``) and mounted read-only in every
# sandbox, whose pip then reads them instead of the package index (no-index). Every venv the suite builds
# (each first converge, each venv a test breaks) otherwise fetched the index's page of each of the lock's
# 127 packages and the files again: about 20 s of a 2-core machine per venv. The deploy's pip still
# installs with --require-hashes from the lock: a wheel that is not the lock's is refused as from an index.
WHEELS = STATE / "wheels"  # one folder per release and hash of what it holds
WHEELS_IN_SANDBOX = "/var/cache/litellm-sandbox/wheels"
# the versions the integration tests install by hand on a sandbox besides the locks (test_check, test_repair:
# a package downgraded; test_venv_lock: a package no lock has); a new one belongs here
PLANTED_WHEELS = ("pyasn1==0.6.1", "urllib3==2.5.0", "iniconfig==2.0.0")
OPERATOR = "deploy"  # the login user of --operator (Debian has a system group "operator")
OPERATOR_MODES = ("password", "nopasswd")


class SandboxError(RuntimeError):
    pass


def _run(cmd, timeout=120, check=True, input=None, capture=True):
    try:
        proc = subprocess.run(
            cmd,
            input=input,
            timeout=timeout,
            text=True,
            stdout=subprocess.PIPE if capture else None,
            stderr=subprocess.PIPE if capture else None,
        )
    except subprocess.TimeoutExpired as exc:
        raise SandboxError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} timed out after {timeout}s") from exc
    if check and proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd[:3])} ... failed ({proc.returncode}): {(proc.stderr or '').strip()[-2000:]}")
    return proc


def _image_exists(ref: str) -> bool:
    return _run(["podman", "image", "exists", ref], check=False).returncode == 0


def _mirror() -> str:
    sources = pathlib.Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def release(name: str) -> str:
    """The codename of the Debian release NAME (``12``, ``13``, ``bookworm``, ``trixie``)."""
    for codename, facts in RELEASES.items():
        if name in (codename, facts["version"]):
            return codename
    choices = ", ".join(f"{f['version']} or {c}" for c, f in RELEASES.items())
    raise SandboxError(f"release: expected {choices}, not {name!r}")


def rootfs_ref(codename: str = DEFAULT_RELEASE) -> str:
    return f"{ROOTFS_IMAGE}:{codename}"


def build_rootfs(codename: str = DEFAULT_RELEASE) -> None:
    """A minimal rootfs of Debian CODENAME with systemd, imported as a podman image (cached)."""
    ref = rootfs_ref(codename)
    if _image_exists(ref):
        return
    with tempfile.TemporaryDirectory(prefix="litellm-rootfs-") as tmp:
        rootfs = pathlib.Path(tmp) / "rootfs"
        print(f"sandbox: debootstrap {codename} (about a minute)", flush=True)
        _run(
            ["debootstrap", "--variant=minbase", f"--include={DEBIAN_PACKAGES}", codename, str(rootfs), _mirror()],
            timeout=900,
        )
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            subprocess.run(
                ["podman", "import", "-", ref], stdin=tar.stdout, check=True, timeout=300, stdout=subprocess.DEVNULL
            )


def _context_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(CONTEXT.rglob("*")):
        rel = path.relative_to(CONTEXT)
        # seed.py is copied in at start (podman cp), so editing it needs no rebuild
        if path.is_file() and "build" not in rel.parts and path.name != "seed.py":
            digest.update(str(rel).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _pip_conf() -> str:
    """The control machine's pip settings that make sense inside the sandbox."""
    out = ["[global]", "cert = /etc/ssl/certs/ca-certificates.crt", "timeout = 180"]
    index = _run(["pip", "config", "get", "global.index-url"], check=False).stdout.strip()
    if index and not index.startswith("file:"):
        out.append(f"index-url = {index}")
    return "\n".join(out) + "\n"


def image_ref(codename: str = DEFAULT_RELEASE) -> str:
    return f"{IMAGE}:{codename}-{_context_hash()}"


def build_image(codename: str = DEFAULT_RELEASE) -> str:
    """Build the sandbox image of release CODENAME on its rootfs, cached by release and the hash of sandbox/."""
    ref = image_ref(codename)
    if _image_exists(ref):
        return ref
    with _state_lock(f".build-{codename}.lock"):  # a second builder waits, then finds the image
        return ref if _image_exists(ref) else _build_image(codename, ref)


def _build_image(codename: str, ref: str) -> str:
    build_rootfs(codename)
    build = CONTEXT / "build"
    build.mkdir(exist_ok=True)
    # the package index is reached only with the host's CA bundle (shared/sandbox.md)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", build / "ca-certificates.crt")
    (build / "pip.conf").write_text(_pip_conf())
    print(f"sandbox: building {ref} (a few minutes the first time)", flush=True)
    _run(
        [
            "podman",
            "build",
            *RUN_FLAGS,
            "--build-arg",
            f"ROOTFS={rootfs_ref(codename)}",
            "--build-arg",
            f"PG_VERSION={RELEASES[codename]['postgresql']}",
            "-t",
            ref,
            "-f",
            str(CONTEXT / "Containerfile"),
            str(CONTEXT),
        ],
        timeout=1800,
    )
    return ref


def venv_locks(codename: str = DEFAULT_RELEASE) -> list[pathlib.Path]:
    """The venv locks a sandbox of CODENAME installs from: the deploy's and the test fixtures', for its Python."""
    name = f"*.py{RELEASES[codename]['python']}.txt"
    return sorted([*(REPO / "files" / "locks").glob(name), *(REPO / "tests" / "fixtures").glob(f"**/locks/{name}")])


def wheelhouse(codename: str = DEFAULT_RELEASE) -> pathlib.Path:
    """The folder of the wheels of every lock of ``venv_locks`` and of PLANTED_WHEELS, for a sandbox of CODENAME.

    Downloaded once (cached by the hash of the image, the locks and the planted wheels) by the pip the
    release's venvs have, in a throwaway container of the sandbox image, so the wheels are the ones the
    deploy's pip picks for that Python and platform; the lock's hashes are checked on download and again
    by the deploy's ``pip install --require-hashes``. Folders of older locks of CODENAME are removed.
    """
    ref = build_image(codename)
    locks = venv_locks(codename)
    digest = hashlib.sha256(ref.encode())
    for path in locks:
        digest.update(path.read_bytes())
    digest.update(" ".join(PLANTED_WHEELS).encode())
    folder = WHEELS / f"{codename}-{digest.hexdigest()[:12]}"
    if folder.is_dir():
        return folder
    with _state_lock(f".wheels-{codename}.lock"):  # a second sandbox of the release waits, then finds it
        if folder.is_dir():
            return folder
        WHEELS.mkdir(exist_ok=True)
        tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{codename}-", dir=WHEELS))
        try:
            for number, lock in enumerate(locks):
                shutil.copy(lock, tmp / f"lock-{number}.txt")
            pip = "/tmp/pip/bin/pip download -q --disable-pip-version-check --no-deps --only-binary :all: -d /wheels"
            script = " && ".join(
                [
                    "python3 -m venv /tmp/pip",  # the pip of the release's venvs, as the deploy makes them
                    *(f"{pip} --require-hashes -r /wheels/lock-{number}.txt" for number in range(len(locks))),
                    f"{pip} {' '.join(PLANTED_WHEELS)}",
                    "rm /wheels/lock-*.txt",
                ]
            )
            print(f"sandbox: downloading the wheels of {len(locks)} lock(s) for {codename} into {folder}", flush=True)
            _run(["podman", "run", "--rm", *RUN_FLAGS, "-v", f"{tmp}:/wheels", ref, "sh", "-euc", script], timeout=1800)
            tmp.chmod(0o755)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        for old in WHEELS.glob(f"{codename}-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    return folder


def _pip_from_wheelhouse(name: str) -> None:
    """Make the sandbox NAME's pip read the mounted wheelhouse only: a global pip config beside the image's."""
    config = f"[global]\nno-index = true\nfind-links = {WHEELS_IN_SANDBOX}\n"
    _exec(name, "mkdir -p /etc/xdg/pip && cat > /etc/xdg/pip/pip.conf", input=config)


@contextlib.contextmanager
def _state_lock(name: str = ".create.lock"):
    """One process at a time creates the shared state (several test workers start sandboxes at once)."""
    STATE.mkdir(mode=0o700, exist_ok=True)
    with open(STATE / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _ssh_key() -> pathlib.Path:
    key = STATE / "id_ed25519"
    with _state_lock():
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "litellm-sandbox", "-f", str(key)])
    return key


def secrets_file() -> pathlib.Path:
    """The sandbox's secret source (the operator's secrets file in production)."""
    path = STATE / "secrets.env"
    with _state_lock():
        if path.exists():
            return path
        password = secrets.token_hex(20)
        lines = [
            f"LITELLM_MASTER_KEY=sk-{secrets.token_hex(24)}",
            f"LITELLM_SALT_KEY=sk-{secrets.token_hex(24)}",
            f"DATABASE_URL=postgresql://litellm:{password}@127.0.0.1:5434/litellm",
            "VLLM_API_KEY=dummy",  # a placeholder: the runner must write it empty
        ]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return path


def _db_password() -> str:
    for line in secrets_file().read_text().splitlines():
        if line.startswith("DATABASE_URL="):
            match = re.match(r"postgresql://[^:]+:([^@]+)@", line.split("=", 1)[1])
            if match:
                return match.group(1)
    raise SandboxError(
        f"{secrets_file()}: DATABASE_URL has no password (expected postgresql://user:password@host:port/db)"
    )


def _state(name: str) -> pathlib.Path:
    return STATE / name


def _container_state(name: str) -> str | None:
    proc = _run(["podman", "container", "inspect", "--format", "{{.State.Status}}", name], check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _wait_running(name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = _run(
            ["podman", "exec", name, "systemctl", "is-system-running"], check=False, timeout=30
        ).stdout.strip()
        if status in ("running", "degraded"):
            return
        time.sleep(1)
    raise SandboxError(f"sandbox {name}: systemd did not reach running within {timeout}s (last: {status!r})")


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
                if sock.recv(4).startswith(b"SSH"):
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise SandboxError(f"sandbox: no SSH answer on 127.0.0.1:{port} within {timeout}s")


SANDBOX_WORKERS = 2  # litellm_num_workers of a sandbox host (see up())


def host_data(name: str) -> dict:
    """pyinfra host data of a running sandbox, as written by up()."""
    return json.loads((_state(name) / "host.json").read_text())


def _exec(name: str, script: str, input: str | None = None, timeout: int = 60) -> None:
    """Run the shell SCRIPT as root inside the sandbox NAME."""
    _run(["podman", "exec", "-i", name, "sh", "-euc", script], input=input, timeout=timeout)


def _sudo_secrets(name: str) -> pathlib.Path:
    """The sandbox NAME's own secret source: the shared secrets plus its operator's sudo password (kept)."""
    path = _state(name) / "secrets.env"
    if not path.exists():
        _state(name).mkdir(mode=0o700, parents=True, exist_ok=True)
        text = secrets_file().read_text().rstrip("\n") + f"\nLITELLM_SUDO_PASSWORD={secrets.token_hex(16)}\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    return path


def _sudo_password(name: str) -> str:
    for line in _sudo_secrets(name).read_text().splitlines():
        if line.startswith("LITELLM_SUDO_PASSWORD="):
            return line.split("=", 1)[1]
    raise SandboxError(f"{_sudo_secrets(name)}: no LITELLM_SUDO_PASSWORD")


def _setup_operator(name: str, mode: str, pub: str) -> None:
    """The login user OPERATOR: SSH key, a password, sudo with it (MODE password) or without (nopasswd)."""
    rule = f"{OPERATOR} ALL=(ALL:ALL) {'ALL' if mode == 'password' else 'NOPASSWD: ALL'}"
    _exec(
        name,
        f"id -u {OPERATOR} >/dev/null 2>&1 || useradd --create-home --shell /bin/bash {OPERATOR}\n"
        f"install -d -m 0700 -o {OPERATOR} -g {OPERATOR} /home/{OPERATOR}/.ssh\n"
        f"printf '%s\\n' '{rule}' > /etc/sudoers.d/{OPERATOR}.tmp\n"
        f"chmod 0440 /etc/sudoers.d/{OPERATOR}.tmp && visudo -cqf /etc/sudoers.d/{OPERATOR}.tmp\n"
        f"mv /etc/sudoers.d/{OPERATOR}.tmp /etc/sudoers.d/{OPERATOR}",
    )
    _exec(
        name,
        f"umask 077 && cat > /home/{OPERATOR}/.ssh/authorized_keys && "
        f"chown {OPERATOR}: /home/{OPERATOR}/.ssh/authorized_keys",
        input=pub,
    )
    _exec(name, "chpasswd", input=f"{OPERATOR}:{_sudo_password(name)}\n")


def _root_login(name: str, allowed: bool) -> None:
    """sshd lets root in (the default) or refuses it (PermitRootLogin no)."""
    conf = "/etc/ssh/sshd_config.d/10-root-login.conf"
    _exec(
        name,
        (f"rm -f {conf}" if allowed else f"echo 'PermitRootLogin no' > {conf}")
        + " && systemctl try-reload-or-restart ssh",
    )


def _container_release(name: str) -> str | None:
    """The release codename of the existing container NAME's image (None: not a sandbox image of ours)."""
    proc = _run(["podman", "container", "inspect", "--format", "{{.ImageName}}", name], check=False)
    tag = proc.stdout.strip().rsplit(":", 1)[-1]
    return next((c for c in RELEASES if tag.startswith(f"{c}-")), None)


def up(
    name: str = DEFAULT_NAME,
    port: int = DEFAULT_PORT,
    operator: str | None = None,
    root_login: bool = True,
    debian: str = DEFAULT_RELEASE,
) -> dict:
    """Start (building if needed) the sandbox NAME of Debian release DEBIAN with SSH on 127.0.0.1:PORT.

    OPERATOR (``password`` or ``nopasswd``): reach it as the login user
    ``deploy`` through sudo (see the module's doc); ROOT_LOGIN false: sshd refuses root.
    An existing NAME of another release is refused (remove it with ``down`` first).
    """
    if operator not in (None, *OPERATOR_MODES):
        raise SandboxError(f"operator: expected one of {', '.join(OPERATOR_MODES)}, not {operator!r}")
    codename = release(debian)
    key = _ssh_key()
    secrets_file()
    status = _container_state(name)
    if status is not None and _container_release(name) not in (codename, None):
        raise SandboxError(
            f"sandbox {name} runs Debian {_container_release(name)}, not {codename}: "
            f"remove it first (down --name {name}) or choose another name"
        )
    if status is None:
        ref = build_image(codename)
        wheels = wheelhouse(codename)
        _run(
            [
                "podman",
                "run",
                "-d",
                "--name",
                name,
                *RUN_FLAGS,
                # root on a real host may read every process's /proc/PID/exe and fd/ (the account sweep's
                # evidence and listener owners, docs/sweep.md); podman drops that capability by default
                "--cap-add",
                "SYS_PTRACE",
                "--systemd=always",
                "--hostname",
                name,
                "-p",
                f"127.0.0.1:{port}:22",
                "-v",
                f"{wheels}:{WHEELS_IN_SANDBOX}:ro",
                ref,
                "/sbin/init",
            ]
        )
    elif status != "running":
        _run(["podman", "start", name])
    _wait_running(name)
    if status is None:
        _pip_from_wheelhouse(name)
    pub = key.with_suffix(".pub").read_text()
    _run(["podman", "exec", "-i", name, "sh", "-c", "umask 077 && cat > /root/.ssh/authorized_keys"], input=pub)
    if operator:
        _setup_operator(name, operator, pub)
    _root_login(name, root_login)
    # a podman trap (docs/sandbox.md): logind stops the login user's manager 10 s after its last
    # session, the stop can hang for 2 min in a container ("Processes still around after final SIGKILL"),
    # and the next SSH login waits for it; lingering keeps the login users' managers running between runs
    _run(["podman", "exec", name, "loginctl", "enable-linger", "root", *([OPERATOR] if operator else [])])
    seeded = _run(["podman", "exec", name, "test", "-e", "/var/lib/litellm-sandbox-seeded"], check=False)
    if seeded.returncode != 0:
        _run(["podman", "cp", str(CONTEXT / "incident" / "seed.py"), f"{name}:/opt/sandbox/incident/seed.py"])
        _run(
            [
                "podman",
                "exec",
                "-i",
                name,
                "runuser",
                "-u",
                "postgres",
                "--",
                "/opt/sandbox/venv/bin/python",
                "/opt/sandbox/incident/seed.py",
            ],
            input=json.dumps({"db_password": _db_password()}),
            timeout=300,
        )
        _run(["podman", "exec", name, "touch", "/var/lib/litellm-sandbox-seeded"])
    published = _run(["podman", "port", name, "22/tcp"]).stdout.strip()
    port = int(published.rsplit(":", 1)[1])
    _wait_port(port)
    state = _state(name)
    state.mkdir(mode=0o700, parents=True, exist_ok=True)
    known_hosts = state / "known_hosts"
    known_hosts.unlink(missing_ok=True)
    data = {
        "name": name,
        "ssh_hostname": "127.0.0.1",
        "ssh_port": port,
        "ssh_user": "root",
        "ssh_key": str(key),
        "ssh_known_hosts_file": str(known_hosts),
        "ssh_strict_host_key_checking": "accept-new",
        "litellm_sandbox": True,
        # Prisma's engines cannot be downloaded here: the proxy uses its database through the shipped engine
        "litellm_query_engine": True,
        # the sandbox's model is served by its stub model server, so a first completion answers
        "litellm_model_list": SANDBOX_MODELS,
        "litellm_secrets_file": str(secrets_file()),
        # the incident's key that expires in 5 days: the runner rotates it
        "litellm_key_rotation": [{"alias": "ops-team", "min_days_left": 14, "valid_days": 90, "grace_hours": 24}],
        # a sandbox is a small host: 2 proxy workers (the default is 4) start in a third of the time on a
        # 2-core machine, which every converge that restarts the proxy waits for; still several workers,
        # so what differs per worker (a table each polls, a tool list each fetched) is exercised
        "litellm_num_workers": SANDBOX_WORKERS,
        # proxy workers on a busy 2-core machine can take minutes of uvicorn start-up restarts
        "litellm_ready_timeout": 600,
    }
    if operator:
        # the sudo password is read from the secret source by the inventory loader, never stored here
        data.update({"ssh_user": OPERATOR, "_sudo": True, "litellm_secrets_file": str(_sudo_secrets(name))})
    (state / "host.json").write_text(json.dumps(data, indent=2))
    return data


def down(name: str = DEFAULT_NAME) -> None:
    """Remove the sandbox NAME and its state; nothing to do if it is gone."""
    if _container_state(name) is not None:
        # killed at once: systemd as PID 1 ignores SIGTERM (it stops on SIGRTMIN+3), so a grace period
        # only waited 5 s for the kill on every sandbox a test run removes; nothing in it is kept
        _run(["podman", "rm", "-f", "-t", "0", name], timeout=120)
    shutil.rmtree(_state(name), ignore_errors=True)


def running() -> list[str]:
    """Names of the sandboxes this checkout has started."""
    if not STATE.exists():
        return []
    return sorted(p.parent.name for p in STATE.glob("*/host.json"))


def main(argv=None, prog: str = "python -m litellm_runner.sandbox") -> int:
    """up, down, build or list sandboxes: exit codes of litellm_runner.exitcodes."""
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("action", choices=["up", "down", "build", "list"])
    parser.add_argument("--name", default=DEFAULT_NAME)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--all", action="store_true", help="down: every sandbox of this checkout")
    parser.add_argument(
        "--release",
        default=DEFAULT_RELEASE,
        choices=[n for codename, facts in RELEASES.items() for n in (facts["version"], codename)],
        help="build, up: the Debian release, 12 or bookworm (the default), 13 or trixie",
    )
    parser.add_argument(
        "--operator",
        choices=OPERATOR_MODES,
        help="up: connect as the login user 'deploy' through sudo, with a sudo password or without",
    )
    parser.add_argument(
        "--no-root-login",
        dest="root_login",
        action="store_false",
        help="up: sshd refuses root (reach the sandbox through --operator)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "build":  # the image, the SSH key and the secrets, before sandboxes start in parallel
            print(build_image(release(args.release)))
            wheelhouse(release(args.release))
            _ssh_key()
            secrets_file()
        elif args.action == "up":
            data = up(args.name, args.port, args.operator, args.root_login, args.release)
            print(
                f"sandbox {args.name}: running, ssh {data['ssh_user']}@127.0.0.1 -p {data['ssh_port']} "
                f"-i {data['ssh_key']}{' (sudo)' if data.get('_sudo') else ''}"
            )
        elif args.action == "down":
            names = running() if args.all else [args.name]
            if args.all:
                names += [
                    n
                    for n in _run(["podman", "ps", "-a", "--format", "{{.Names}}"]).stdout.split()
                    if n.startswith(DEFAULT_NAME) and n not in names
                ]
            for name in names:
                down(name)
                print(f"sandbox {name}: removed")
        else:
            print("\n".join(running()))
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
