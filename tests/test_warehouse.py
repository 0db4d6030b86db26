"""The analysts' warehouse as analysts use it: real DuckDB clients (the CLI in write mode, read-only
reader processes, a scratch database), real publish runs, on a copy of the published sample.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ioc_pipeline import sql
from ioc_pipeline.assets.layers import QUARANTINE_DOC
from ioc_pipeline.assets.publish import DOCS, STEP_DOCS
from ioc_pipeline.definitions import build_defs
from ioc_pipeline.warehouse import BUILD_TABLE, ORPHANED, build, connect
from tests.conftest import Pipeline, failure_messages

DUCKDB_CLI = str(Path(sys.executable).with_name("duckdb"))
READERS = 3
REFRESHES = 4


class DuckCli:
    """A real `duckdb` command-line session, stdin kept open, as an analyst's terminal would keep it."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [DUCKDB_CLI, "-csv", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.asked = 0

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, statements: str, timeout: float = 30.0) -> str:
        """Send statements, then wait for a marker: everything printed in between (errors included)."""
        self.asked += 1
        marker = f"done-{self.asked}"
        assert self.process.stdin is not None
        self.process.stdin.write(f"{statements}\nselect '{marker}' as marker;\n")
        self.process.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line.strip() == marker:
                return "".join(out)
            out.append(line)
        raise AssertionError(f"the duckdb CLI did not answer {statements!r}: {''.join(out)}")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(".quit\n")
        self.process.stdin.close()
        self.process.wait(timeout=30)


def _build_id(pipeline: Pipeline) -> str:
    return pipeline.query("select distinct build_id from ops.warehouse_build")[0][0]


@pytest.mark.slow  # reader and duckdb CLI processes across refreshes
def test_a_write_session_left_open_neither_breaks_a_refresh_nor_loses_its_table(published: Pipeline) -> None:
    warehouse = published.warehouse
    wal = Path(f"{warehouse}.wal")
    # the published warehouse refuses writes from any client, loudly, at the first commit
    assert wal.is_symlink() and not wal.exists()
    refused = DuckCli(str(warehouse))
    answer = refused.run("create table main.mine as select 42 as answer;")
    assert "ioc.duckdb.wal" in answer, answer
    refused.close()
    assert published.query("select count(*) from duckdb_tables() where table_name = 'mine'") == [(0,)]

    # a warehouse without the guard (published by an older version, or the link deleted): a write session
    # creates a scratch table and stays open, its table in the WAL
    wal.unlink()
    analyst = DuckCli(str(warehouse))
    assert "Error" not in analyst.run("create table main.mine as select 42 as answer;")
    assert wal.is_file() and not wal.is_symlink()

    result = published.run("publish")
    assert result.success, failure_messages(result)

    # new readers open the new warehouse (no WAL to replay, no lock)
    assert _build_id(published)
    assert wal.is_symlink() and not wal.exists()
    # the session goes on writing into the kept file; after its checkpoint, a write is refused, loudly
    assert "Error" not in analyst.run("insert into main.mine values (43);")
    analyst.run("checkpoint;")
    assert "ioc.duckdb.wal" in analyst.run("insert into main.mine values (44);")
    assert published.query("select count(*) from gold.ioc_scorecard")[0][0] > 0
    analyst.close()

    kept = list((warehouse.parent / ORPHANED).glob("*/ioc.duckdb"))
    assert len(kept) == 1
    with connect(str(kept[0]), read_only=True) as con:
        assert sorted(con.execute("select answer from main.mine").fetchall()) == [(42,), (43,)]
    raised = published.lake.read("ops", "alerts").filter(pl.col("kind") == "warehouse_orphaned")
    assert raised.height == 1 and str(kept[0].parent) in raised.get_column("message")[0]


READER = textwrap.dedent(
    """
    import json, os, sys, time
    from ioc_pipeline.warehouse import connect
    path, stop = sys.argv[1], sys.argv[2]
    queries, failed, mixed, builds = 0, [], [], {}
    sql = (
        "select b.build_id, b.row_count, (select count(*) from gold.public_service_kpis_by_agency_monthly) "
        "from ops.warehouse_build b where b.table_name = 'gold.public_service_kpis_by_agency_monthly'"
    )
    while not os.path.exists(stop):
        queries += 1
        try:
            with connect(path, read_only=True) as con:
                build, stamped, seen = con.execute(sql).fetchone()
            if stamped != seen:
                mixed.append([build, stamped, seen])
            builds.setdefault(build, set()).add(seen)
        except Exception as error:
            failed.append(f"{type(error).__name__}: {error}")
        time.sleep(0.02)
    print(json.dumps({"queries": queries, "failed": failed[:5], "failures": len(failed), "mixed": mixed[:5],
                      "builds": {b: sorted(s) for b, s in builds.items()}}))
    """
)


