//! Swapping a day's cold files for rewritten ones (ADR-032, ADR-033): an
//! erasure replaces the files that hold a user with copies without that
//! user's rows; a compaction replaces a day's files with one. Either way the
//! new objects are written and verified first, then one transaction — the
//! only commit point, fenced by the archive lease like the archive commit
//! — removes the old manifest rows, inserts the new ones and brings the
//! day's rollup along, and records the old objects for deletion once a
//! grace period has passed (ADR-037): a stats request planned just before
//! the swap may still read them. An archive run deletes them after that.
//!
//! A stats snapshot sees the manifest before or after the transaction, so
//! it reads either the old files or the new ones of a day, never a mix.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_model::ProjectId;

use crate::summaries::rollup::RollupSource;
use crate::summaries::rollups::RollupEdit;
use crate::{NewManifestEntry, Store, StoreError};

/// One committed cold file, as a rewrite needs it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ColdFile {
    pub object_key: String,
    pub seq: i32,
    pub rows: i64,
    pub bytes: i64,
    /// The id checksum the manifest recorded (`count:sum:xor`).
    pub checksum: String,
}

/// A day of one project and its files, ordered by seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFiles {
    pub project: ProjectId,
    pub day: NaiveDate,
    pub files: Vec<ColdFile>,
}

impl DayFiles {
    /// The seq of the next file written for the day.
    pub fn next_seq(&self) -> i32 {
        self.files.iter().map(|f| f.seq + 1).max().unwrap_or(0)
    }

    pub fn bytes(&self) -> i64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Old files out, new files in, for one (project, day).
#[derive(Debug, Clone)]
pub struct ColdSwap {
    pub project: ProjectId,
    pub day: NaiveDate,
    /// Object keys of the files replaced.
    pub remove: Vec<String>,
    pub add: Vec<NewManifestEntry>,
    pub edit: RollupEdit,
}

/// What a swap counts toward an erasure's progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureStep {
    pub erasure_id: i64,
    pub rows_removed: i64,
    /// Rows of the files replaced.
    pub rows_rewritten: i64,
}

/// Groups `(project, day, file)` rows, ordered by project, day and seq.
fn by_day(rows: Vec<(i64, NaiveDate, ColdFile)>) -> Vec<DayFiles> {
    let mut out: Vec<DayFiles> = Vec::new();
    for (project, day, file) in rows {
        match out.last_mut() {
            Some(d) if d.project.0 == project && d.day == day => d.files.push(file),
            _ => out.push(DayFiles {
                project: ProjectId(project),
                day,
                files: vec![file],
            }),
        }
    }
    out
}

const FILE_COLUMNS: &str = "project_id, day, object_key, seq, rows, bytes, checksum";

/// The files of the (project, day)s that `condition` selects (with `args`
/// bound as `$1`, `$2`, …), grouped by day.
async fn files_where(
    pool: &sqlx::PgPool,
    condition: &str,
    args: &[i64],
) -> Result<Vec<DayFiles>, StoreError> {
    let sql = format!(
        "SELECT {FILE_COLUMNS} FROM cold_files WHERE {condition} ORDER BY project_id, day, seq"
    );
    let mut query = sqlx::query_as::<_, (i64, NaiveDate, String, i32, i64, i64, String)>(&sql);
    for a in args {
        query = query.bind(*a);
    }
    let rows = query.fetch_all(pool).await?;
    Ok(by_day(
        rows.into_iter()
            .map(|(p, day, object_key, seq, rows, bytes, checksum)| {
                (
                    p,
                    day,
                    ColdFile {
                        object_key,
                        seq,
                        rows,
                        bytes,
                        checksum,
                    },
                )
            })
            .collect(),
    ))
}

