"""Where a converged host keeps what: every path the runner manages, declared once (docs/trust-boundary.md).

The service account writes only its state (``litellm_root``: ``state/``, ``artifacts/``, ``logs/``).
Everything the managed services execute or are configured by belongs to root along its whole path,
so the kernel, not the runner, keeps the account from changing it:

- ``CODE`` (root:root 0755): the venvs (installed by root from the hash-locked closure, wheels only, one per
  lock in ``venvs/``, the running one behind the ``venv`` link),
  the host tools (``bin/``), the lock and SBOM the venv was installed from;
- ``CONFIG`` (root:GROUP 0750): the rendered config, the env file and the compliance desired state,
  each root:GROUP 0640 (the account's group reads them, nobody else);
- ``UNITS``: the managed user units (root:root 0644), loaded by the account's lingering user manager;
- ``QUARANTINE`` (root:root 0700): what the account planted that would change a managed unit or
  service (``account_plants``), moved there with a manifest, never deleted.

Tasks, the host snapshot, the rendered units and the tests read these names from here, and so does the
host-side code: this file is shipped with it (``facts._boot``), so each constant both sides use is defined
here once. Stdlib only, no imports.
"""

from __future__ import annotations

CODE = "/usr/local/lib/litellm-runner"
VENV = f"{CODE}/venv"  # the stable path the units and tools name: root's symlink to VENVS/NAME (docs/venv-switch.md)
VENVS = f"{CODE}/venvs"  # one venv per lock (``render.venv_target``), built beside the running one
VENV_PREVIOUS = f"{CODE}/venv-previous"  # root's symlink to the venv before the last switch (kept, for a rollback)
BIN = f"{CODE}/bin"
LOCK = f"{CODE}/venv-requirements.txt"
SBOM = f"{CODE}/venv-sbom.cdx.json"

CONFIG = "/etc/litellm"
CONFIG_FILE = f"{CONFIG}/config.generated.yaml"
ENV_FILE = f"{CONFIG}/env.litellm"
COMPLIANCE = f"{CONFIG}/compliance-desired.json"

SYSTEM_PYTHON = "/usr/bin/python3"  # root's interpreter: the host-side code runs in it, isolated (-I)

UNITS = "/etc/systemd/user"
RUNNER_STATE = "/var/lib/litellm-runner"  # root's own state
CREATED = f"{RUNNER_STATE}/created-accounts"  # root's record of the accounts the runner made
RUN_LOCK = "/run/litellm-runner.lock"  # the host's run lock (pyinfra_ext/lock.py), on root's tmpfs
QUARANTINE = f"{RUNNER_STATE}/quarantine"
HOSTSIDE_CACHE = "/var/cache/litellm-runner"  # root's compiled host-side code, by its source's sha256 (hostboot.py)
RESTART_HELD = f"{RUNNER_STATE}/restart-held"  # a restart of litellm.service owed since a run that held it

CODE_MODE = "0755"  # code: readable by all, written by root only
CONFIG_MODE = "0750"  # config folder: root and the account's group
CONFIG_FILE_MODE = "0640"  # config files: root writes, the account's group reads
UNIT_MODE = "0644"

# The account's own files that would change a managed unit or service (hostside.account_plants reads them):
# its unit search paths, its manager's configuration and environment.d.
ACCOUNT_UNIT_DIRS = (
    "{home}/.config/systemd/user",
    "{home}/.config/systemd/user.control",
    "{home}/.local/share/systemd/user",
    "/run/user/{uid}/systemd/user",
    "/run/user/{uid}/systemd/user.control",
)
ACCOUNT_ENV_DIRS = ("{home}/.config/environment.d", "{home}/.config/systemd/user.conf.d")
ACCOUNT_ENV_FILES = ("{home}/.config/systemd/user.conf",)

# Variables the account's manager environment (``systemctl --user set-environment``) may carry that change what
# a managed service's interpreter or loader runs: every managed unit unsets them (``UnsetEnvironment=``).
UNSET_ENVIRONMENT = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "PYTHONINSPECT",
    "PYTHONEXECUTABLE",
    "PYTHONPLATLIBDIR",
    "PYTHONBREAKPOINT",
    "PYTHONWARNINGS",
    "LD_PRELOAD",
    "LD_LIBRARY_PATH",
    "LD_AUDIT",
    "NODE_OPTIONS",
)


def root_dirs(group: str) -> list[tuple[str, str, str, str]]:
    """``(path, user, group, mode)`` of every root-owned folder of the layout, parents first."""
    return [
        (CODE, "root", "root", CODE_MODE),
        (VENVS, "root", "root", CODE_MODE),
        (BIN, "root", "root", CODE_MODE),
        (CONFIG, "root", group, CONFIG_MODE),
        (RUNNER_STATE, "root", "root", "0755"),
        (QUARANTINE, "root", "root", "0700"),
    ]


def legacy(root: str) -> list[str]:
    """Where the account-owned layout (before issue #22, and the seed's) kept what root now keeps elsewhere:
    moved into QUARANTINE by the converge, so nothing runs or reads the account's copy any more. (Its old unit
    files in ``~/.config/systemd/user`` shadow the managed ones: ``account_plants`` moves them.)"""
    return [
        f"{root}/venv",
        f"{root}/bin",
        f"{root}/env.litellm",
        f"{root}/state/compliance-desired.json",
        f"{root}/state/venv-requirements.txt",
        f"{root}/state/venv-sbom.cdx.json",
        f"{root}/state/config.generated.yaml",
    ]
