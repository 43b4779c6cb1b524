"""Rotation after a compromise (issue #27 item 2, docs/rotation.md), on a host of its own.

A fresh sandbox is converged with a copy of the sandbox's secrets file (its own secret source:
the rotation rewrites it, and the shared one must stay as the other sandboxes were made with).
Its database then holds a model added through the proxy (LiteLLM encrypts its litellm_params
under the salt key), an MCP server whose credential is encrypted the same way, and a virtual
key. Then, in order:

1. ``litellm-runner rotate`` is killed (SIGKILL, with its host-side process) while its one
   transaction waits on a row lock this test holds: the event is the rotation's session seen
   waiting in pg_stat_activity, not a sleep. The old master key, the old virtual key and the
   stored model still work; the secrets file and the env file are as before; the staged file is kept.
2. ``litellm-runner rotate`` again resumes with the staged values and completes: the proxy serves
   the stored model with its re-encrypted credentials, the new master key works, the old one gets
   401, the old virtual key 401 and its replacement (from the operator's 0600 keys file) 200, the
   MCP credential decrypts under the new salt key only, the old database password is refused. No
   new or old secret appears in the run's output (canaries: every value).

Run: LITELLM_IT_SANDBOX=rot-it LITELLM_IT_PORT=2731 \
     .venv/bin/python -m pytest tests/integration/test_rotate.py -v -p no:cacheprovider
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from litellm_runner import envfile, layout, sandbox
from litellm_runner.envfile import fingerprint
from litellm_runner.secrets import read_secrets_file
from tests.integration.test_proxy_database import MODEL_WAIT, PSQL, call, chat
from tests.support.hosts import REPO, fresh_sandbox, pyinfra, ssh_argv
from tests.unit.test_rotate_tool import load

NAME = os.environ.get("LITELLM_IT_SANDBOX", "litellm-sandbox-it") + "-rotate"
PORT = int(os.environ.get("LITELLM_IT_PORT", "2290")) + 47
MODEL = "rotate-db-model"
ANSWER = "pong from rerank for db-model"  # the stub model server's answer for the stored model
MCP_SECRET = f"mcp-canary-{uuid.uuid4().hex}"
WAITING = "SELECT pid FROM pg_stat_activity WHERE application_name = 'litellm-rotate' AND wait_event_type = 'Lock'"
EVENT_WAIT = 300  # seconds for the rotation's transaction to be seen waiting on the lock
# run by sh on the host: when the rotation's session waits on the lock (its transaction open, its values
# being rewritten), SIGKILL its process (litellm-rotate apply, found by its command line); exit 1 if never
KILL_AT_EVENT = f"""
i=0
while [ $i -lt {EVENT_WAIT * 5} ]; do
  if [ -n "$({PSQL} -c "{WAITING}")" ]; then
    pid=$(pgrep -f '^[^ ]*python[^ ]* [^ ]*/litellm-rotate apply')
    [ -n "$pid" ] && kill -KILL $pid && echo "$pid" && exit 0
  fi
  i=$((i + 1)); sleep 0.2
