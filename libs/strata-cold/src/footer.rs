//! Column statistics of an event file, from its footer: what a table
//! catalog (the DuckLake catalog, ADR-041) records so that readers prune
//! files by them.

use chrono::DateTime;
use object_store::path::Path;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::statistics::Statistics;
use strata_model::ColumnStats;

use crate::{ColdError, ColdStore, ObjectStoreReader};

/// Per column of the file, in the file's order: sizes and counts summed
/// over its row groups, and bounds when every row group has exact ones.
pub fn column_stats(meta: &ParquetMetaData) -> Vec<ColumnStats> {
    let schema = meta.file_metadata().schema_descr();
    (0..schema.num_columns())
        .map(|i| {
            let mut out = ColumnStats {
                column: schema.column(i).name().to_owned(),
                ..ColumnStats::default()
            };
            // Exact bounds so far; `Err` once a row group with values has none.
            let mut bounds: Result<Option<(Bound, Bound)>, ()> = Ok(None);
            for rg in meta.row_groups() {
                let chunk = rg.column(i);
                out.bytes += chunk.compressed_size();
                let nulls = chunk
                    .statistics()
                    .and_then(Statistics::null_count_opt)
                    .unwrap_or(0) as i64;
                out.nulls += nulls;
                out.values += chunk.num_values() - nulls;
                if chunk.num_values() == nulls {
                    continue;
                }
                bounds = match (bounds, chunk.statistics().map(bound_pair)) {
                    (Ok(seen), Some((Some(min), Some(max)))) => Ok(Some(match seen {
                        None => (min, max),
                        Some((lo, hi)) => (lo.min(min), hi.max(max)),
                    })),
                    _ => Err(()),
                };
            }
            if let Ok(Some((lo, hi))) = bounds {
                out.min = Some(lo.text());
                out.max = Some(hi.text());
            }
            out
        })
        .collect()
}

/// Reads the footer of the object at `key` and returns its column stats.
pub async fn read_column_stats(
    store: &ColdStore,
    key: &str,
) -> Result<Vec<ColumnStats>, ColdError> {
    let mut reader = ObjectStoreReader::new(store.object_store(), Path::from(key));
    let meta = ParquetMetaDataReader::new()
        .load_via_suffix_and_finish(&mut reader)
        .await?;
    Ok(column_stats(&meta))
}

/// One exact bound, of the two physical types the event schema uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Bound {
    /// Microseconds since the epoch (`ts`, `received_at`).
    Micros(i64),
    Text(String),
}

impl Bound {
    fn text(self) -> String {
        match self {
            Bound::Micros(us) => DateTime::from_timestamp_micros(us)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.f+00").to_string())
                .unwrap_or_default(),
            Bound::Text(s) => s,
        }
    }
}

/// The chunk's exact (min, max), each `None` when absent or inexact.
fn bound_pair(stats: &Statistics) -> (Option<Bound>, Option<Bound>) {
    match stats {
        Statistics::Int64(v) => (
            v.min_opt()
                .filter(|_| v.min_is_exact())
                .map(|m| Bound::Micros(*m)),
            v.max_opt()
                .filter(|_| v.max_is_exact())
                .map(|m| Bound::Micros(*m)),
        ),
        Statistics::ByteArray(v) => {
            let text = |b: Option<&parquet::data_type::ByteArray>, exact: bool| {
                b.filter(|_| exact)
                    .and_then(|b| std::str::from_utf8(b.data()).ok())
                    .map(|s| Bound::Text(s.to_owned()))
            };
            (
                text(v.min_opt(), v.min_is_exact()),
                text(v.max_opt(), v.max_is_exact()),
            )
        }
        _ => (None, None),
    }
}
