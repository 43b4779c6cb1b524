"""The release-derived defaults: pyinfra's real LinuxDistribution fact parsing real os-release texts."""

import pytest

from litellm_runner.pyinfra_ext.release import LinuxDistribution, system_packages

TRIXIE = """PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.8
ID=debian"""
BOOKWORM = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian"""
FORKY = TRIXIE.replace("13", "14").replace("trixie", "forky")
UBUNTU = """PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian"""
DEFAULT = ["python3-venv", "postgresql-client", "iproute2", "curl"]


def fact(os_release: str):
    """LinuxDistribution's value on a host with OS_RELEASE, from the fact's own command output format."""
    return LinuxDistribution().process(["/etc/os-release", *os_release.splitlines(), "---"])


@pytest.mark.parametrize(
    "os_release, packages, expected",
    [
        (BOOKWORM, DEFAULT, ["python3-venv", "postgresql-client-15", "iproute2", "curl"]),
        (TRIXIE, DEFAULT, ["python3-venv", "postgresql-client-17", "iproute2", "curl"]),
        # an explicit version is the override: kept on every release
        (TRIXIE, ["postgresql-client-16", "curl"], ["postgresql-client-16", "curl"]),
        (BOOKWORM, ["postgresql-client-15"], ["postgresql-client-15"]),
        # a release the table does not know: the metapackage, for apt to resolve
        (FORKY, DEFAULT, DEFAULT),
        (UBUNTU, DEFAULT, DEFAULT),
        (None, DEFAULT, DEFAULT),
        (TRIXIE, [], []),
    ],
    ids=["bookworm", "trixie", "override", "explicit-15", "unknown-debian", "ubuntu", "no-os-release", "empty"],
)
def test_system_packages_follow_the_host_release(os_release, packages, expected):
    assert system_packages(packages, fact(os_release) if os_release else None) == expected
