//! Synthetic history for the idempotency and first-seen tables, shaped as a
//! store holds them after running for a while: for benchmarks that measure
//! ingest at steady state (a full dedup window) rather than on an empty
//! database. Never called by the service.

use sqlx::PgPool;
use strata_model::ProjectId;

use crate::StoreError;

/// Rows per statement, so that no fill is one giant transaction.
const STEP: i64 = 1_000_000;

/// Adds `ids` random event ids to `project`'s idempotency records, spread
/// evenly over the `days` days before today (sealed days, as in a store
/// that has been running).
pub async fn fill_dedup(
    pool: &PgPool,
    project: ProjectId,
    ids: u64,
    days: u32,
) -> Result<(), StoreError> {
    let today = chrono::Utc::now().date_naive();
    let days = days.max(1);
    for back in 1..=days {
        crate::events::claims::create_partition(
            pool,
            today - chrono::Duration::days(i64::from(back)),
        )
        .await?;
    }
    let mut done = 0i64;
    while done < ids as i64 {
        let n = STEP.min(ids as i64 - done);
        sqlx::query(
            "INSERT INTO event_ids (project_id, event_id, day)
             SELECT $1, gen_random_uuid(), $5::date - (1 + g % $3)::int
               FROM generate_series($4::int8, $4 + $2 - 1) AS g",
        )
        .bind(project.0)
        .bind(n)
        .bind(i64::from(days))
        .bind(done)
        .bind(today)
        .execute(pool)
        .await?;
        done += n;
    }
    Ok(())
}

/// Records `ids` as claimed by `project` on `day` (a sealed day, before
/// today, unless `ids` is empty), as if they had arrived then; creates the
/// day's partition if needed.
pub async fn claim_on_day(
    pool: &PgPool,
    project: ProjectId,
    ids: &[uuid::Uuid],
    day: chrono::NaiveDate,
) -> Result<(), StoreError> {
    crate::events::claims::create_partition(pool, day).await?;
    sqlx::query(
        "INSERT INTO event_ids (project_id, event_id, day)
         SELECT $1, id, $3 FROM unnest($2::uuid[]) AS t(id)",
    )
    .bind(project.0)
    .bind(ids)
    .bind(day)
    .execute(pool)
    .await?;
    Ok(())
}

/// Adds the users `fill_<from>` … `fill_<to - 1>` to `project`'s first-seen
/// records, first seen over the `days` days before today.
pub async fn fill_first_seen(
    pool: &PgPool,
    project: ProjectId,
    from: u64,
    to: u64,
    days: u32,
) -> Result<(), StoreError> {
    let mut at = from as i64;
    while at < to as i64 {
        let n = STEP.min(to as i64 - at);
        sqlx::query(
            "INSERT INTO user_first_seen (project_id, user_id, first_ts, ordinal)
             SELECT $1, 'fill_' || g,
                    date_trunc('day', now()) - make_interval(days => 1 + (g % $3)::int),
                    nextval(strata_user_ordinals($1))
               FROM generate_series($4::int8, $4 + $2 - 1) AS g
             ON CONFLICT DO NOTHING",
        )
        .bind(project.0)
        .bind(n)
        .bind(i64::from(days.max(1)))
        .bind(at)
        .execute(pool)
        .await?;
        at += n;
    }
    Ok(())
}
