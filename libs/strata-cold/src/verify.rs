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
use crate::{ColdError, ColdStore, IdChecksum, ObjectStoreReader, WrittenFile};

/// Checks that the object at `expected.key` holds exactly what was written.
pub async fn verify_file(store: &ColdStore, expected: &WrittenFile) -> Result<(), ColdError> {
    let key = &expected.key.path();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::ObjectKey;
    use crate::{BatchBuilder, FileWriter, S3Options, WriterOptions};
    use object_store::{ObjectStoreExt, PutPayload};

    async fn write(store: &ColdStore, seq: u32, rows: u32) -> WrittenFile {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        let opts = WriterOptions {
            batch_rows: 100,
            row_group_rows: 250,
            zstd_level: 3,
        };
        let mut w = FileWriter::create(
            store,
            ObjectKey {
                project_id: 1,
                day,
                seq,
                run: 1,
            },
            &opts,
        )
        .unwrap();
        let mut b = BatchBuilder::with_capacity(100);
        for i in 0..rows {
            let props = (i % 2 == 0).then(|| format!("{{\"i\":{i}}}"));
            b.push(
                Uuid::from_u128(i as u128 + 1),
                "u",
                "view",
                1_000 + i as i64,
                props.as_deref(),
                5,
            );
            if b.len() == 100 {
                w.write(&b.finish().unwrap()).await.unwrap();
            }
        }
        if !b.is_empty() {
            w.write(&b.finish().unwrap()).await.unwrap();
        }
        w.close().await.unwrap()
    }

    #[tokio::test]
    async fn written_files_verify_and_tampered_ones_do_not() {
        let dir = std::env::temp_dir().join(format!("strata-cold-{}", Uuid::new_v4()));
        let store =
            ColdStore::from_url(&format!("file://{}", dir.display()), &S3Options::default())
                .unwrap();
        let stats = write(&store, 0, 1_001).await;
        assert_eq!(stats.rows, 1_001);
        assert_eq!((stats.min_ts, stats.max_ts), (1_000, 2_000));
        verify_file(&store, &stats).await.unwrap();
        assert!(store.local_path(&stats.key.path()).unwrap().exists());

        // Claiming a different content fails.
        let mut wrong = stats.clone();
        wrong.rows = 1_000;
        assert!(matches!(
            verify_file(&store, &wrong).await,
            Err(ColdError::Verification { .. })
        ));
        let mut wrong = stats.clone();
        wrong.max_ts += 1;
        assert!(verify_file(&store, &wrong).await.is_err());

        // Same row count, other ids: the checksum catches it.
        let other = write(&store, 1, 1_001).await;
        let mut swapped = other.clone();
        swapped.checksum = {
            let mut c = IdChecksum::default();
            (2..=1_002u128).for_each(|i| c.add(Uuid::from_u128(i)));
            c
        };
        assert!(verify_file(&store, &swapped).await.is_err());

        // A truncated object fails.
        let bytes = store
            .object_store()
            .get(&stats.key.path())
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        store
            .object_store()
            .put(
                &stats.key.path(),
                PutPayload::from(bytes.slice(..bytes.len() / 2)),
            )
            .await
            .unwrap();
        assert!(verify_file(&store, &stats).await.is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn urls() {
        assert!(ColdStore::from_url("ftp://x", &S3Options::default()).is_err());
        assert!(ColdStore::from_url("s3://", &S3Options::default()).is_err());
        assert!(ColdStore::from_url("file://", &S3Options::default()).is_err());
    }
}