impl Store {
    /// The cold days of `project` that may hold the user with `ordinal`:
    /// every day except those whose rollup covers the day's files and does
    /// not name the user (a day without a current rollup must be scanned).
    pub async fn erasure_days(
        &self,
        project: ProjectId,
        ordinal: u32,
    ) -> Result<Vec<DayFiles>, StoreError> {
        let days = files_where(&self.pool, "project_id = $1", &[project.0]).await?;
        let rollups: Vec<(NaiveDate, i32, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT s.day, s.cold_files, s.cold_rows, r.users
               FROM day_rollup_sources s
               JOIN day_rollups r ON r.project_id = s.project_id AND r.day = s.day
                                 AND r.property = '' AND r.event_type = ''
              WHERE s.project_id = $1",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?;
        let mut without: BTreeSet<NaiveDate> = BTreeSet::new();
        let by_day: BTreeMap<NaiveDate, RollupSource> = days
            .iter()
            .map(|d| {
                (
                    d.day,
                    RollupSource {
                        cold_files: d.files.len() as i64,
                        cold_rows: d.files.iter().map(|f| f.rows).sum(),
                    },
                )
            })
            .collect();
        for (day, files, rows, users) in rollups {
            let source = RollupSource {
                cold_files: i64::from(files),
                cold_rows: rows,
            };
            let current = by_day.get(&day) == Some(&source);
            // An unreadable bitmap is no proof of absence: scan the day.
            let absent = RoaringBitmap::deserialize_from(&users[..])
                .is_ok_and(|users| !users.contains(ordinal));
            if current && absent {
                without.insert(day);
            }
        }
        Ok(days
            .into_iter()
            .filter(|d| !without.contains(&d.day))
            .collect())
    }

    /// The days to compact: more than `max_files` files, or at least two
    /// with one below `min_bytes`.
    pub async fn compaction_days(
        &self,
        max_files: usize,
        min_bytes: u64,
    ) -> Result<Vec<DayFiles>, StoreError> {
        files_where(
            &self.pool,
            "(project_id, day) IN (
                 SELECT project_id, day FROM cold_files GROUP BY 1, 2
                 HAVING count(*) > 1 AND (count(*) > $1 OR min(bytes) < $2))",
            &[
                i64::try_from(max_files).unwrap_or(i64::MAX),
                i64::try_from(min_bytes).unwrap_or(i64::MAX),
            ],
        )
        .await
    }

