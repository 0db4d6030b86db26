"""Quick measurement of the dossier feed (not a test; the full benchmark is issue 6's `make bench`).

    .venv/bin/python bench/dossiers.py --scale 1            # ~1M versions: a province-year
    .venv/bin/python bench/dossiers.py --scale 10 --skip-baseline

Generates a delivery under bench/work/s<S>/ (once), then measures, each in a fresh process:
  baseline   a bare DuckDB script over the same ndjson files: typed, newest version, monthly KPIs
  export     `python -m ioc_pipeline.cli run` (all feeds of the landing zone, as `make run` does)
  api        the gateway source alone (a local gateway in another process) -> bronze, versions/s
and prints wall time, peak RSS (the measured process) and the ratio to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

BASELINE = r"""
import sys, duckdb, time
landing, out = sys.argv[1], sys.argv[2]
con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
fields = ["MaHoSo", "MaTTHC", "DonViXuLy", "DonViHanhChinh", "KenhThucHien", "NgayTiepNhan", "NgayHenTra",
          "NgayKetThucXuLy", "NgayTra", "TrangThaiHoSo", "SoLanBoSung", "DuocThanhToanTrucTuyen",
          "HoSoCoThanhPhanSoHoa", "CoKetQuaDienTu", "NgayCapNhat"]
cols = ", ".join(f"{f}: 'VARCHAR'" for f in fields) + ", ChuHoSo: 'JSON'"
fmts = ("['%d/%m/%Y %H:%M:%S', '%d/%m/%Y %H:%M', '%Y-%m-%dT%H:%M:%S', '%Y-%m-%dT%H:%M:%S%z', "
        "'%Y-%m-%dT%H:%M:%SZ', '%d/%m/%Y']")
ts = lambda c: f"try_strptime({c}, {fmts})"
flag = lambda c: f"lower({c}) in ('true','1','có','co')"
con.execute("set TimeZone='Asia/Ho_Chi_Minh'")
con.execute(f'''
create table silver as
with v as (select * from read_json('{landing}/public_service/*.ndjson', format='newline_delimited', columns={{{cols}}},
                                   ignore_errors=true)),
t as (
  select MaHoSo as dossier_code, MaTTHC as procedure_code, DonViXuLy as agency, DonViHanhChinh as unit,
    case when KenhThucHien in ('1') or lower(KenhThucHien) like 'tr%c ti%p' then 1
         when KenhThucHien in ('2') or lower(KenhThucHien) like 'tr%c tuy%n' then 2
         when KenhThucHien in ('3') or lower(KenhThucHien) like 'b%u ch%nh%' then 3 end as channel_code,
    coalesce(try_cast(TrangThaiHoSo as tinyint), case lower(TrangThaiHoSo) when 'đã xử lý xong' then 9
         when 'đã trả kết quả' then 10 when 'đang xử lý' then 4 when 'công dân rút hồ sơ' then 7
         when 'dừng xử lý' then 8 when 'không được tiếp nhận' then 3 when 'yêu cầu bổ sung' then 5 end) as status_code,
    {ts('NgayTiepNhan')} as received_at, {ts('NgayHenTra')} as due_at, {ts('NgayKetThucXuLy')} as finished_at,
    {ts('NgayTra')} as returned_at, {ts('NgayCapNhat')} as updated_at,
    coalesce(try_cast(SoLanBoSung as int), 0) as supplement_count,
    {flag('DuocThanhToanTrucTuyen')} as paid_online, {flag('HoSoCoThanhPhanSoHoa')} as digitized,
    {flag('CoKetQuaDienTu')} as e_result,
    sha256('key' || coalesce(ChuHoSo->>'SoGiayTo', '')) as applicant_id
  from v where MaHoSo is not null and MaHoSo <> '')
select *, date_trunc('month', received_at)::date as month,
  status_code in (9, 10) or finished_at is not null as is_finished,
  (status_code in (9, 10) or finished_at is not null) and supplement_count <= 1
    and (due_at is null or coalesce(finished_at, returned_at) <= due_at) as on_time
from t qualify row_number() over (partition by dossier_code order by updated_at desc nulls last) = 1
''')
con.execute(f"copy silver to '{out}/silver' (format parquet, partition_by (month), overwrite_or_ignore)")
as_of = con.execute("select max(updated_at) from silver").fetchone()[0]
for by in ([], ["agency"]):
    keys = ", ".join(["month", *by])
    con.execute(f'''copy (select {keys}, count(*) received, count(*) filter (is_finished) finished,
      count(*) filter (on_time) on_time,
      count(*) filter (not is_finished and status_code not in (3,7,8) and due_at < '{as_of}') open_overdue,
      100.0 * count(*) filter (channel_code = 2) / count(*) online_pct,
      100.0 * count(*) filter (paid_online) / count(*) paid_pct,
      100.0 * count(*) filter (digitized) / count(*) digitized_pct,
      avg(epoch(finished_at - received_at) / 86400) filter (is_finished) avg_days
      from silver group by all) to '{out}/kpis_{len(by)}.parquet' (format parquet)''')
