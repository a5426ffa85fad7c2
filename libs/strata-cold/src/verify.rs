//! Read-back verification: the footer, the row count, the schema, the time
//! range and a checksum over every event_id, read from the store itself.

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;
use uuid::Uuid;

use crate::schema::{self, event_schema};
use crate::{ColdError, ColdStore, FileStats, IdChecksum, ObjectStoreReader};

/// Checks that the object at `expected.key` holds exactly what was written.
pub async fn verify_file(store: &ColdStore, expected: &FileStats) -> Result<(), ColdError> {
    let key = &expected.key;
    let fail = |reason: String| ColdError::Verification {
        key: key.to_string(),
        reason,
    };
    let meta = store.object_store().head(key).await?;
    if meta.size != expected.bytes {
        return Err(fail(format!(
            "{} bytes, expected {}",
            meta.size, expected.bytes
        )));
    }
    let reader = ObjectStoreReader::new(store.object_store(), key.clone());
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let file_rows = builder.metadata().file_metadata().num_rows();
    if file_rows as u64 != expected.rows {
        return Err(fail(format!(
            "footer says {file_rows} rows, expected {}",
            expected.rows
        )));
    }
    if builder.schema().fields() != event_schema().fields() {
        return Err(fail(format!("unexpected schema {:?}", builder.schema())));
    }
    let id_col = event_schema().index_of(schema::EVENT_ID)?;
    let ts_col = event_schema().index_of(schema::TS)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [id_col, ts_col]);
    let mut stream = builder.with_projection(mask).build()?;

    let mut checksum = IdChecksum::default();
    let (mut min_ts, mut max_ts) = (i64::MAX, i64::MIN);
    while let Some(batch) = stream.try_next().await? {
        let ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        if ids.null_count() > 0 || ts.null_count() > 0 {
            return Err(fail("null event_id or ts".into()));
        }
        for id in ids.iter().flatten() {
            let id = Uuid::parse_str(id).map_err(|e| fail(format!("bad event_id {id:?}: {e}")))?;
            checksum.add(id);
        }
        for t in ts.values().iter() {
            min_ts = min_ts.min(*t);
            max_ts = max_ts.max(*t);
        }
    }
    if checksum != expected.checksum {
        return Err(fail(format!(
            "event_id checksum {} differs from the chunk's {}",
            checksum.to_hex(),
            expected.checksum.to_hex()
        )));
    }
    if expected.rows > 0 && (min_ts, max_ts) != (expected.min_ts, expected.max_ts) {
        return Err(fail(format!(
            "time range [{min_ts}, {max_ts}] differs from the chunk's [{}, {}]",
            expected.min_ts, expected.max_ts
        )));
    }
    Ok(())
}