    /// Commits `swap` (see the module docs) while the archive lease names
    /// `run_id` (`Ok(Err(holder))` otherwise, nothing written), and counts
    /// it toward `erasure`'s progress in the same transaction. Fails with
    /// [`StoreError::Changed`] when a file to remove is no longer listed.
    /// Returns whether the day keeps a current rollup.
    /// The replaced objects are recorded for deletion once `keep` has
    /// passed ([`Store::due_deletes`]), not deleted now: a stats request
    /// planned before this commit may still be reading them, and older
    /// snapshots of the lake catalog show them. The swap is the catalog's
    /// next snapshot (`lake.rs`).
    pub async fn swap_cold_files(
        &self,
        run_id: i64,
        swap: &ColdSwap,
        erasure: Option<ErasureStep>,
        (lock_timeout, keep): (Duration, Duration),
    ) -> Result<Result<bool, Option<i64>>, StoreError> {
        // The day's archive lock, as a rebuild of its rollup takes it.
        let day = BTreeSet::from([swap.day]);
        let mut tx =
            match crate::catalog::runs::begin_fenced(&self.pool, run_id, &day, lock_timeout).await?
            {
                Ok(tx) => tx,
                Err(holder) => return Ok(Err(holder)),
            };
        let (listed, files, rows): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE object_key = ANY($3)), count(*),
                    coalesce(sum(rows) FILTER (WHERE NOT object_key = ANY($3)), 0)::int8
               FROM cold_files WHERE project_id = $1 AND day = $2",
        )
        .bind(swap.project.0)
        .bind(swap.day)
        .bind(&swap.remove)
        .fetch_one(&mut *tx)
        .await?;
        if listed != swap.remove.len() as i64 {
            return Err(StoreError::Changed(format!(
                "the cold files of project {} on {} changed since they were read",
                swap.project, swap.day
            )));
        }
        let after = RollupSource {
            cold_files: files - listed + swap.add.len() as i64,
            cold_rows: rows + swap.add.iter().map(|f| f.rows).sum::<i64>(),
        };
        let current = crate::summaries::rollups::edit_for_swap(
            &mut tx,
            swap.project.0,
            swap.day,
            &swap.edit,
            after,
        )
        .await?;
        sqlx::query("DELETE FROM cold_files WHERE project_id = $1 AND object_key = ANY($2)")
            .bind(swap.project.0)
            .bind(&swap.remove)
            .execute(&mut *tx)
            .await?;
        crate::catalog::manifest::insert_files(&mut tx, run_id, &swap.add).await?;
        let message = match erasure {
            Some(e) => format!("erasure {}", e.erasure_id),
            None => "compaction".to_owned(),
        };
        crate::catalog::lake::commit(&mut tx, &swap.add, &swap.remove, &message).await?;
        sqlx::query(
            "INSERT INTO cold_deletes (object_key, erasure_id, delete_after, project_id, day)
             SELECT k, $2, now() + make_interval(secs => $3), $4, $5 FROM unnest($1::text[]) AS k
             ON CONFLICT (object_key) DO NOTHING",
        )
        .bind(&swap.remove)
        .bind(erasure.map(|e| e.erasure_id))
        .bind(keep.as_secs_f64())
        .bind(swap.project.0)
        .bind(swap.day)
        .execute(&mut *tx)
        .await?;
        if let Some(step) = erasure {
            // Objects of this day replaced earlier (a compaction, a late
            // file merged) still wait out their history and may hold the
            // user: the erasure takes them over, and is done only once they
            // are gone too.
            sqlx::query(
                "UPDATE cold_deletes
                    SET erasure_id = $3,
                        delete_after = least(delete_after, now() + make_interval(secs => $4))
                  WHERE project_id = $1 AND day = $2 AND erasure_id IS NULL",
            )
            .bind(swap.project.0)
            .bind(swap.day)
            .bind(step.erasure_id)
            .bind(keep.as_secs_f64())
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE erasures SET days_done = days_done + 1, cold_rows = cold_rows + $2,
                        files_rewritten = files_rewritten + $3, rows_rewritten = rows_rewritten + $4
                  WHERE id = $1",
            )
            .bind(step.erasure_id)
            .bind(step.rows_removed)
            .bind(i32::try_from(swap.remove.len()).unwrap_or(i32::MAX))
            .bind(step.rows_rewritten)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(Ok(current))
    }
}

impl Store {
    /// Replaced objects whose grace period has passed, that no manifest row
    /// lists and that no snapshot of the lake catalog shows any more
    /// ([`Store::expire_lake`] first), at most `limit`.
    pub async fn due_deletes(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT d.object_key FROM cold_deletes d
              WHERE d.delete_after <= now()
                AND NOT EXISTS (SELECT 1 FROM cold_files f WHERE f.object_key = d.object_key)
                AND NOT EXISTS (SELECT 1 FROM strata_lake.ducklake_data_file l
                                 WHERE l.path = d.object_key)
              ORDER BY d.delete_after LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `keys` are gone from the store: forgets them, and marks `done` the
    /// erasures that have nothing left to delete.
    pub async fn deleted(&self, keys: &[String]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM cold_deletes WHERE object_key = ANY($1)")
            .bind(keys)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE erasures e SET status = 'done'
              WHERE status = 'deleting'
                AND NOT EXISTS (SELECT 1 FROM cold_deletes d WHERE d.erasure_id = e.id)",
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(seq: i32) -> ColdFile {
        ColdFile {
            object_key: format!("k{seq}"),
            seq,
            rows: 1,
            bytes: 10,
            checksum: String::new(),
        }
    }

    #[test]
    fn files_group_by_project_and_day_and_the_next_seq_follows_the_highest() {
        let d1 = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let d2 = d1.succ_opt().unwrap();
        let days = by_day(vec![
            (1, d1, file(0)),
            (1, d1, file(3)),
            (1, d2, file(0)),
            (2, d2, file(1)),
        ]);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].files.len(), 2);
        assert_eq!(days[0].next_seq(), 4, "after the highest, not the count");
        assert_eq!(days[2].project, ProjectId(2));
        assert_eq!(days[2].next_seq(), 2);
    }
}
