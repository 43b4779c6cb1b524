"""Config security lint: a LiteLLM config.yaml (and its env file) holds no unsafe setting.

    lint_config(config_dict, env_dict_or_None) -> [Finding(id, severity, key, message), ...]
    python -m litellm_runner.gates.lint CONFIG.yaml [--env-file ENV]   # exit 0 clean, 1 critical, 2 warnings only

Rules (ids are stable; severity in brackets):

- LINT-01 [critical] a placeholder secret (the default litellm_env_placeholders: dummy, changeme, ...)
- LINT-02 [critical] the master key is empty (or its os.environ/ variable is unset)
- LINT-03 [critical] the master key does not start with ``sk-``
- LINT-04 [critical] a literal secret in config.yaml instead of an ``os.environ/NAME`` reference
- LINT-05 [critical] a listener on anything but loopback
- LINT-06 [critical] a world-writable mode (in the config, or of the config/env file itself)
- LINT-07 [critical] ``store_prompts_in_spend_logs: true`` (personal data in spend logs)
- LINT-08 [warning]  ``disable_error_logs: true``
- LINT-09 [critical] a master key without ``LITELLM_SALT_KEY``: LiteLLM then encrypts stored
  credentials with the master key, so rotating it breaks them
- LINT-10 [warning]  the env file is readable by group or others
- LINT-11 [critical] an MCP server (``mcp_servers``, http or sse: both reach it over the network) without
  upstream authentication: no ``auth_type`` or ``none``, a credential kind without its credential, or an
  ``os.environ/NAME`` credential whose variable is empty or unset in the env file
- LINT-12 [critical] a literal credential in an MCP server: a credential field that is not an
  ``os.environ/NAME`` reference, a password or a secret-named query parameter in its URL (never waived)
- LINT-13 [critical] an MCP server URL (``url``, ``token_url``) on another host than this one (https)
- LINT-14 [critical] an MCP server URL on another host over plain http (credentials in clear text)

An MCP server may waive LINT-11, -13 or -14 with ``waivers: [{rule: LINT-13, reason: ...}]`` (a reason of
at least 20 characters); a waived finding is reported as a warning carrying the reason, never dropped.

Rules that need secret values (01 on env values, 02, 03, 09) run only when an
env is given; without one, the config's own literals are still checked. No
finding, output line or exception carries a secret value: findings name the
key and what is wrong with it.
"""

from __future__ import annotations

import ipaddress
import pathlib
import re
import stat
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from litellm_runner import envfile, exitcodes, mcp
from litellm_runner.settings import DEFAULTS

PLACEHOLDERS = tuple(DEFAULTS["litellm_env_placeholders"])  # the values the env file writes empty
SECRET_KEY = re.compile(r"(^|_)(api_key|master_key|salt_key|secret|password|token|database_url|key)$", re.I)
SECRET_ENV = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|DATABASE_URL)$")
LISTENER_KEYS = {"host", "bind", "listen", "listen_address", "server_host", "proxy_host"}
LISTENER_ENV = {"HOST", "LITELLM_HOST", "PROXY_HOST"}
MODE_KEY = re.compile(r"(^|_)(mode|permissions|umask)$", re.I)
REF = "os.environ/"


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str  # "critical" | "warning"
    key: str
    message: str

    def __str__(self):
        return f"{self.id} {self.severity} {self.key}: {self.message}"


