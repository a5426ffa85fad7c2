//! Criterion micro-benchmarks of the inner loops (`make bench-micro`):
//! JSON body → validated events, and events → ZSTD Parquet.

#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use strata_cold::{BatchBuilder, ColdStore, FileWriter, S3Options, WriterOptions};
use strata_model::{IngestLimits, parse_batch};

fn json_to_events(c: &mut Criterion) {
    let events = strata_benches::events(1_000);
    let body = strata_benches::ingest_body(&events);
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
                let key = strata_cold::layout::file_key(1, chrono::Utc::now().date_naive(), 0);
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

criterion_group!(benches, json_to_events, events_to_parquet);
criterion_main!(benches);
