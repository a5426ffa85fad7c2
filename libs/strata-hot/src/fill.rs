//! Synthetic history for the idempotency and first-seen tables, shaped as a
//! store holds them after running for a while: for benchmarks that measure
//! ingest at steady state (a full dedup window) rather than on an empty
//! database. Never called by the service.

use sqlx::PgPool;
use strata_model::ProjectId;

use crate::HotError;

/// Rows per statement, so that no fill is one giant transaction.
const STEP: i64 = 1_000_000;

/// Adds `ids` random event ids to `project`'s idempotency records, their
/// arrivals spread evenly over the `days` days before today.
pub async fn fill_dedup(
    pool: &PgPool,
    project: ProjectId,
    ids: u64,
    days: u32,
) -> Result<(), HotError> {
    let mut done = 0i64;
    while done < ids as i64 {
        let n = STEP.min(ids as i64 - done);
        sqlx::query(
            "INSERT INTO event_ids (project_id, event_id, received_at)
             SELECT $1, gen_random_uuid(),
                    date_trunc('day', now()) - make_interval(days => 1 + (g % $3)::int)
                        + make_interval(secs => (g * 7919 % 86400)::float8)
               FROM generate_series($4::int8, $4 + $2 - 1) AS g",
        )
        .bind(project.0)
        .bind(n)
        .bind(i64::from(days.max(1)))
        .bind(done)
        .execute(pool)
        .await?;
        done += n;
    }
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
) -> Result<(), HotError> {
    let mut at = from as i64;
    while at < to as i64 {
        let n = STEP.min(to as i64 - at);
        sqlx::query(
            "INSERT INTO user_first_seen (project_id, user_id, first_ts)
             SELECT $1, 'fill_' || g,
                    date_trunc('day', now()) - make_interval(days => 1 + (g % $3)::int)
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