def _walk(node, path=""):
    """Every (dotted key, value) leaf of NODE; list items as key[i]."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, node


def _placeholder(value: str) -> bool:
    low = value.strip().lower()
    if re.fullmatch(r"sk-1234\d*|x{3,}|sk-x{3,}", low):
        return True
    return any(p in low for p in PLACEHOLDERS if p not in ("sk-1234", "xxx"))


def _loopback(value) -> bool:
    if str(value).strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(str(value).strip("[]")).is_loopback
    except ValueError:
        return False


def _world_writable(value) -> bool:
    text = str(value) if not isinstance(value, int) else f"{value:o}"
    return bool(re.fullmatch(r"0?o?[0-7]{3,4}", text)) and bool(int(text.replace("o", "")[-1]) & 0o2)


def _resolve(value, env):
    """(name of the env variable or None, resolved value or None if unknown)."""
    if isinstance(value, str) and value.startswith(REF):
        name = value[len(REF) :]
        return name, (env.get(name) if env is not None else None)
    return None, value


def lint_config(config: dict, env: dict | None = None) -> list[Finding]:
    """Every finding for CONFIG (a parsed config.yaml) and ENV (the env file's KEY=value pairs, if known)."""
    config = config or {}
    findings: list[Finding] = []
    add = lambda *a: findings.append(Finding(*a))  # noqa: E731
    general = config.get("general_settings") or {}
    litellm_settings = config.get("litellm_settings") or {}

    for key, value in _walk({k: v for k, v in config.items() if k != "mcp_servers"}):  # MCP: _lint_mcp
        leaf = key.rsplit(".", 1)[-1].split("[")[0]
        if isinstance(value, str) and SECRET_KEY.search(leaf) and not value.startswith(REF):
            if _placeholder(value) or value == "":
                add(
                    "LINT-01",
                    "critical",
                    key,
                    "placeholder or empty secret in config.yaml: "
                    "expected an os.environ/NAME reference to a real secret",
                )
            else:
                add(
                    "LINT-04",
                    "critical",
                    key,
                    "literal secret in config.yaml (value not shown): expected an os.environ/NAME reference",
                )
        if leaf in LISTENER_KEYS and value is not None and not _loopback(value):
            add("LINT-05", "critical", key, f"listener on {value!r}: expected a loopback address such as 127.0.0.1")
        if MODE_KEY.search(leaf) and value is not None and _world_writable(value):
            add("LINT-06", "critical", key, f"mode {value!r} is world-writable: expected e.g. '0750' or '0600'")

    findings += lint_mcp_servers(config.get("mcp_servers"), env)
    if general.get("store_prompts_in_spend_logs") is True:
        add(
            "LINT-07",
            "critical",
            "general_settings.store_prompts_in_spend_logs",
            "true stores prompts (personal data) in spend logs: expected false",
        )
    if general.get("disable_error_logs") is True or litellm_settings.get("disable_error_logs") is True:
        add(
            "LINT-08",
            "warning",
            "general_settings.disable_error_logs",
            "true hides failures from the error log: expected false",
        )

    if env is not None:
        for name, value in env.items():
            if SECRET_ENV.search(name) and value and _placeholder(value):
                add(
                    "LINT-01", "critical", f"env {name}", "placeholder secret (value not shown): expected a real secret"
                )
            if name in LISTENER_ENV and value and not _loopback(value):
                add("LINT-05", "critical", f"env {name}", f"listener on {value!r}: expected a loopback address")
        master = general.get("master_key", f"{REF}LITELLM_MASTER_KEY" if "LITELLM_MASTER_KEY" in env else None)
        if master is not None:
            ref, value = _resolve(master, env)
            where = f"env {ref}" if ref else "general_settings.master_key"
            if not value:
                add("LINT-02", "critical", where, "the master key is empty or unset: expected a key starting with sk-")
            elif not value.startswith("sk-"):
                add("LINT-03", "critical", where, "the master key does not start with 'sk-' (value not shown)")
            if not env.get("LITELLM_SALT_KEY") and not general.get("salt_key"):
                add(
                    "LINT-09",
                    "critical",
                    "env LITELLM_SALT_KEY",
                    "missing while a master key is set: LiteLLM would encrypt stored credentials with the "
                    "master key, so rotating it breaks them; expected a LITELLM_SALT_KEY that never changes",
                )
    return findings


def _mcp_auth(entry: dict, env: dict | None) -> str | None:
    """None, or why the MCP server ENTRY sends no upstream credential (LINT-11)."""
    auth = entry.get("auth_type")
    if auth in (None, "none"):
        return f"auth_type is {auth or 'not set'}: the upstream is reached without a credential"
    fields = ("authentication_token",) if auth in mcp.CREDENTIAL_AUTH else ("client_id", "client_secret", "token_url")
    for field in fields:
        name, value = _resolve(entry.get(field), env)
        if entry.get(field) in (None, "") or (name and env is not None and not value):
            where = f"os.environ/{name} is empty or unset in the env file" if name else f"{field} is not set"
            return f"auth_type {auth} without its credential ({where}): expected {field} from the secret source"
    return None


def _mcp_literals(key: str, entry: dict) -> dict[str, str]:
    """Where the MCP server ENTRY holds a credential literally (LINT-12): dotted key -> what it is."""
    found = {
        f"{key}.{field}": "literal credential in config.yaml (value not shown)"
        for field, value in entry.items()
        if (field in mcp.CREDENTIAL_FIELDS or SECRET_KEY.search(field))
        and isinstance(value, str)
        and value
        and not value.startswith(REF)
    }
    for field in ("url", "token_url"):
        url = entry.get(field)
        if isinstance(url, str) and mcp.url_problem(url) is None and (where := mcp.url_credentials(url)):
            found[f"{key}.{field}"] = f"credential in the URL ({', '.join(where)}; value not shown)"
    return found


def lint_mcp_servers(servers, env: dict | None = None) -> list[Finding]:
    """LINT-11..14 for the config's ``mcp_servers`` mapping; waived findings become warnings with their reason."""
    findings: list[Finding] = []
    for name, entry in (servers or {}).items() if isinstance(servers, dict) else ():
        if not isinstance(entry, dict):
            continue
        key = f"mcp_servers.{name}"
        waived = {w.get("rule"): w.get("reason") for w in entry.get("waivers") or [] if isinstance(w, dict)}
        raw: list[tuple[str, str, str]] = []
        if entry.get("transport", "http") in mcp.TRANSPORTS and (why := _mcp_auth(entry, env)):
            raw.append(("LINT-11", key, why))
        for where, what in _mcp_literals(key, entry).items():
            raw.append(("LINT-12", where, f"{what}: expected an os.environ/NAME reference"))
        for field in ("url", "token_url"):
            url = entry.get(field)
            if isinstance(url, str) and mcp.url_problem(url) is None and not mcp.is_loopback(url):
                host = urlsplit(url).hostname
                rule, what = (
                    ("LINT-14", f"plain http to {host}: requests and any credential cross the network in clear text")
                    if urlsplit(url).scheme == "http"
                    else ("LINT-13", f"{host} is another host: requests and credentials leave this machine")
                )
                raw.append((rule, f"{key}.{field}", f"{what}; expected a loopback URL or a waiver of {rule}"))
        for rule, where, message in raw:
            reason = waived.get(rule)
            if rule in mcp.WAIVABLE and isinstance(reason, str) and reason.strip():
                findings.append(Finding(rule, "warning", where, f"waived: {reason.strip()}"))
            else:
                findings.append(Finding(rule, "critical", where, message))
    return findings


def read_env_file(path) -> dict[str, str]:
    """The env file's KEY=value pairs as systemd reads them (envfile.read).

    A bad line is named by number, not content."""
    return envfile.read(path)


def parse_env_text(text: str, path: str = "env") -> dict[str, str]:
    """read_env_file on TEXT (the env file the deploy is about to write)."""
    return envfile.loads(text, path)


def lint_files(config_path, env_path=None) -> list[Finding]:
    """lint_config on the files, plus the files' own modes (LINT-06, LINT-10)."""
    config = yaml.safe_load(pathlib.Path(config_path).read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{config_path}: expected a YAML mapping (model_list, general_settings, ...)")
    env = read_env_file(env_path) if env_path else None
    findings = lint_config(config, env)
    for path in filter(None, (config_path, env_path)):
        mode = stat.S_IMODE(pathlib.Path(path).stat().st_mode)
        if mode & 0o002:
            findings.append(
                Finding(
                    "LINT-06", "critical", str(path), f"file mode {mode:04o} is world-writable: expected 0600 or 0640"
                )
            )
        elif path == env_path and mode & 0o077:
            findings.append(
                Finding(
                    "LINT-10", "warning", str(path), f"file mode {mode:04o} lets others read secrets: expected 0600"
                )
            )
    return findings


def exit_code(findings: list[Finding]) -> int:
    """0 clean, 1 any critical, 2 warnings only."""
    if any(f.severity == "critical" for f in findings):
        return 1
    return 2 if findings else 0


def main(argv=None, prog: str = "python -m litellm_runner.gates.lint") -> int:
    """Lint CONFIG (and --env-file): exit codes of litellm_runner.exitcodes (0 clean, 1 critical, 2 warnings)."""
    parser = exitcodes.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("config", help="LiteLLM config.yaml")
    parser.add_argument("--env-file", help="the proxy's env file (KEY=value lines)")
    args = parser.parse_args(argv)
    try:
        findings = lint_files(args.config, args.env_file)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"lint: {exc}", file=sys.stderr)
        return exitcodes.FAILED
    for finding in findings:
        print(finding)
    code = exit_code(findings)
    print({0: "lint: clean", 1: "lint: critical findings", 2: "lint: warnings only"}[code], file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
