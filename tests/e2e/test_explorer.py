"""The explorer at /explorer in headless Chromium (Playwright for Python), against `eventstore demo`.

The demo runs as a subprocess on a free port with live order traffic; the page is
checked against what the API answers for the same questions. Screenshots go to
tests/artifacts/explorer/ (git-ignored). Without Chromium or Playwright the tests
skip, saying which is missing; with `CI` set they fail instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest

from api import create_app
from eventstore.clock import FakeClock
from eventstore.settings import Settings
from eventstore.sources.memory import MemoryChangeFeed
from tests.e2e.processes import (
    EVENTSTORE,
    ROOT,
    InProcessServer,
    Spooled,
    clean_env,
    free_port,
    serving,
)
from tests.integration.conftest import open_test_store
from tests.integration.ingest_helpers import ingester, start_from_the_beginning
from tests.supervision import metric

if TYPE_CHECKING:
    from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize

ARTIFACTS = ROOT / "tests" / "artifacts" / "explorer"
ADMIN = "explorer-admin-key"
READ = "explorer-read-key"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def require_browser() -> str:
    """Chromium's path; skips (fails when CI is set) when it or Playwright is missing."""
    missing = []
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python is not installed (pip install -e '.[test]')")
    chromium = chromium_path()
    if chromium is None:
        missing.append("Chromium is not installed (apt-get install -y chromium)")
    if missing:
        reason = "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the browser tests must run: {reason}", pytrace=False)
        pytest.skip(f"browser tests need Chromium and Playwright: {reason}")
    assert chromium is not None
    return chromium


