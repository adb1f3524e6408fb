"""The dashboard in headless Chromium on real 3-node clusters: it shows three
nodes and one leader, shows the new leader after the leader is killed (also
when the killed node is the one that served the page), runs TICKET in its
console, and with ``--auth`` asks for the secret, refuses a wrong one and
lets the operator take a snapshot and transfer leadership.

Screenshots of every step go to ``test-artifacts/web/``."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.cluster.harness import ROOT, ProcCluster, running, wait_for

TICKET = [sys.executable, str(ROOT / "examples" / "ticket.py")]

DEADLINE = 30_000
"""Milliseconds any one thing may take to show (generous: CI is two busy cores)."""

FINISHED = re.compile(r"^(ok|error)$")
"""A console entry that has its answer."""


@dataclass
class Dashboard:
    """An open dashboard page, with its screenshots and its script errors."""

    page: Page
    prefix: Path
    errors: list[str] = field(default_factory=list)

    def shot(self, step: str) -> None:
        self.page.screenshot(path=f"{self.prefix}-{step}.png", full_page=True)

    def rows(self, extra: str = "") -> Any:
        return self.page.locator(f"#nodes tbody tr{extra}")

    def expect_leader(self, node_id: str) -> None:
        """Exactly one highlighted leader: ``node_id``, answering as the leader."""
        expect(self.rows(f'.leader[data-id="{node_id}"][data-state="leader"]')).to_have_count(
            1, timeout=DEADLINE
        )
        expect(self.rows(".leader")).to_have_count(1)

    def run(self, line: str) -> tuple[str, dict[str, Any]]:
        """Type ``line`` in the console; its status ("ok"/"error") and JSON answer."""
        entries = self.page.locator("#console-output .entry")
        before = entries.count()
        self.page.fill("#console-input", line)
        self.page.press("#console-input", "Enter")
        return self.answer(before)

    def answer(self, index: int) -> tuple[str, dict[str, Any]]:
        """The outcome of the console's ``index``-th entry, once it has one."""
        entry = self.page.locator("#console-output .entry").nth(index)
        expect(entry).to_have_attribute("data-status", FINISHED, timeout=DEADLINE)
        status = entry.get_attribute("data-status") or ""
        answer: dict[str, Any] = json.loads(entry.locator("pre").inner_text())
        return status, answer


