"""The IOC report and the quality pages, as people see them: real warehouse, real files, real Chromium.

The session's sample run materializes `report/ioc` like every asset; the browser opens the page from
the lake as a file and must see no console error and no request but the file itself, with as many
chart elements and map markers as the warehouse has rows. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from ioc_pipeline.lake import Lake
from ioc_pipeline.report import ioc, server
from ioc_pipeline.report.html import esc
from ioc_pipeline.report.quality import SAMPLE_LIMIT, render_quality_page
from ioc_pipeline.warehouse import connect
from tests.conftest import Pipeline
from tests.support import ARTIFACTS, DevServer, ensure_system_packages, free_port, start_dev_server, wait_for
from tests.test_ui import CHROMIUM, CHROMIUM_FLAGS, _graphql

REPORT_KEY = dg.AssetKey(["report", "ioc"])
MAX_BYTES = 10 * 1024 * 1024
FEED_STATES = ("published", "blocked", "file_refused", "late", "never_delivered")


def _materialization(pipeline: Pipeline) -> dict[str, dg.MetadataValue]:
    with pipeline.environment(), dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(REPORT_KEY)
    assert event is not None, "report/ioc was never materialized"
    return event.asset_materialization.metadata


def _snapshot(pipeline: Pipeline) -> str:
    return pipeline.query("select max(as_of_date) from gold.ioc_scorecard")[0][0].isoformat()


# --- the asset, the lake, the link ------------------------------------------------------------------


def test_the_refresh_writes_the_report_into_the_lake_and_links_it(sample_run: Pipeline) -> None:
    folder = sample_run.root / "lake" / "report" / "ioc"
    latest, dated = folder / "latest.html", folder / f"{_snapshot(sample_run)}.html"
    assert latest.is_file() and dated.is_file(), sorted(p.name for p in folder.iterdir())
    assert latest.read_bytes() == dated.read_bytes()
    assert 0 < latest.stat().st_size < MAX_BYTES, latest.stat().st_size
    assert not list(folder.glob(".*.tmp")), "an atomic write left its temporary file"

    metadata = _materialization(sample_run)
    # the run that recorded it may be the one this copy was taken from (the session builds the sample once)
    recorded = Path(metadata["path"].value)
    assert recorded.parts[-4:] == latest.parts[-4:] and recorded.read_bytes() == latest.read_bytes()
    assert metadata["snapshot"].value == _snapshot(sample_run)
    assert metadata["size_bytes"].value == latest.stat().st_size
    assert metadata["site_markers"].value == sample_run.query("select count(*) from silver.bts_sites")[0][0]
    assert "url" not in metadata  # no server configured: the path only


def test_with_a_server_configured_the_link_is_a_url_that_serves_the_page(published: Pipeline) -> None:
    folder = server.report_folder({"IOC_DATA_DIR": str(published.root)})
    assert folder == (published.root / "lake" / "report").resolve()
    port = free_port()
    reports = server.start(folder, "127.0.0.1", port)
    try:
        published.extra_env["IOC_REPORT_BASE_URL"] = server.base_url("127.0.0.1", port)
        result = published.run("refresh_report")
        assert result.success
        metadata = _materialization(published)
        url = metadata["url"].value
        assert url == f"http://127.0.0.1:{port}/ioc/latest.html"
        assert metadata["snapshot_url"].value == f"http://127.0.0.1:{port}/ioc/{_snapshot(published)}.html"
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.status == 200
            assert answer.headers["Content-Type"].startswith("text/html")
            assert answer.read() == (folder / "ioc" / "latest.html").read_bytes()
    finally:
        reports.shutdown()
        reports.server_close()


def _launch(dev: DevServer, job: str) -> str:
    answer = _graphql(
        dev,
        'mutation { launchRun(executionParams: { mode: "default", selector: { repositoryLocationName: '
        f'"ioc_pipeline", repositoryName: "__repository__", jobName: "{job}" }} }}) {{ __typename '
        "... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }",
    )["launchRun"]
    assert answer["__typename"] == "LaunchRunSuccess", answer
    return answer["run"]["runId"]


def _run_status(dev: DevServer, run_id: str) -> str:
    return _graphql(dev, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"]["status"]


@pytest.mark.slow  # `make dev` and a browser
def test_make_dev_serves_the_report_and_the_asset_page_links_to_it(sample_run: Pipeline, tmp_path: Path) -> None:
    """`make dev`: the report folder on the next port, and a run of the report asset (launched as the UI
    does, run by the daemon) leaves a link on the asset's page that opens the page."""
    pipeline = sample_run.copy(tmp_path / "data")
    dev = start_dev_server(pipeline.root)
    try:
        url = f"http://127.0.0.1:{dev.port + 1}/ioc/latest.html"
        assert f"reports of {(pipeline.root / 'lake' / 'report').resolve()} on {url}" in dev.log.read_text()
        with urllib.request.urlopen(url, timeout=10) as answer:
            assert answer.read() == (pipeline.root / "lake" / "report" / "ioc" / "latest.html").read_bytes()

        run_id = _launch(dev, "refresh_report")
        status = wait_for(
            lambda: (found := _run_status(dev, run_id)) in ("SUCCESS", "FAILURE", "CANCELED") and found,
            f"run {run_id} to end",
            attempts=300,
            pause=1.0,
        )
        assert status == "SUCCESS", dev.tail()
        assert _materialization(pipeline)["url"].value == url

        _graphql(dev, "mutation { setNuxSeen }")  # the newsletter prompt's Skip, as in test_ui
        with _browser_page(f"{dev.url}/assets/report/ioc") as (page, _errors, _requests):
            from playwright.sync_api import expect

            link = page.locator(f'a[href="{url}"]').first
            expect(link).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "report-asset-page.png"))
            with page.context.expect_page() as opened:
                link.click()
            report = opened.value
            report.wait_for_load_state("load")
            expect(report.locator("h1")).to_contain_text("Báo cáo IOC")
    finally:
        dev.stop()
    wait_for(lambda: not dev.left_behind(), "every process of make dev to end", attempts=120)
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