done
exit 1
"""
tool = load()


class Secret(str):
    """A secret value: itself wherever it is used, a fingerprint wherever pytest shows it (a failing
    assertion, a frame's arguments in a traceback)."""

    def __repr__(self) -> str:
        return f"Secret({fingerprint(self)})"


def secret_values(path) -> dict[str, Secret]:
    return {k: Secret(v) for k, v in read_secrets_file(path).items()}


@pytest.fixture(scope="module")
def rot(tmp_path_factory):
    """The converged host, its own secrets file, and what the test planted in its database."""
    tmp = tmp_path_factory.mktemp("rotate")
    secrets = tmp / "secrets.env"
    shutil.copyfile(sandbox.secrets_file(), secrets)
    secrets.chmod(0o600)
    env = {"LITELLM_SECRETS_FILE": str(secrets)}
    with contextlib.ExitStack() as cleanup:
        # the secrets and keys of a host that is gone (this test's, and the converge's db-05 key): leave none behind
        cleanup.callback(shutil.rmtree, tmp, True)
        cleanup.callback(shutil.rmtree, REPO / ".secrets" / "keys" / NAME, True)
        host = cleanup.enter_context(fresh_sandbox(NAME, PORT))
        run = pyinfra([host.name], "-y", env=env)
        assert run.returncode == 0, run.why
        host.wait_for("curl -sf http://127.0.0.1:4000/health/readiness", timeout=600)
        old = secret_values(secrets)
        master = old["LITELLM_MASTER_KEY"]
        added = call(
            host,
            "POST",
            "/model/new",
            master,
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": "hosted_vllm/db-model",
                    "api_base": "http://127.0.0.1:8079/v1",
                    "api_key": "none",
                },
            },
        )
        assert added["status"] == 200, added
        key = call(host, "POST", "/key/generate", master, {"key_alias": "rotate-it"})
        assert key["status"] == 200, key
        sealed = tool.encrypt(MCP_SECRET, old["LITELLM_SALT_KEY"], like="")  # as LiteLLM's encrypt_credentials
        sql(
            host,
            """INSERT INTO "LiteLLM_MCPServerTable" (server_id, server_name, url, transport, credentials,
               created_by, updated_by) VALUES ('rotate-mcp', 'rotate_mcp', 'http://127.0.0.1:9/mcp', 'http',
               jsonb_build_object('auth_value', :'v'::text), 'test', 'test')""",
            v=sealed,
        )
        served(host, master)
        yield {
            "host": host,
            "secrets": secrets,
            "keys_dir": tmp / "keys",
            "old": old,
            "key": Secret(key["body"]["key"]),
        }


def sql(host, query: str, **params: str) -> str:
    variables = " ".join(f"-v {k}={shlex.quote(v)}" for k, v in params.items())
    return host.out(f"{PSQL} {variables}", input=query + "\n")


def served(host, key: str) -> dict:
    """The stored model answers with KEY four times in a row (workers poll the table), within MODEL_WAIT."""
    deadline, ok, answer = time.monotonic() + MODEL_WAIT, 0, {}
    while ok < 4 and time.monotonic() < deadline:
        answer = chat(host, key, model=MODEL)
        ok = ok + 1 if answer["status"] == 200 else 0
        if answer["status"] != 200:
            time.sleep(3)
    assert ok >= 4, answer
    assert answer["body"]["choices"][0]["message"]["content"] == ANSWER
    return answer


def rotate_command(rot) -> tuple[list[str], dict]:
    command = [sys.executable, "-m", "litellm_runner.cli.main", "rotate", "--keys-dir", str(rot["keys_dir"])]
    env = {k: v for k, v in os.environ.items() if k not in ("LITELLM_INVENTORY", *envfile_names())}
    env.update({"LITELLM_SANDBOXES": rot["host"].name, "LITELLM_SECRETS_FILE": str(rot["secrets"])})
    env["PYINFRA_PROGRESS"] = "off"
    return command, env


def envfile_names() -> tuple[str, ...]:
    return ("LITELLM_MASTER_KEY", "LITELLM_SALT_KEY", "DATABASE_URL")


def env_file(host) -> dict[str, Secret]:
    return {k: Secret(v) for k, v in envfile.loads(host.out(f"cat {layout.ENV_FILE}"), "env.litellm").items()}


def stored_values(host) -> list[str]:
    """Every string stored in the model's litellm_params and the MCP server's credentials."""
    rows = sql(
        host,
        """SELECT litellm_params::text FROM "LiteLLM_ProxyModelTable" WHERE model_name = :'m'
           UNION ALL SELECT credentials::text FROM "LiteLLM_MCPServerTable" WHERE server_id = 'rotate-mcp'""",
        m=MODEL,
    )
    return [v for line in rows.splitlines() for v in json.loads(line).values() if isinstance(v, str)]