@pytest.mark.slow  # reader and duckdb CLI processes across refreshes
def test_readers_never_fail_nor_mix_versions_across_refreshes(published: Pipeline, tmp_path: Path) -> None:
    store = published.lake
    kpis = store.read("gold", "public_service_kpis_by_agency_monthly")
    assert kpis.height >= REFRESHES
    stop = tmp_path / "stop"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    readers = [
        subprocess.Popen(
            [sys.executable, "-c", READER, str(published.warehouse), str(stop)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(READERS)
    ]
    try:
        for refresh in range(1, REFRESHES + 1):
            store.write(kpis.head(refresh), "gold", "public_service_kpis_by_agency_monthly")  # each publish a new size
            result = published.run("publish")
            assert result.success, failure_messages(result)
    finally:
        stop.touch()
        reports = [json.loads(reader.communicate(timeout=120)[0]) for reader in readers]
    for report in reports:
        assert report["failures"] == 0, report["failed"]
        assert report["mixed"] == []
        assert report["queries"] > REFRESHES
        # one size per publication: a reader never saw one build's stamp with another build's rows
        assert all(len(sizes) == 1 for sizes in report["builds"].values())
    seen = {b for report in reports for b in report["builds"]}
    assert len(seen) >= REFRESHES  # the readers did read across the refreshes
    assert published.query("select count(*) from gold.public_service_kpis_by_agency_monthly") == [(REFRESHES,)]


def _duckdb(scratch: Path, startup: str, sql_text: str, *options: str) -> subprocess.CompletedProcess[str]:
    """The DuckDB command line on the analyst's scratch file, with `make sql`'s start-up (the warehouse attached
    read-only as `ioc`)."""
    return subprocess.run(
        [DUCKDB_CLI, str(scratch), *options, "-cmd", startup, "-c", sql_text], capture_output=True, text=True
    )


def test_a_scratch_database_keeps_the_analysts_tables_across_refreshes(published: Pipeline) -> None:
    scratch = Path(sql.scratch_path(str(published.warehouse), "analyst"))
    scratch.parent.mkdir(parents=True, exist_ok=True)
    startup = sql.startup(str(published.warehouse))
    made = _duckdb(
        scratch,
        startup,
        "create table mine as select indicator_code, value from ioc.gold.ioc_scorecard; select count(*) from mine;",
        "-csv",
    )
    assert made.returncode == 0, made.stderr
    rows = int(made.stdout.split()[-1])
    assert rows > 0
    refused = _duckdb(scratch, startup, "create table ioc.main.mine as select 1;")
    assert refused.returncode != 0 and "read-only" in refused.stderr.lower()
    result = published.run("publish")
    assert result.success, failure_messages(result)
    again = _duckdb(
        scratch,
        startup,
        "select count(*) from mine; select count(*) from ioc.ops.warehouse_build;",
        "-csv",
        "-noheader",
    )
    assert again.returncode == 0, again.stderr
    assert int(again.stdout.split()[0]) == rows


# --------------------------------------------------------------------------------------------------
# documentation, types, partition pages (the published sample, read-only)
# --------------------------------------------------------------------------------------------------

BILINGUAL = " / "  # TableDoc.comment(): "<Vietnamese> / <English>"


def _columns(pipeline: Pipeline) -> list[tuple[str, str, str, str, str | None]]:
    return pipeline.query(
        "select schema_name, table_name, column_name, data_type, comment from duckdb_columns() "
        "where database_name = current_database() and schema_name in ('silver', 'gold', 'quarantine', 'ops')"
    )


def test_every_table_and_column_is_documented_in_both_languages(sample_run: Pipeline) -> None:
    tables = sample_run.query(
        "select schema_name || '.' || table_name, comment from duckdb_tables() where database_name = current_database()"
    )
    assert {schema.split(".")[0] for schema, _ in tables} == {"silver", "gold", "quarantine", "ops"}
    assert [name for name, comment in tables if not comment or BILINGUAL not in comment] == []
    views = sample_run.query(
        "select schema_name || '.' || view_name, comment from duckdb_views() where database_name = current_database()"
    )
    assert "gold.ioc_scorecard_latest" in dict(views)
    assert [name for name, comment in views if not comment or BILINGUAL not in comment] == []
    columns = _columns(sample_run)
    assert len(columns) > 300
    missing = [f"{s}.{t}.{c}" for s, t, c, _, comment in columns if not comment or BILINGUAL not in comment]
    assert missing == []


def test_every_asset_schema_in_the_ui_describes_its_columns(sample_run: Pipeline) -> None:
    with sample_run.environment(), dg.DagsterInstance.get() as instance:
        keys = build_defs().resolve_asset_graph().get_all_asset_keys()
        schemas: dict[str, dg.TableSchema] = {}
        for key in keys:
            event = instance.get_latest_materialization_event(key)
            found = event.asset_materialization.metadata.get("dagster/column_schema") if event else None
            if found is not None:
                schemas[key.to_user_string()] = found.value
    tables = {f"{layer}/{table}" for layer, table in (name.split(".") for name, _ in _tables(sample_run))}
    layered = {t for t in tables if t.split("/")[0] in ("silver", "gold", "quarantine")}
    assert layered <= set(schemas), layered - set(schemas)  # every published lake table shows its schema
    undocumented = [f"{key}.{c.name}" for key, schema in schemas.items() for c in schema.columns if not c.description]
    assert undocumented == []


def _tables(pipeline: Pipeline) -> list[tuple[str, str]]:
    return pipeline.query(
        "select schema_name || '.' || table_name, comment from duckdb_tables() where database_name = current_database()"
    )


INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}


def test_one_type_per_meaning_across_the_warehouse(sample_run: Pipeline) -> None:
    columns = _columns(sample_run)
    typed = [(s, t, c, kind) for s, t, c, kind, _ in columns if s != "quarantine" or not _as_delivered(c)]
    by_name: dict[str, set[str]] = {}
    for _, _, column, kind in typed:
        by_name.setdefault(column, set()).add(kind)
    assert {c: k for c, k in by_name.items() if len(k) > 1} == {}  # one name, one type
    assert [c for c, k in by_name.items() if "TIMESTAMP WITH TIME ZONE" in k] == []  # Vietnam time, no offsets
    assert by_name["month"] == {"DATE"} and by_name["received_month"] == {"DATE"}
    assert {c for c, k in by_name.items() if c.endswith("_month")} <= {"received_month"}
    codes = {c: k for c, k in by_name.items() if c.endswith("_code")}
    assert len(codes) > 5 and all(k == {"VARCHAR"} for k in codes.values()), codes
    counts = [c for c in by_name if c.startswith(("dossiers_", "sites_", "finished_", "open_", "closed_"))]
    counts += [c for c in by_name if c.endswith(("_count", "_rows")) or c in ("stations", "sites", "service_points")]
    counts = [c for c in counts if not c.endswith(("_pct", "_at", "_on"))]  # rates and moments are not counts
    assert len(counts) > 10 and all(by_name[c] <= INTEGER_TYPES for c in counts), {c: by_name[c] for c in counts}
    # timestamps read as Vietnam wall-clock time, whatever the client's TimeZone
    received = sample_run.query("select min(received_at)::varchar from silver.dossiers")[0][0]
    assert received.startswith("2022-01-") and "+" not in received


def _as_delivered(column: str) -> bool:
    """A quarantine column holding the delivered text (bronze): every column but the gate's and the month."""
    return column not in QUARANTINE_DOC.columns and column != "month"


def test_each_month_of_a_single_run_carries_its_own_figures(sample_run: Pipeline) -> None:
    """The sample's four months run in one run: each partition's latest materialization is its own."""
    months = [m for (m,) in sample_run.query("select distinct strftime(month, '%Y-%m') from silver.dossiers")]
    rows = dict(sample_run.query("select strftime(month, '%Y-%m'), count(*) from silver.dossiers group by 1"))
    refused = dict(sample_run.query("select strftime(month, '%Y-%m'), count(*) from quarantine.dossiers group by 1"))
    assert len(months) == 4
    with sample_run.environment(), dg.DagsterInstance.get() as instance:
        for month in months:
            latest = {}
            for key in (["silver", "dossiers"], ["quarantine", "dossiers"]):
                records = instance.fetch_materializations(
                    # a partition is a month of a former province (`2022-01|94`: the sample's one)
                    dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[f"{month}|94"]),
                    limit=1,
                ).records
                latest[key[0]] = records[0].asset_materialization.metadata
            assert latest["silver"]["dagster/row_count"].value == rows[month]
            assert latest["silver"]["quarantined_rows"].value == refused.get(month, 0)
            assert latest["silver"]["batch"].value == month
            assert latest["quarantine"]["dagster/row_count"].value == refused.get(month, 0)
    assert len(set(rows.values())) > 1 or len(set(refused.values())) > 1  # the months differ: the test can fail