print(con.execute("select count(*) from silver").fetchone()[0])
"""

API = r"""
import sys, time, json
import dlt, requests  # before the clock: the source imports them at its first load
from ioc_pipeline.lake import Lake, Landing
from ioc_pipeline.sources import dossiers as source
url, work, page_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
gateway = source.Gateway(url=url, token="bench-token", page_size=page_size)
started = time.monotonic()
key = b"bench-key-0123456789"
result = source.ingest(Lake(f"{work}/lake"), f"{work}/dlt", Landing(f"{work}/landing"), key, gateway)
print(json.dumps({"seconds": time.monotonic() - started, "rows": result.report.rows, "pages": result.gateway.pages}))
"""


CPU: dict[str, float] = {}


def measured(command: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in MB (of the child process), and its output; CPU["last"] holds the
    child's CPU seconds (user + system): on a shared machine, the figure that does not depend on the
    neighbours' load."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = usage.ru_maxrss
    cpu_before = usage.ru_utime + usage.ru_stime
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{done.stderr[-4000:]}\n{done.stdout[-2000:]}")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = usage.ru_maxrss
    CPU["last"] = usage.ru_utime + usage.ru_stime - cpu_before
    return seconds, max(peak, before) / 1024, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--page-size", type=int, default=20000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-export", action="store_true")
    parser.add_argument("--skip-api", action="store_true")
    args = parser.parse_args()
    work = ROOT / "bench" / "work" / f"s{args.scale:g}m{args.months}"
    landing = work / "landing"
    if not (landing / "public_service").exists():
        started = time.monotonic()
        subprocess.run(
            [PYTHON, "-m", "ioc_pipeline.sample", "--out", str(landing), "--feeds", "procedures"], check=True, cwd=ROOT
        )
        subprocess.run(
            [
                PYTHON,
                "-m",
                "ioc_pipeline.sample",
                "--out",
                str(landing),
                "--feeds",
                "dossiers",
                "--scale",
                str(args.scale),
                "--months",
                str(args.months),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        print(f"generated in {time.monotonic() - started:.0f} s")
    files = sorted((landing / "public_service").glob("*.ndjson"))
    versions = sum(sum(1 for _ in f.open("rb")) for f in files)
    size = sum(f.stat().st_size for f in files) / 1e6
    print(f"delivery: {versions:,} dossier versions, {size:,.0f} MB in {len(files)} files")
    report: dict[str, object] = {"scale": args.scale, "months": args.months, "versions": versions, "mb": round(size)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOC_", "DAGSTER"))}

    if not args.skip_baseline:
        out = work / "baseline"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        seconds, peak, _ = measured([PYTHON, "-c", BASELINE, str(landing), str(out)], env)
        report["baseline"] = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(CPU["last"], 1),
            "peak_mb": round(peak),
        }
        print(f"baseline (bare DuckDB): {seconds:.1f} s, {CPU['last']:.1f} CPU s, peak {peak:,.0f} MB")

    if not args.skip_export:
        data = work / "pipeline"
        shutil.rmtree(data, ignore_errors=True)
        (data / "dagster_home").mkdir(parents=True)
        shutil.copy(ROOT / "deploy" / "dagster.local.yaml", data / "dagster_home" / "dagster.yaml")
        os.symlink(landing, data / "landing")
        run_env = {**env, "IOC_DATA_DIR": str(data), "DAGSTER_HOME": str(data / "dagster_home"), "IOC_MODE": "sample"}
        seconds, peak, out = measured([PYTHON, "-m", "ioc_pipeline.cli", "run"], run_env)
        steps: dict[str, float] = {}
        for name, minutes, value, unit in re.findall(
            r'Finished execution of step "([^"]+)" in (?:(\d+)m)?([\d.]+)(ms|s)', out
        ):
            seconds_taken = float(value) / (1000 if unit == "ms" else 1) + 60 * int(minutes or 0)
            steps[name] = steps.get(name, 0) + seconds_taken
        report["export"] = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(CPU["last"], 1),
            "peak_mb": round(peak),
            "steps": steps,
        }
        print(f"export path (cli run, every feed): {seconds:.1f} s, {CPU['last']:.1f} CPU s, peak {peak:,.0f} MB")
        for name, value in sorted(steps.items(), key=lambda kv: -kv[1]):
            print(f"  {name:<48} {value:8.2f} s")
        if "baseline" in report:
            base = report["baseline"]
            print(
                f"  ratio to the baseline: {seconds / base['seconds']:.1f}x wall, "
                f"{CPU['last'] / base['cpu_seconds']:.1f}x CPU"
            )

    if not args.skip_api:
        data = work / "api"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        server = subprocess.Popen(
            [
                PYTHON,
                "-m",
                "ioc_pipeline.sample.gateway",
                "--landing",
                str(landing),
                "--port",
                "18765",
                "--token",
                "bench-token",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            print(server.stdout.readline().strip())
            seconds, peak, out = measured(
                [PYTHON, "-c", API, "http://127.0.0.1:18765", str(data), str(args.page_size)], env
            )
            result = json.loads([line for line in out.splitlines() if line.startswith("{")][-1])
            rate = result["rows"] / result["seconds"]
            cpu_rate = result["rows"] / CPU["last"]
            report["api"] = {
                **result,
                "versions_per_second": round(rate),
                "versions_per_cpu_second": round(cpu_rate),
                "peak_mb": round(peak),
            }
            print(
                f"api path (gateway -> bronze): {result['rows']:,} versions in {result['seconds']:.1f} s = "
                f"{rate:,.0f} versions/s ({cpu_rate:,.0f} per CPU second of the client), {result['pages']} pages, "
                f"peak {peak:,.0f} MB"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    (work / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
