"""The query engine's protocol translation (files/query-engine/translate.mjs), tested as data.

Each case of query_engine/cases.json names a function of translate.mjs, its arguments (what
prisma-client-py 0.11.0 sends, as its query builder writes it for LiteLLM's models, or what the
Wasm engine answers) and the expected result or refusal. They run in Node (the harness, a
subprocess with a timeout) against the engine assembled from the lock, exactly as it is shipped.
The assembly itself (litellm_runner/query_engine.py) is tested here too: the lock pins every
package with its integrity hash, and the tar.gz is the same bytes each time; so is the operation
that installs it (facts in, commands or no-op out) and the script root runs to unpack it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest

from litellm_runner import query_engine
from litellm_runner.resources import shipped
from tests.unit import fakehost
from tests.unit.fakehost import run_op

HERE = pathlib.Path(__file__).parent / "query_engine"
CASES = json.loads((HERE / "cases.json").read_text())["cases"]
NODE_TIMEOUT = 60


@pytest.fixture(scope="module")
def tree():
    """The engine as the converge ships it (assembled once per version, kept in the project's cache)."""
    return query_engine.tree()


@pytest.fixture(scope="module")
def answers(tree):
    """translate.mjs's answer to every case, in one node process."""
    node = shutil.which("node")
    assert node, "node is needed on the control machine (it assembles the engine with npm)"
    proc = subprocess.run(
        [node, str(HERE / "harness.mjs"), str(tree)],
        input=json.dumps({"schema": (HERE / "schema.prisma").read_text(), "cases": CASES}),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c["name"] for c in CASES])
def test_translation(answers, index):
    assert answers[index] == CASES[index]["expected"]


def test_every_function_of_the_translation_has_a_case():
    source = (shipped("files", "query-engine") / "translate.mjs").read_text()
    exported = {line.split("(")[0].split()[-1] for line in source.splitlines() if line.startswith("export function")}
    assert exported - {c["function"] for c in CASES} <= {
        "fieldTypes",
        "toJsonRequest",
        "fromJsonResponse",
        "untag",
        "rawRows",
        "tagJsonFields",
    }  # covered through the others


def test_field_types_read_from_litellms_schema(answers):
    node = shutil.which("node")
    script = (
        "import(process.argv[1]).then((t) => process.stdout.write(JSON.stringify("
        "t.fieldTypes(require('fs').readFileSync(0, 'utf8')))))"
    )
    proc = subprocess.run(
        [node, "-e", script, str(query_engine.tree() / "translate.mjs")],
        input=(HERE / "schema.prisma").read_text(),
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=True,
    )
    models = json.loads(proc.stdout)
    assert models["LiteLLM_VerificationToken"]["metadata"] == "Json"
    assert models["LiteLLM_VerificationToken"]["expires"] == "DateTime"
    assert models["LiteLLM_VerificationToken"]["litellm_budget_table"] == "LiteLLM_BudgetTable"
    assert "@@index" not in json.dumps(models)


def test_every_npm_package_is_locked_with_its_integrity_hash():
    lock = json.loads((shipped("files", "query-engine") / "package-lock.json").read_text())
    wanted = json.loads((shipped("files", "query-engine") / "package.json").read_text())["dependencies"]
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert packages, "the lock lists no package"
    for name, entry in packages.items():
        assert entry.get("integrity", "").startswith("sha512-"), name
    for name, version in wanted.items():
        assert packages[f"node_modules/{name}"]["version"] == version, f"{name}: package.json pins {version}"


def test_the_bundle_is_reproducible_and_holds_only_files_root_owns(tree):
    data, manifest_sha = query_engine.bundle()
    assert query_engine.archive(tree) == data
    assert query_engine.manifest_sha256() == manifest_sha  # what a check compares, without the archive
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        assert names == sorted(names)
        for m in members:
            assert m.isfile() or m.isdir(), m.name
            assert (m.uid, m.gid, m.mtime) == (0, 0, 0), m.name
            assert not m.name.startswith("/") and ".." not in m.name.split("/"), m.name
            assert m.mode == (0o755 if m.isdir() or m.name in query_engine.EXECUTABLES else 0o644), m.name
        text = tar.extractfile(query_engine.MANIFEST).read()
    assert hashlib.sha256(text).hexdigest() == manifest_sha
    listed = {line.split("  ", 1)[1] for line in text.decode().splitlines()}
    assert listed == {n for n, m in zip(names, members, strict=True) if m.isfile()} - {query_engine.MANIFEST}
    assert {
        "query-engine",
        "server.mjs",
        "node_modules/@prisma/query-engine-wasm/postgresql/query_engine_bg.wasm",
        "node_modules/prisma/build/index.js",
    } <= listed


