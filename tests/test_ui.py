"""The Dagster UI as the data engineer uses it: `make dev`, a real headless Chromium, and stopping.

`make run` then one `make dev` (webserver + daemon on 127.0.0.1, temp DAGSTER_HOME, the sample delivery) serve
the browser test; then SIGTERM must stop it with no process left. A second one is stopped as a
terminal's Ctrl-C does (SIGINT to the whole process group). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Pipeline, new_pipeline
from tests.support import ARTIFACTS, DevServer, ensure_system_packages, start_dev_server, wait_for

pytestmark = pytest.mark.slow  # browser and `make dev`: `make test` only, not `make test-fast`

CHROMIUM = "/usr/bin/chromium"
# Headless Chromium as root, and nothing that phones home (updates, sync, field trials, QUIC).
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
GATED_CHECKS = ("row_count_not_collapsed", "rejected_share_within_threshold")
SAMPLE_MONTHS = ("2022-01", "2022-02", "2022-03", "2022-04")  # the committed sample's dossier months


@pytest.fixture(scope="module")
def dev_server(sample_run: Pipeline, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`make run` (a copy of the session's), then `make dev`: the engineer's first morning with the sample."""
    pipeline = sample_run.copy(tmp_path_factory.mktemp("ui") / "data")
    server = start_dev_server(pipeline.root)
    yield server
    if server.process.poll() is None:
        server.stop()


