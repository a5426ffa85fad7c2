//! Criterion micro-benchmarks of the inner loops (`make bench-micro`):
//! JSON body → validated events, events → the binary COPY buffer of an
//! ingest, events → ZSTD Parquet, and the planner's
//! merge of the two tiers' partial answers.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_cold::{BatchBuilder, ColdStore, FileWriter, S3Options, WriterOptions};
use strata_model::{IngestLimits, parse_batch};

fn json_to_events(c: &mut Criterion) {
    let events = strata_benches::events(1_000);
    let body = strata_benches::ingest_body(&events).unwrap();
    let limits = IngestLimits::default();
    let now = chrono::Utc::now();
    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("parse_batch_1000_events", |b| {
        b.iter(|| {
            let parsed = parse_batch(&body, &limits, now).unwrap();
            assert_eq!(parsed.events.len(), 1_000);
            parsed
        })
    });
    let mut buf = Vec::with_capacity(body.len());
    g.bench_function("rows_to_copy_buffer_1000_events", |b| {
        b.iter(|| {
            buf.clear();
            strata_store::shared::copy::encode_events(1, &events, &mut buf);
            buf.len()
        })
    });
    g.finish();
}

fn events_to_parquet(c: &mut Criterion) {
    const ROWS: u32 = 50_000;
    let events = strata_benches::events(ROWS);
    let dir = tempfile::tempdir().unwrap();
    let store = ColdStore::from_url(
        &format!("file://{}", dir.path().display()),
        &S3Options::default(),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let options = WriterOptions::default();
    let mut g = c.benchmark_group("archive");
    g.throughput(Throughput::Elements(u64::from(ROWS)));
    g.sample_size(10);
    g.bench_function("rows_to_zstd_parquet_50k", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let key = strata_cold::ObjectKey {
                    project_id: 1,
                    day: chrono::Utc::now().date_naive(),
                    seq: 0,
                    run: 1,
                };
                let mut writer = FileWriter::create(&store, key, &options).unwrap();
                let mut builder = BatchBuilder::with_capacity(options.batch_rows);
                for e in &events {
                    builder.push(
                        e.event_id.as_uuid(),
                        e.user_id.as_str(),
                        e.event_type.as_str(),
                        e.timestamp.as_datetime().timestamp_micros(),
                        e.properties.as_json(),
                        0,
                    );
                    if builder.len() == options.batch_rows {
                        writer.write(&builder.finish().unwrap()).await.unwrap();
                    }
                }
                writer.write(&builder.finish().unwrap()).await.unwrap();
                writer.close().await.unwrap()
            })
        })
    });
    g.finish();
}

/// The planner's exact merges: a day both tiers hold costs a union of user
/// sets; retention costs one bit per (cohort user, active period) pair.
fn partial_result_merge(c: &mut Criterion) {
    use strata_query::merge::{DauMerge, RetentionMerge};
    let today = chrono::Utc::now().date_naive();
    let range =
        strata_model::DayRange::new(today - chrono::Duration::days(89), today, 400).unwrap();
    // 90 days, 3 of them held by both tiers with 20k users from each side.
    let users: Vec<String> = (0..20_000).map(|i| format!("user_{i}")).collect();
    let mut g = c.benchmark_group("merge");
    g.throughput(Throughput::Elements(3 * 2 * users.len() as u64));
    g.bench_function("dau_90_days_3_shared_20k_users_per_tier", |b| {
        b.iter(|| {
            let mut m = DauMerge::default();
            for (i, day) in range.days().enumerate() {
                if i < 87 {
                    m.count(day, 1_000);
                    continue;
                }
                for tier in 0..2 {
                    for u in &users[tier * 5_000..] {
                        m.user(day, u.clone());
                    }
                }
            }
            m.finish(&range)
        })
    });
    // 12 weekly cohorts of 50k users, each active in ~4 of 12 weeks per tier.
    let first = strata_model::day_number(today) - 7 * 23;
    let cohort_users: Vec<(String, i32)> = (0..50_000)
        .map(|i| (format!("user_{i}"), first + 7 * (i % 12)))
        .collect();
    let marks: Vec<(usize, i32)> = (0..400_000usize)
        .map(|i| (i * 7_919 % 50_000, first + 7 * ((i * 31 % 24) as i32)))
        .collect();
    g.throughput(Throughput::Elements(marks.len() as u64));
    g.bench_function("retention_12_weeks_50k_users_400k_pairs", |b| {
        b.iter(|| {
            let mut m = RetentionMerge::new(&cohort_users, 7, 12);
            for (u, p) in &marks {
                m.mark(&cohort_users[*u].0, *p);
            }
            m.finish(first, first + 7 * 11, first + 7 * 30)
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    json_to_events,
    events_to_parquet,
    partial_result_merge
);
criterion_main!(benches);
