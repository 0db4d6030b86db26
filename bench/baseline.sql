-- The bare-engine baseline: what a person could do by hand with one DuckDB SQL script over the same
-- landing files. bench/baseline.py runs it section by section (a section runs when its feed's files
-- are there) and times each; `{landing}`, `{out}` and `{units}` are replaced by paths.
--
-- It computes the same silver and gold tables as the pipeline, as close as SQL reasonably gets:
-- typed values (Vietnamese numbers and dates, every contract spelling), the newest snapshot / the
-- current version of each dossier, the gate's rules as WHERE clauses, the gold tables with the same
-- formulas. What it leaves out is listed in bench/baseline.py (LEAVES_OUT) and in every result.

-- section: common
set TimeZone = 'Asia/Ho_Chi_Minh';
set preserve_insertion_order = false;
create or replace macro vn_text(x) as (
    case when lower(trim(nfc_normalize(x::varchar))) in ('', '-', 'n/a', 'na', 'null', 'none') then null
         else trim(nfc_normalize(x::varchar)) end
);
-- the same for ASCII fields (codes, numbers, dates): no Unicode normalisation, which costs ~5 µs a value here
create or replace macro vn_code(x) as (
    case when length(trim(x::varchar)) > 4 then trim(x::varchar)
         when lower(trim(x::varchar)) in ('', '-', 'n/a', 'na', 'null', 'none') then null else trim(x::varchar) end
);
create or replace macro vn_fold(x) as (
    trim(regexp_replace(replace(lower(strip_accents(nfc_normalize(x))), 'đ', 'd'), '\s+', ' ', 'g'))
);
create or replace macro vn_int(x) as (
    try_cast(regexp_replace(nullif(regexp_extract(vn_text(x), '^[^\d-]*(-?\d{1,3}(?:[.,]\d{3})+|-?\d+)[^\d]*$', 1), ''), '[.,]', '', 'g') as bigint)
);
-- a contract date-time, already trimmed (vn_text): dd/mm/yyyy[ HH:MM[:SS]] is local time; ISO 8601 is cast,
-- which converts an offset or Z and reads a naive value in the session's time zone (Asia/Ho_Chi_Minh)
create or replace macro vn_ts(t) as (
    case when t is null then null
         when substr(t, 3, 1) = '/' then timezone('Asia/Ho_Chi_Minh', case length(t)
              when 19 then try_strptime(t, '%d/%m/%Y %H:%M:%S')
              when 16 then try_strptime(t, '%d/%m/%Y %H:%M')
              when 10 then try_strptime(t, '%d/%m/%Y') end)
         else try_cast(t as timestamptz) end
);
create or replace macro vn_bool(f) as (  -- f: folded text
    case when f in ('true', '1', 'co', 'yes', 'x', 'y') then true
         when f in ('false', '0', 'khong', 'no', 'n') then false end
);
create or replace macro local_date(ts) as (cast(timezone('Asia/Ho_Chi_Minh', ts) as date));

-- section: procedures
-- the newest snapshot (file names carry the date); the JSON export only: DuckDB cannot read xlsx offline
create or replace table proc_typed as
with raw as (
    select * from read_json('{landing}/procedures/tthc_*.json', format = 'array', filename = true,
        columns = {MaTTHC: 'VARCHAR', TenTTHC: 'VARCHAR', LinhVuc: 'VARCHAR', CapThucHien: 'VARCHAR',
                   CoQuanThucHien: 'VARCHAR', MucDoDVC: 'VARCHAR', DVCTrucTuyen: 'VARCHAR', NgayCapNhat: 'VARCHAR'})
), latest as (
    select * from raw where filename = (select max(filename) from raw)
)
select
    vn_text(MaTTHC) as procedure_code,
    vn_text(TenTTHC) as procedure_name,
    vn_text(LinhVuc) as sector,
    vn_text(CoQuanThucHien) as agency,
    vn_text(CapThucHien) as tiers_text,
    list_filter(list_transform(string_split(replace(vn_text(CapThucHien), ',', ';'), ';'), lambda t: vn_fold(t)), lambda t: t <> '') as tiers_folded,
    vn_int(MucDoDVC) as service_level,
    vn_text(DVCTrucTuyen) as online_text,
    vn_fold(vn_text(DVCTrucTuyen)) as online_folded,
    vn_text(NgayCapNhat) as updated_text,
    local_date(vn_ts(vn_text(NgayCapNhat))) as updated_at,
    strptime(regexp_extract(filename, '_(\d{8})\.json$', 1), '%Y%m%d')::date as snapshot_date
