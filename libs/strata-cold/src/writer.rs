//! Streaming Parquet writer: record batches in, one object out.
//!
//! Memory is bounded by the options, never by the file: a [`BatchBuilder`]
//! holds at most `batch_rows` rows, the Parquet writer at most one encoded
//! row group (`row_group_rows`), and the object-store writer one multipart
//! part (uploads switch to multipart past 10 MiB).

use std::sync::Arc;

use crate::layout::ObjectKey;

use arrow::array::{ArrayRef, AsArray, StringBuilder, TimestampMicrosecondBuilder};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use object_store::ObjectStoreExt;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use parquet::arrow::AsyncArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use strata_model::ColumnStats;
use uuid::Uuid;

use crate::schema::{self, event_schema};
use crate::{ColdError, ColdStore, IdChecksum};

/// Tunables of the event file format (chosen by measurement: docs/ADR.md).
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Rows per Arrow record batch handed to the writer.
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            batch_rows: 8_192,
            row_group_rows: 128 * 1024,
            zstd_level: 3,
        }
    }
}

impl WriterOptions {
    fn properties(&self) -> Result<WriterProperties, ColdError> {
        let ts_index = event_schema().index_of(schema::TS)? as i32;
        Ok(WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(self.zstd_level)?))
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_statistics_enabled(EnabledStatistics::Page)
            // Random ids gain nothing from a dictionary; user_id and
            // event_type (and repeated properties) gain a lot.
            .set_column_dictionary_enabled(ColumnPath::from(schema::EVENT_ID), false)
            .set_sorting_columns(Some(vec![SortingColumn {
                column_idx: ts_index,
                descending: false,
                nulls_first: false,
            }]))
            .set_key_value_metadata(Some(vec![KeyValue::new(
                schema::SCHEMA_VERSION_KEY.to_owned(),
                schema::SCHEMA_VERSION.to_owned(),
            )]))
            .build())
    }
}

/// What was written, as recorded in the manifest and checked on read-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFile {
    pub key: ObjectKey,
    pub rows: u64,
    pub bytes: u64,
    /// Microseconds since the Unix epoch, UTC.
    pub min_ts: i64,
    pub max_ts: i64,
    pub checksum: IdChecksum,
    /// Per column, what the footer says ([`crate::column_stats`]).
    pub columns: Vec<ColumnStats>,
}

/// A record batch of events with its summary.
#[derive(Debug)]
pub struct Batch {
    batch: RecordBatch,
    pub stats: BatchStats,
}

impl Batch {
    pub fn rows(&self) -> u64 {
        self.stats.rows
    }

    /// A record batch of the event schema (read back from a file), with
    /// its summary computed.
    pub fn from_record_batch(batch: RecordBatch) -> Result<Self, ColdError> {
        if batch.schema().fields() != event_schema().fields() {
            return Err(ColdError::Verification {
                key: String::new(),
                reason: format!("unexpected schema {:?}", batch.schema()),
            });
        }
        let ids = batch.column(0).as_string::<i32>();
        let ts = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let mut stats = BatchStats::default();
        for (id, t) in ids.iter().zip(ts.iter()) {
            let (Some(id), Some(t)) = (id, t) else {
                return Err(ColdError::Verification {
                    key: String::new(),
                    reason: "null event_id or ts".into(),
                });
            };
            let id = Uuid::parse_str(id).map_err(|e| ColdError::Verification {
                key: String::new(),
                reason: format!("bad event_id {id:?}: {e}"),
            })?;
            stats.add(id, t);
        }
        Ok(Self { batch, stats })
    }

    /// A record batch of the event schema whose summary the caller
    /// computed while reading it.
    pub(crate) fn with_stats(batch: RecordBatch, stats: BatchStats) -> Self {
        Self { batch, stats }
    }
}

/// Accumulates rows into one Arrow record batch, tracking the checksum and
/// the time range of what it holds.
#[derive(Debug)]
pub struct BatchBuilder {
    event_id: StringBuilder,
    user_id: StringBuilder,
    event_type: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    properties: StringBuilder,
    received_at: TimestampMicrosecondBuilder,
    stats: BatchStats,
}

/// Summary of one record batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub rows: u64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub checksum: IdChecksum,
}