def _graphql(server: DevServer, query: str) -> dict:
    request = urllib.request.Request(
        f"{server.url}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["data"]


def _backfill(server: DevServer, backfill_id: str) -> dict:
    found = _graphql(
        server,
        "{ partitionBackfillsOrError(limit: 10) { ... on PartitionBackfills { results { id status "
        "runs(limit: 50) { runId status } } } } }",
    )["partitionBackfillsOrError"]["results"]
    return next(b for b in found if b["id"] == backfill_id)


def _latest_check_runs(server: DevServer, asset: str) -> dict[str, str]:
    """Check name -> run id of its latest execution on `asset`."""
    path = json.dumps(asset.split("/"))
    nodes = _graphql(
        server,
        f"{{ assetNodes(assetKeys: [{{path: {path}}}]) {{ assetChecksOrError {{ ... on AssetChecks {{ checks {{ "
        "name executionForLatestMaterialization { runId status } } } } } }",
    )["assetNodes"]
    checks = nodes[0]["assetChecksOrError"]["checks"]
    return {c["name"]: (c["executionForLatestMaterialization"] or {}).get("runId", "") for c in checks}


def _active_runs(server: DevServer) -> list[str]:
    runs = _graphql(server, "{ runsOrError(limit: 50) { ... on Runs { results { runId status } } } }")
    active = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
    return [r["runId"] for r in runs["runsOrError"]["results"] if r["status"] in active]


def test_the_ui_materializes_everything_and_shows_the_checks_passed(dev_server: DevServer) -> None:
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        ensure_system_packages()
    ARTIFACTS.mkdir(exist_ok=True)
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(60_000)
            expect.set_options(timeout=60_000)  # a 2-core machine running a pipeline beside the browser
            local = ("data:", dev_server.url, f"blob:{dev_server.url}")  # blob: the UI's web workers
            page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))

            # the dossier months are the delivered ones, every one materialized by `make run`: nothing missing
            (silver,) = _graphql(
                dev_server,
                '{ assetNodes(assetKeys: [{path: ["silver", "dossiers"]}]) { partitionKeys '
                "partitionStats { numMaterialized numPartitions numFailed } } }",
            )["assetNodes"]
            assert silver["partitionKeys"] == [f"{m}|94" for m in SAMPLE_MONTHS]  # month × province (the one, 94)
            stats = silver["partitionStats"]
            assert (stats["numPartitions"], stats["numMaterialized"], stats["numFailed"]) == (4, 4, 0)

            # the asset graph, then "Materialize all", as the engineer clicks them: the root assets' partitions are
            # the former provinces' (the snapshot feeds' bronze), so the UI asks which provinces: none is missing;
            # "All" is the sample's one (94), one backfill, which takes the dossier months below it
            _graphql(dev_server, "mutation { setNuxSeen }")  # what the newsletter prompt's Skip does
            page.goto(f"{dev_server.url}/asset-groups", wait_until="networkidle")
            expect(page.get_by_text("Global asset lineage")).to_be_visible()
            page.get_by_role("button", name="Materialize all").click()
            dialog = page.get_by_role("dialog")
            expect(dialog.get_by_text("Partition selection")).to_be_visible()
            expect(dialog.get_by_text("bronze / bts_stations")).to_be_visible()  # a root asset, by province
            dialog.get_by_role("button", name="Missing", exact=True).click()
            expect(dialog.get_by_text("Select a partition or create one")).to_be_visible()  # none missing
            dialog.get_by_role("button", name="All", exact=True).click()
            expect(dialog.get_by_text("94", exact=True).first).to_be_visible()  # the one former province
            page.screenshot(path=str(ARTIFACTS / "ui-materialize-all.png"))
            dialog.get_by_role("button", name="Launch backfill").click()
            toast = page.get_by_text(re.compile(r"Created backfill \w+"))
            expect(toast).to_be_visible()
            backfill_id = re.search(r"Created backfill (\w+)", toast.inner_text()).group(1)

            # the daemon runs the backfill (province 94's partitions, the unpartitioned assets once, the four months
            # in one run)
            backfill = wait_for(
                lambda: (found := _backfill(dev_server, backfill_id))["status"] != "REQUESTED" and found,
                f"backfill {backfill_id} to finish",
                attempts=600,
                pause=1.0,
            )
            assert backfill["status"] == "COMPLETED_SUCCESS", backfill
            assert backfill["runs"] and {r["status"] for r in backfill["runs"]} == {"SUCCESS"}, backfill
            page.goto(f"{dev_server.url}/runs/b/{backfill_id}", wait_until="networkidle")
            expect(page.get_by_text("Succeeded", exact=True).first).to_be_visible()  # the backfill's status tag
            page.screenshot(path=str(ARTIFACTS / "ui-backfill.png"))
            backfill_runs = {r["runId"] for r in backfill["runs"]}

            # the checks show their latest execution: let any other run (freshness checks) end first
            wait_for(lambda: not _active_runs(dev_server), "the other runs to finish", attempts=600, pause=1.0)
            for table in ("procedures", "dossiers"):
                latest = _latest_check_runs(dev_server, f"silver/{table}")
                assert {latest[check] in backfill_runs for check in GATED_CHECKS} == {True}, (table, latest)

            # the gate's blocking checks and the freshness checks show as passed on their assets
            for asset, checks in {
                "silver/procedures": GATED_CHECKS,
                "gold/ioc_scorecard": ("freshness_check",),
                "gold/procedure_service_levels": ("freshness_check",),
            }.items():
                page.goto(f"{dev_server.url}/assets/{asset}?view=checks", wait_until="networkidle")
                for check in checks:
                    row = page.locator("[class*='checkRow']", has_text=check)  # the checks list, left
                    expect(row).to_have_count(1)
                    expect(row).to_contain_text("Succeeded", timeout=120_000)  # the list's word for passed
                    row.click()
                    expect(page.get_by_text("Evaluation result")).to_be_visible()
                    expect(page.get_by_text("Passed", exact=True).first).to_be_visible()
                page.screenshot(path=str(ARTIFACTS / f"ui-checks-{asset.replace('/', '-')}.png"))

            # a gold asset's page shows its freshness policy (26 h), evaluated by the daemon
            page.goto(f"{dev_server.url}/assets/gold/ioc_scorecard", wait_until="networkidle")
            expect(page.get_by_text("Freshness policy", exact=True).first).to_be_visible()
            expect(page.get_by_text("Fails if more than 26 hours since last materialization")).to_be_visible()
            expect(page.get_by_text("Passing", exact=True).first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "ui-freshness-gold-ioc_scorecard.png"))

            # the asset graph after the run: every asset materialized (a tall page: with every group expanded,
            # the graph zoomed to fit a small window draws its nodes without their names)
            page.set_viewport_size({"width": 2400, "height": 3200})
            page.goto(f"{dev_server.url}/asset-groups", wait_until="networkidle")
            expect(page.get_by_text("Materialize all")).to_be_visible()
            page.keyboard.press("Alt+KeyE")  # the graph's "Expand all groups"
            page.wait_for_load_state("networkidle")
            try:
                expect(page.get_by_text("ioc_scorecard", exact=True).first).to_be_visible()
            finally:
                page.screenshot(path=str(ARTIFACTS / "ui-asset-graph.png"))
            page.set_viewport_size({"width": 1600, "height": 1000})

            # the schedule and the sensors are there and running
            page.goto(f"{dev_server.url}/automation", wait_until="networkidle")
            for name in (
                "nightly_refresh",
                "procedures_delivery",
                "dossiers_delivery",
                "dossier_months_changed",
                "run_failure_alert",
                "gold_freshness",
            ):
                expect(page.get_by_text(name, exact=True).first).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "ui-automation.png"))
        finally:
            browser.close()
    assert outside == [], f"the UI reached beyond the server: {outside[:5]}"


def test_make_dev_stops_on_sigterm_with_no_process_left(dev_server: DevServer) -> None:
    assert dev_server.left_behind(), "no process of the server found: the check below would prove nothing"
    code = dev_server.stop(signal.SIGTERM)
    wait_for(lambda: not dev_server.left_behind(), "every process of make dev to end", attempts=120)
    assert not dev_server.answers()
    assert code in (0, -signal.SIGTERM, 128 + signal.SIGTERM), dev_server.tail()


def test_make_dev_stops_on_ctrl_c_with_no_process_left(tmp_path: Path) -> None:
    server = start_dev_server(new_pipeline(tmp_path / "data", feeds=()).root)
    try:
        assert server.left_behind()
    finally:
        server.stop(signal.SIGINT, group=True)  # what a terminal sends on Ctrl-C
    wait_for(lambda: not server.left_behind(), "every process of make dev to end", attempts=120)
    assert not server.answers()
    assert "devserver: stopped" in server.tail()