# --------------------------------------------------------------------------------------------------
# history: snapshot feeds keep every snapshot
# --------------------------------------------------------------------------------------------------

POINTS = ("postal", "service_points_20220430.csv")


def _points_total(pipeline: Pipeline, table: str) -> dict[str, int]:
    rows = pipeline.query(f"select as_of_date::varchar, sum(service_points) from gold.{table} group by 1 order by 1")
    return {day: int(total) for day, total in rows}


def test_two_snapshots_delivered_one_after_the_other_are_both_kept(published: Pipeline) -> None:
    before = _points_total(published, "postal_network_by_commune")
    assert list(before) == ["2022-04-30"]
    # the department delivers May's register: five points of April closed
    april = published.landing.joinpath(*POINTS).read_text(encoding="utf-8").splitlines(keepends=True)
    clean = {code for (code,) in published.query("select point_code from silver.postal_service_points")}
    closed = [line for line in april[1:] if line.split(",")[0] in clean][:5]
    may = [line for line in april if line not in closed]
    published.landing.joinpath("postal", "service_points_20220531.csv").write_text("".join(may), encoding="utf-8")
    result = published.run("refresh_postal")
    assert result.success, failure_messages(result)

    after = _points_total(published, "postal_network_by_commune")
    assert after == {"2022-04-30": before["2022-04-30"], "2022-05-31": before["2022-04-30"] - 5}
    assert _points_total(published, "postal_network_by_commune_latest") == {"2022-05-31": after["2022-05-31"]}
    assert published.query("select count(*) from gold.postal_network_by_commune group by as_of_date") == [
        (108,),
        (108,),
    ]
    # the scorecard keeps both figures; its latest view answers "how many now"
    history = published.query(
        "select as_of_date::varchar, value from gold.ioc_scorecard "
        "where indicator_code = 'postal_service_points' order by 1"
    )
    assert [(d, int(v)) for d, v in history] == list(after.items())
    assert published.query(
        "select as_of_date::varchar, value from gold.ioc_scorecard_latest "
        "where indicator_code = 'postal_service_points'"
    ) == [("2022-05-31", after["2022-05-31"])]
    assert published.query("select count(*) = count(distinct indicator_code) from gold.ioc_scorecard_latest") == [
        (True,)
    ]


