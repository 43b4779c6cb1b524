"""MCP servers of the proxy as desired state: the ``litellm_mcp_servers`` setting.

The pinned LiteLLM release, **litellm 1.102.4** (files/litellm-venv-requirements.txt), reads the
config's top-level ``mcp_servers`` mapping (server name -> entry) in
``MCPServerManager.load_servers_from_config`` (litellm/proxy/_experimental/mcp_server/mcp_server_manager.py;
the entry's keys are its ``MCPServerConfig``), after resolving every ``os.environ/NAME`` value of the
config (``ProxyConfig._check_for_os_environ_vars``). The runner takes the subset of those keys that a
desired state can hold without a person in the loop (FIELDS below), and one key of its own, ``waivers``,
which that release ignores (the loader reads only the keys it knows) and the config lint reads.

- transports: ``http`` (streamable HTTP, LiteLLM's default) and ``sse``. ``stdio`` is refused: it makes
  the proxy run a command; run such a server as a ``litellm_services`` unit and declare its URL.
- upstream authentication (``auth_type``): a static credential in ``authentication_token`` sent as
  ``Authorization: Bearer`` (``bearer_token``), ``X-API-Key`` (``api_key``), ``Authorization: Basic``
  (``basic``), the whole ``Authorization`` value (``authorization``) or ``Authorization: token``
  (``token``); ``oauth2`` with ``oauth2_flow: client_credentials`` (``client_id``, ``client_secret``,
  ``token_url``, ``scopes``; the proxy mints the token); ``none`` only with a waiver of LINT-11. The
  interactive and per-user kinds (authorization_code, token exchange, ID-JAG, passthrough, SigV4) are
  not desired state and are refused. Credentials are ``os.environ/NAME`` references whose NAME is in
  ``litellm_env_secrets``: the value comes from the secret source and lands only in env.litellm.
- access (who may use it), as the release allows in its config: ``allow_all_keys`` (every virtual
  key; default false: only keys and teams granted the server, and the master key),
  ``access_groups`` (keys and teams whose ``mcp_access_groups`` name the group: granted through the
  proxy's key/team API, which needs the database), ``allowed_tools`` / ``disallowed_tools``, and
  ``available_on_public_internet`` (LiteLLM's default is true; the runner renders false unless set:
  callers from public addresses do not see the server).

The names are LiteLLM's own: the same key in group_data, in config.generated.yaml and in this file.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

REF = "os.environ/"
TRANSPORTS = ("http", "sse")
CREDENTIAL_AUTH = ("bearer_token", "api_key", "basic", "authorization", "token")  # authentication_token
AUTH_TYPES = (*CREDENTIAL_AUTH, "oauth2", "none")
CREDENTIAL_FIELDS = ("authentication_token", "client_secret")  # os.environ/ references only
# rule id -> what a waiver of it accepts (LINT-12, a literal credential, is never waived)
WAIVABLE = {
    "LINT-11": "auth_type: none (an upstream that takes no credential)",
    "LINT-13": "a url on another host (https)",
    "LINT-14": "a plain-http url on another host (credentials in clear text on the network)",
}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")  # LiteLLM 1.102.4 refuses '-' (its tool-prefix separator)
GROUP = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOOL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
ENV_REF = re.compile(r"os\.environ/[A-Za-z_][A-Za-z0-9_]*")
HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?")
REASON_MIN = 20  # characters: a justification, not "ok"
SECRET_PARAM = re.compile(r"(token|key|secret|password|sig|auth)", re.I)
# what the runner renders when the operator does not say (LiteLLM's own default in brackets)
DEFAULTS = {"transport": "http", "allow_all_keys": False, "available_on_public_internet": False}  # [http, false, true]


def _str(v) -> bool:
    return isinstance(v, str) and bool(v.strip()) and not any(c in v for c in "\n\r\0")


def _str_list(pattern):
    return lambda v: isinstance(v, list) and bool(v) and all(isinstance(i, str) and pattern.fullmatch(i) for i in v)


def _address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def url_problem(url) -> str | None:
    """None, or what keeps URL from being an http(s) URL LiteLLM can reach (credentials are the lint's)."""
    if not _str(url) or any(c.isspace() for c in url):
        return "a one-line URL without blanks"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError:
        return "a URL with a valid port"
    if parts.scheme not in ("http", "https"):
        return "an http:// or https:// URL"
    host = parts.hostname or ""
    if not (HOST.fullmatch(host) or _address(host)):
        return "a URL with a host name or address"
    if parts.fragment:
        return "a URL without a #fragment"
    return None


def is_loopback(url: str) -> bool:
    """The URL's host is this machine (localhost or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_credentials(url: str) -> list[str]:
    """Where URL carries a credential: 'user:password@' and query parameters named like one."""
    parts = urlsplit(url)
    found = ["a password in the URL (user:password@)"] if parts.password else []
    found += [f"query parameter {k!r}" for k, _ in parse_qsl(parts.query) if SECRET_PARAM.search(k)]
    return found


def _waivers(v) -> bool:
    return (
        isinstance(v, list)
        and bool(v)
        and all(
            isinstance(w, dict)
            and set(w) == {"rule", "reason"}
            and w["rule"] in WAIVABLE
            and _str(w["reason"])
            and len(w["reason"].strip()) >= REASON_MIN
            for w in v
        )
        and len({w["rule"] for w in v}) == len(v)
    )


FIELDS = {  # key: (check, expected form)
    "url": (lambda v: url_problem(v) is None, "an http:// or https:// URL of the MCP endpoint"),
    "transport": (
        lambda v: v in TRANSPORTS,
        f"one of {', '.join(TRANSPORTS)} (stdio: run it as a litellm_services unit)",
    ),
    "auth_type": (
        lambda v: v in AUTH_TYPES,
        f"one of {', '.join(AUTH_TYPES)} (per-user and interactive kinds are not desired state)",
    ),
    "authentication_token": (_str, "an os.environ/NAME reference, NAME listed in litellm_env_secrets"),
    "client_id": (_str, "the OAuth client id"),
    "client_secret": (_str, "an os.environ/NAME reference, NAME listed in litellm_env_secrets"),
    "token_url": (lambda v: url_problem(v) is None, "an https:// URL of the OAuth token endpoint"),
    "oauth2_flow": (lambda v: v == "client_credentials", "client_credentials (the proxy mints the token itself)"),
    "scopes": (_str_list(re.compile(r"\S{1,200}")), "a list of OAuth scopes"),
    "description": (_str, "a one-line description"),
    "access_groups": (_str_list(GROUP), "a list of access group names (letters, digits, _ . -)"),
    "allow_all_keys": (lambda v: isinstance(v, bool), "true or false"),
    "allowed_tools": (_str_list(TOOL), "a list of tool names"),
    "disallowed_tools": (_str_list(TOOL), "a list of tool names"),
    "available_on_public_internet": (lambda v: isinstance(v, bool), "true or false"),
    "waivers": (
        _waivers,
        f"a list of {{rule: {' | '.join(WAIVABLE)}, reason: at least {REASON_MIN} characters}}, each rule once",
    ),
}
EXAMPLE = (
    "{url: 'http://127.0.0.1:8091/mcp', auth_type: bearer_token, "
    "authentication_token: 'os.environ/NAME', access_groups: [...]}"
)


def problems(servers, secret_names=()) -> list[tuple[str, object, str]]:
    """(key, value, expected) for every problem of a ``litellm_mcp_servers`` value: shape, names, URL forms."""
    if not isinstance(servers, dict):
        return [("litellm_mcp_servers", servers, f"a mapping of server name -> {EXAMPLE}")]
    found: list[tuple[str, object, str]] = []
    for name, entry in servers.items():
        where = f"litellm_mcp_servers[{name}]"
        if not isinstance(name, str) or not NAME.fullmatch(name):
            found.append(("litellm_mcp_servers", name, "server names of letters, digits and _ (no '-'), 1-64"))
            continue
        if not isinstance(entry, dict) or "url" not in entry:
            found.append((where, entry, EXAMPLE))
            continue
        for key, value in entry.items():
            if key not in FIELDS:
                found.append((f"{where}.{key}", value, f"one of {', '.join(FIELDS)} (is it misspelt?)"))
            elif not FIELDS[key][0](value):
                why = url_problem(value) if key in ("url", "token_url") else None
                found.append((f"{where}.{key}", value, FIELDS[key][1] + (f" ({why})" if why else "")))
        found += _combination(where, entry, secret_names)
    return found


def _combination(where, entry, secret_names) -> list[tuple[str, object, str]]:
    """Keys that need each other: oauth2's client, a credential's os.environ/ reference and its secret."""
    found: list[tuple[str, object, str]] = []
    auth = entry.get("auth_type")
    if auth == "oauth2":
        for key in ("oauth2_flow", "client_id", "client_secret", "token_url"):
            if key not in entry:
                found.append((f"{where}.{key}", None, f"set with auth_type oauth2: {FIELDS[key][1]}"))
    for key in CREDENTIAL_FIELDS:
        value = entry.get(key)
        if isinstance(value, str) and ENV_REF.fullmatch(value) and secret_names:
            if value[len(REF) :] not in secret_names:
                found.append(
                    (
                        f"{where}.{key}",
                        value,
                        "a NAME listed in litellm_env_secrets (its value comes from the secret source)",
                    )
                )
    return found


def config_entries(servers: dict | None) -> dict:
    """The config's ``mcp_servers`` mapping for a valid ``litellm_mcp_servers``: LiteLLM's keys, defaults filled in."""
    return {
        name: {**entry, **{k: v for k, v in DEFAULTS.items() if k not in entry}}
        for name, entry in (servers or {}).items()
    }
