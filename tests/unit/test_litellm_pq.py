"""files/bin/litellm_pq.py, dbctl plan's libpq session without psycopg, against a real PostgreSQL: the same
rows as psycopg gives, parameters sent apart from the SQL, the session's timeouts and read-only transaction,
and dbctl plan never importing psycopg (the import that cost each check about 135 ms of the host's CPU)."""

import base64
import json
import os
import pathlib
import socket
import subprocess
import sys
import threading

import psycopg
import pytest

from tests.support.localpg import LocalPostgres, migrations_dir
from tests.support.services import BIN

sys.path.insert(0, str(BIN))
import litellm_pq  # noqa: E402 (the shipped module, from the host tools' folder as dbctl imports it)

HOSTILE = '\'; DROP TABLE t; -- "quoted" \\ back\\slash {braces} ,comma'


@pytest.fixture(scope="module")
def pg():
    with LocalPostgres() as pg:
        with pg.connect() as conn:
            conn.execute('CREATE TABLE "LiteLLM_Config" (param_name text PRIMARY KEY, param_value jsonb)')
            conn.execute("CREATE TABLE t (name text, n int, ok boolean, doc jsonb, at timestamptz, d timestamp)")
            conn.execute(
                "INSERT INTO t VALUES (%s, 7, true, %s, '2026-12-06 01:02:03.456789+00', '2026-12-06 01:02:03'), "
                "(NULL, NULL, NULL, NULL, NULL, NULL)",
                (HOSTILE, json.dumps({"k": [1, "two", None], "s": HOSTILE})),
            )
        yield pg


SESSIONS = {"wire": litellm_pq.WireConnection, "libpq": litellm_pq.Connection}  # the two ways a plan connects


@pytest.fixture(params=list(SESSIONS))
def conn(pg, request):
    options = "-c statement_timeout=3000 -c lock_timeout=2500"
    with litellm_pq.connect(pg.url, connect_timeout=5, options=options, wire=request.param == "wire") as c:
        assert type(c) is SESSIONS[request.param]
        c.read_only = True
        yield c


QUERIES = [  # (query, parameters): what dbctl plan reads, and each type it converts
    ("SELECT name, n, ok, doc, at, d FROM t ORDER BY n NULLS LAST", ()),
    ("SELECT name FROM t WHERE name = %s", (HOSTILE,)),
    ("SELECT name FROM t WHERE name = ANY(%s) OR n = ANY(%s)", ([HOSTILE, "x"], [])),
    ("SELECT t, to_regtype(t)::text FROM unnest(%s::text[]) AS t", (["TEXT", "TIMESTAMP(3)", '"NoSuchType"'],)),
    ("SELECT to_regclass(%s), to_regclass(%s)", ("t", "_no_such_table")),
    ("SELECT %s::int + 1, '100%%'", (41,)),
    ("SHOW max_connections", ()),
    ("SELECT json_build_object('a', json_agg(x)) FROM generate_series(1, 3) x", ()),
]


@pytest.mark.parametrize("query, params", QUERIES)
def test_rows_are_the_ones_psycopg_gives(pg, conn, query, params):
    with pg.connect() as ref:
        ref.execute("SET TIME ZONE 'UTC'")
        want = ref.execute(query, params).fetchall()
    conn.execute("SET TIME ZONE 'UTC'")
    assert conn.execute(query, params).fetchall() == want


@pytest.mark.parametrize("wire", [True, False], ids=["wire", "libpq"])
def test_the_session_has_its_timeouts_its_name_and_reads_only(pg, wire):
    with litellm_pq.connect(
        pg.url,
        connect_timeout=5,
        options="-c statement_timeout=3000 -c lock_timeout=2500",
        application_name="plan",
        wire=wire,
    ) as conn:
        conn.read_only = True
        row = conn.execute(
            "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), "
            "current_setting('application_name'), current_setting('transaction_read_only')"
        ).fetchone()
        assert row == ("3s", "2500ms", "plan", "on")
        with pytest.raises(litellm_pq.Error) as caught:
            conn.execute("DELETE FROM t")
        assert caught.value.sqlstate == "25006" and caught.value.name == "ReadOnlySqlTransaction"
        conn.rollback()
        with pytest.raises(litellm_pq.Error) as caught:
            conn.execute("SELECT pg_sleep(5)")
        assert caught.value.name == "QueryCanceled"
        conn.rollback()
    with pg.connect() as ref:
        assert ref.execute("SELECT count(*) FROM t").fetchone()[0] == 2