def test_the_readmes_trend_queries_answer(sample_run: Pipeline) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- trend queries -->", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    queries = [q.strip() for q in block.split(";") if q.strip()]
    assert len(queries) == 2
    sites, on_time = (sample_run.query(q) for q in queries)
    assert sites and all(n > 0 for _, n in sites)  # BTS sites with 4G per snapshot month
    assert len(on_time) == 4 and all(0 <= pct <= 100 for _, pct in on_time)  # on-time rate per month


def _contents(path: Path) -> dict[str, object]:
    """Everything an analyst can read from a warehouse file but its publication's id and time: each table's
    and view's sorted rows, and every comment."""
    with connect(str(path), read_only=True) as con:
        relations = con.execute(
            "select schema_name || '.' || table_name from duckdb_tables() where database_name = current_database() "
            "union all select schema_name || '.' || view_name from duckdb_views() "
            "where database_name = current_database() and not internal"
        ).fetchall()
        found: dict[str, object] = {
            "comments": sorted(
                con.execute(
                    "select schema_name, table_name, column_name, comment from duckdb_columns() "
                    "where database_name = current_database()"
                ).fetchall(),
                key=repr,
            )
        }
        for (name,) in relations:
            rows = (
                con.execute(f"select * exclude (build_id, published_at) from {name}").fetchall()
                if (name == BUILD_TABLE)
                else con.execute(f"select * from {name}").fetchall()
            )
            found[name] = sorted(rows, key=repr)
        return found


def test_a_publish_carries_over_the_unchanged_tables_and_equals_a_fresh_build(published: Pipeline) -> None:
    """A new catalog only: the publish rebuilds the tables whose lake files changed, carries the others over
    from the published file, and the result equals a warehouse built from empty out of the same lake."""
    published.deliver_catalog()
    results = published.refresh()
    assert all(r.success for r in results), failure_messages(results)
    with published.environment(), dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["publish", "warehouse"]))
    metadata = event.asset_materialization.metadata
    carried = set(metadata["carried_over_tables"].value)
    assert "silver.dossiers" in carried and "silver.bts_stations" in carried  # untouched feeds
    assert "silver.procedures" not in carried and "gold.ioc_scorecard" not in carried  # the new catalog's
    assert metadata["rebuilt_tables"].value == len(metadata["tables"].value) - len(carried) > 0

    fresh = published.root / "fresh.duckdb"
    with published.environment():
        build(published.lake, str(fresh), {**DOCS, **STEP_DOCS})
    assert _contents(published.warehouse) == _contents(fresh)