def test_lake_write_bytes_replaces_a_file_atomically_and_stays_inside_the_lake(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    url = lake.write_bytes("report/ioc/x.html", b"one")
    assert url == lake.url_of("report/ioc/x.html") == str(tmp_path / "lake" / "report" / "ioc" / "x.html")
    lake.write_bytes("report/ioc/x.html", b"two")
    assert lake.read_bytes("report/ioc/x.html") == b"two"
    assert sorted(p.name for p in (tmp_path / "lake" / "report" / "ioc").iterdir()) == ["x.html"]
    for outside in ("landing/x.html", "report/../../x.html"):
        with pytest.raises(AssertionError):
            lake.write_bytes(outside, b"no")
    # the same through fsspec on a lake that is not a local folder (as on s3://)
    remote = Lake("memory://report-test-lake")
    assert remote.write_bytes("report/ioc/x.html", b"three") == "memory:///report-test-lake/report/ioc/x.html"
    assert remote.read_bytes("report/ioc/x.html") == b"three" and remote.local_path("report/ioc/x.html") is None
    assert server.report_folder({"IOC_LAKE_DIR": "s3://bucket/lake"}) is None


# --- what the page holds, from other warehouses -----------------------------------------------------


@contextmanager
def _warehouse_copy(sample_run: Pipeline, tmp_path: Path) -> Iterator[str]:
    path = tmp_path / "ioc.duckdb"
    shutil.copy(sample_run.warehouse, path)
    yield str(path)


def test_the_scorecard_shows_the_latest_value_its_trend_and_the_founding_report(
    sample_run: Pipeline, tmp_path: Path
) -> None:
    latest = dict(sample_run.query("select indicator_code, value from gold.ioc_scorecard"))
    with _warehouse_copy(sample_run, tmp_path) as path:
        with connect(path) as con:  # an earlier snapshot of two indicators: the scorecard keeps history
            con.execute(
                "insert into gold.ioc_scorecard by name select province_code, province_scope, indicator_code, "
                "indicator_name_vi, value - 100 as value, unit, as_of_date - interval 1 month as as_of_date, "
                "source_asset from gold.ioc_scorecard "
                "where indicator_code in ('bts_sites', 'procedures_total')"
            )
        rendered = ioc.build(path)
    assert rendered.snapshot == _snapshot(sample_run)
    rows = {
        code: row for row in rendered.html.split("<tr") for code in latest if f"<code class='note'>{code}</code>" in row
    }
    assert set(rows) == set(latest)
    # the latest value, and one dot per snapshot in the trend (two for the indicators given a history)
    assert f">{ioc.number(latest['bts_sites'])}<" in rows["bts_sites"]
    assert rows["bts_sites"].count("<circle") == 2 and rows["procedures_total"].count("<circle") == 2
    assert rows["postal_enterprises"].count("<circle") == 1
    # beside the founding report's figures (the sample reproduces them: no difference)
    for code, figure in ioc.FOUNDING_REPORT.items():
        if code in latest and not code.endswith("_pct"):
            assert f">{ioc.number(figure)}<" in rows[code], code
            assert latest[code] != figure or ">=<" in rows[code], code
    assert "17/05/2022" in rendered.html


def test_the_feed_states_are_shown_from_ops_feed_status(sample_run: Pipeline, tmp_path: Path) -> None:
    """The published `ops.feed_status` (one row per feed and carrier) is the report's last section, every
    state drawn with its reason; a warehouse without the table has no such section."""
    with _warehouse_copy(sample_run, tmp_path) as path:
        published = ioc.build(path)
        assert published.sections[-1] == "feeds"
        with connect(path, read_only=True) as con:
            rows = con.execute("select feed, state, reason_vi from ops.feed_status").fetchall()
        assert len(rows) == 8  # 5 feeds, the BTS registers once per carrier
        for feed, state, reason in rows:
            assert f'data-state="{state}"' in published.html and esc(reason) in published.html, feed
        with connect(path) as con:  # every state the table can hold is drawn
            con.execute(
                "update ops.feed_status set state = s.state from (select unnest(?) as state, "
                "unnest(range(1, 6)) as n) s, (select feed as f, carrier as c, row_number() over (order by feed, "
                "carrier) as n from ops.feed_status) r where r.n = s.n and ops.feed_status.feed = r.f and "
                "ops.feed_status.carrier is not distinct from r.c",
                [list(FEED_STATES)],
            )
        every = ioc.build(path)
        for state in FEED_STATES:
            assert f'data-state="{state}"' in every.html, state
        with connect(path) as con:
            con.execute("drop table ops.feed_status")
        without = ioc.build(path)
    assert "feeds" not in without.sections and 'id="feeds"' not in without.html


def test_a_feed_not_delivered_is_said_so_not_drawn_as_zero(sample_run: Pipeline, tmp_path: Path) -> None:
    with _warehouse_copy(sample_run, tmp_path) as path:
        with connect(path) as con:
            for table in ("silver.bts_sites", "gold.telecom_coverage_gaps", "gold.telecom_coverage_by_new_unit"):
                con.execute(f"drop table {table}")
        rendered = ioc.build(path)
    assert "telecom-map" not in rendered.charts and rendered.site_markers == 0
    assert "No BTS register yet." in rendered.html
    assert {"ps-volume", "postal-units"} <= set(rendered.charts)


# --- in the browser ----------------------------------------------------------------------------------


@contextmanager
def _browser_page(url: str) -> Iterator[tuple[object, list[str], list[str]]]:
    """A headless Chromium page at `url`; yields it with the console errors and the requests it made."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        ensure_system_packages()
    errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url, wait_until="load")
            yield page, errors, requests
        finally:
            browser.close()


def _count(page, selector: str) -> int:
    return page.evaluate("s => document.querySelectorAll(s).length", selector)


def test_the_report_opens_offline_with_its_charts_and_map(sample_run: Pipeline) -> None:
    latest = sample_run.root / "lake" / "report" / "ioc" / "latest.html"
    url = latest.as_uri()
    query = sample_run.query
    months = query("select count(*) from gold.public_service_kpis_monthly")[0][0]
    agencies = query(
        "select count(*) filter (where on_time_pct is not null), count(*) filter (where online_pct is not null) "
        "from gold.public_service_kpis_by_agency_monthly "
        "where month = (select max(month) from gold.public_service_kpis_by_agency_monthly)"
    )[0]
    sites = query("select count(*) from silver.bts_sites where longitude is not null and latitude is not null")[0][0]
    gaps = dict(query("select level, count(*) from gold.telecom_coverage_gaps group by level"))
    indicators = query("select count(distinct indicator_code) from gold.ioc_scorecard")[0][0]
    new_units = query("select count(*) from gold.postal_network_by_new_unit")[0][0]
    assert months and sites and indicators, "the sample run should have public services, sites and a scorecard"
    ARTIFACTS.mkdir(exist_ok=True)

    with _browser_page(url) as (page, errors, requests):
        charts = _count(page, "figure.chart")
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {charts}")
        assert charts == _materialization(sample_run)["charts"].value == 6
        assert _count(page, ".js-plotly-plot") == charts

        # public services: two bars per month, four rate markers per month, one bar per agency with a value
        assert _count(page, "#chart-ps-volume .barlayer .point") == 2 * months
        assert _count(page, "#chart-ps-rates .scatterlayer .point") == 4 * months
        assert _count(page, "#chart-ps-rank-on-time .barlayer .point") == agencies[0]
        assert _count(page, "#chart-ps-rank-online .barlayer .point") == agencies[1]
        # the map: one marker per site in the traces of sites, one cross per commune without 4G
        markers = page.evaluate(
            """() => { const gd = document.getElementById('chart-telecom-map');
                       const traces = [...gd.querySelectorAll('.scatterlayer .trace')];
                       let sites = 0, gaps = 0;
                       gd.data.forEach((t, i) => { const n = traces[i].querySelectorAll('.point').length;
                           if (t.meta === 'sites') sites += n; if (t.meta === 'communes_without_4g') gaps += n; });
                       return [sites, gaps]; }"""
        )
        assert markers == [sites, gaps.get("old_commune", 0)]
        # the postal chart names every post-2025 unit; the tables hold the warehouse's rows
        assert _count(page, "#chart-postal-units .ytick") == new_units
        assert _count(page, "table.scorecard tbody tr") == indicators
        assert _count(page, "table.gaps-old_commune tbody tr") == gaps.get("old_commune", 0)
        assert _count(page, "table.gaps-new_unit tbody tr") == gaps.get("new_unit", 0)
        page.screenshot(path=str(ARTIFACTS / "report-ioc.png"), full_page=True)

        # the language switch: English only hides the Vietnamese labels, and back
        assert page.locator("h2 .vi").first.is_visible()
        page.get_by_role("button", name="English").click()
        assert not page.locator("h2 .vi").first.is_visible() and page.locator("h2 .en").first.is_visible()
        page.evaluate("document.querySelector('nav.sections').style.position = 'static'")  # not over the map
        page.locator("#telecom").screenshot(path=str(ARTIFACTS / "report-ioc-map-en.png"))
        page.get_by_role("button", name="VI + EN").click()
        assert page.locator("h2 .vi").first.is_visible()

    assert errors == [], errors
    assert requests == [url], f"the page asked for more than itself: {requests[:5]}"


def _quality_summary(sample_run: Pipeline) -> dict:
    """A summary as the gate builds it, from the sample's real quarantine of the procedure catalog."""
    delivered = sample_run.query("select count(*) from silver.procedures")[0][0]
    quarantined = sample_run.query(
        "select source_file, source_row, rule, reason, procedure_code, sector, service_level "
        "from quarantine.procedures order by source_file, source_row"
    )
    rules = sample_run.query("select rule, count(*) from quarantine.procedures group by rule order by rule")
    total = delivered + len(quarantined)
    sample = [
        {
            "source_file": file,
            "source_row": row,
            "rule": rule,
            "reason_vi": f"Vi phạm quy tắc {rule}",
            "reason_en": reason,
            "values": {"procedure_code": code, "sector": sector, "service_level": level},
        }
        for file, row, rule, reason, code, sector, level in quarantined
    ]
    # a delivered value that looks like markup must show as text, never run or load anything
    sample[0]["values"]["sector"] = '<img src="x.png" onerror="console.error(1)"><script>console.error(2)</script>'
    return {
        "feed": "procedures",
        "table": "silver.procedures",
        "batch": "2022-04-30",
        "source_files": sorted({s["source_file"] for s in sample}),
        "delivered_rows": total,
        "clean_rows": delivered,
        "refused_rows": len(quarantined),
        "decision": "published",
        "decision_vi": "Đã công bố: tỷ lệ dòng bị loại dưới ngưỡng",
        "decision_en": "published: the refused share is under the threshold",
        "policy": {"max_refused_share": 0.1, "min_refused_rows": 10, "min_row_ratio": 0.5},
        "rules": [
            {
                "name": name,
                "text_vi": f"Quy tắc {name}",
                "text_en": f"Rule {name}",
                "checked": total,
                "refused": n,
                "warn_only": False,
            }
            for name, n in rules
        ]
        + [
            {
                "name": "procedure_name_present",
                "text_vi": "Có tên",
                "text_en": "Named",
                "checked": total,
                "refused": 0,
                "warn_only": True,
            }
        ],
        "sample": sample,
    }


def test_a_blocked_batch_says_so_and_the_sample_is_capped(sample_run: Pipeline) -> None:
    summary = _quality_summary(sample_run)
    summary |= {"decision": "blocked", "decision_vi": "Bị chặn", "decision_en": "blocked: too many rows refused"}
    summary["sample"] = summary["sample"] * 3
    text = render_quality_page(summary)
    assert 'class="banner bad" data-decision="blocked"' in text and "blocked: too many rows refused" in text
    sample_table = text.split('class="sample"')[1]
    assert sample_table.count("<tr>") == 1 + SAMPLE_LIMIT  # the header and at most 20 rows
    assert "10,0 %" in text and "50,0 %" in text  # the policy's shares, as percentages


def test_a_quality_page_opens_offline_and_shows_rules_sample_and_decision(sample_run: Pipeline, tmp_path: Path) -> None:
    summary = _quality_summary(sample_run)
    assert len(summary["sample"]) > 0
    path = tmp_path / "quality.html"
    path.write_text(render_quality_page(summary), encoding="utf-8")
    ARTIFACTS.mkdir(exist_ok=True)
    with _browser_page(path.as_uri()) as (page, errors, requests):
        assert _count(page, "table.rules tbody tr") == len(summary["rules"])
        assert _count(page, "table.rules tbody tr.failed") == sum(1 for r in summary["rules"] if r["refused"])
        assert _count(page, "table.sample tbody tr") == min(len(summary["sample"]), SAMPLE_LIMIT)
        assert page.locator("[data-decision]").get_attribute("data-decision") == "published"
        assert page.get_by_text(summary["decision_en"]).is_visible()
        assert _count(page, "main img, main script") == 0  # the markup in a value stayed text
        assert page.get_by_text('<img src="x.png"', exact=False).count() == 1
        page.screenshot(path=str(ARTIFACTS / "quality-page.png"), full_page=True)
    assert errors == [], errors
    assert requests == [path.as_uri()], requests