def test_a_rotation_killed_midway_leaves_the_old_secrets_working(rot):
    host, secrets = rot["host"], rot["secrets"]
    before_file, before_env = secrets.read_bytes(), env_file(host)
    holder = subprocess.Popen(  # holds every stored model row until it is ended
        [
            *ssh_argv(host.name),
            "root@127.0.0.1",
            f"{PSQL} -c 'BEGIN' -c 'SELECT 1 FROM \"LiteLLM_ProxyModelTable\" FOR UPDATE' -c 'SELECT pg_sleep(600)'",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    command, env = rotate_command(rot)
    log = open(secrets.parent / "killed.log", "w")
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # on the host, with no round trip per look: the event, then its process killed at once
        found = host.ssh("sh -s", input=KILL_AT_EVENT, timeout=EVENT_WAIT + 60, check=False)
        assert found.returncode == 0, (found.stderr, proc.poll(), (secrets.parent / "killed.log").read_text()[-3000:])
        os.killpg(proc.pid, signal.SIGKILL)  # and the control machine's run
        proc.wait(timeout=60)
        host.wait_for(
            f'{PSQL} -c "SELECT 1 WHERE NOT EXISTS (SELECT FROM pg_stat_activity '
            "WHERE application_name = 'litellm-rotate')\" | grep -qx 1",
            timeout=60,
        )
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
        holder.kill()
        holder.wait(timeout=60)
        sql(
            host,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query LIKE '%pg_sleep(600)%' AND pid <> pg_backend_pid()",
        )
        log.close()
    assert secrets.read_bytes() == before_file  # the old secrets stay in force
    assert (secrets.parent / "secrets.env.rotating").stat().st_mode & 0o777 == 0o600  # kept for the resume
    assert env_file(host) == before_env
    old_salt = rot["old"]["LITELLM_SALT_KEY"]
    assert any(tool.decrypt(v, old_salt) for v in stored_values(host))  # still under the old salt key
    served(host, rot["old"]["LITELLM_MASTER_KEY"])
    assert chat(host, rot["key"], model=MODEL)["status"] == 200  # the old virtual key still works
    assert not list(rot["keys_dir"].glob("*/*.keys"))  # no keys file of a rotation that did not happen


def test_the_resumed_rotation_rotates_everything_and_proves_it(rot):
    host, secrets, old = rot["host"], rot["secrets"], rot["old"]
    command, env = rotate_command(rot)
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "resuming the rotation staged in" in proc.stdout
    assert "proved through the proxy: new master key 200, old master key 401" in proc.stdout + proc.stderr
    new = secret_values(secrets)
    assert not (secrets.parent / "secrets.env.rotating").exists()
    for name in envfile_names():
        assert new[name] != old[name]
    assert {k: env_file(host)[k] for k in envfile_names()} == {k: new[k] for k in envfile_names()}
    # the new keys, once, in the operator's file (0600); the old virtual key is refused, its replacement works
    [keys_file] = rot["keys_dir"].glob(f"{host.name}/rotation-*.keys")
    assert keys_file.stat().st_mode & 0o777 == 0o600
    rows = [line.split() for line in keys_file.read_text().splitlines() if not line.startswith("#")]
    [new_key] = [Secret(raw) for alias, _, raw in rows if alias == "rotate-it"]
    canaries = [*(old[n] for n in envfile_names()), *(new[n] for n in envfile_names()), *(Secret(r[2]) for r in rows)]
    canaries += [Secret(new["DATABASE_URL"].split(":")[2].split("@")[0]), rot["key"]]
    output = proc.stdout + proc.stderr
    assert [c for c in canaries if c in output] == []
    # through the real proxy: the stored model is served with its re-encrypted credentials
    served(host, new["LITELLM_MASTER_KEY"])
    assert call(host, "GET", "/v1/models", old["LITELLM_MASTER_KEY"])["status"] == 401
    assert chat(host, rot["key"], model=MODEL)["status"] == 401
    assert chat(host, new_key, model=MODEL)["status"] == 200
    assert hashlib.sha256(new_key.encode()).hexdigest() in sql(host, 'SELECT token FROM "LiteLLM_VerificationToken"')
    # the stored ciphertexts: under the new salt key only, the MCP credential intact
    values = stored_values(host)
    assert not [v for v in values if tool.decrypt(v, old["LITELLM_SALT_KEY"])]
    assert MCP_SECRET in [tool.decrypt(v, new["LITELLM_SALT_KEY"]) for v in values]
    # the database refuses the old password and takes the new one
    probe = f"cd / && runuser -u litellm -- {layout.VENV}/bin/python -I -c " + shlex.quote(
        "import sys, psycopg\ntry:\n"
        "    psycopg.connect(sys.stdin.read().strip(), connect_timeout=10).close(); print('ok')\n"
        "except psycopg.OperationalError: print('refused')"
    )
    assert host.out(probe, input=old["DATABASE_URL"]) == "refused"
    assert host.out(probe, input=new["DATABASE_URL"]) == "ok"
