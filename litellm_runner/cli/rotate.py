"""Rotate every secret after a compromise, as one deliberate act (docs/rotation.md).

    litellm-runner rotate [--secrets-file F] [--keys all|none|ALIAS,...] [--keys-dir D]
                          [--timeout S] [pyinfra args, e.g. --limit HOST]

Replaces the master key, the salt key (re-encrypting every credential LiteLLM stored under the old
one), the database role's password and the selected virtual keys (default: every key not blocked):

1. stage: new values are generated here and written to ``F.rotating`` (0600, next to the secrets
   file F); an existing one is an interrupted rotation and is resumed with its values;
2. apply: on each host, one database transaction (files/bin/litellm-rotate): re-encrypt, verify
   each value, new key hashes, ``ALTER ROLE``; the new raw keys go to D/<host>/rotation-*.keys (0600);
3. the staged file replaces F (one rename);
4. converge (``pyinfra inventory.py deploy.py -y``): the env file is rendered from F, the proxy
   restarts in the rolling order, gated on readiness;
5. prove, through each host's proxy: the new master key gets 200, the old one 401.

Values travel over a pipe to pyinfra and over standard input to the host, never on a command line,
in the environment, in the output or in a log. Secrets from the environment (which wins over the
file) are refused, with the exact steps to move them into the file.

Exit codes (litellm_runner.exitcodes): 0 rotated and proved, 1 a step failed (the message says
which and what is in force), 64 usage error (nothing touched).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

from litellm_runner import exitcodes, rotation
from litellm_runner.pyinfra_ext.rotation import INPUT_FD
from litellm_runner.resources import project, shipped
from litellm_runner.secrets import SecretError

DEPLOY = shipped("rotate_deploy.py")


def pyinfra(args: list[str], extra: list[str], given: dict | None, secrets_file: pathlib.Path, timeout: float) -> int:
    """``pyinfra inventory.py ARGS EXTRA`` from the project, its output passed through; GIVEN (JSON) on a pipe
    whose read end it inherits (INPUT_FD), LITELLM_SECRETS_FILE naming SECRETS_FILE. Its exit code."""
    env = {k: v for k, v in os.environ.items() if k != "PYINFRA_YES"}
    env["LITELLM_SECRETS_FILE"] = str(secrets_file)
    command = [sys.executable, "-m", "pyinfra", "inventory.py", *args, *extra]
    if given is None:
        return _run(command, env, timeout)
    read, write = os.pipe()
    env[INPUT_FD] = str(read)
    try:
        with os.fdopen(write, "w") as pipe:  # small: fits the pipe's buffer before pyinfra reads it
            pipe.write(json.dumps(given))
        return _run(command, env, timeout, (read,))
    finally:
        os.close(read)


def _run(command: list[str], env: dict, timeout: float, fds: tuple = ()) -> int:
    """COMMAND's exit code; 1 (with a line on stderr) when it did not finish within TIMEOUT (it is killed)."""
    try:
        return subprocess.run(command, cwd=project(), env=env, timeout=timeout, check=False, pass_fds=fds).returncode
    except subprocess.TimeoutExpired:
        print(f"litellm-runner rotate: pyinfra did not finish within {timeout:.0f}s (stopped)", file=sys.stderr)
        return exitcodes.FAILED


def main(argv: list[str] | None = None, prog: str = "litellm-runner rotate") -> int:
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--secrets-file", metavar="F", help="the secrets file (default: $LITELLM_SECRETS_FILE)")
    parser.add_argument("--keys", default="all", help="virtual keys to rotate: all (default), none, or aliases a,b")
    parser.add_argument("--keys-dir", metavar="D", help="folder for the new keys (default: .secrets/keys)")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S", help="seconds for each pyinfra run")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if "--dry" in extra:
        parser.error("--dry: a rotation cannot be tried without being done (docs/rotation.md); nothing was touched")
    named = args.secrets_file or os.environ.get("LITELLM_SECRETS_FILE")
    from_env = rotation.environment_sources()
    if from_env:
        print(f"{prog}: {rotation.instructions(from_env, named)}", file=sys.stderr)
        return exitcodes.USAGE
    if not named:
        print(
            f"{prog}: no secrets file: give --secrets-file F or LITELLM_SECRETS_FILE (the file your hosts' "
            "secrets come from; a rotation writes the new values there)",
            file=sys.stderr,
        )
        return exitcodes.USAGE
    secrets_file = pathlib.Path(named).absolute()
    keys_dir = pathlib.Path(args.keys_dir).absolute() if args.keys_dir else project(".secrets", "keys")
    try:
        old = rotation.values(secrets_file)
        staged, made = rotation.stage(secrets_file)
        new = rotation.values(staged)
    except (rotation.RotationError, SecretError, OSError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    print(
        f"{prog}: {'staged new secrets in' if made else 'resuming the rotation staged in'} {staged} "
        f"(0600; {', '.join(rotation.NAMES)}); {secrets_file} stays in force until every host has rotated",
        flush=True,
    )
    given = {"phase": "apply", "new": new, "keys": args.keys, "keys_dir": str(keys_dir)}
    if pyinfra([str(DEPLOY), "-y"], extra, given, secrets_file, args.timeout) != 0:
        print(
            f"{prog}: the database rotation failed on a host (above). A host whose transaction did not commit keeps "
            f"its old secrets, which stay in force ({secrets_file}); run {prog} again to resume with {staged}",
            file=sys.stderr,
        )
        return exitcodes.FAILED
    rotation.complete(secrets_file)
    print(f"{prog}: {secrets_file} holds the new secrets; converging (env file, rolling restart)", flush=True)
    if pyinfra(["deploy.py", "-y"], extra, None, secrets_file, args.timeout) != 0:
        print(
            f"{prog}: the converge failed (above): the databases and {secrets_file} are rotated; run the converge "
            "again (make converge) to render the env file and restart the proxy",
            file=sys.stderr,
        )
        return exitcodes.FAILED
    proof = {"phase": "prove", "old_master_key": old[rotation.MASTER], "new_master_key": new[rotation.MASTER]}
    if pyinfra([str(DEPLOY), "-y"], extra, proof, secrets_file, args.timeout) != 0:
        print(f"{prog}: the proof through the proxy failed (above)", file=sys.stderr)
        return exitcodes.FAILED
    print(f"{prog}: rotated and proved; new virtual keys (if any) are in {keys_dir}/<host>/", flush=True)
    return exitcodes.OK


if __name__ == "__main__":
    sys.exit(main())
