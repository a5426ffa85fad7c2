//! `strata-api demo-data`: months of generated history, stored through the
//! ingest write path and archived, so that both tiers answer (with a few
//! late events left hot inside an archived day).

use chrono::Duration;
use strata_model::{Generator, GeneratorSpec, ProjectName};
use strata_store::Store;

use crate::{ArchiveError, Archiver, RunOutcome};

/// What was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoReport {
    pub project_id: i64,
    pub events: u64,
    pub late_events: u64,
    pub chunks_archived: usize,
}

/// Generates `days` days ending `spec.last_day` (today, for `make demo`) for
/// `project`, stores them, archives
/// every chunk past the archiver's retention, then adds late events to the
/// oldest archived day (they stay hot until the next archive run).
pub async fn load_demo(
    hot: &Store,
    archiver: &Archiver,
    project: &ProjectName,
    spec: GeneratorSpec,
) -> Result<DemoReport, ArchiveError> {
    let project_id = hot.ensure_project(project).await?;
    let first_day = spec.last_day - Duration::days(i64::from(spec.days.saturating_sub(1)));
    let mut generator = Generator::new(spec.clone());
    let days: Vec<_> = generator.days().collect();
    let mut events = 0;
    for (i, day) in days.iter().enumerate() {
        let batch = generator.day(i as u32, *day);
        for part in batch.chunks(5_000) {
            events += hot.insert_events(project_id, part).await?.stored;
        }
        tracing::info!(%day, events, "demo day stored");
    }
    let chunks_archived = match archiver.run_once().await? {
        RunOutcome::Completed(r) => r.chunks.len(),
        RunOutcome::Skipped => 0,
    };
    let late = Generator::new(GeneratorSpec {
        days: 1,
        last_day: first_day,
        events_per_day: 50,
        seed: spec.seed ^ 0x1a7e,
        ..spec
    })
    .day(0, first_day);
    let late_events = hot.insert_events(project_id, &late).await?.stored;
    Ok(DemoReport {
        project_id: project_id.0,
        events: events + late_events,
        late_events,
        chunks_archived,
    })
}
