//! Each project's distinct event types (ADR-037): `project_event_types`,
//! capped per project. A new type is registered before its first event is
//! accepted; once a project has as many types as its cap, events of a new
//! type are refused. Each process remembers the types it has seen, so a
//! batch of known types costs no query.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use strata_model::ProjectId;

use crate::{Store, StoreError, shared::locks};

/// The types this process knows each project has.
#[derive(Debug, Default)]
pub(crate) struct KnownTypes(Mutex<HashMap<i64, HashSet<String>>>);

impl KnownTypes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, HashSet<String>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn unknown<'a>(&self, project: ProjectId, types: &[&'a str]) -> Vec<&'a str> {
        let known = self.lock();
        let seen = known.get(&project.0);
        types
            .iter()
            .copied()
            .filter(|t| !seen.is_some_and(|s| s.contains(*t)))
            .collect()
    }

    fn add(&self, project: ProjectId, types: impl IntoIterator<Item = String>) {
        self.lock().entry(project.0).or_default().extend(types);
    }
}

impl Store {
    /// Registers the new ones among `types` (distinct) for `project` while
    /// it has fewer than `cap`, in the order given; returns those refused
    /// (the project is at its cap).
    pub async fn admit_event_types(
        &self,
        project: ProjectId,
        types: &[&str],
        cap: u32,
    ) -> Result<HashSet<String>, StoreError> {
        let unknown = self.event_types.unknown(project, types);
        if unknown.is_empty() {
            return Ok(HashSet::new());
        }
        let mut tx = self.pool.begin().await?;
        // One registration per project at a time, so the count holds.
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(locks::EVENT_TYPES)
            .bind(locks::project_key(project))
            .execute(&mut *tx)
            .await?;
        let (existing, count): (Vec<String>, i64) = sqlx::query_as(
            "SELECT coalesce(array_agg(event_type) FILTER (WHERE event_type = ANY($2)), '{}'),
                    count(*)
               FROM project_event_types WHERE project_id = $1",
        )
        .bind(project.0)
        .bind(&unknown)
        .fetch_one(&mut *tx)
        .await?;
        let existing: HashSet<String> = existing.into_iter().collect();
        let new: Vec<&str> = unknown
            .into_iter()
            .filter(|t| !existing.contains(*t))
            .collect();
        let room = usize::try_from(i64::from(cap) - count).unwrap_or(0);
        let (admitted, refused) = new.split_at(room.min(new.len()));
        if !admitted.is_empty() {
            sqlx::query(
                "INSERT INTO project_event_types (project_id, event_type)
                 SELECT $1, t FROM unnest($2::text[]) AS t ON CONFLICT DO NOTHING",
            )
            .bind(project.0)
            .bind(admitted)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.event_types.add(
            project,
            existing
                .into_iter()
                .chain(admitted.iter().map(|t| (*t).to_owned())),
        );
        Ok(refused.iter().map(|t| (*t).to_owned()).collect())
    }
}