def test_a_nul_byte_is_refused_not_cut(conn):
    with pytest.raises(litellm_pq.Error) as caught:
        conn.execute("SELECT name FROM t WHERE name = %s", ("x\x00' OR true --",))
    assert caught.value.sqlstate == "22021"


def test_identifiers_are_quoted_as_psycopg_quotes_them(pg, conn):
    with pg.connect() as ref:
        for name in ["LiteLLM_Config", 'we"ird', "sp ace"]:
            assert conn.quote_identifier(name) == psycopg.sql.Identifier(name).as_string(ref)


def test_a_wrong_password_is_named_without_it(pg):
    canary = "Canary-pq-9f3e"
    url = pg.url.replace(pg.password, canary)
    with pytest.raises(litellm_pq.Error) as caught:
        litellm_pq.connect(url, connect_timeout=5)
    assert "password authentication failed" in str(caught.value) and canary not in str(caught.value)
    with pytest.raises(litellm_pq.Error) as by_libpq:
        litellm_pq.connect(url, connect_timeout=5, wire=False)
    assert str(caught.value) == str(by_libpq.value)  # worded as libpq words it


def _silent_server():
    """A loopback port that accepts a connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    return server


def test_a_server_that_never_answers_fails_at_the_connect_timeout_as_libpq_says_it():
    with _silent_server() as server:
        url = f"postgresql://u:p@127.0.0.1:{server.getsockname()[1]}/litellm"
        found = {}
        for wire in (True, False):
            with pytest.raises(litellm_pq.Error) as caught:
                litellm_pq.connect(url, litellm_pq.defaults(url), connect_timeout=1, wire=wire)
            found[wire] = str(caught.value)
    assert found[True] == found[False] and found[True].endswith("timeout expired")


def test_a_closed_port_is_named_as_libpq_names_it():
    with _silent_server() as server:
        port = server.getsockname()[1]
    url = f"postgresql://u:p@127.0.0.1:{port}/litellm"
    with pytest.raises(litellm_pq.Error) as caught:
        litellm_pq.connect(url, litellm_pq.defaults(url), connect_timeout=2)
    assert "Connection refused" in str(caught.value)


def _fake_scram_server(server, final: bytes | None) -> None:
    """Answer one connection as a server that asks for SCRAM-SHA-256 but cannot prove it knows the password:
    FINAL as its signature message (None: none sent), then "authentication ok" and "ready"."""
    peer, _ = server.accept()
    with peer:
        peer.settimeout(5)

        def send(kind: bytes, body: bytes) -> None:
            peer.sendall(kind + (len(body) + 4).to_bytes(4, "big") + body)

        def receive() -> bytes:
            data = b""
            while True:
                data += peer.recv(65536)
                if len(data) >= 4 and len(data) >= int.from_bytes(data[:4], "big"):  # the startup packet
                    return data
                if len(data) >= 5 and len(data) >= 1 + int.from_bytes(data[1:5], "big"):
                    return data

        receive()
        send(b"R", (10).to_bytes(4, "big") + b"SCRAM-SHA-256\x00\x00")
        first = receive().split(b"r=", 1)[1].decode()
        salt = base64.b64encode(b"s" * 16).decode()
        send(b"R", (11).to_bytes(4, "big") + f"r={first}xyz,s={salt},i=4096".encode())
        receive()
        if final is not None:
            send(b"R", (12).to_bytes(4, "big") + final)
        send(b"R", (0).to_bytes(4, "big"))
        send(b"Z", b"I")


@pytest.mark.parametrize("final", [b"v=" + base64.b64encode(b"x" * 32), None], ids=["wrong-signature", "no-signature"])
def test_a_server_that_cannot_prove_it_knows_the_password_gets_no_session(final):
    with _silent_server() as server:
        url = f"postgresql://u:secret@127.0.0.1:{server.getsockname()[1]}/litellm"
        answering = threading.Thread(target=_fake_scram_server, args=(server, final))
        answering.start()
        try:
            with pytest.raises(litellm_pq.Error) as caught:
                litellm_pq.connect(url, litellm_pq.defaults(url), connect_timeout=5)
        finally:
            answering.join(10)
    assert "secret" not in str(caught.value)


WIRE = [  # (DATABASE_URL, whether the plan speaks to it itself; else libpq does)
    ("postgresql://u:p@127.0.0.1:5434/litellm", True),
    ("postgres://u:p@localhost/litellm", True),
    ("postgresql://u:p@127.1.2.3:5434/litellm?sslmode=disable", True),
    ("postgresql://u:p@127.0.0.1:5434/litellm?sslmode=allow&gssencmode=disable", True),
    ("postgresql://lite%40llm:p%3Aw%2Fd@127.0.0.1:5434/lite%20llm", True),
    ("postgresql://u:p@127.0.0.1:5434/litellm?sslmode=prefer", False),
    ("postgresql://u:p@127.0.0.1:5434/litellm?sslmode=require", False),
    ("postgresql://u:p@127.0.0.1:5434/litellm?ssl=true", False),
    ("postgresql://u:p@127.0.0.1:5434/litellm?gssencmode=prefer", False),
    ("postgresql://u:p@127.0.0.1:5434/litellm?host=db.example.org", False),
    ("postgresql://u:p@127.0.0.1:5434/litellm?target_session_attrs=read-write", False),
    ("postgresql://u:p@[::1]:5434/litellm", False),
    ("postgresql://u:p@db.example.org:5432/litellm", False),
    ("postgresql://u:p@10.0.0.5/litellm", False),
    ("postgresql://u@127.0.0.1:5434/litellm", False),
    ("postgresql://127.0.0.1:5434/litellm", False),
    ("postgresql://u:p@127.0.0.1:5434/", False),
    ("postgresql://u:p%zz@127.0.0.1:5434/litellm", False),
    ("postgresql://u:p%C3%A9@127.0.0.1:5434/litellm", False),
]


@pytest.mark.parametrize("url, wire", WIRE)
def test_only_a_plain_loopback_url_is_spoken_to_without_libpq(url, wire):
    params = {"connect_timeout": "5", "options": "-c statement_timeout=30000", "application_name": "litellm-dbctl"}
    found = litellm_pq._wire_target(url, litellm_pq.defaults(url), params)
    assert (found is not None) == wire
    if url.startswith("postgresql://lite%40llm"):
        assert found[:5] == ("127.0.0.1", 5434, "lite@llm", "p:w/d", "lite llm")
    assert litellm_pq._wire_target(url, litellm_pq.defaults(url), {**params, "sslrootcert": "x"}) is None


def test_dbctl_plan_never_imports_psycopg(pg, tmp_path):
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={pg.url}\n")
    desired = base64.b64encode(json.dumps({"settings": {"general_settings": {"k": 1}}}).encode()).decode()
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(BIN / "litellm-dbctl"), "plan", "--scope", "settings"]
        + ["--env-file", str(env), "--desired-b64", desired],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["items"] == [
        {"id": "general_settings.k", "kind": "setting", "before": "(unset)", "after": 1}
    ]
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")]
    assert "litellm_pq" in imported and not [m for m in imported if m.startswith("psycopg")]


CHECKS_PLAN = """import json, sys
sys.dont_write_bytecode = True
sys.path.insert(0, sys.argv[1])
import litellm_dbctl
print(json.dumps(litellm_dbctl.plan(**json.loads(sys.stdin.read())), default=str))
"""


def test_a_checks_plan_imports_only_what_it_uses(pg, tmp_path):
    """``plan()`` as root's snapshot runs it (a bare interpreter, libpq and the migrations given as paths, the
    replay kept) imports neither psycopg nor pathlib, urllib.parse, ipaddress, datetime or contextlib: those
    imports cost every check about 8 ms of the host's CPU. Nor ctypes: its loopback URL needs no libpq."""
    env = tmp_path / "env.litellm"
    env.write_text(f"DATABASE_URL={pg.url}\n")
    libpq = sorted(pathlib.Path(psycopg.__file__).parents[1].glob("psycopg_binary.libs/libpq-*.so*"))
    desired = base64.b64encode(json.dumps({"settings": {"general_settings": {"k": 1}}}).encode()).decode()
    args = {
        "scopes": ["settings", "schema"],
        "desired_b64": desired,
        "env_file": str(env),
        "migrations": str(migrations_dir()),
        "libpq": str(libpq[0]) if libpq else None,
    }

    def plan(**more):
        argv = [sys.executable, "-I", "-S", "-X", "importtime", "-c", CHECKS_PLAN, str(BIN)]
        proc = subprocess.run(argv, input=json.dumps({**args, **more}), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = proc.stderr.splitlines()
        return json.loads(proc.stdout), {ln.rsplit("|", 1)[-1].strip() for ln in lines if ln.startswith("import time")}

    first, _ = plan()
    again, imported = plan(kept=first["kept"])
    assert again["scopes"] == first["scopes"] and first["scopes"]["schema"]  # an empty database: all missing
    assert "litellm_pq" in imported and "litellm_migrations" in imported
    unused = {"pathlib", "urllib.parse", "ipaddress", "datetime", "contextlib", "ctypes", "typing", "encodings.idna"}
    assert not {m for m in imported if m in unused or m.startswith("psycopg")}


DEFAULTS = [  # (DATABASE_URL, the keywords the plan's session adds, each one the URL does not set)
    ("postgresql://u:p@127.0.0.1:5434/litellm", {"gssencmode": "disable", "sslmode": "allow"}),
    ("postgresql://u:p@localhost/litellm", {"gssencmode": "disable", "sslmode": "allow"}),
    ("postgres://u:p@[::1]:5434/litellm", {"gssencmode": "disable", "sslmode": "allow"}),
    ("postgresql://u:p@127.1.2.3:5434/litellm", {"gssencmode": "disable", "sslmode": "allow"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?sslmode=verify-full", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?sslmode=prefer", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?ssl=true", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?requiressl=1", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?gssencmode=require", {"sslmode": "allow"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?host=db.example.org", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1:5434/litellm?hostaddr=10.0.0.5", {"gssencmode": "disable"}),
    ("postgresql://u:p@db.example.org:5432/litellm", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.1.example.org/litellm", {"gssencmode": "disable"}),
    ("postgresql://u:p@10.0.0.5/litellm", {"gssencmode": "disable"}),
    ("postgresql://u:p@127.0.0.256/litellm", {"gssencmode": "disable"}),
]


@pytest.mark.parametrize("url, expected", DEFAULTS)
def test_the_plan_skips_gssapi_and_tls_on_loopback_only_where_the_url_says_nothing(url, expected):
    assert litellm_pq.defaults(url) == expected


SPLIT = [  # (URL, whether litellm_tools.split_url reads it itself): every other one is urllib.parse's to read
    *((url, "[" not in url) for url, _ in DEFAULTS),
    ("postgresql://litellm:p%40ss:w0rd@127.0.0.1:5434/litellm", True),
    ("postgres://LiteLLM:pw@DB.Example.ORG:65535/litellm?a=1&b&&c=2=3&sslmode=", True),
    ("postgresql://127.0.0.1/litellm", True),
    ("postgresql://u:p@127.0.0.1:0/litellm", True),
    ("postgresql://u:p@127.0.0.1:/litellm", False),
    ("postgresql://u:p@127.0.0.1:65536/litellm", False),
    ("postgresql://u:p@127.0.0.1:99999/litellm", False),
    ("postgresql://u:p@127.0.0.1:abc/litellm", False),
    ("postgresql://u:p@x@127.0.0.1:1/litellm", False),
    ("postgresql://u:p@[::1/litellm", False),
    ("POSTGRESQL://u:p@127.0.0.1/litellm", False),
    ("postgresql://u:p@127.0.0.1/litellm#frag", False),
    ("postgresql://u:p@127.0.0.1/litellm?x=%41&y+z=1", True),
    ("postgresql://u:p\t@127.0.0.1/litellm", False),
    ("postgresql://u:p\x01@127.0.0.1/litellm", False),
    ("postgresql://u:p\t@127.0.0.1/li\ntellm", False),
    (" postgresql://u:p@127.0.0.1/litellm", False),
    ("postgresql://u:pä@127.0.0.1/litellm", False),
    ("postgresql://u:p@127.0.0.1:5434", False),
    ("postgresql://u:p@/litellm", False),
    ("postgresql://u:p@127.0.0.1/litellm?q=a?b/c", True),
    ("postgresql://u:p?@127.0.0.1/litellm", False),
    ("host=127.0.0.1 dbname=litellm", False),
    ("", False),
]


@pytest.mark.parametrize("url, own", SPLIT)
def test_the_plans_url_is_split_as_urllib_splits_it(url, own):
    """dbctl plan reads a plain DATABASE_URL without importing urllib.parse (with ipaddress about 2.5 ms of every
    check): what litellm_tools.split_url and query_keys give is what urlsplit and parse_qsl give."""
    from urllib.parse import parse_qsl, urlsplit

    import litellm_tools

    try:
        want = urlsplit(url)
    except ValueError:  # raised by urllib.parse itself
        with pytest.raises(ValueError):
            litellm_tools.split_url(url)
        assert not own
        return
    got = litellm_tools.split_url(url)
    assert isinstance(got, litellm_tools.SplitUrl) is own
    assert [got.scheme, got.netloc, got.path, got.query, got.fragment, got.hostname] == [
        want.scheme,
        want.netloc,
        want.path,
        want.query,
        want.fragment,
        want.hostname,
    ]
    try:
        port = want.port
    except ValueError:
        assert not own
    else:
        assert got.port == port
    assert litellm_tools.query_keys(got.query) == {k for k, _ in parse_qsl(want.query, keep_blank_values=True)}


@pytest.fixture(scope="module")
def tls_pg(tmp_path_factory):
    """A PostgreSQL that offers TLS (a self-signed certificate), its pg_hba.conf switched by ``hba``."""
    with LocalPostgres() as pg:
        key, cert = pg.data / "server.key", pg.data / "server.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
            + ["-keyout", str(key), "-out", str(cert)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        owner = pg.data.stat()
        for path in (key, cert):
            os.chown(path, owner.st_uid, owner.st_gid)
            path.chmod(0o600)
        with pg.admin() as conn:
            conn.execute("ALTER SYSTEM SET ssl = on")
            conn.execute("SELECT pg_reload_conf()")

        def hba(kind: str) -> None:
            (pg.data / "pg_hba.conf").write_text(f"local all all trust\n{kind} all all 127.0.0.1/32 scram-sha-256\n")
            with pg.admin() as conn:
                conn.execute("SELECT pg_reload_conf()")

        pg.hba = hba
        yield pg


def _session_tls(url: str) -> bool:
    with litellm_pq.connect(url, litellm_pq.defaults(url), connect_timeout=5) as conn:
        return conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()[0]


@pytest.mark.parametrize(
    "hba, query, tls",
    [
        ("host", "", False),  # loopback, the URL silent: no TLS handshake
        ("host", "?sslmode=require", True),  # the URL's sslmode wins
        ("host", "?sslmode=prefer", True),
        ("hostssl", "", True),  # a server that takes only TLS still gets it (sslmode=allow tries it second)
        ("hostnossl", "", False),
    ],
)
def test_the_urls_sslmode_wins_and_a_tls_only_server_still_answers(tls_pg, hba, query, tls):
    tls_pg.hba(hba)
    try:
        assert _session_tls(tls_pg.url + query) is tls
    finally:
        tls_pg.hba("host")


def test_the_urls_gssencmode_wins(pg):
    """gssencmode=require in the URL is kept (no Kerberos here: the connection fails, naming GSSAPI)."""
    url = pg.url + "?gssencmode=require"
    with pytest.raises(litellm_pq.Error) as caught:
        litellm_pq.connect(url, litellm_pq.defaults(url), connect_timeout=5)
    assert "GSSAPI" in str(caught.value) or "gssencmode" in str(caught.value)
