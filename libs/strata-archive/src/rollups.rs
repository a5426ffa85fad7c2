//! Rebuilding the exact rollups of cold days from their Parquet files
//! (ADR-027): `strata-archiver rollups rebuild [--project] [--from --to]`.
//! The archive commit keeps rollups current as days are archived; a rebuild
//! makes them for days archived before rollups existed, and mends a day
//! whose rollup went stale or unreadable. Each day is read, numbered with
//! the users' ordinals and written in its own transaction, under the day's
//! archive lock, and only if the manifest still lists the files read.
//! The closed hot days of the range are then sealed again from their rows
//! (ADR-028).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use strata_model::ProjectId;
use strata_store::{ALL_TYPES, DayRollup, ManifestEntry, TypeRollup};

use crate::{ArchiveError, Archiver};

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RebuildReport {
    /// (project, day)s with cold files in the range.
    pub days: u64,
    pub rebuilt: u64,
    /// The day's files changed while it was read (an archive commit): left
    /// as the commit made it.
    pub changed: u64,
    /// Days that could not be rebuilt, with the reason; their stats keep
    /// coming from the files.
    pub failed: Vec<(i64, NaiveDate, String)>,
    /// Closed hot days of the range sealed again from their rows (ADR-028;
    /// every project's at once).
    pub hot_days_sealed: u64,
}

impl Archiver {
    /// The id of the project named `name`; an error naming it when there is
    /// no such project (or the name is not a project name).
    pub async fn find_project(&self, name: &str) -> Result<ProjectId, ArchiveError> {
        let parsed = strata_model::ProjectName::parse(name)
            .map_err(|e| ArchiveError::Pipeline(format!("--project {name:?}: {e}")))?;
        self.hot
            .find_project(&parsed)
            .await?
            .ok_or_else(|| ArchiveError::Pipeline(format!("no project named {name:?}")))
    }

    /// Rebuilds the rollups of every cold day in `[from, to]` (each bound
    /// optional; of `project`, or of every project) from its files.
    pub async fn rebuild_rollups(
        &self,
        project: Option<ProjectId>,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<RebuildReport, ArchiveError> {
        let mut days: BTreeMap<(i64, NaiveDate), Vec<ManifestEntry>> = BTreeMap::new();
        for (p, f) in self.hot.manifest().days(project, (from, to)).await? {
            days.entry((p, f.day)).or_default().push(f);
        }
        let mut report = RebuildReport {
            days: days.len() as u64,
            ..RebuildReport::default()
        };
        for ((p, day), files) in days {
            match self.rebuild_day(ProjectId(p), day, &files).await {
                Ok(true) => report.rebuilt += 1,
                Ok(false) => report.changed += 1,
                Err(e @ (ArchiveError::Cold(_) | ArchiveError::Pipeline(_))) => {
                    tracing::warn!(project = p, %day, error = %e, "rollup not rebuilt");
                    report.failed.push((p, day, e.to_string()));
                }
                Err(e) => return Err(e),
            }
        }
        let sealed = self
            .hot
            .reseal(
                (from.unwrap_or(NaiveDate::MIN), to.unwrap_or(NaiveDate::MAX)),
                chrono::Utc::now(),
                self.config.commit_lock_timeout,
            )
            .await?;
        report.hot_days_sealed = sealed.days.len() as u64;
        Ok(report)
    }

    async fn rebuild_day(
        &self,
        project: ProjectId,
        day: NaiveDate,
        files: &[ManifestEntry],
    ) -> Result<bool, ArchiveError> {
        let mut types: BTreeMap<String, strata_cold::TypeUsers> = BTreeMap::new();
        for f in files {
            for (t, part) in strata_cold::type_users(&self.cold, &f.object_key).await? {
                let e = types.entry(t).or_default();
                e.events += part.events;
                e.users.extend(part.users);
            }
        }
        let users: HashSet<&str> = types
            .values()
            .flat_map(|t| t.users.iter().map(String::as_str))
            .collect();
        let wanted: Vec<&str> = users.iter().copied().collect();
        let ordinals: HashMap<&str, u32> = self.hot.user_ordinals(project, &wanted).await?;
        if let Some(missing) = wanted.iter().find(|u| !ordinals.contains_key(**u)) {
            return Err(ArchiveError::Pipeline(format!(
                "user {missing:?} of the day's files has no first-seen record"
            )));
        }
        let mut rollup = DayRollup::new();
        let mut all = TypeRollup::default();
        for (t, part) in &types {
            let users: RoaringBitmap = part.users.iter().map(|u| ordinals[u.as_str()]).collect();
            let r = TypeRollup {
                events: part.events,
                users,
            };
            all.add(&r);
            rollup.insert(t.clone(), r);
        }
        let cold_rows: i64 = files.iter().map(|f| f.rows).sum();
        if all.events != cold_rows {
            return Err(ArchiveError::Pipeline(format!(
                "the day's files hold {} events, the manifest says {cold_rows}",
                all.events
            )));
        }
        rollup.insert(ALL_TYPES.to_owned(), all);
        self.failpoint("rebuild_after_read");
        Ok(self
            .hot
            .replace_rollup(project, day, &rollup, files)
            .await?)
    }
}
