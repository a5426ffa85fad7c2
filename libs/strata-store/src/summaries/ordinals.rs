//! User ordinals (`user_first_seen.ordinal`, ADR-027) remembered by the
//! process, so that the stats of hot rows map users to ordinals without
//! joining the project's every first-seen record (ADR-030).
//!
//! A committed ordinal never changes and is never reused: ingest only ever
//! lowers `first_ts` and keeps the ordinal of the batch that first committed
//! the user. So an ordinal read from any snapshot stays right for as long
//! as its first-seen record exists. Only an erasure deletes records (a user
//! who comes back later gets a new ordinal), and it bumps the project's
//! `ordinals_epoch` in the same transaction (ADR-032): what is remembered
//! is tagged with the epoch it was read at and used only by reads at that
//! same epoch, in every process.
//!
//! The memory is bounded; when full it starts over, which costs lookups,
//! never correctness.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::PgConnection;
use strata_model::ProjectId;

use crate::StoreError;

/// Users remembered per process (about 80 bytes each).
const ORDINALS_MAX: usize = 500_000;

#[derive(Debug, Default)]
pub(crate) struct Ordinals(Mutex<Remembered>);

#[derive(Debug, Default)]
struct Remembered {
    by_project: HashMap<i64, Epoch>,
    len: usize,
}

/// One project's users as read at `epoch`.
#[derive(Debug, Default)]
struct Epoch {
    epoch: i64,
    users: HashMap<String, u32>,
}

impl Ordinals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered ordinals of `users`, and the users not remembered.
    fn recall<'a>(
        &self,
        project: ProjectId,
        epoch: i64,
        users: impl IntoIterator<Item = &'a str>,
    ) -> (HashMap<&'a str, u32>, Vec<&'a str>) {
        let remembered = self.lock();
        let known = remembered
            .by_project
            .get(&project.0)
            .filter(|e| e.epoch == epoch)
            .map(|e| &e.users);
        let (mut found, mut missing) = (HashMap::new(), Vec::new());
        for u in users {
            match known.and_then(|k| k.get(u)) {
                Some(o) => {
                    found.insert(u, *o);
                }
                None => missing.push(u),
            }
        }
        (found, missing)
    }

    /// Keeps `read` (read at `epoch`): a newer epoch replaces what the
    /// project had, an older one is not kept.
    fn remember(&self, project: ProjectId, epoch: i64, read: &[(String, u32)]) {
        let mut remembered = self.lock();
        if remembered.len + read.len() > ORDINALS_MAX {
            *remembered = Remembered::default();
        }
        let Remembered { by_project, len } = &mut *remembered;
        let kept = by_project.entry(project.0).or_insert_with(|| Epoch {
            epoch,
            users: HashMap::new(),
        });
        if kept.epoch > epoch {
            return;
        }
        if kept.epoch < epoch {
            *len -= kept.users.len();
            *kept = Epoch {
                epoch,
                users: HashMap::new(),
            };
        }
        let users = &mut kept.users;
        for (u, o) in read {
            if users.insert(u.clone(), *o).is_none() {
                *len += 1;
            }
        }
    }

    /// The ordinals of the distinct `users` of `project`: remembered ones,
    /// the rest read through `conn`, whose snapshot shows the project at
    /// `epoch`. A user without a first-seen record is left out (every
    /// stored event's user has one, written in the same transaction).
    pub(crate) async fn of<'a>(
        &self,
        conn: &mut PgConnection,
        project: ProjectId,
        epoch: i64,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<&'a str, u32>, StoreError> {
        let (mut found, missing) = self.recall(project, epoch, users);
        if missing.is_empty() {
            return Ok(found);
        }
        let read: Vec<(String, i64)> = ordinals_of(conn, project, &missing).await?;
        let read: Vec<(String, u32)> = read
            .into_iter()
            .map(|(u, o)| Ok((u, crate::summaries::rollup::ordinal(o)?)))
            .collect::<Result<_, StoreError>>()?;
        self.remember(project, epoch, &read);
        let by_user: HashMap<&str, u32> = read.iter().map(|(u, o)| (u.as_str(), *o)).collect();
        for u in missing {
            if let Some(o) = by_user.get(u) {
                found.insert(u, *o);
            }
        }
        Ok(found)
    }
}

/// `project`'s `ordinals_epoch` as `conn` sees it (0 for no such project,
/// which has no users either).
pub(crate) async fn epoch(conn: &mut PgConnection, project: ProjectId) -> Result<i64, StoreError> {
    let epoch: Option<i64> =
        sqlx::query_scalar("SELECT ordinals_epoch FROM projects WHERE id = $1")
            .bind(project.0)
            .fetch_optional(conn)
            .await?;
    Ok(epoch.unwrap_or(0))
}

/// The ordinals of `users` of `project` (users without one are left out).
pub(crate) async fn ordinals_of(
    conn: &mut PgConnection,
    project: ProjectId,
    users: &[&str],
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "SELECT user_id, ordinal FROM user_first_seen
          WHERE project_id = $1 AND user_id = ANY($2)",
    )
    .bind(project.0)
    .bind(users)
    .fetch_all(&mut *conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_users_are_recalled_per_project_and_epoch() {
        let o = Ordinals::default();
        let (p, q) = (ProjectId(1), ProjectId(2));
        o.remember(p, 0, &[("a".into(), 0), ("b".into(), 1)]);
        o.remember(q, 0, &[("a".into(), 7)]);
        let (found, missing) = o.recall(p, 0, ["a", "b", "c"]);
        assert_eq!(found, HashMap::from([("a", 0), ("b", 1)]));
        assert_eq!(missing, vec!["c"]);
        assert_eq!(o.recall(q, 0, ["a"]).0, HashMap::from([("a", 7)]));
        // An erasure moved p to epoch 1: nothing read before is used.
        assert_eq!(o.recall(p, 1, ["a"]).1, vec!["a"]);
        o.remember(p, 1, &[("a".into(), 9)]);
        assert_eq!(o.recall(p, 1, ["a"]).0, HashMap::from([("a", 9)]));
        // A late reader at the old epoch neither uses nor overwrites it.
        assert_eq!(o.recall(p, 0, ["a"]).1, vec!["a"]);
        o.remember(p, 0, &[("a".into(), 0), ("c".into(), 2)]);
        assert_eq!(o.recall(p, 1, ["a", "c"]).0, HashMap::from([("a", 9)]));
        assert_eq!(o.recall(q, 0, ["a"]).0, HashMap::from([("a", 7)]));
        assert_eq!(o.lock().len, 2);
    }

    #[test]
    fn a_full_memory_starts_over() {
        let o = Ordinals::default();
        o.remember(ProjectId(1), 0, &[("a".into(), 0)]);
        let many: Vec<(String, u32)> = (0..ORDINALS_MAX as u32)
            .map(|i| (format!("u{i}"), i))
            .collect();
        o.remember(ProjectId(1), 0, &many);
        assert_eq!(o.lock().len, ORDINALS_MAX);
        assert_eq!(
            o.recall(ProjectId(1), 0, ["a"]).1,
            vec!["a"],
            "started over"
        );
    }
}
