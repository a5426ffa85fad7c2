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
        // Each project's declared properties, read once per rebuild: a
        // rollup records the ones it holds, so one declared meanwhile is
        // simply not among them.
        let mut declared: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        for ((p, day), files) in days {
            if let std::collections::btree_map::Entry::Vacant(e) = declared.entry(p) {
                e.insert(self.hot.declared_properties(ProjectId(p)).await?);
            }
            match self
                .rebuild_day(ProjectId(p), day, &files, &declared[&p])
                .await
            {
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

    /// Rolls a cold day of a project that declares properties up again
    /// from its files, for their values; a day that cannot be is left to
    /// its files (and the next `rollups rebuild`), with a warning.
    pub(crate) async fn reroll_values(
        &self,
        project: ProjectId,
        day: NaiveDate,
    ) -> Result<(), ArchiveError> {
        let declared = self.hot.declared_properties(project).await?;
        if declared.is_empty() {
            return Ok(());
        }
        let files: Vec<ManifestEntry> = self
            .hot
            .manifest()
            .days(Some(project), (Some(day), Some(day)))
            .await?
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        if files.is_empty() {
            return Ok(());
        }
        match self.rebuild_day(project, day, &files, &declared).await {
            Ok(_) => {}
            Err(e @ (ArchiveError::Cold(_) | ArchiveError::Pipeline(_))) => {
                tracing::warn!(project = project.0, %day, error = %e,
                    "the day's values of declared properties were not rolled up again");
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    async fn rebuild_day(
        &self,
        project: ProjectId,
        day: NaiveDate,
        files: &[ManifestEntry],
        declared: &[String],
    ) -> Result<bool, ArchiveError> {
        let mut content = strata_cold::FileContent::default();
        for f in files {
            let part = strata_cold::file_content(&self.cold, &f.object_key, declared).await?;
            for (t, p) in part.types {
                merge(content.types.entry(t).or_default(), p);
            }
            for (k, p) in part.values {
                merge(content.values.entry(k).or_default(), p);
            }
        }
        let users: HashSet<&str> = content
            .types
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
        let numbered = |part: &strata_cold::TypeUsers| TypeRollup {
            events: part.events,
            users: part.users.iter().map(|u| ordinals[u.as_str()]).collect(),
        };
        let mut rollup = DayRollup::default();
        let mut all = TypeRollup::default();
        for (t, part) in &content.types {
            let r = numbered(part);
            all.add(&r);
            rollup.types.insert(t.clone(), r);
        }
        let cold_rows: i64 = files.iter().map(|f| f.rows).sum();
        if all.events != cold_rows {
            return Err(ArchiveError::Pipeline(format!(
                "the day's files hold {} events, the manifest says {cold_rows}",
                all.events
            )));
        }
        rollup.types.insert(ALL_TYPES.to_owned(), all);
        for p in declared {
            rollup.properties.entry(p.clone()).or_default();
        }
        for ((p, value, t), part) in &content.values {
            let r = numbered(part);
            let values = rollup.properties.entry(p.clone()).or_default();
            values
                .entry((value.clone(), ALL_TYPES.to_owned()))
                .or_default()
                .add(&r);
            values.insert((value.clone(), t.clone()), r);
        }
        self.failpoint("rebuild_after_read");
        Ok(self
            .hot
            .replace_rollup(project, day, &rollup, files)
            .await?)
    }
}

fn merge(into: &mut strata_cold::TypeUsers, part: strata_cold::TypeUsers) {
    into.events += part.events;
    into.users.extend(part.users);
}
