"""The run's state lives in its Run (litellm_runner/run/state.py), one per pyinfra State: two runs in one
process see nothing of each other's, and no module global holds run state (an AST scan, with an allow-list
of the process-wide values and why each may stay)."""

import ast
import gc
import pathlib
import weakref

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.api.facts import FactBase

from litellm_runner.pyinfra_ext import drift, lock, snapshot
from litellm_runner.run import compat
from litellm_runner.run import state as run_state

ROOT = pathlib.Path(__file__).resolve().parents[2]


class Answer(FactBase):
    """A fact no host is asked for here: each test host answers it from get_fact below."""

    def command(self):
        return "true"


def a_run(answer: str):
    """A real pyinfra state with one never-connected host named like the other run's, answering ANSWER."""
    inventory = Inventory((["same-name"], {}))
    state = State(inventory, Config())
    host = inventory.get_host("same-name")
    state.activate_host(host)
    host.get_fact = lambda cls, **kwargs: answer  # the host's own answer, asked now (no connection)
    return state, host


def test_two_runs_in_one_process_see_nothing_of_each_others_state():
    first, second = a_run("asked in the first"), a_run("asked in the second")
    with compat.in_context(*first):
        snapshot.prefetch([("answer", Answer, {"n": 1})])  # the first run asks ahead, the second does not
        drift.record("file", "before-1", "after-1")
    with compat.in_context(*second):
        drift.record("unit", "before-2", "after-2")
        assert snapshot.answer("answer", Answer, n=1) == "asked in the second"  # not the first run's prefetched answer
    with compat.in_context(*first):
        assert snapshot.answer("answer", Answer, n=1) == "asked in the first"  # its own prefetched answer, once
    run_state.of(first[0]).rollout_failed = "same-name"
    lock.held(first[0]).closed.add("same-name")

    assert [r["kind"] for r in drift.records(first[0])["same-name"]] == ["file"]
    assert [r["kind"] for r in drift.records(second[0])["same-name"]] == ["unit"]
    assert run_state.of(first[0]) is not run_state.of(second[0])
    assert run_state.of(second[0]).prefetched == {} and run_state.of(second[0]).rollout_failed is None
    assert lock.held(second[0]).closed == set() and lock.held(first[0]) is not lock.held(second[0])
    # each run is its own lock owner: a second run in this process never takes the first's lock for its own
    assert lock.owner(first[0]).run_id == lock.held(first[0]).run_id != lock.owner(second[0]).run_id
    run_state.of(first[0]).sudo_passwords["same-name"] = "first's"
    assert run_state.of(second[0]).sudo_passwords == {}


def test_a_runs_state_goes_with_its_pyinfra_state():
    state, host = a_run("unused")
    run_state.of(state).known_secrets["same-name"] = ["a secret"]
    gone = weakref.ref(run_state.of(state))
    del state, host  # the host refers to its state
    gc.collect()
    assert gone() is None


# -- no module global holds run state ----------------------------------------------------------------------------

# Module-level names bound to a mutable value (or rebound with ``global``) that may stay, and why: each is
# the process's, not a run's. Anything else per run belongs in run/state.py's Run.
PROCESS_WIDE = {
    "litellm_runner/run/state.py:_runs": "the registry of runs itself: weak, keyed by each run's State",
    "litellm_runner/schema.py:_calendars": "a pure function's answers (systemd-analyze calendar of a string)",
    "litellm_runner/query_engine.py:_bundles": "a pure function's answers (the engine built from this checkout)",
    "litellm_runner/gates/cache.py:_memory": "a pure function's answers (gate results by their inputs' digest)",
    "litellm_runner/pyinfra_ext/rotation.py:_given": "the process's input: a pipe that can be read only once",
    "litellm_runner/metering.py:_counts": "the benchmark's counter: pyinfra's Host patched once per process",
    "litellm_runner/metering.py:_installed": "that patch, installed once per process",
    # the host side runs one action per process on the host, never in a run's process
    "litellm_runner/pyinfra_ext/hostside.py:_NAMES": "a lookup's answers (a uid's or gid's name) in one host command",
    "litellm_runner/pyinfra_ext/hostside.py:_HELD": "the directory handles one snapshot shares (``held_walks``)",
    "litellm_runner/pyinfra_ext/hostside.py:_PID1": "root's one D-Bus connection to PID 1 in one host command",
}
MUTABLE_CALLS = {"dict", "list", "set", "defaultdict", "OrderedDict", "Counter", "deque", "bytearray"}
MUTABLE_CALLS |= {"WeakKeyDictionary", "WeakValueDictionary", "WeakSet"}


