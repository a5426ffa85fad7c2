//! User ordinals (`user_first_seen.ordinal`, ADR-027) remembered by the
//! process, so that the stats of hot rows map users to ordinals without
//! joining the project's every first-seen record (ADR-030).
//!
//! A committed ordinal never changes and is never reused: ingest only ever
//! lowers `first_ts` and keeps the ordinal of the batch that first committed
//! the user. So an ordinal read from any snapshot stays right for as long
//! as its first-seen record exists; only deleting the record (erasing a
//! user) may make a remembered ordinal wrong, and whatever deletes records
//! must call [`crate::HotStore::forget_ordinals`] for the project, in every
//! process that answers stats.
//!
//! The memory is bounded; when full it starts over, which costs lookups,
//! never correctness.

use std::collections::HashMap;
use std::sync::Mutex;

use sqlx::PgConnection;
use strata_model::ProjectId;

use crate::HotError;

/// Users remembered per process (about 80 bytes each).
const ORDINALS_MAX: usize = 500_000;

#[derive(Debug, Default)]
pub(crate) struct Ordinals(Mutex<Remembered>);

#[derive(Debug, Default)]
struct Remembered {
    by_project: HashMap<i64, HashMap<String, u32>>,
    len: usize,
}

impl Ordinals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Remembered> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The remembered ordinals of `users`, and the users not remembered.
    fn recall<'a>(
        &self,
        project: ProjectId,
        users: impl IntoIterator<Item = &'a str>,
    ) -> (HashMap<&'a str, u32>, Vec<&'a str>) {
        let remembered = self.lock();
        let known = remembered.by_project.get(&project.0);
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

    fn remember(&self, project: ProjectId, read: &[(String, u32)]) {
        let mut remembered = self.lock();
        if remembered.len + read.len() > ORDINALS_MAX {
            *remembered = Remembered::default();
        }
        let Remembered { by_project, len } = &mut *remembered;
        let users = by_project.entry(project.0).or_default();
        for (u, o) in read {
            if users.insert(u.clone(), *o).is_none() {
                *len += 1;
            }
        }
    }

    pub(crate) fn forget(&self, project: ProjectId) {
        let mut remembered = self.lock();
        if let Some(users) = remembered.by_project.remove(&project.0) {
            remembered.len -= users.len();
        }
    }

    /// The ordinals of the distinct `users` of `project`: remembered ones,
    /// the rest read through `conn`. A user without a first-seen record is
    /// left out (every stored event's user has one, written in the same
    /// transaction).
    pub(crate) async fn of<'a>(
        &self,
        conn: &mut PgConnection,
        project: ProjectId,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Result<HashMap<&'a str, u32>, HotError> {
        let (mut found, missing) = self.recall(project, users);
        if missing.is_empty() {
            return Ok(found);
        }
        let read: Vec<(String, i64)> = crate::rollups::ordinals_of(conn, project, &missing).await?;
        let read: Vec<(String, u32)> = read
            .into_iter()
            .map(|(u, o)| Ok((u, crate::rollups::ordinal(o)?)))
            .collect::<Result<_, HotError>>()?;
        self.remember(project, &read);
        let by_user: HashMap<&str, u32> = read.iter().map(|(u, o)| (u.as_str(), *o)).collect();
        for u in missing {
            if let Some(o) = by_user.get(u) {
                found.insert(u, *o);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_users_are_recalled_per_project_and_forgotten_with_it() {
        let o = Ordinals::default();
        let (p, q) = (ProjectId(1), ProjectId(2));
        o.remember(p, &[("a".into(), 0), ("b".into(), 1)]);
        o.remember(q, &[("a".into(), 7)]);
        let (found, missing) = o.recall(p, ["a", "b", "c"]);
        assert_eq!(found, HashMap::from([("a", 0), ("b", 1)]));
        assert_eq!(missing, vec!["c"]);
        assert_eq!(o.recall(q, ["a"]).0, HashMap::from([("a", 7)]));
        o.forget(p);
        assert_eq!(o.recall(p, ["a"]).1, vec!["a"]);
        assert_eq!(o.recall(q, ["a"]).0, HashMap::from([("a", 7)]));
        assert_eq!(o.lock().len, 1);
    }

    #[test]
    fn a_full_memory_starts_over() {
        let o = Ordinals::default();
        o.remember(ProjectId(1), &[("a".into(), 0)]);
        let many: Vec<(String, u32)> = (0..ORDINALS_MAX as u32)
            .map(|i| (format!("u{i}"), i))
            .collect();
        o.remember(ProjectId(1), &many);
        assert_eq!(o.lock().len, ORDINALS_MAX);
        assert_eq!(o.recall(ProjectId(1), ["a"]).1, vec!["a"], "started over");
    }
}
