"""Your own projections: the README's example, loaded as a plugin (module path and entry point),
followed, re-delivered and rebuilt equal to a direct computation from the log; a failing
plugin isolated; every refusal with its message (exit 1, one line, no traceback).
"""

from __future__ import annotations

import asyncio
import io
import re
import signal
import sys
import textwrap
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from eventstore.cli import main
from eventstore.cli.bootstrap import projections as service_projections
from eventstore.cli.common import CliError
from eventstore.clock import FakeClock
from eventstore.model import STREAM_TYPES, Checkpoint, Event, Head
from eventstore.ports import Store
from eventstore.settings import Settings
from eventstore.worker_state import FAILED
from projections import Change, Projection, Write
from projections.orders import ORDER_PROJECTIONS, ORDER_SUMMARY
from projections.plugins import GROUP, PluginError, load_plugins
from projections.reserved import store_collection_names
from projections.runner import ProjectionFailed, ProjectionRunner
from tests.integration.test_cli_history import populated
from tests.integration.test_projector import workload

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The README's plugin example, as written there."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- plugin-example -->\n```python\n(.*?)```", text, re.S)
    assert block is not None, "the README lost its plugin example"
    return block.group(1)


@pytest.fixture
def shop_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """`shop_projections` (the README's example) importable; its name."""
    (tmp_path / "shop_projections.py").write_text(readme_example())
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "shop_projections", raising=False)
    return "shop_projections"


