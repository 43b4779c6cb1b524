"""Break one managed item by hand; a converge repairs exactly that item (and
restarts exactly what depends on it), and the run after that changes nothing."""

import pytest

CODE = "/usr/local/lib/litellm-runner"  # litellm_runner.layout.CODE: root's venv and tools
ROOT = "/home/litellm/litellm"
CTL = "systemctl --user --machine=litellm@.host"
TOOLS = ["litellm-health-server", "litellm-metrics", "litellm-rerank", "litellm-embed-arctic"]


def restart(*services):
    return {f"Unit {s}.service enabled and running | svc-01" for s in services}


CASES = [
    pytest.param(
        f"chmod 0777 {ROOT}/state/files",
        {f"Directory {ROOT}/state/files 0750 | fs-01"},
        f"test $(stat -c %a {ROOT}/state/files) = 750",
        id="directory-mode",
    ),
    pytest.param(
        f"chown root {ROOT}/artifacts",
        {f"Directory {ROOT}/artifacts 0750 | fs-01"},
        f"test $(stat -c %U {ROOT}/artifacts) = litellm",
        id="directory-owner",
    ),
    pytest.param(
        "sed -i 's/request_timeout: 120/request_timeout: 600/' /etc/litellm/config.generated.yaml",
        {"Rendered config /etc/litellm/config.generated.yaml content | cfg-01", *restart("litellm")},
        "grep -q 'request_timeout: 120' /etc/litellm/config.generated.yaml",
        id="config-line",
    ),
    pytest.param(
        "chmod 0644 /etc/litellm/env.litellm",
        {"Env file /etc/litellm/env.litellm 0640 root:litellm | sec-01"},
        "test $(stat -c %a /etc/litellm/env.litellm) = 640",
        id="env-file-mode",
    ),
    pytest.param(
        "echo VLLM_API_KEY=dummy >> /etc/litellm/env.litellm",
        {"Env file /etc/litellm/env.litellm content | sec-01", *restart("litellm", *TOOLS)},
        "! grep -q dummy /etc/litellm/env.litellm",
        id="env-file-content",
    ),
    pytest.param(
        "sed -i 's/^Restart=on-failure/Restart=no/' /etc/systemd/user/litellm-rerank.service",
        {
            "Unit file litellm-rerank.service content | svc-01",
            "Reload the user manager of litellm | svc-01",
            *restart("litellm-rerank"),
        },
        "grep -q '^Restart=on-failure' /etc/systemd/user/litellm-rerank.service && "
        f"test $({CTL} show -P Restart litellm-rerank.service) = on-failure",
        id="unit-file",
    ),
    pytest.param(
        f"{CTL} disable --now litellm-backup.timer",
        {"Unit litellm-backup.timer enabled and running | tmr-01"},
        f"{CTL} is-enabled litellm-backup.timer && {CTL} is-active litellm-backup.timer",
        id="timer-disabled",
    ),
    pytest.param(
        f"{CTL} stop litellm-rerank.service",
        restart("litellm-rerank"),
        f"{CTL} is-active litellm-rerank.service",
        id="service-stopped",
    ),
    pytest.param(
        f"{CODE}/venv/bin/pip install -q --no-deps urllib3==2.5.0",
        {
            f"Venv {CODE}/venv satisfies its pins | py-01",
            f"Venv {CODE}/venv has no known vulnerability | py-01",
            *restart("litellm", *TOOLS),
        },
        f"{CODE}/venv/bin/python -c 'import urllib3, sys; sys.exit(urllib3.__version__ < \"2.7\")'",
        id="package-downgraded",
    ),
]


@pytest.mark.parametrize("breakage, repaired_ops, check", CASES)
def test_converge_repairs_exactly_the_broken_item(converged, host, converge, breakage, repaired_ops, check):
    host.ssh(breakage, timeout=300)
    assert host.ssh(check, check=False).returncode != 0, "the breakage did not break anything"
    run = converge()
    assert set(run.changed(host.name)) == repaired_ops
    host.wait_for(check, timeout=60)
    assert converge().changed(host.name) == []


def test_linger_turned_off_is_repaired(converged, host, converge):
    host.ssh("loginctl disable-linger litellm")
    host.wait_for("! systemctl is-active -q user@$(id -u litellm).service", timeout=60)
    run = converge()
    assert "Linger for litellm | users-02" in run.changed(host.name)
    host.ssh("test -e /var/lib/systemd/linger/litellm")
    host.wait_for(f"{CTL} is-active litellm.service litellm-backup.timer", timeout=60)
    assert converge().changed(host.name) == []


def test_config_change_restarts_only_the_proxy(converged, host, converge):
    pids = {s: host.out(f"{CTL} show -P MainPID {s}.service") for s in ["litellm", *TOOLS]}
    host.ssh(
        "sed -i 's/database_connection_pool_limit: 20/database_connection_pool_limit: 10/' "
        "/etc/litellm/config.generated.yaml"
    )
    converge()
    after = {s: host.out(f"{CTL} show -P MainPID {s}.service") for s in ["litellm", *TOOLS]}
    assert after["litellm"] != pids["litellm"]
    assert {s: after[s] for s in TOOLS} == {s: pids[s] for s in TOOLS}