from latest;

create or replace table proc_silver as
select
    procedure_code, procedure_name, sector,
    list_distinct(list_transform(tiers_folded, lambda t: case t when 'cap tinh' then 'Cấp tỉnh' when 'cap huyen' then 'Cấp huyện' else 'Cấp xã' end)) as tiers,
    agency, service_level::tinyint as service_level,
    coalesce(case online_folded when 'toan trinh' then 'full' when 'mot phan' then 'partial' end,
             case service_level when 4 then 'full' when 3 then 'partial' else 'none' end) as online_class,
    updated_at, snapshot_date
from (select *, count(procedure_code) over (partition by procedure_code) as copies from proc_typed)
where procedure_code is not null
  and regexp_full_match(procedure_code, '^[123]\.\d{6}$')
  and copies = 1
  and procedure_name is not null and sector is not null and agency is not null and tiers_text is not null
  and list_bool_and(list_transform(tiers_folded, lambda t: t in ('cap tinh', 'cap huyen', 'cap xa'))) is not false
  and service_level in (2, 3, 4)
  and (online_text is null or online_folded in ('toan trinh', 'mot phan'))
  and (updated_text is null or updated_at is not null);

copy (
    with s as (select * from proc_silver), n as (select count(*) as total, max(snapshot_date) as as_of from s)
    select n.as_of as as_of_date, dimension, category, procedures, procedures * 100.0 / n.total as share_pct
    from (
        select 'total' as dimension, 'all' as category, count(*) as procedures from s
        union all select 'service_level', service_level::varchar, count(*) from s group by all
        union all select 'online_class', online_class, count(*) from s group by all
        union all select 'tier', tier, count(*) from (select unnest(tiers) as tier from s) group by all
    ), n
    order by dimension, category
) to '{out}/gold_procedure_service_levels.parquet' (format parquet);

-- section: dossiers
-- every version of every export file, the current version of each MaHoSo, typed; the gate's rules as a filter
create or replace table units as select * from read_csv('{units}', header = true, all_varchar = true);
create or replace macro unit_key(x) as (
    regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(
        vn_fold(x), '^tp\.?\s*', 'thanh pho '), '^tx\.?\s*', 'thi xa '), '^h\.\s*', 'huyen '),
        '^p\.\s*', 'phuong '), '^tt\.?\s+', 'thi tran '), '^x\.\s*', 'xa ')
);

-- the current version of each dossier first (one scan of the files, arg_max by NgayCapNhat), raw text; then the Vietnamese-text
-- fields (agency, unit, channel, status, yes/no) are normalised once per distinct value, as a dictionary
create or replace temp table current_versions as
select dossier_code, unnest(version)
from (
    select dossier_code, arg_max(version, coalesce(updated_at, timestamptz '1900-01-01 00:00:00+00')) as version
    from (
        select
            vn_code(MaHoSo) as dossier_code,
            vn_ts(vn_code(NgayCapNhat)) as updated_at,
            {procedure_code: vn_code(MaTTHC), agency_raw: DonViXuLy, unit_raw: DonViHanhChinh,
             channel_raw: KenhThucHien, status_raw: TrangThaiHoSo,
             received_text: vn_code(NgayTiepNhan), due_text: vn_code(NgayHenTra),
             finished_text: vn_code(NgayKetThucXuLy), returned_text: vn_code(NgayTra),
             updated_at: vn_ts(vn_code(NgayCapNhat)), supplement_text: vn_code(SoLanBoSung),
             paid_raw: DuocThanhToanTrucTuyen, digitized_raw: HoSoCoThanhPhanSoHoa, e_result_raw: CoKetQuaDienTu,
             citizen_id: json_extract_string(ChuHoSo, '$.SoGiayTo')} as version
        from read_ndjson('{landing}/public_service/dossiers_*.ndjson', ignore_errors = true,
            columns = {MaHoSo: 'VARCHAR', MaTTHC: 'VARCHAR', DonViXuLy: 'VARCHAR', DonViHanhChinh: 'VARCHAR',
                       KenhThucHien: 'VARCHAR', NgayTiepNhan: 'VARCHAR', NgayHenTra: 'VARCHAR', NgayKetThucXuLy: 'VARCHAR',
                       NgayTra: 'VARCHAR', TrangThaiHoSo: 'VARCHAR', SoLanBoSung: 'VARCHAR',
                       DuocThanhToanTrucTuyen: 'VARCHAR', HoSoCoThanhPhanSoHoa: 'VARCHAR', CoKetQuaDienTu: 'VARCHAR',
                       ChuHoSo: 'JSON', NgayCapNhat: 'VARCHAR'})
    )
    where dossier_code is not null
    group by dossier_code
);