@contextlib.contextmanager
def dashboard(browser: Browser, address: str, prefix: Path) -> Iterator[Dashboard]:
    """The dashboard of the node at ``address``, in a fresh browser context."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    d = Dashboard(page, prefix)
    page.on("pageerror", lambda e: d.errors.append(str(e)))
    try:
        page.goto(f"http://{address}/ui/")
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.shot("last")  # the state at the end, or at a failure
        context.close()


def settle(d: Dashboard, leader: Callable[[], str | None]) -> str:
    """The leader's id, once the page shows exactly one leader and it is the one
    the cluster has (on a loaded machine an election may come at any time: the
    page must follow it, and the test must not assume it did not happen)."""

    def agreed() -> str | None:
        lid = leader()
        if not lid:
            return None
        shown = d.rows(f'.leader[data-id="{lid}"][data-state="leader"]').count()
        return lid if shown == 1 and d.rows(".leader").count() == 1 else None

    lid: str = wait_for(agreed, 60, "the page to show the cluster's leader")
    return lid


def leader_of(c: ProcCluster) -> Callable[[], str | None]:
    def lid() -> str | None:
        p = c.leader()
        return p.node_id if p is not None else None

    return lid


def test_three_nodes_a_killed_leader_and_the_console(
    tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    with running(tmp_path, 3, program=TICKET) as c:
        first = c.wait_leader()
        home = next(p for p in c.live() if p is not first)
        with dashboard(browser, home.address, artifacts) as d:
            expect(d.rows()).to_have_count(3, timeout=DEADLINE)
            expect(d.page.locator("#connection")).to_have_attribute("data-state", "live")
            expect(d.rows(f'[data-id="{home.node_id}"]')).to_contain_text("this page")
            for _ in range(3):  # the leader to kill must not be the page's own node
                lid = settle(d, leader_of(c))
                if lid != home.node_id:
                    break
                home.call("RAFT", "TRANSFER")
            else:
                raise AssertionError("the page's node keeps the leadership")
            d.shot("1-three-nodes")

            leader = c.procs[lid]
            leader.kill()
            settle(d, leader_of(c))  # a new leader: the old one is not alive
            expect(d.rows(f'[data-id="{leader.node_id}"]')).to_have_attribute(
                "data-state", "unreachable"
            )
            expect(d.page.locator("#banner")).to_be_hidden()  # its own node still answers
            d.shot("2-new-leader")

            status, answer = d.run("TICKET")
            assert status == "ok", answer
            assert isinstance(answer["result"], int) and answer["result"] >= 1
            status, answer = d.run("RAFT INFO id")
            assert (status, answer) == ("ok", {"result": {"id": home.node_id}})
            split = d.page.evaluate(
                'async (line) => (await import("./app.js")).splitArgs(line)',
                r"""SET key "a \"quoted\" value" 'single quoted' "" """,
            )
            assert split == ["SET", "key", 'a "quoted" value', "single quoted", ""]
            status, answer = d.run("NOPE")
            assert (status, answer) == ("error", {"error": "ERR unknown command 'NOPE'"})
            # The rates: a line as soon as there are two rates to draw.
            line = d.page.locator("#chart-commits path.line")
            expect(line).to_have_attribute("d", re.compile(r"^M\S+ \S+ L"), timeout=DEADLINE)
            d.shot("3-console")
            assert not d.errors


def test_the_page_follows_the_cluster_when_its_own_node_dies(
    tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    with running(tmp_path, 3, program=TICKET) as c:
        home = c.wait_leader()
        with dashboard(browser, home.address, artifacts) as d:
            expect(d.rows()).to_have_count(3, timeout=DEADLINE)
            settle(d, leader_of(c))
            expect(d.page.locator("#banner")).to_be_hidden()
            d.shot("1-on-the-leader")

            home.kill()  # the node that served this page (and most likely the leader)
            expect(d.page.locator("#banner")).to_be_visible(timeout=DEADLINE)
            lid = settle(d, leader_of(c))
            assert lid != home.node_id
            expect(d.rows(f'[data-id="{home.node_id}"]')).to_have_attribute(
                "data-state", "unreachable"
            )
            d.shot("2-followed-elsewhere")

            status, answer = d.run("TICKET")  # through another member now
            assert status == "ok", answer
            assert answer["result"] >= 1
            d.shot("3-console")

            home.start()  # the same node, back on its port: the page goes home
            expect(d.page.locator("#banner")).to_be_hidden(timeout=DEADLINE)
            expect(d.rows(f'[data-id="{home.node_id}"]')).to_have_attribute(
                "data-state", "follower", timeout=DEADLINE
            )
            expect(d.page.locator("#connection")).to_have_text(
                f"live (node {home.node_id})", timeout=DEADLINE
            )
            d.shot("4-home-again")
            assert not d.errors


def test_auth_asks_for_the_secret_and_lets_the_operator_act(
    tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    secret = "dashboard-secret"
    flags = ["--auth", secret]
    c = ProcCluster(tmp_path, program=TICKET)

    def status(address: str) -> dict[str, Any]:
        try:
            r = httpx.get(
                f"http://{address}/status",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=5,
            )
        except httpx.HTTPError:
            return {}
        answer: dict[str, Any] = r.json() if r.status_code == 200 else {}
        return answer

    try:
        first = c.add("1", extra=flags)
        for nid in ("2", "3"):
            c.add(nid, join=first.address, extra=flags)
        wait_for(
            lambda: len(status(first.address).get("members", [])) == 3,
            60,
            "three members",
        )

        def leader() -> str | None:
            for p in c.live():
                s = status(p.address)
                if s.get("state") == "leader":
                    return str(s["id"])
            return None

        wait_for(leader, 30, "a leader")

        with dashboard(browser, first.address, artifacts) as d:
            page = d.page
            expect(page.locator("#auth")).to_be_visible(timeout=DEADLINE)
            expect(page.locator("#auth-error")).to_be_hidden()
            expect(d.rows()).to_have_count(0)  # nothing shown without the secret
            d.shot("1-asks-for-the-secret")

            page.fill("#secret", "not-the-secret")
            page.click("#auth-form button[type=submit]")
            expect(page.locator("#auth-error")).to_be_visible(timeout=DEADLINE)
            expect(page.locator("#auth-error")).to_contain_text("refused")
            expect(d.rows()).to_have_count(0)
            d.shot("2-wrong-secret")

            page.fill("#secret", secret)
            page.click("#auth-form button[type=submit]")
            expect(page.locator("#auth")).to_be_hidden(timeout=DEADLINE)
            expect(d.rows()).to_have_count(3, timeout=DEADLINE)
            leader_id = settle(d, leader)
            d.shot("3-unlocked")

            # Snapshot now, on the node that serves the page.
            before = page.locator("#console-output .entry").count()
            page.click("#snapshot-now")
            outcome, answer = d.answer(before)
            assert outcome == "ok", answer
            snapshot_id = answer["result"]
            expect(page.locator("#snapshots tbody")).to_contain_text(snapshot_id, timeout=DEADLINE)

            # Transfer leadership to another voter.
            target = next(n for n in ("1", "2", "3") if n != leader_id)
            before = page.locator("#console-output .entry").count()
            page.click(f'#nodes button[data-action="transfer"][data-id="{target}"]')
            outcome, answer = d.answer(before)
            assert (outcome, answer["result"]) == ("ok", "OK"), answer
            d.expect_leader(target)
            d.shot("4-snapshot-and-transfer")
            assert not d.errors
    finally:
        print(c.logs())
        c.close()