# -- the demo ---------------------------------------------------------------------------------------
class Demo:
    """`eventstore demo` in a subprocess, and a client of its API."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.proc = Spooled(
            [*EVENTSTORE, "demo", *args, "--port", str(port)],
            cwd=ROOT,
            env=clean_env(**env),
            stdout=subprocess.DEVNULL,
        )
        read_key = env.get("EVENTSTORE_READ_KEYS")
        headers = {"authorization": f"Bearer {read_key}"} if read_key else {}
        self.http = httpx.Client(base_url=self.base, timeout=10, headers=headers)

    def wait_ready(self, entities: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the demo exited: {self.proc.communicate()[1][-2000:]}")
            try:
                streams = self.http.get("/v1/streams")
                found = streams.json() if streams.status_code == 200 else []
                if found and found[0]["entities"] >= entities:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError("the demo was not ready in time")
        page = self.http.get("/explorer")
        assert page.status_code == 200, (
            "the demo does not serve /explorer: register api.explorer.ROUTES in create_app"
        )

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_browser()


@pytest.fixture(scope="module")
def demo(chromium: str) -> Iterator[Demo]:
    """A demo with steady traffic: 6 orders, then 5 changes a second."""
    d = Demo("--orders", "6", "--rate", "5", "--seed", "11", env={"EVENTSTORE_ADMIN_KEY": ADMIN})
    try:
        d.wait_ready(entities=6)
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


class Console:
    """The page's console errors and uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            self.errors.append(f"{message.type}: {message.text} ({message.location})")

    def assert_clean(self, allowed: Callable[[str], bool] = lambda _: False) -> None:
        errors = [e for e in self.errors if not allowed(e)]
        assert errors == [], errors


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[tuple[Page, Console]]:
    context = browser.new_context(viewport=DESKTOP, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(15_000)
    console = Console(p)
    try:
        yield p, console
    finally:
        try:
            shot(p, request.node.name + "-last")
        finally:
            context.close()


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
    page.screenshot(path=str(ARTIFACTS / f"{safe}.png"), full_page=True)


# -- what the page shows ---------------------------------------------------------------------------
TIMELINE_JS = """() => [...document.querySelectorAll('#timeline > li.ev')].map(li => ({
  version: Number(li.dataset.version), seq: Number(li.dataset.seq), type: li.dataset.type,
  actor: li.dataset.actor, inferred: li.dataset.inferred === 'true',
  diff: [...li.querySelectorAll('table.diff tr')].map(tr => {
    const cell = (c) => { const td = tr.querySelector('td.' + c); const s = td.querySelector('[title]');
      return s ? s.getAttribute('title') : td.textContent; };
    return {path: tr.dataset.path, op: tr.dataset.op, before: cell('before'), after: cell('after')};
  }),
}))"""


def shown(value: Any) -> str:
    """A value as the page prints it (JSON.stringify)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def actor_text(actor: Any) -> str:
    """An actor as the page prints it."""
    if actor is None:
        return "unknown actor"
    return actor if isinstance(actor, str) else shown(actor)


def expected_entry(event: dict[str, Any]) -> dict[str, Any]:
    """A timeline entry as the page should show the API's history event."""
    return {
        "version": event["version"],
        "seq": event["seq"],
        "type": event["type"],
        "actor": actor_text(event["actor"]),
        "inferred": event["inferred"],
        "diff": [
            {
                "path": c["path"],
                "op": c["op"],
                "before": "—" if c["op"] == "added" else shown(c["before"]),
                "after": "—" if c["op"] == "removed" else shown(c["after"]),
            }
            for c in event["diff"]
        ],
    }


def entity_url(demo: Demo, key: str, suffix: str = "") -> str:
    return f"/v1/streams/orders/entities/{quote(key, safe='')}{suffix}"


def busiest_entity(demo: Demo) -> tuple[str, int]:
    """A recently changed order with the most versions (at least 3 when the traffic allows)."""
    items = demo.get("/v1/streams/orders/entities", limit=50)["items"]
    best = max(items, key=lambda it: (it["exists"], it["version"]))
    return best["entity_key"], best["version"]


def wait_versions(demo: Demo, at_least: int, seconds: float = 20) -> tuple[str, int]:
    deadline = time.monotonic() + seconds
    while True:
        key, version = busiest_entity(demo)
        if version >= at_least or time.monotonic() > deadline:
            return key, version
        time.sleep(0.25)


def open_entity(page: Page, demo: Demo, key: str) -> None:
    """Open `key` by its URL and wait until its timeline and latest state are shown."""
    page.goto(f"{demo.base}/explorer#/entity/orders/{quote(key, safe='')}")
    page.wait_for_function(
        """key => { const e = document.getElementById('entity');
          const s = document.getElementById('state-json');
          return e.dataset.key === key && e.dataset.loaded === 'true' && s.dataset.key === key; }""",
        arg=key,
    )


# -- the tests -------------------------------------------------------------------------------------
def test_the_timeline_of_an_order_matches_its_history(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    p, console = page
    key, _ = wait_versions(demo, 3)
    # Opened from the keyboard by its order number (looked up in order_summary).
    number = demo.get(entity_url(demo, key, "/state"), version=1)["document"]["number"]
    p.goto(f"{demo.base}/explorer")
    p.wait_for_selector("body[data-ready=true]")
    p.focus("#open-key")
    p.keyboard.type(number)
    p.keyboard.press("Enter")
    p.wait_for_function("key => document.getElementById('state-json').dataset.key === key", arg=key)
    assert number in p.locator("#entity-title").inner_text()
    shown_entries = p.evaluate(TIMELINE_JS)
    assert shown_entries, "the timeline shows no events"
    latest = max(e["version"] for e in shown_entries)
    # Traffic goes on: compare with the history up to the version the page has.
    history = demo.get(entity_url(demo, key, "/history"), to_version=latest, limit=1000)
    expected = [expected_entry(e) for e in reversed(history["events"])]
    assert shown_entries == expected

    assert demo.get(entity_url(demo, key, "/verify"))["valid"] is True
    p.wait_for_selector("#verify-badge[data-valid='true']")
    assert "chain verified" in p.locator("#verify-badge").inner_text()
    # The keyboard reaches the time travel buttons of the timeline.
    entries, buttons = p.evaluate(
        "() => [document.querySelectorAll('#timeline > li.ev').length,"
        " document.querySelectorAll('#timeline button.travel-to').length]"
    )
    assert entries == buttons
    shot(p, "timeline")
    console.assert_clean()


def test_the_slider_shows_a_past_version_as_the_api_does(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    p, console = page
    key, _ = wait_versions(demo, 3)
    open_entity(p, demo, key)
    slider = p.locator("#travel-slider")
    latest = int(slider.get_attribute("max") or "0")
    assert latest >= 2, "the demo made no order with two versions"
    # Keyboard: Home goes to version 1, ArrowRight one version on.
    slider.focus()
    p.keyboard.press("Home")
    p.keyboard.press("ArrowRight")
    p.wait_for_selector("#state-json[data-version='2']", state="attached")
    doc = json.loads(p.locator("#state-json").text_content() or "null")
    state = demo.get(entity_url(demo, key, "/state"), version=2)
    assert doc == state["document"]
    assert p.locator("#travel-version").inner_text().startswith("2 of")
    if latest > 2:  # (the latest version, followed, has no version in the URL)
        assert "v=2" in p.url

    # The fields changed by version 2 are highlighted, and only those.
    v2 = demo.get(entity_url(demo, key, "/history"), from_version=2, to_version=2)["events"][0]
    changed = {c["path"] for c in v2["diff"] if c["op"] != "removed"}
    highlighted = set(
        p.eval_on_selector_all("#state-doc li.changed", "els => els.map(e => e.dataset.path)")
    )
    if v2["type"] in ("created", "snapshot"):
        assert highlighted == set()
    else:
        assert highlighted == changed
    assert p.locator("#timeline > li.ev.selected").get_attribute("data-version") == "2"
    flagged = p.locator("#state-doc").get_attribute("data-uncertain")
    assert flagged == "false"  # the demo's record has no gaps

    # A moment picked in time gives the state the API gives for it.
    first = demo.get(entity_url(demo, key, "/history"), to_version=1)["events"][0]
    p.fill("#travel-at", first["occurred_at"].rstrip("Z"))
    p.click("#travel-at-go")
    p.wait_for_selector("#state-json[data-version='1']", state="attached")
    at_state = demo.get(entity_url(demo, key, "/state"), at=first["occurred_at"])
    assert at_state["version"] == 1
    assert json.loads(p.locator("#state-json").text_content() or "null") == at_state["document"]
    shot(p, "time-travel")
    console.assert_clean()


def test_an_unknown_key_opened_after_an_entity_shows_nothing_of_the_one_before(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    """The 404 is said, and no verdict, version or time of the previous entity stays on screen."""
    p, console = page
    key, _ = wait_versions(demo, 2)
    open_entity(p, demo, key)
    p.wait_for_selector("#verify-badge[data-valid='true']")
    p.fill("#open-key", "no-such-order-key")
    p.press("#open-key", "Enter")
    p.wait_for_selector("#alert:not([hidden])")
    assert "Not Found (404)" in p.locator("#alert-text").inner_text()
    assert "no-such-order-key" in p.locator("#alert-text").inner_text()
    assert p.locator("#entity").is_hidden()
    assert p.locator("#entity-empty").is_visible()
    assert p.locator("#verify-badge").get_attribute("data-valid") is None
    # The same entity opens again, whole, from the recently changed list or its URL.
    open_entity(p, demo, key)
    p.wait_for_selector("#verify-badge[data-valid='true']")
    assert p.locator("#entity-title").inner_text().endswith(key)
    console.assert_clean(lambda e: "404" in e)


def test_new_events_arrive_live(demo: Demo, page: tuple[Page, Console]) -> None:
    p, console = page
    head = demo.get("/v1/streams")[0]["last_seq"]
    p.goto(f"{demo.base}/explorer")
    p.wait_for_selector("body[data-ready=true]")
    # The live feed gets an event recorded after the page loaded, without a reload.
    p.wait_for_function(
        "head => [...document.querySelectorAll('#live-feed li')].some(li => +li.dataset.seq > head)",
        arg=head,
    )
    newest, first_recent = p.evaluate(
        "() => [document.querySelector('#live-feed li').dataset.key,"
        " document.querySelector('#recent-list li').dataset.key]"
    )
    assert newest == first_recent  # the recent list moved the changed entity to the top
    assert p.locator("#live-toggle").get_attribute("data-state") == "open"

    # The open timeline grows as its entity changes: open an order that is being worked on.
    for _attempt in range(6):
        key = p.evaluate(
            "() => { const li = [...document.querySelectorAll('#live-feed li')]"
            ".find(li => !li.querySelector('.t-deleted') && li.dataset.key !== '$stream');"
            " return li ? li.dataset.key : null; }"
        )
        if key is None:
            p.wait_for_timeout(500)
            continue
        open_entity(p, demo, key)
        before = p.locator("#timeline > li.ev").count()
        try:
            p.wait_for_function(
                "n => document.querySelectorAll('#timeline > li.ev').length > n",
                arg=before,
                timeout=6_000,
            )
        except Exception:  # that order went quiet: take the next one being worked on
            continue
        shown_entries = p.evaluate(TIMELINE_JS)
        latest = shown_entries[0]["version"]
        history = demo.get(entity_url(demo, key, "/history"), to_version=latest, limit=1000)
        assert shown_entries == [expected_entry(e) for e in reversed(history["events"])]
        # Following the latest version: the slider moved with it.
        p.wait_for_function(
            "v => +document.getElementById('state-json').dataset.version >= v", arg=latest
        )
        assert int(p.locator("#travel-slider").get_attribute("max") or "0") >= latest
        break
    else:
        raise AssertionError("no open order received an event while watched")
    shot(p, "live")
    console.assert_clean()


def test_projections_show_status_charts_and_follow_a_rebuild(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    p, console = page
    # Some orders get paid first, so revenue_by_day has rows.
    deadline = time.monotonic() + 20
    while not demo.get("/v1/projections/revenue_by_day")["items"]:
        assert time.monotonic() < deadline, "no order was paid"
        time.sleep(0.25)
    p.goto(f"{demo.base}/explorer#/projections")
    p.wait_for_selector("#projections tbody tr[data-name]")
    names = p.eval_on_selector_all("#projections tbody tr", "rows => rows.map(r => r.dataset.name)")
    assert names == [row["name"] for row in demo.get("/v1/projections")]

    p.wait_for_selector("#chart-status[data-points]", state="attached")
    p.wait_for_selector("#chart-revenue[data-points]", state="attached")
    p.wait_for_timeout(400)  # the charts' short animation
    painted = """id => { const c = document.getElementById(id);
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; }"""
    for canvas in ("chart-status", "chart-revenue"):
        assert p.evaluate(painted, canvas) > 2000, f"{canvas} is not drawn"
    statuses = p.evaluate("() => Chart.getChart('chart-status').data.labels")
    assert set(statuses) <= {"pending", "paid", "shipped", "delivered", "cancelled"} and statuses
    days = p.evaluate("() => Chart.getChart('chart-revenue').data.labels")
    assert set(days) == {r["day"] for r in demo.get("/v1/projections/revenue_by_day")["items"]}
    shot(p, "projections")

    # A rebuild asks for the admin key (keyboard only) and follows the job to its end.
    p.click("#projections tr[data-name='orders_by_status'] button.rebuild")
    assert p.locator("#rebuild-dialog").is_visible()
    p.keyboard.type(ADMIN)
    p.keyboard.press("Enter")
    p.wait_for_selector("#job[data-state='succeeded']")
    job = p.locator("#job").get_attribute("data-job")
    done = demo.http.get(f"/v1/admin/jobs/{job}", headers={"authorization": f"Bearer {ADMIN}"})
    assert done.json()["state"] == "succeeded"
    assert p.locator("#job-progress").evaluate("el => el.value === el.max")
    shot(p, "rebuild")
    console.assert_clean()


def test_the_audit_query_pages_and_exports(demo: Demo, page: tuple[Page, Console]) -> None:
    p, console = page
    p.goto(f"{demo.base}/explorer#/query")
    p.wait_for_selector("body[data-ready=true]")
    p.select_option("#q-stream", "orders")
    p.check("#q-types input[value='updated']")
    p.select_option("#q-limit", "25")
    p.click("#query-form button[type=submit]")
    p.wait_for_selector("#results tbody tr[data-seq]")
    seqs = p.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => +r.dataset.seq)")
    api = demo.get("/v1/events", stream="orders", type="updated", limit=25)
    assert seqs == [e["seq"] for e in api["events"]]
    if api["next"]:
        p.click("#page-next")
        p.wait_for_function(
            "first => +document.querySelector('#results tbody tr').dataset.seq !== first",
            arg=seqs[0],
        )
        page2 = demo.get("/v1/events", stream="orders", type="updated", limit=25, after=api["next"])
        shown2 = p.eval_on_selector_all(
            "#results tbody tr", "rows => rows.map(r => +r.dataset.seq)"
        )
        assert shown2 == [e["seq"] for e in page2["events"]][: len(shown2)]
    with p.expect_download() as download:
        p.click("#export-csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == [
        "seq",
        "occurred_at",
        "stream",
        "entity_key",
        "typed_key",
        "version",
        "type",
        "actor",
        "changed_fields",
    ]
    exported = [int(r[0]) for r in rows[1:]]
    assert exported[: len(seqs)] == seqs and {r[6] for r in rows[1:]} == {"updated"}
    console.assert_clean()


def test_a_refused_query_shows_no_rows_of_the_query_before_and_a_shared_page_size_is_kept(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    p, console = page
    # A shared link with a page size the menu does not offer: that size, not the default.
    p.goto(f"{demo.base}/explorer#/query?stream=orders&limit=7")
    p.wait_for_selector("#results tbody tr[data-seq]")
    assert p.locator("#q-limit").input_value() == "7"
    seqs = p.eval_on_selector_all("#results tbody tr", "rows => rows.map(r => +r.dataset.seq)")
    assert seqs == [e["seq"] for e in demo.get("/v1/events", stream="orders", limit=7)["events"]]
    # since after until: the API's 422 is said, and the rows above are gone.
    p.goto(
        f"{demo.base}/explorer#/query?stream=orders&since=2027-01-01T00:00:00Z"
        "&until=2026-01-01T00:00:00Z"
    )
    p.wait_for_selector("#alert:not([hidden])")
    assert "(422)" in p.locator("#alert-text").inner_text()
    p.wait_for_function("() => !document.querySelector('#results tbody tr')")
    assert p.locator("#results-summary").inner_text() == (
        "The query was refused (see the message above)."
    )
    assert p.locator("#page-next").is_disabled()
    console.assert_clean(lambda e: "422" in e)


def test_a_time_before_the_first_event_shows_no_document(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    p, console = page
    key, _ = wait_versions(demo, 2)
    open_entity(p, demo, key)
    assert p.locator("#state-doc").inner_text() != ""
    p.goto(f"{demo.base}/explorer#/entity/orders/{quote(key, safe='')}?at=1999-01-01T00:00:00Z")
    p.wait_for_selector("#travel-flags .flag.info")
    assert p.locator("#travel-flags").inner_text().startswith("No state at 1999-01-01 00:00:00Z")
    assert p.locator("#state-doc").inner_text() == ""
    assert p.locator("#state-json").text_content() == ""
    assert p.locator("#travel-version").inner_text().startswith("none of ")
    assert p.locator("#timeline > li.ev.selected").count() == 0
    console.assert_clean()


def test_phone_width_keeps_the_page_within_the_screen(
    demo: Demo, browser: Browser, request: pytest.FixtureRequest
) -> None:
    context = browser.new_context(viewport=PHONE)
    p = context.new_page()
    console = Console(p)
    try:
        key, _ = busiest_entity(demo)
        for fragment in (f"#/entity/orders/{quote(key, safe='')}", "#/query", "#/projections"):
            p.goto(f"{demo.base}/explorer{fragment}")
            p.wait_for_selector("body[data-ready=true]")
            p.wait_for_timeout(300)
            width = p.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{fragment} is {width}px wide at phone width"
            shot(p, "phone-" + fragment.split("/")[1])
        console.assert_clean()
    finally:
        context.close()


def test_a_read_key_is_asked_for_and_live_events_still_arrive(
    browser: Browser, chromium: str
) -> None:
    d = Demo(
        "--orders",
        "3",
        "--rate",
        "5",
        "--seed",
        "4",
        env={"EVENTSTORE_ADMIN_KEY": ADMIN, "EVENTSTORE_READ_KEYS": READ},
    )
    context = browser.new_context(viewport=DESKTOP)
    try:
        d.wait_ready(entities=3)
        assert httpx.get(f"{d.base}/v1/streams").status_code == 401
        p = context.new_page()
        console = Console(p)
        p.goto(f"{d.base}/explorer")
        p.wait_for_selector("#key-dialog[open]")
        p.fill("#key-input", READ)
        p.keyboard.press("Enter")
        p.wait_for_selector("body[data-ready=true]")
        assert p.evaluate("() => sessionStorage.getItem('eventstore.explorer.readKey')") == READ
        head = d.get("/v1/streams")[0]["last_seq"]
        p.wait_for_function(
            "head => [...document.querySelectorAll('#live-feed li')].some(li => +li.dataset.seq > head)",
            arg=head,
        )
        # A reload keeps the key for the tab: no second question.
        p.reload()
        p.wait_for_selector("body[data-ready=true]")
        assert not p.locator("#key-dialog").is_visible()
        shot(p, "read-key")
        # Only the first, unauthenticated request was refused.
        console.assert_clean(allowed=lambda e: "401" in e)
        assert sum("401" in e for e in console.errors) >= 1
    finally:
        context.close()
        d.stop()


# -- gaps, inferred deletions, re-creations: an app served in this process -----------------------
async def log_with_a_gap() -> Any:
    """Three orders; while capture is down one is paid and two are deleted, then history is lost.

    G-1: created, (gap), snapshot (paid, seen only after the gap), updated.
    G-2: created, deleted (inferred after the gap), re-created. G-3: created, deleted (inferred).
    """
    clock = FakeClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    store = await open_test_store("memory")
    feed = MemoryChangeFeed(clock=clock)
    await start_from_the_beginning(store)
    orders = feed.collection("orders")
    for n in (1, 2, 3):
        await orders.insert_one(
            {"_id": f"G-{n}", "number": f"ORD-G{n}", "status": "pending", "updatedBy": "alice"}
        )
        clock.advance(60)
    await ingester(store, feed, clock).run(until_idle=True)
    await orders.update_one({"_id": "G-1"}, {"$set": {"status": "paid", "updatedBy": "bob"}})
    clock.advance(60)
    await orders.delete_one({"_id": "G-2"})
    await orders.delete_one({"_id": "G-3"})
    clock.advance(60)
    feed.forget_before(None)  # the oplog rolled over: those changes are lost to capture
    await ingester(store, feed, clock).run(until_idle=True)
    clock.advance(60)
    await orders.insert_one(
        {"_id": "G-2", "number": "ORD-G2", "status": "pending", "updatedBy": "carol"}
    )
    await orders.update_one({"_id": "G-1"}, {"$set": {"status": "shipped", "updatedBy": "carol"}})
    await ingester(store, feed, clock).run(until_idle=True)
    settings = Settings(uri="memory://", source="simulator", lease_seconds=5.0)
    return create_app(settings, store=store)


@pytest.fixture(scope="module")
def gap_server(chromium: str) -> Iterator[InProcessServer]:
    with serving(log_with_a_gap) as server:
        yield server


def test_gaps_inferred_deletions_and_uncertain_states_are_marked(
    gap_server: InProcessServer, page: tuple[Page, Console]
) -> None:
    p, console = page
    base = gap_server.base
    with httpx.Client(base_url=base, timeout=10) as http:
        gap = http.get("/v1/events", params={"stream": "orders", "type": "gap"}).json()["events"][0]
        history = http.get("/v1/streams/orders/entities/G-1/history").json()["events"]
    assert [e["type"] for e in history] == ["created", "snapshot", "updated"]

    # G-1: the gap sits between version 1 and the snapshot that follows it.
    p.goto(f"{base}/explorer#/entity/orders/G-1")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === 'G-1'")
    order = p.eval_on_selector_all(
        "#timeline > li",
        "els => els.map(e => e.classList.contains('gap-marker') ? 'gap' : e.dataset.version)",
    )
    assert order == ["3", "2", "gap", "1"]
    assert p.locator("#timeline > li.gap-marker").get_attribute("data-seq") == str(gap["seq"])
    # Version 1 lived through the gap: whatever happened then was not captured.
    p.click("#timeline li[data-version='1'] button.travel-to")
    p.wait_for_selector("#state-doc[data-version='1'][data-uncertain='true']", state="attached")
    assert "Uncertain" in p.locator("#travel-flags").inner_text()
    # A moment inside the gap is uncertain by the API's own answer.
    inside = gap["document"]["from_time"]
    p.fill("#travel-at", inside.rstrip("Z"))
    p.click("#travel-at-go")
    p.wait_for_function("() => location.hash.includes('at=')")
    p.wait_for_selector("#state-doc[data-uncertain='true']", state="attached")
    assert "falls inside a gap" in p.locator("#travel-flags").inner_text()
    shot(p, "gap")

    # G-2: deleted while capture was down (inferred), then re-created.
    p.goto(f"{base}/explorer#/entity/orders/G-2")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === 'G-2'")
    deleted = p.locator("#timeline li.ev[data-version='2']")
    assert deleted.get_attribute("data-type") == "deleted"
    assert deleted.get_attribute("data-inferred") == "true"
    assert "inferred" in deleted.locator(".ev-head").inner_text()
    recreated = p.locator("#timeline li.ev[data-version='3']")
    assert "re-created" in recreated.inner_text()
    assert p.locator("#exists-badge").inner_text() == "exists"
    p.click("#timeline li[data-version='2'] button.travel-to")
    p.wait_for_selector("#state-json[data-version='2']", state="attached")
    assert json.loads(p.locator("#state-json").text_content() or "") is None
    assert "Deleted" in p.locator("#travel-flags").inner_text()

    # G-3: gone, by inference.
    p.goto(f"{base}/explorer#/entity/orders/G-3")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === 'G-3'")
    assert p.locator("#exists-badge").inner_text() == "deleted (inferred)"
    shot(p, "inferred")
    console.assert_clean()


def test_a_banner_says_when_capture_is_not_running(demo: Demo, page: tuple[Page, Console]) -> None:
    p, console = page
    workers = demo.get("/v1/workers")
    assert [w["state"] for w in workers if w["kind"] == "capture"] == ["running"]
    # The composition root hands the supervisor the app's metrics.
    scraped = demo.http.get("/metrics").text
    assert metric(scraped, "eventstore_worker_state", worker="ingester:shop", state="running") == 1
    assert metric(scraped, "eventstore_worker_restarts_total", worker="ingester:shop") == 0
    p.goto(f"{demo.base}/explorer")
    p.wait_for_function("() => document.getElementById('capture-banner').dataset.state")
    assert p.locator("#capture-banner").get_attribute("data-state") == "capturing"
    assert p.locator("#capture-banner").is_hidden()

    # The same instance as the API would show it after an authorization error.
    failed = [
        {
            **w,
            "state": "failed",
            "last_error": "MongoDB refused the change stream (code 13)",
        }
        if w["kind"] == "capture"
        else w
        for w in workers
    ]
    p.route("**/v1/workers", lambda route: route.fulfill(json=failed))
    p.reload()
    p.wait_for_function(
        "() => document.getElementById('capture-banner').dataset.state === 'failed'"
    )
    banner = p.locator("#capture-banner")
    assert banner.is_visible()
    assert banner.inner_text().startswith("Capture failed. ingester:shop on ")
    assert "MongoDB refused the change stream (code 13)" in banner.inner_text()
    shot(p, "capture-failed-banner")

    p.route("**/v1/workers", lambda route: route.fulfill(json=[]))
    p.reload()
    p.wait_for_function("() => document.getElementById('capture-banner').dataset.state === 'none'")
    assert banner.inner_text().startswith("No instance is capturing.")
    console.assert_clean()


async def log_with_a_rejected_change() -> Any:
    """Order 1 created, then a change of `orders` that cannot be interpreted (recorded as
    `rejected`, BAD_INPUT=record), then order 1 updated."""
    import tempfile

    from eventstore.ingester import Ingester
    from eventstore.sources.ndjson import NdjsonChangeSource
    from tests.integration.test_ingester_bad_input import NO_UPDATE_DESCRIPTION, line

    store = await open_test_store("memory")
    settings = Settings(uri="memory://", source="ndjson:-", lease_seconds=5.0, bad_input="record")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "changes.ndjson"
        path.write_text("\n".join([line(1), NO_UPDATE_DESCRIPTION, line(2)]) + "\n")
        source = NdjsonChangeSource(path, collections=settings.collections)
        await Ingester(store=store, source=source, settings=settings, clock=FakeClock()).run(
            until_idle=True
        )
    return create_app(settings, store=store)


@pytest.fixture(scope="module")
def rejected_server(chromium: str) -> Iterator[InProcessServer]:
    with serving(log_with_a_rejected_change) as server:
        yield server


def test_a_rejected_change_is_marked_where_it_fell_on_the_timeline(
    rejected_server: InProcessServer, page: tuple[Page, Console]
) -> None:
    p, _ = page
    base = rejected_server.base
    p.goto(f"{base}/explorer#/entity/orders/1")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === '1'")
    p.wait_for_selector("#timeline > li.gap-marker[data-type='rejected']")
    order = p.eval_on_selector_all(
        "#timeline > li",
        "els => els.map(e => e.classList.contains('gap-marker') ? e.dataset.type : e.dataset.version)",
    )
    assert order == ["2", "rejected", "1"]
    marker = p.locator("#timeline > li.gap-marker").inner_text()
    assert "Change rejected" in marker
    assert "ndjson, line 2: update without updateDescription" in marker
    shot(p, "rejected")


async def log_with_a_gap_behind_many_rejected_changes() -> Any:
    """Order 1 created, 5,001 changes that cannot be interpreted (`rejected`), a rename into
    `orders` (order 1 deleted by inference, a `gap`), then order 1 created again."""
    import tempfile

    from bson import Timestamp, json_util

    from eventstore.ingester import Ingester
    from eventstore.sources.ndjson import NdjsonChangeSource
    from tests.integration.test_ingester_bad_input import change

    def line(n: int, body: dict[str, Any]) -> str:
        head = {"_id": {"_data": f"82{n:032X}"}, "clusterTime": Timestamp(1_770_000_000, n)}
        return json_util.dumps({**head, **body})

    orders = {"db": "shop", "coll": "orders"}
    insert = {"operationType": "insert", "ns": orders, "documentKey": {"_id": 1},
              "fullDocument": {"_id": 1, "status": "paid"}}  # fmt: skip
    rejected = [
        json_util.dumps({k: v for k, v in change(n).items() if k != "updateDescription"})
        for n in range(2, 2 * REJECTED_BEFORE_THE_GAP + 2, 2)
    ]
    rename = {"operationType": "rename", "ns": {"db": "shop", "coll": "orders_tmp"}, "to": orders}
    last = 2 * REJECTED_BEFORE_THE_GAP + 2
    lines = [line(1, insert), *rejected, line(last, rename), line(last + 1, insert)]
    store = await open_test_store("memory")
    settings = Settings(uri="memory://", source="ndjson:-", lease_seconds=5.0, bad_input="record")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "changes.ndjson"
        path.write_text("\n".join(lines) + "\n")
        source = NdjsonChangeSource(path, collections=settings.collections, batch_size=1000)
        await Ingester(store=store, source=source, settings=settings, clock=FakeClock()).run(
            until_idle=True
        )
    return create_app(settings, store=store)


# More rejected changes than the timeline shows: the gap after them must show all the same.
REJECTED_BEFORE_THE_GAP = 5001


@pytest.fixture(scope="module")
def crowded_server(chromium: str) -> Iterator[InProcessServer]:
    with serving(log_with_a_gap_behind_many_rejected_changes) as server:
        yield server


def test_a_gap_behind_thousands_of_rejected_changes_is_still_marked(
    crowded_server: InProcessServer, page: tuple[Page, Console]
) -> None:
    p, _ = page
    base = crowded_server.base
    with httpx.Client(base_url=base, timeout=10) as http:
        [gap] = http.get("/v1/events", params={"stream": "orders", "type": "gap"}).json()["events"]
    p.goto(f"{base}/explorer#/entity/orders/1")
    p.wait_for_function("() => document.getElementById('state-json').dataset.key === '1'")
    p.wait_for_selector("#timeline > li.gap-marker[data-type='gap']", state="attached")
    assert p.locator("#timeline > li.gap-marker[data-type='gap']").get_attribute("data-seq") == str(
        gap["seq"]
    )
    assert "rejected changes shown" in p.locator("#timeline-count").inner_text()
    p.goto("about:blank")  # a full-page shot of 5,000 markers outlasts the shot's timeout


def test_subscriptions_show_state_and_parked_events_that_can_be_skipped(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.realsinks import SECRET

    class Refusing(BaseHTTPRequestHandler):
        """A receiver that answers 500 to every delivery: events park after one retry."""

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            self.send_response(500)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    p, console = page
    admin = {"authorization": f"Bearer {ADMIN}", "eventstore-actor": "tester"}
    try:
        body = {
            "sink": {
                "kind": "webhook",
                "url": f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                "secret": SECRET,
            },
            "start": "earliest",
            "filter": {"types": ["created"]},
            "retry": {"delays_s": [0]},
        }
        created = demo.http.put("/v1/admin/subscriptions/failing", json=body, headers=admin)
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 20
        parked_url = "/v1/admin/subscriptions/failing/parked"
        while not demo.http.get(parked_url, headers=admin).json()["items"]:
            assert time.monotonic() < deadline, "nothing was parked"
            time.sleep(0.2)

        p.goto(f"{demo.base}/explorer#/subscriptions")
        p.fill("#subs-key", ADMIN)
        p.press("#subs-key", "Enter")
        p.wait_for_selector("#subscriptions tbody tr[data-name='failing']")
        p.click("#subscriptions tr[data-name='failing'] button.show-parked")
        p.wait_for_selector("#parked-events tbody tr[data-seq]")
        seq = p.locator("#parked-events tbody tr").first.get_attribute("data-seq")
        assert seq is not None
        # Each parked event links to its entity's timeline, and says when it was parked.
        first = next(
            item
            for item in demo.http.get(parked_url, headers=admin, params={"limit": 1000}).json()[
                "items"
            ]
            if str(item["seq"]) == seq
        )
        link = p.locator(f"#parked-events tr[data-seq='{seq}'] a")
        assert link.get_attribute("href") == (
            f"#/entity/{first['stream']}/{quote(first['entity_key'], safe='')}"
        )
        shown_at = p.locator(f"#parked-events tr[data-seq='{seq}'] time")
        assert shown_at.get_attribute("datetime") == first["parked_at"]
        p.click(f"#parked-events tr[data-seq='{seq}'] button.skip-parked")
        while any(
            str(item["seq"]) == seq
            for item in demo.http.get(parked_url, headers=admin, params={"limit": 1000}).json()[
                "items"
            ]
        ):
            assert time.monotonic() < deadline + 20, "the skip did not happen"
            time.sleep(0.2)
        shot(p, "subscriptions")
        trail = demo.http.get("/v1/admin/actions", headers=admin).json()["items"]
        assert ("skip", "explorer", "failing") in [
            (a["action"], a["actor"], a["target"]) for a in trail
        ]
        assert SECRET not in p.content()
    finally:
        receiver.shutdown()
        demo.http.delete("/v1/admin/subscriptions/failing", headers=admin)
    console.assert_clean()


def test_a_live_tail_refused_past_the_log_starts_again_at_the_head(
    demo: Demo, page: tuple[Page, Console]
) -> None:
    """A memory:// service restarted with a shorter log refuses the tail this page resumes
    (`after` beyond the head: 422); the page starts it again at the head, and goes on."""
    p, console = page
    asked: list[str] = []

    def tail(route: Any) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:  # the first tail, after the head the page read: the log "shrank"
            problem = {
                "type": "https://eventstore.dev/problems/impossible-range",
                "title": "Unprocessable Content",
                "status": 422,
                "detail": "after: seq 99 is beyond the log, whose head is seq 3",
                "errors": [{"key": "after", "message": "beyond the log"}],
            }
            route.fulfill(status=422, json=problem, content_type="application/problem+json")
        else:
            route.continue_()

    p.route("**/v1/events/live*", tail)
    p.goto(f"{demo.base}/explorer")
    p.wait_for_selector("body[data-ready=true]")
    p.wait_for_function("() => document.querySelector('#live-toggle').dataset.state === 'open'")
    assert "after=" in asked[0] and "after=" not in asked[1], asked
    # events recorded from then on arrive
    head = demo.get("/v1/streams")[0]["last_seq"]
    p.wait_for_function(
        "head => [...document.querySelectorAll('#live-feed li')].some(li => +li.dataset.seq > head)",
        arg=head,
    )
    console.assert_clean(lambda e: "status of 422" in e)