create or replace temp table words as
select raw, vn_text(raw) as text, vn_fold(vn_text(raw)) as folded
from (select distinct unnest([agency_raw, unit_raw, channel_raw, status_raw, paid_raw, digitized_raw, e_result_raw]) as raw
      from current_versions)
where raw is not null;

copy (
    with current_versions as (
        select c.* exclude (agency_raw, unit_raw, channel_raw, status_raw, paid_raw, digitized_raw, e_result_raw),
            a.text as agency, u.text as unit_text, ch.text as channel_text, ch.folded as channel_folded,
            st.text as status_text, st.folded as status_folded,
            p.text as paid_text, p.folded as paid_folded, d.text as digitized_text, d.folded as digitized_folded,
            e.text as e_result_text, e.folded as e_result_folded
        from current_versions c
        left join words a on a.raw = c.agency_raw
        left join words u on u.raw = c.unit_raw
        left join words ch on ch.raw = c.channel_raw
        left join words st on st.raw = c.status_raw
        left join words p on p.raw = c.paid_raw
        left join words d on d.raw = c.digitized_raw
        left join words e on e.raw = c.e_result_raw
    ), unit_text as (
        select distinct unit_text from current_versions
    ), unit_parts as (
        select unit_text,
               unit_key(split_part(unit_text, ',', 1)) as part1,
               case when contains(unit_text, ',') then unit_key(split_part(unit_text, ',', 2)) end as part2
        from unit_text
    ), unit_matches as (
        select p.unit_text, u.unit_code
        from unit_parts p join units u
          on (regexp_full_match(p.unit_text, '\d+') and u.unit_code = p.unit_text)
          or (p.part2 is null and not regexp_full_match(p.unit_text, '\d+') and u.name_key = p.part1)
          or (p.part2 is not null and u.name_key = p.part1 and u.district_key = p.part2)
    ), unit_resolved as (
        select unit_text, min(unit_code) as unit_code from unit_matches group by unit_text having count(*) = 1
    ), folded as (
        select c.*, r.unit_code,
            vn_bool(paid_folded) as paid_online, vn_bool(digitized_folded) as digitized,
            vn_bool(e_result_folded) as e_result,
            regexp_replace(nullif(regexp_replace(citizen_id, '\D', '', 'g'), ''), '^(\d{11})$', '0\1') as _id
        from current_versions c left join unit_resolved r using (unit_text)
    ), typed as (
        select
            dossier_code, procedure_code, agency, unit_code, channel_text,
            case channel_folded when '1' then 1 when '2' then 2 when '3' then 3
                when 'truc tiep' then 1 when 'truc tuyen' then 2 when 'buu chinh cong ich' then 3 end as channel_code,
            status_text,
            case when regexp_full_match(status_folded, '([1-9]|10)') then status_folded::int
                 else case status_folded
                    when 'moi dang ky' then 1 when 'duoc tiep nhan' then 2 when 'khong duoc tiep nhan' then 3
                    when 'dang xu ly' then 4 when 'yeu cau bo sung' then 5 when 'yeu cau thuc hien nghia vu tai chinh' then 6
                    when 'cong dan rut ho so' then 7 when 'dung xu ly' then 8 when 'da xu ly xong' then 9
                    when 'da tra ket qua' then 10 end end as status_code,
            received_text, vn_ts(received_text) as received_at,
            due_text, vn_ts(due_text) as due_at,
            finished_text, vn_ts(finished_text) as finished_at,
            returned_text, vn_ts(returned_text) as returned_at,
            updated_at,
            supplement_text, vn_int(supplement_text) as supplement_count,
            paid_text, paid_online, digitized_text, digitized, e_result_text, e_result,
            -- the applicant: only a digest of the normalised citizen ID goes further (the pipeline keys an HMAC)
            sha256(_id) as applicant_id, _id
        from folded
    ), clean as (
        select *,
            status_code in (9, 10) or finished_at is not null as is_finished
        from typed
        where agency is not null
          and channel_text is not null and channel_code is not null
          and status_text is not null and status_code is not null
          and received_text is not null and received_at is not null
          and received_at >= timestamptz '2022-01-01 00:00:00+07'
          and updated_at is not null
          and (due_text is null or due_at is not null)
          and (finished_text is null or finished_at is not null)
          and (returned_text is null or returned_at is not null)
          and not coalesce(finished_at < received_at or returned_at < finished_at or returned_at < received_at
                           or due_at < received_at, false)
          and unit_code is not null
          and (supplement_text is null or supplement_count >= 0)
          and (paid_text is null or paid_online is not null)
          and (digitized_text is null or digitized is not null)
          and (e_result_text is null or e_result is not null)
    )
    select
        dossier_code, procedure_code, agency, unit_code, channel_code, status_code,
        received_at, due_at, finished_at, returned_at, updated_at,
        coalesce(supplement_count, 0) as supplement_count,
        coalesce(paid_online, false) as paid_online, coalesce(digitized, false) as digitized,
        coalesce(e_result, false) as e_result,
        is_finished,
        not is_finished and status_code in (3, 7, 8) as is_closed_unfinished,
        case when is_finished then coalesce(supplement_count, 0) <= 1
            and (due_at is null or coalesce(coalesce(finished_at, returned_at) <= due_at, false)) end as finished_on_time,
        epoch(finished_at - received_at) / 86400.0 as processing_days,
        -- the digest is computed (its cost is real) but the distinct count below reads the normalised ID
        -- itself: equal counts, and the pipeline's HMAC key is not the baseline's business
        applicant_id, _id,
        cast(date_trunc('month', local_date(received_at)) as date) as received_month
    from clean
) to '{out}/silver_dossiers.parquet' (format parquet);

