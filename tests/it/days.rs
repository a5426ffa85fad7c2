//! Day numbers and ISO week starts, computed by PostgreSQL, by DuckDB and by
//! Rust from the same SQL the tiers run (`strata_model`'s `days.rs`): they
//! must agree on every date, or a day held by both tiers would be merged
//! into two different days.

use chrono::{Datelike, NaiveDate};
use strata_model::{Period, day_number, duckdb_day_number, from_day_number, pg_day_number};
use strata_tests::TestDb;

/// Year ends whose ISO weeks straddle them (2020-W53, 2026-W01 starting in
/// 2025), leap days, and days around and before 1970-01-01 (negative day
/// numbers, where `%` truncates toward zero).
fn dates() -> Vec<NaiveDate> {
    let mut out = Vec::new();
    for (y, m, d, span) in [
        (1969, 12, 25, 14),
        (2020, 12, 24, 16),
        (2024, 2, 26, 6),
        (2025, 12, 26, 12),
        (2026, 12, 27, 10),
        (1900, 2, 27, 4),
    ] {
        let start = NaiveDate::from_ymd_opt(y, m, d).unwrap();
        out.extend((0..span).map(|i| start + chrono::Duration::days(i)));
    }
    out
}

#[tokio::test]
async fn postgresql_duckdb_and_rust_agree_on_day_numbers_and_iso_weeks() {
    let days = dates();
    let rust: Vec<(i32, i32)> = days
        .iter()
        .map(|d| (day_number(*d), Period::Week.start_of_number(day_number(*d))))
        .collect();
    for (d, (n, week)) in days.iter().zip(&rust) {
        let monday = from_day_number(*week);
        assert_eq!(monday.weekday(), chrono::Weekday::Mon, "{d}");
        assert_eq!(monday.iso_week(), d.iso_week(), "{d}: the ISO week");
        assert_eq!(from_day_number(*n), *d);
    }

    // PostgreSQL, on the first and the last microsecond of each UTC day.
    let db = TestDb::create_empty().await;
    let pool = db.pool().await;
    let pg_n = pg_day_number("t");
    let pg_week = Period::Week.start_sql(&pg_n);
    for edge in ["00:00:00", "23:59:59.999999"] {
        let stamps: Vec<String> = days.iter().map(|d| format!("{d} {edge}+00")).collect();
        let pg: Vec<(i32, i32)> = sqlx::query_as(&format!(
            "SELECT ({pg_n})::int4, ({pg_week})::int4
               FROM unnest($1::text[]) WITH ORDINALITY AS s(raw, i),
                    LATERAL (SELECT raw::timestamptz AS t) x
              ORDER BY i"
        ))
        .bind(&stamps)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(pg, rust, "PostgreSQL at {edge}");
    }

    // DuckDB, on DATE values as the Hive `date` column gives them.
    let duck = duckdb::Connection::open_in_memory().unwrap();
    let duck_n = duckdb_day_number("d");
    let duck_week = Period::Week.start_sql(&duck_n);
    let list: Vec<String> = days
        .iter()
        .enumerate()
        .map(|(i, d)| format!("(DATE '{d}', {i})"))
        .collect();
    let mut stmt = duck
        .prepare(&format!(
            "SELECT {duck_n}, {duck_week} FROM (VALUES {}) v(d, i) ORDER BY i",
            list.join(", ")
        ))
        .unwrap();
    let duckdb: Vec<(i32, i32)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(duckdb, rust, "DuckDB");
}