def test_the_version_folder_is_named_by_the_sources():
    env = query_engine.environment()
    where = f"{query_engine.ENGINE_ROOT}/{query_engine.digest()[:16]}"
    assert env == {
        "PRISMA_QUERY_ENGINE_BINARY": f"{where}/query-engine",
        "PRISMA_SCHEMA_ENGINE_BINARY": f"{where}/schema-engine",
        "PRISMA_BINARY_CACHE_DIR": where,
        "DISABLE_SCHEMA_UPDATE": "true",
    }


def test_the_engine_answers_its_version_without_a_database(tree):
    proc = subprocess.run(
        [str(tree / "query-engine"), "--version"], capture_output=True, text=True, timeout=NODE_TIMEOUT, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, "query-engine 393aa359c9ad4a4bb28630fb5613f9c281cde053\n")


# -- the operation that installs it, as data: facts in, commands or no-op out ------------------------------------
MANIFEST_SHA = "ab" * 32
DEST = f"{query_engine.ENGINE_ROOT}/0123456789abcdef"


def manifest_state(**changes):
    return {"type": "file", "mode": "0644", "user": "root", "group": "root", "sha256": MANIFEST_SHA, **changes}


def engine_found(found):
    """The host snapshot with the engine's MANIFEST as FOUND (None: missing)."""
    from litellm_runner.pyinfra_ext.snapshot import HostSnapshot

    return {HostSnapshot: fakehost.snap(paths={f"{DEST}/{query_engine.MANIFEST}": found})}


@pytest.mark.parametrize(
    "found",
    [
        None,  # never installed
        manifest_state(sha256="cd" * 32),  # another version's manifest (or a damaged one)
        manifest_state(user="litellm"),  # the service account could have written it
        manifest_state(mode="0666"),
        {"type": "symlink", "mode": "0777", "user": "root", "group": "root", "sha256": None},
    ],
    ids=["missing", "other-version", "account-owned", "writable", "symlink"],
)
def test_an_engine_not_installed_as_shipped_is_installed(found, monkeypatch):
    from litellm_runner.pyinfra_ext.operations import engine_installed

    monkeypatch.setattr(query_engine, "bundle", lambda: (b"bundle", MANIFEST_SHA))
    commands, noops = run_op(engine_installed, facts=engine_found(found), dest=DEST, manifest_sha256=MANIFEST_SHA)
    assert noops == []
    assert commands == [f"install query engine {DEST} sha256:{hashlib.sha256(b'bundle').hexdigest()[:12]}"]
    assert [item["kind"] for item in fakehost.last_drift] == ["query-engine"]


def test_an_engine_installed_as_shipped_is_a_noop_without_assembling_it(monkeypatch):
    from litellm_runner.pyinfra_ext.operations import engine_installed

    monkeypatch.setattr(query_engine, "bundle", lambda: pytest.fail("assembled for nothing"))
    commands, noops = run_op(
        engine_installed, facts=engine_found(manifest_state()), dest=DEST, manifest_sha256=MANIFEST_SHA
    )
    assert commands == []
    assert noops == [f"the query engine in {DEST} is installed, root's and read-only"]


def test_the_install_script_refuses_a_bundle_of_another_sha256_and_installs_root_owned(tmp_path):
    """The root part of the install (ENGINE_INSTALL), run here on a bundle made like the shipped one."""
    from litellm_runner.pyinfra_ext.operations import ENGINE_INSTALL

    src = tmp_path / "src"
    (src / "node_modules" / "x").mkdir(parents=True)
    (src / "query-engine").write_text("#!/bin/sh\n")
    (src / "node_modules" / "x" / "index.js").write_text("module.exports = 1\n")
    (src / query_engine.MANIFEST).write_text(query_engine.manifest(src))
    bundle = tmp_path / "engine.tar.gz"
    bundle.write_bytes(query_engine.archive(src))
    dest = tmp_path / "lib" / "0123456789abcdef"

    def install(sha):
        return subprocess.run(
            ["sh", "-c", ENGINE_INSTALL, "install", str(bundle), sha, str(dest)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    refused = install("0" * 64)
    assert refused.returncode == 1 and "query engine bundle: sha256" in refused.stderr
    assert not dest.exists()
    done = install(hashlib.sha256(bundle.read_bytes()).hexdigest())
    assert done.returncode == 0, done.stderr
    assert (dest / "node_modules" / "x" / "index.js").read_text() == "module.exports = 1\n"
    assert oct((dest / "query-engine").stat().st_mode & 0o777) == "0o755"
    assert oct((dest / "node_modules" / "x" / "index.js").stat().st_mode & 0o777) == "0o644"
    assert oct(dest.stat().st_mode & 0o777) == "0o755"
    if os.geteuid() == 0:
        assert {p.stat().st_uid for p in [dest, *dest.rglob("*")]} == {0}
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no staging folder left