def _mutable(value: ast.expr | None) -> bool:
    if isinstance(value, ast.Dict | ast.List | ast.Set | ast.DictComp | ast.ListComp | ast.SetComp):
        return True
    if isinstance(value, ast.Call):
        func = value.func
        return (func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")) in MUTABLE_CALLS
    return False


MUTATORS = {"append", "add", "update", "setdefault", "pop", "popitem", "clear", "extend", "insert", "remove"}
MUTATORS |= {"discard", "appendleft", "__setitem__"}


def _mutated_in_functions(tree: ast.Module, names: set[str]) -> set[str]:
    """Which of NAMES (module-level) a function changes in place: ``NAME[k] = v`` or ``NAME.append(...)`` etc."""
    found = set()
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for node in ast.walk(function):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
                target = node.func.value
            elif isinstance(node, ast.Assign | ast.AugAssign | ast.Delete):
                targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else [node.target]
                target = next((t.value for t in targets if isinstance(t, ast.Subscript)), None)
            else:
                continue
            if isinstance(target, ast.Name) and target.id in names:
                found.add(target.id)
    return found


def module_state(source: str) -> list[str]:
    """The names SOURCE keeps state in at module level: bound to a mutable value, rebound with ``global``, or
    changed in place by a function (whatever its case: an UPPER_CASE table a function fills is state too).
    Constants (UPPER_CASE, ``__dunder__``) bound to a mutable value and never changed are tables, not state."""
    tree = ast.parse(source)
    found, bound = set(), set()
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {t.id for t in targets if isinstance(t, ast.Name)}
            bound |= names
            if _mutable(node.value):
                found |= {n for n in names if not n.isupper() and not (n.startswith("__") and n.endswith("__"))}
    found |= {name for node in ast.walk(tree) if isinstance(node, ast.Global) for name in node.names}
    found |= _mutated_in_functions(tree, bound)
    return sorted(found)


def sources() -> list[pathlib.Path]:
    """The control machine's modules (the package, tasks/, the deploy and inventory files), symlinks once."""
    files = [*(ROOT / "litellm_runner").rglob("*.py"), *(ROOT / "tasks").glob("*.py")]
    files += [ROOT / "deploy.py", ROOT / "inventory.py"]
    real = [f for f in files if not any(p.is_symlink() for p in [f, *f.parents])]
    return sorted(f for f in real if f.exists())


@pytest.mark.parametrize(
    "source, expected",
    [
        ("_cache: dict = {}\n", ["_cache"]),
        ("_seen = set()\nTABLE = {'a': 1}\n__all__ = ['x']\n", ["_seen"]),
        ("import weakref\n_runs = weakref.WeakKeyDictionary()\n", ["_runs"]),
        ("_done = False\ndef f():\n    global _done\n    _done = True\n", ["_done"]),
        ("_lock = object()\nLIMIT = 3\ndef f():\n    local = {}\n", []),
        ("HELD = {}\ndef take(h):\n    HELD[h] = 1\n", ["HELD"]),  # an UPPER_CASE table a function fills
        ("ORDER = []\ndef f(x):\n    ORDER.append(x)\n", ["ORDER"]),
        ("TABLE = {'a': 1}\ndef f(k):\n    return TABLE[k]\n", []),
    ],
)
def test_the_scan_finds_module_state_and_only_it(source, expected):
    assert module_state(source) == expected


def test_no_module_global_holds_run_state():
    found = {f"{path.relative_to(ROOT)}:{name}" for path in sources() for name in module_state(path.read_text())}
    assert sorted(found - set(PROCESS_WIDE)) == [], "run state belongs in litellm_runner/run/state.py's Run"
    assert sorted(set(PROCESS_WIDE) - found) == [], "allowed but gone: remove it from PROCESS_WIDE"