def install_entry_point(root: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A real installed distribution on sys.path declaring `value` in the plugin group."""
    dist = root / "shop_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shop-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{GROUP}]\nshop = {value}\n")
    monkeypatch.syspath_prepend(str(root))


def per_actor_day(events: list[Event]) -> dict[str, int]:
    """The example's model computed directly from the log: entity events per actor and day."""
    counts: Counter[str] = Counter()
    for e in events:
        if e.type not in STREAM_TYPES:
            actor = e.actor if e.actor is not None else "-"
            counts[f"{e.occurred_at:%Y-%m-%d}:{actor}"] += 1
    return dict(counts)


async def stored(store: Store, collection: str) -> dict[str, dict[str, Any]]:
    found = await store.read_models.query(collection, filters={}, limit=100_000)
    return {r["_id"]: {k: v for k, v in r.items() if k != "_id"} for r in found}


async def all_events(store: Store) -> list[Event]:
    return await store.events.read(after_seq=0, limit=1_000_000)


async def check_model(store: Store, projection: Projection) -> None:
    rows = await stored(store, projection.collection)
    expected = per_actor_day(await all_events(store))
    assert expected and {k: r["events"] for k, r in rows.items()} == expected
    head = (await store.events.head()).seq
    assert all(0 < r["_seq"] <= head for r in rows.values())
    assert all(r["day"] + ":" + r["actor"] == k for k, r in rows.items())


async def test_the_readme_example_from_a_module_path_follows_rebuilds_and_never_double_counts(
    store: Store, clock: FakeClock, shop_module: str
) -> None:
    await workload(store, clock, changes=60)
    loaded = service_projections(Settings(projections=(f"{shop_module}:EVENTS_PER_ACTOR",)))
    assert [p.name for p in loaded] == [*(p.name for p in ORDER_PROJECTIONS), "events_per_actor"]
    plugin = loaded[-1]
    runner = ProjectionRunner(store, plugin, clock=clock, batch_size=17)
    await runner.catch_up()
    await check_model(store, plugin)
    followed = await stored(store, plugin.collection)
    # every batch delivered again (the checkpoint lost): `_seq` keeps each row's count
    await store.checkpoints.put(Checkpoint(name=runner.role))
    await runner.catch_up()
    assert await stored(store, plugin.collection) == followed
    # half the batches again, from the middle
    middle = (await all_events(store))[40]
    await store.checkpoints.put(
        Checkpoint(name=runner.role, head=Head(seq=middle.seq, log_hash=middle.log_hash))
    )
    await runner.catch_up()
    assert await stored(store, plugin.collection) == followed
    # a rebuild from scratch gives the same rows
    await ProjectionRunner(store, plugin, clock=clock, batch_size=50).rebuild_now()
    assert await stored(store, plugin.collection) == followed


async def test_an_entry_point_plugin_is_loaded_and_followed_live(
    store: Store,
    clock: FakeClock,
    shop_module: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_entry_point(tmp_path / "site", monkeypatch, f"{shop_module}:EVENTS_PER_ACTOR")
    loaded = service_projections(Settings())
    assert [p.name for p in loaded][-1] == "events_per_actor"
    feed, sim = await workload(store, clock, changes=30)
    plugin = loaded[-1]
    runner = ProjectionRunner(store, plugin, clock=clock, batch_size=7, poll_seconds=0.01)
    stop = asyncio.Event()
    following = asyncio.create_task(runner.run(stop=stop))
    for _ in range(20):  # live: new events arrive while it follows
        clock.advance(3600)
        await sim.step()
    from tests.integration.ingest_helpers import ingester

    await ingester(store, feed, clock).run(until_idle=True)
    head = (await store.events.head()).seq
    for _ in range(500):
        if await runner.position() == head:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await following
    assert await runner.position() == head
    await check_model(store, plugin)


def test_an_entry_point_that_names_a_list_loads_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "two_plugins.py").write_text(
        textwrap.dedent(
            """
            from projections import Projection

            def keys(change):
                return []

            def apply(rows, change):
                return []

            BOTH = [
                Projection(name="one", collection="rm_one", keys=keys, apply=apply),
                Projection(name="two", collection="rm_two", keys=keys, apply=apply),
            ]
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    install_entry_point(tmp_path / "site", monkeypatch, "two_plugins:BOTH")
    assert [p.name for p in load_plugins([], builtin=ORDER_PROJECTIONS)] == ["one", "two"]


# -- a failing plugin ------------------------------------------------------------------------
def _count_keys(change: Change) -> list[str]:
    return ["all"]


def _fail_at_third(rows: Any, change: Change) -> list[Write]:
    if change.event.seq == 3:
        raise ValueError("no such thing")
    n = (rows.get("all") or {}).get("n", 0)
    return [Write(key="all", row={"n": n + 1})]


FAILING = Projection(
    name="failing", collection="rm_failing", keys=_count_keys, apply=_fail_at_third
)


async def test_a_failing_plugin_stops_only_itself(store: Store, clock: FakeClock) -> None:
    await workload(store, clock, changes=10)
    runners = [ProjectionRunner(store, p, clock=clock) for p in (*ORDER_PROJECTIONS, FAILING)]
    results = await asyncio.gather(
        *(r.run(until_caught_up=True) for r in runners), return_exceptions=True
    )
    head = (await store.events.head()).seq
    failing = runners[-1]
    assert isinstance(results[-1], ProjectionFailed) and results[-1].seq == 3
    assert failing.status.state == FAILED and failing.status.failed_seq == 3
    assert failing.status.error == "ValueError: no such thing"
    assert await failing.position() < 3
    for runner, result in zip(runners[:-1], results[:-1], strict=True):
        assert result is None and await runner.position() == head, runner.projection.name


class _OwnBase(BaseException):
    """A plugin's own BaseException."""


def _exits_at_third(raised: BaseException) -> Projection:
    def apply(rows: Any, change: Change) -> list[Write]:
        if change.event.seq == 3:
            raise raised
        return [Write(key="all", row={"seq": change.event.seq})]

    return Projection(name="exits", collection="rm_exits", keys=_count_keys, apply=apply)


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (SystemExit("plugin called sys.exit"), "apply raised SystemExit: plugin called sys.exit"),
        (SystemExit(0), "apply raised SystemExit: 0"),
        (KeyboardInterrupt(), "apply raised KeyboardInterrupt: "),
        # no Exception either: the projection stayed `stopped` at 0 with nothing said
        (GeneratorExit("gen"), "apply raised GeneratorExit: gen"),
        (asyncio.CancelledError("own"), "apply raised CancelledError: own"),
        (_OwnBase("mine"), "apply raised _OwnBase: mine"),
    ],
)
async def test_a_plugin_raising_what_would_end_the_process_stops_only_itself(
    store: Store,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    error: str,
) -> None:
    # A service handles SIGINT itself: a KeyboardInterrupt there is the plugin's own. (The
    # service died with 116 lines of tracebacks: an outside tester's plugin.)
    monkeypatch.setattr("signal.getsignal", lambda _: signal.SIG_IGN)
    await workload(store, clock, changes=10)
    runners = [
        ProjectionRunner(store, p, clock=clock)
        for p in (*ORDER_PROJECTIONS, _exits_at_third(raised))
    ]
    results = await asyncio.gather(
        *(r.run(until_caught_up=True) for r in runners), return_exceptions=True
    )
    exits = runners[-1]
    assert isinstance(results[-1], ProjectionFailed) and results[-1].seq == 3
    assert exits.status.state == FAILED and exits.status.failed_seq == 3
    assert exits.status.error == f"PluginExited: {error}"
    head = (await store.events.head()).seq
    for runner, result in zip(runners[:-1], results[:-1], strict=True):
        assert result is None and await runner.position() == head, runner.projection.name


async def test_a_ctrl_c_in_a_plugin_s_apply_still_ends_a_command(
    store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python's own SIGINT handler: the KeyboardInterrupt may be the user's, and goes on.
    monkeypatch.setattr("signal.getsignal", lambda _: signal.default_int_handler)
    await workload(store, clock, changes=10)
    runner = ProjectionRunner(store, _exits_at_third(KeyboardInterrupt()), clock=clock)
    with pytest.raises(KeyboardInterrupt):
        await runner.run(until_caught_up=True)


# -- a plugin whose output cannot be stored ---------------------------------------------------
# Each is refused at the third change, on every store, as MongoDB would refuse it at write time
# (or worse, store it silently on memory://): the projection fails at that seq with the reason.
_UNSET: Any = object()


def _at_third(bad_keys: Any = _UNSET, bad_writes: Any = _UNSET) -> Projection:
    def keys(change: Change) -> Any:
        if change.event.seq == 3 and bad_keys is not _UNSET:
            if isinstance(bad_keys, Exception):
                raise bad_keys
            return bad_keys
        return ["all"]

    def apply(rows: Any, change: Change) -> Any:
        if change.event.seq == 3 and bad_writes is not _UNSET:
            return bad_writes
        n = (rows.get("all") or {}).get("n", 0)
        return [Write(key="all", row={**(rows.get("all") or {}), "n": n + 1})]

    return Projection(name="odd", collection="rm_odd", keys=keys, apply=apply)


class _NotBson:
    pass


@pytest.mark.parametrize(
    ("projection", "error"),
    [
        (_at_third(bad_keys=KeyError("boom")), "KeyError: 'boom'"),
        (_at_third(bad_keys="all"), "keys returned 'all' (str), not a list of strings"),
        (_at_third(bad_keys=[5]), "keys returned the key 5 (int): a key is a non-empty string"),
        (_at_third(bad_keys=[""]), "keys returned the key '' (str)"),
        (_at_third(bad_writes=None), "apply returned None (NoneType), not a list of Write"),
        (_at_third(bad_writes=[{"key": "all"}]), "in its list, not a Write"),
        (_at_third(bad_writes=[Write(key=7, row={})]), "apply returned the key 7 (int)"),  # type: ignore[arg-type]
        (_at_third(bad_writes=[Write(key="all", row="x")]), "the row 'x' (str)"),  # type: ignore[arg-type]
        (_at_third(bad_writes=[Write(key="all", row={1: 2})]), "the field name 1"),  # type: ignore[dict-item]
        (_at_third(bad_writes=[Write(key="all", row={"$set": 1})]), "the field '$set'"),
        (_at_third(bad_writes=[Write(key="all", row={"_id": "other"})]), "whose _id is 'other'"),
        (_at_third(bad_writes=[Write(key="all", row={"x": _NotBson()})]), "cannot store"),
        (_at_third(bad_writes=[Write(key="all", row={"x": Decimal("1.5")})]), "cannot store"),
        (_at_third(bad_writes=[Write(key="all", row={"x": 2**64})]), "cannot store"),
    ],
)
async def test_a_plugin_whose_output_cannot_be_stored_fails_at_that_seq(
    store: Store, clock: FakeClock, projection: Projection, error: str
) -> None:
    await workload(store, clock, changes=10)
    runners = [ProjectionRunner(store, p, clock=clock) for p in (ORDER_SUMMARY, projection)]
    results = await asyncio.gather(
        *(r.run(until_caught_up=True) for r in runners), return_exceptions=True
    )
    odd = runners[1]
    assert isinstance(results[1], ProjectionFailed) and results[1].seq == 3
    assert odd.status.state == FAILED and odd.status.failed_seq == 3
    assert odd.status.error is not None and error in odd.status.error
    assert await odd.position() < 3
    assert (await stored(store, "rm_odd")).get("all", {}).get("n", 0) < 3  # nothing of seq 3
    assert results[0] is None
    assert await runners[0].position() == (await store.events.head()).seq


async def test_a_plugin_row_read_back_keeps_its_id_and_is_accepted(
    store: Store, clock: FakeClock
) -> None:
    await workload(store, clock, changes=10)
    runner = ProjectionRunner(store, _at_third(), clock=clock, batch_size=2)
    await runner.run(until_caught_up=True)
    head = (await store.events.head()).seq
    entity_events = sum(1 for e in await all_events(store) if e.type not in STREAM_TYPES)
    assert (await stored(store, "rm_odd"))["all"]["n"] == entity_events
    assert await runner.position() == head


def test_a_failing_plugin_shows_failed_in_projections_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "failing_plugin.py").write_text(
        "from tests.integration.test_plugin_projections import FAILING\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    store = populated()
    argv = ["--uri", "memory://", "--projections", "failing_plugin:FAILING"]
    out = io.StringIO()
    # the supervised projector: the failing plugin ends the command with exit 1, the rest caught up
    assert main(["project", "--until-caught-up", *argv], out=out, store=store) == 1
    assert "failing: position 0, failed (ProjectionFailed: projection failing failed at seq 3" in (
        out.getvalue()
    )
    assert "order_summary: position 4, stopped" in out.getvalue()
    err = capsys.readouterr().err
    assert "projection failed: failing: ProjectionFailed" in err and "Traceback" not in err
    out = io.StringIO()
    assert main(["projections", "status", *argv], out=out, store=store) == 0
    line = next(x for x in out.getvalue().splitlines() if x.startswith("failing "))
    assert "failed" in line and "failed at seq 3: ValueError: no such thing" in line


# -- refusals ----------------------------------------------------------------------------------
PLUGIN_MODULE = """
from projections import Projection

def keys(change):
    return []

def apply(rows, change):
    return []

def make(name, collection):
    return Projection(name=name, collection=collection, keys=keys, apply=apply)

GOOD = make("good_one", "rm_good_one")
SAME_NAME = make("good_one", "rm_other")
SAME_COLLECTION = make("other", "rm_good_one")
TAKEN_NAME = make("order_summary", "rm_mine")
TAKEN_COLLECTION = make("mine", "rm_order_summary")
BAD_NAME = make("Bad-Name", "rm_bad")
LONG_NAME = make("a" * 65, "rm_long")
NEWLINE_NAME = make("good\\n", "rm_newline")
NOT_A_PROJECTION = {"name": "x"}
EMPTY = []
BUILDING = make("building", "rm_order_summary__rebuild")
STAGING = make("staging", "rm_x__rebuild_0a1b_p0_1")
DOLLAR = make("dollar", "rm_$x")
MERGE_TEXT = Projection(name="m", collection="rm_m", keys=keys, apply=apply, merge="sum")
SKIP_TEXT = Projection(name="s", collection="rm_s", keys=keys, apply=apply, skippable=True)
FORGET_TEXT = Projection(name="f", collection="rm_f", keys=keys, apply=apply, forget="name")
FORGET_TYPED_TEXT = Projection(
    name="t", collection="rm_t", keys=keys, apply=apply, forget_typed="yes"  # type: ignore[arg-type]
)
"""


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "refused_plugins.py").write_text(PLUGIN_MODULE)
    (tmp_path / "broken_plugin.py").write_text("import no_such_module_anywhere\n")
    (tmp_path / "exiting_plugin.py").write_text("import sys\nsys.exit(0)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("refused_plugins", "broken_plugin", "exiting_plugin"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return "refused_plugins"


def reserved_plugin(collection: str) -> str:
    return f"refused_plugins:make('x', {collection!r})"


def test_demo_refuses_a_plugin_before_it_prints_its_banner_and_admin_key(
    plugin_module: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    argv = ["demo", "--port", "0", "--projections", "refused_plugins:DOLLAR"]
    assert main(argv, out=out) == 1
    err = capsys.readouterr().err
    assert out.getvalue() == "" and "serving" not in err and "admin key" not in err
    assert "collection 'rm_$x' is not a MongoDB collection name" in err


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (  # exited 0 with no word before: a command that did nothing, "successfully"
            ["exiting_plugin:X"],
            "projection plugin 'exiting_plugin:X': cannot import module 'exiting_plugin': "
            "SystemExit: 0",
        ),
        (
            ["broken_plugin:X"],
            "projection plugin 'broken_plugin:X': cannot import module 'broken_plugin': "
            "ModuleNotFoundError: No module named 'no_such_module_anywhere'",
        ),
        (
            ["nowhere_at_all:X"],
            "projection plugin 'nowhere_at_all:X': cannot import module 'nowhere_at_all'",
        ),
        (
            ["refused_plugins:MISSING"],
            "projection plugin 'refused_plugins:MISSING': module 'refused_plugins' has no "
            "attribute 'MISSING'",
        ),
        (
            ["refused_plugins:NOT_A_PROJECTION"],
            "projection plugin 'refused_plugins:NOT_A_PROJECTION': dict is not a Projection",
        ),
        (["refused_plugins:EMPTY"], "names an empty list"),
        (
            ["refused_plugins:BAD_NAME"],
            "projection plugin 'refused_plugins:BAD_NAME': name 'Bad-Name' does not match "
            "^[a-z][a-z0-9_]{0,63}$",
        ),
        (["refused_plugins:LONG_NAME"], "does not match ^[a-z][a-z0-9_]{0,63}$"),
        # `$` of re.match also matches before a final newline: the name was taken.
        (["refused_plugins:NEWLINE_NAME"], "name 'good\\n' does not match"),
        (
            ["refused_plugins:GOOD", "refused_plugins:SAME_NAME"],
            "projection plugin 'refused_plugins:SAME_NAME': name 'good_one' is already taken "
            "by projection plugin 'refused_plugins:GOOD'",
        ),
        (
            ["refused_plugins:GOOD", "refused_plugins:SAME_COLLECTION"],
            "projection plugin 'refused_plugins:SAME_COLLECTION' (other): collection "
            "'rm_good_one' is already used by projection plugin 'refused_plugins:GOOD' (good_one)",
        ),
        (
            ["refused_plugins:TAKEN_NAME"],
            "name 'order_summary' is already taken by the built-in projection",
        ),
        (
            ["refused_plugins:TAKEN_COLLECTION"],
            "collection 'rm_order_summary' is already used by the built-in projection "
            "order_summary",
        ),
        (
            ["refused_plugins:BUILDING"],
            "collection 'rm_order_summary__rebuild' contains '__rebuild'",
        ),
        (
            ["refused_plugins:STAGING"],  # a partition's staging collection, by its form
            "collection 'rm_x__rebuild_0a1b_p0_1' contains '__rebuild'",
        ),
        (["refused_plugins:DOLLAR"], "collection 'rm_$x' is not a MongoDB collection name"),
        (
            ["refused_plugins:MERGE_TEXT"],
            "projection plugin 'refused_plugins:MERGE_TEXT' (m): merge is neither callable nor None",
        ),
        (
            ["refused_plugins:SKIP_TEXT"],
            "projection plugin 'refused_plugins:SKIP_TEXT' (s): skippable is neither callable "
            "nor None",
        ),
        (
            ["refused_plugins:FORGET_TEXT"],
            "projection plugin 'refused_plugins:FORGET_TEXT' (f): forget is neither callable "
            "nor None",
        ),
        (
            ["refused_plugins:FORGET_TYPED_TEXT"],
            "projection plugin 'refused_plugins:FORGET_TYPED_TEXT' (t): forget_typed is True "
            "or False",
        ),
    ],
)
def test_each_refusal_is_one_line_naming_the_plugin_and_exit_1(
    plugin_module: str,
    specs: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(PluginError, match=re.escape(message)):
        load_plugins(specs, builtin=ORDER_PROJECTIONS)
    argv = ["projections", "status", "--uri", "memory://", "--projections", ",".join(specs)]
    assert main(argv, out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "collection",
    sorted(
        {
            "events",
            "checkpoints",
            "snapshots",
            "leases",
            "jobs",
            "workers",
            "migrations",
            "subscriptions",
            "subscription_settled",
            "subscription_parked",
            "admin_actions",
            "merkle_nodes",
            "tree_nodes",
            "tree_checkpoints",
            "erasure_requests",
            "event_payloads",
            "projection_states",
            "Events",
            "system.views",
            "system.profile",
        }
    ),
)
def test_no_plugin_may_use_a_collection_of_the_store(plugin_module: str, collection: str) -> None:
    module = sys.modules.get(plugin_module) or __import__(plugin_module)
    monkey = module.make("x", collection)
    with pytest.raises(PluginError, match=re.escape(f"collection {collection!r}")):
        load_plugins([], builtin=ORDER_PROJECTIONS, entry_points=[_FakeEntry(monkey)])


def test_every_collection_the_store_defines_is_reserved() -> None:
    from eventstore.mongo import collections

    defined = {v for k, v in vars(collections).items() if k.isupper() and isinstance(v, str)}
    assert defined and defined <= store_collection_names()


class _FakeEntry:
    """An entry point whose load() gives a projection (the loader's contract only)."""

    name = "fake"
    value = "fake:X"

    def __init__(self, projection: Projection) -> None:
        self.projection = projection

    def load(self) -> Projection:
        return self.projection


def test_a_broken_installed_entry_point_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_entry_point(tmp_path, monkeypatch, "gone_module:X")
    with pytest.raises(CliError, match=r"projection plugin 'shop' \(entry point 'gone_module:X'"):
        service_projections(Settings())


def test_a_malformed_projections_setting_is_a_settings_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["projections", "status", "--uri", "memory://", "--projections", "no_colon"]
    assert main(argv, out=io.StringIO()) == 1
    assert "--projections takes module:attribute" in capsys.readouterr().err


def test_builtin_projections_keep_their_own_seq() -> None:
    assert ORDER_SUMMARY.tracks_seq and all(p.tracks_seq for p in ORDER_PROJECTIONS)


async def test_a_plugin_s_skippable_raising_sys_exit_fails_only_its_rebuild(
    store: Store, clock: FakeClock
) -> None:
    from tests.integration.test_rebuild_skipping import LATEST

    await workload(store, clock, changes=10)

    asked: list[int] = []

    def skippable(change: Change) -> bool:  # asked once a row exists: it exits then
        asked.append(change.event.seq)
        raise SystemExit(7)

    exits = msgspec.structs.replace(LATEST, skippable=skippable)
    runner = ProjectionRunner(store, exits, clock=clock)
    with pytest.raises(ProjectionFailed) as failed:
        await runner.rebuild_now()
    assert asked and failed.value.seq == asked[0] == runner.status.failed_seq
    assert runner.status.error == "PluginExited: skippable raised SystemExit: 7"
