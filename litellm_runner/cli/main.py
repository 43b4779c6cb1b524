"""litellm-runner: the runner's command-line tools under one name.

    litellm-runner COMMAND [ARGS...]      # litellm-runner COMMAND --help for each
    litellm-runner --version
    python -m litellm_runner.cli.main COMMAND [ARGS...]

Each subcommand is the ``main(argv, prog)`` of its module, which also runs alone
(``python -m MODULE``); every one exits with the codes of litellm_runner.exitcodes.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys

from litellm_runner import exitcodes

PROG = "litellm-runner"
COMMANDS = {  # subcommand -> (module with main(argv, prog), summary)
    "validate": ("litellm_runner.cli.validate", "check every host's desired state without contacting any host"),
    "check": ("litellm_runner.cli.check", "drift check: has any host drifted from group_data?"),
    "report": ("litellm_runner.cli.report", "remediation report: found, changed, verified, still open"),
    "rotate": ("litellm_runner.cli.rotate", "rotate every secret after a compromise, then prove it through the proxy"),
    "lock": ("litellm_runner.cli.lock", "lock a project's pins of the hosts' venv (its full closure, with hashes)"),
    "lint": ("litellm_runner.gates.lint", "config security lint of a LiteLLM config.yaml and its env file"),
    "cve-gate": ("litellm_runner.gates.cve", "audit the locks of a pins file against the advisories"),
    "osv-server": ("litellm_runner.gates.osv_server", "serve an advisory file as a loopback OSV endpoint"),
    "sandbox": ("litellm_runner.sandbox", "throwaway LiteLLM hosts in podman: up, down, build, list"),
}


def parser() -> exitcodes.ArgumentParser:
    """The top-level parser: ``--help``, and a usage error for anything but a known subcommand."""
    summaries = "\n".join(f"  {name:<12}{summary}" for name, (_, summary) in COMMANDS.items())
    top = exitcodes.ArgumentParser(
        prog=PROG,
        description=__doc__.split("\n")[0] + "\n\ncommands:\n" + summaries,
        usage=f"{PROG} [-h] COMMAND [ARGS...]",
    )
    top.add_argument("--version", action="version", version=f"{PROG} {version()}")
    top.add_argument("command", metavar="COMMAND", choices=COMMANDS, help="one of: " + ", ".join(COMMANDS))
    return top


def version() -> str:
    """The installed distribution's version (pyproject.toml's), or the clone's when not installed."""
    try:
        return importlib.metadata.version("litellm-runner")
    except importlib.metadata.PackageNotFoundError:
        import tomllib

        from litellm_runner.resources import shipped

        pyproject = shipped().parent / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"] + " (not installed)"


def run(command: str, args: list[str]) -> int:
    """The subcommand COMMAND's main with ARGS; Ctrl-C exits INTERRUPTED without a traceback."""
    module = importlib.import_module(COMMANDS[command][0])
    try:
        return module.main(args, prog=f"{PROG} {command}")
    except KeyboardInterrupt:
        print(f"{PROG} {command}: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


def main(argv: list[str] | None = None) -> int:
    """``litellm-runner``: dispatch to a subcommand; exit codes as in exitcodes.TABLE."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args and args[0] in COMMANDS:
        return run(args[0], args[1:])
    parser().parse_args(args)  # prints help (exit 0) or a usage error (exit 64): a command would be handled above
    return exitcodes.USAGE


if __name__ == "__main__":
    sys.exit(main())