impl BatchStats {
    /// Counts one more row.
    pub(crate) fn add(&mut self, id: Uuid, ts_micros: i64) {
        if self.rows == 0 {
            (self.min_ts, self.max_ts) = (ts_micros, ts_micros);
        } else {
            self.min_ts = self.min_ts.min(ts_micros);
            self.max_ts = self.max_ts.max(ts_micros);
        }
        self.rows += 1;
        self.checksum.add(id);
    }

    fn merge(&mut self, other: &BatchStats) {
        if other.rows == 0 {
            return;
        }
        if self.rows == 0 {
            *self = *other;
            return;
        }
        self.rows += other.rows;
        self.min_ts = self.min_ts.min(other.min_ts);
        self.max_ts = self.max_ts.max(other.max_ts);
        self.checksum.merge(&other.checksum);
    }
}

impl BatchBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            event_id: StringBuilder::with_capacity(rows, rows * 36),
            user_id: StringBuilder::with_capacity(rows, rows * 16),
            event_type: StringBuilder::with_capacity(rows, rows * 12),
            ts: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            properties: StringBuilder::with_capacity(rows, rows * 64),
            received_at: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            stats: BatchStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.stats.rows as usize
    }

    pub fn is_empty(&self) -> bool {
        self.stats.rows == 0
    }

    pub fn push(
        &mut self,
        event_id: Uuid,
        user_id: &str,
        event_type: &str,
        ts_micros: i64,
        properties: Option<&str>,
        received_micros: i64,
    ) {
        let mut buf = Uuid::encode_buffer();
        self.event_id
            .append_value(event_id.hyphenated().encode_lower(&mut buf));
        self.user_id.append_value(user_id);
        self.event_type.append_value(event_type);
        self.ts.append_value(ts_micros);
        self.properties.append_option(properties);
        self.received_at.append_value(received_micros);
        self.stats.add(event_id, ts_micros);
    }

    /// Takes the rows pushed so far as a record batch; the builder is empty after.
    pub fn finish(&mut self) -> Result<Batch, ColdError> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.user_id.finish()),
            Arc::new(self.event_type.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.properties.finish()),
            Arc::new(self.received_at.finish()),
        ];
        let batch = RecordBatch::try_new(event_schema(), columns)?;
        Ok(Batch {
            batch,
            stats: std::mem::take(&mut self.stats),
        })
    }
}

/// One Parquet object being written.
pub struct FileWriter {
    key: ObjectKey,
    path: Path,
    store: ColdStore,
    writer: AsyncArrowWriter<BufWriter>,
    stats: BatchStats,
}

impl std::fmt::Debug for FileWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileWriter")
            .field("key", &self.key)
            .field("rows", &self.stats.rows)
            .finish()
    }
}

impl FileWriter {
    pub fn create(
        store: &ColdStore,
        key: ObjectKey,
        options: &WriterOptions,
    ) -> Result<Self, ColdError> {
        let path = key.path();
        let sink = BufWriter::new(store.object_store(), path.clone());
        let writer = AsyncArrowWriter::try_new(sink, event_schema(), Some(options.properties()?))?;
        Ok(Self {
            key,
            path,
            store: store.clone(),
            writer,
            stats: BatchStats::default(),
        })
    }

    pub async fn write(&mut self, batch: &Batch) -> Result<(), ColdError> {
        self.writer.write(&batch.batch).await?;
        self.stats.merge(&batch.stats);
        Ok(())
    }

    /// Finishes the footer, completes the upload (the multipart upload's
    /// completion, for large S3 objects) and makes the object durable
    /// ([`ColdStore::make_durable`]); only then is it reported written.
    pub async fn close(self) -> Result<WrittenFile, ColdError> {
        let meta = self.writer.close().await?;
        self.store.make_durable(&self.path).await?;
        let bytes = self.store.object_store().head(&self.path).await?.size;
        Ok(WrittenFile {
            key: self.key,
            rows: self.stats.rows,
            bytes,
            min_ts: self.stats.min_ts,
            max_ts: self.stats.max_ts,
            checksum: self.stats.checksum,
            columns: crate::column_stats(&meta),
        })
    }
}
