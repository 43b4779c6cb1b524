"""The account's state folders and root's folders of code and config: owner and mode (fs-01, fs-04).

The account owns ``litellm_root`` and its state folders (``litellm_dirs``); root owns, along the whole
path, the folders of what the services run and read (``layout.root_dirs``): the account can neither
write there nor rename a parent away.
"""

from pyinfra import host

from litellm_runner.pyinfra_ext.operations import directory, no_abandoned_lock, no_leftovers
from litellm_runner.pyinfra_ext.snapshot import managed


def apply():
    d = host.data
    paths = managed(d)
    for path in paths.state_dirs:
        directory(
            name=f"Directory {path} {d.litellm_dir_mode} | fs-01",
            path=path,
            user=d.litellm_user,
            group=d.litellm_group,
            mode=d.litellm_dir_mode,
        )
    for path, user, group, mode in paths.root_dirs:
        directory(name=f"Directory {path} {mode} {user}:{group} | fs-04", path=path, user=user, group=group, mode=mode)
    no_leftovers(name="No temporary file of an interrupted run | fs-02", dirs=paths.write_dirs())
    no_abandoned_lock(name="No run lock left by an interrupted run | fs-02", stale_after=d.litellm_lock_stale_after)