create or replace macro kpi_pct(num, den) as (case when den > 0 then num * 100.0 / den end);
create or replace table catalog_online as
select vn_fold(agency) as agency_key, count(*) filter (online_class in ('full', 'partial')) * 100.0 / count(*) as catalog_online_pct
from proc_silver group by all;
-- the monthly KPIs for the province and for each agency, in one pass (grouping sets); `level` 1 is the province
create or replace temp table kpi_counts as
with s as (select *, vn_fold(agency) as agency_key from read_parquet('{out}/silver_dossiers.parquet')),
-- a month is judged as of its end, or as of the extraction while it is not over (the contract's "open at the end
-- of the period"), never as of the newest change
e as (select timestamptz '{extracted_at}' as extracted),
j as (select s.*, least(received_month::timestamptz + interval 1 month, e.extracted) as as_of from s, e)
select received_month as month, agency_key, grouping(agency_key) as level,
    count(*) as dossiers_received,
    count(*) filter (is_finished) as dossiers_finished,
    count(*) filter (finished_on_time) as finished_on_time,
    count(*) filter (not is_finished and not is_closed_unfinished and due_at < as_of) as open_overdue,
    count(*) filter (is_closed_unfinished) as closed_unfinished,
    count(*) filter (channel_code = 2) as dossiers_online,
    count(*) filter (paid_online) as dossiers_paid_online,
    count(*) filter (digitized) as dossiers_digitized,
    count(*) filter (is_finished and e_result) as dossiers_e_result,
    count(distinct _id) + (count(*) filter (_id is null) > 0)::int as distinct_applicants,
    avg(processing_days) filter (is_finished) as avg_processing_days,
    min(as_of) as as_of
from j
group by grouping sets ((received_month), (received_month, agency_key));
create or replace macro kpis(lvl) as table
    select month, agency_key, dossiers_received, dossiers_finished, finished_on_time,
        dossiers_finished - finished_on_time as finished_late, open_overdue, closed_unfinished, dossiers_online,
        dossiers_paid_online, dossiers_digitized, dossiers_e_result, distinct_applicants,
        kpi_pct(finished_on_time, dossiers_finished + open_overdue) as on_time_pct,
        kpi_pct(dossiers_online, dossiers_received) as online_pct,
        kpi_pct(dossiers_paid_online, dossiers_received) as paid_online_pct,
        kpi_pct(dossiers_digitized, dossiers_received) as digitized_pct,
        kpi_pct(dossiers_e_result, dossiers_finished) as e_result_pct,
        avg_processing_days, as_of
    from kpi_counts where level = lvl;
copy (
    select * exclude (agency_key, as_of),
        (select count(*) filter (online_class in ('full', 'partial')) * 100.0 / nullif(count(*), 0) from proc_silver) as catalog_online_pct,
        as_of
    from kpis(1) order by month
) to '{out}/gold_public_service_kpis_monthly.parquet' (format parquet);
copy (
    select k.month, k.agency_key as agency, k.* exclude (month, agency_key, as_of), c.catalog_online_pct, k.as_of
    from kpis(0) k left join catalog_online c using (agency_key)
    order by month, agency
) to '{out}/gold_public_service_kpis_by_agency_monthly.parquet' (format parquet);
