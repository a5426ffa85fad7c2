//! Rewriting cold files into one (ADR-032, ADR-033): a k-way merge by `ts`
//! of files that are each sorted by `ts`, optionally leaving out one
//! user's rows (an erasure). Memory is one record batch per input plus one
//! output batch, whatever the files' size.
//!
//! Nothing is lost silently: the ids read must add up to the checksums the
//! manifest recorded for the inputs, the ids written plus the ids left out
//! must add up to the ids read, and the new object is read back and
//! verified before it is reported written.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use arrow::array::BooleanBuilder;
use arrow::array::{AsArray, RecordBatch, StringArray};
use arrow::compute::{filter_record_batch, interleave_record_batch};
use arrow::datatypes::TimestampMicrosecondType;
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::{ParquetRecordBatchStream, ParquetRecordBatchStreamBuilder};
use parquet::file::statistics::Statistics;
use uuid::Uuid;

use crate::schema::{self, event_schema};
use crate::{
    Batch, BatchStats, ColdError, ColdStore, FileWriter, IdChecksum, ObjectKey, ObjectStoreReader,
    WriterOptions, WrittenFile, verify_file,
};

/// A file to rewrite and the id checksum the manifest recorded for it.
#[derive(Debug, Clone)]
pub struct RewriteInput {
    pub key: String,
    pub checksum: IdChecksum,
}

/// What a rewrite read, wrote and left out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// The new file (`None`: every row was left out; nothing written).
    pub file: Option<WrittenFile>,
    /// Rows read from the inputs.
    pub rows_read: u64,
    /// Rows left out, per event type.
    pub removed: BTreeMap<String, i64>,
}

impl Rewritten {
    pub fn rows_removed(&self) -> i64 {
        self.removed.values().sum()
    }
}

/// Whether the file at `key` holds rows of `user`: row groups whose
/// `user_id` statistics exclude the user are skipped, the `user_id` column
/// of the others is read.
pub async fn holds_user(store: &ColdStore, key: &str, user: &str) -> Result<bool, ColdError> {
    let reader = ObjectStoreReader::new(store.object_store(), Path::from(key));
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let col = event_schema().index_of(schema::USER_ID)?;
    let bytes = user.as_bytes();
    let groups: Vec<usize> = builder
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| match rg.column(col).statistics() {
            Some(Statistics::ByteArray(s)) => {
                let below = s.min_bytes_opt().is_some_and(|min| bytes < min);
                let above = s.max_bytes_opt().is_some_and(|max| bytes > max);
                !(below || above)
            }
            // No usable statistics: the row group may hold anything.
            _ => true,
        })
        .map(|(i, _)| i)
        .collect();
    if groups.is_empty() {
        return Ok(false);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), [col]);
    let mut stream = builder
        .with_row_groups(groups)
        .with_projection(mask)
        .build()?;
    while let Some(batch) = stream.try_next().await? {
        if strings(&batch, 0).iter().any(|u| u == Some(user)) {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One input being merged: its stream, the batch at hand (at `slot` of the
/// batches held for the next output) and the next row in it.
struct Input {
    stream: ParquetRecordBatchStream<ObjectStoreReader>,
    batch: RecordBatch,
    slot: usize,
    row: usize,
}

const ID: usize = 0;
const USER: usize = 1;
const TYPE: usize = 2;
const TS: usize = 3;

fn ts_at(batch: &RecordBatch, row: usize) -> i64 {
    batch
        .column(TS)
        .as_primitive::<TimestampMicrosecondType>()
        .value(row)
}

fn strings(batch: &RecordBatch, col: usize) -> &StringArray {
    batch.column(col).as_string::<i32>()
}

async fn next_batch(
    stream: &mut ParquetRecordBatchStream<ObjectStoreReader>,
) -> Result<Option<RecordBatch>, ColdError> {
    while let Some(batch) = stream.try_next().await? {
        if batch.num_rows() > 0 {
            return Ok(Some(batch));
        }
    }
    Ok(None)
}

/// Merges `inputs` into one new file at `out`, leaving out the rows of
/// `drop_user` (see the module docs).
pub async fn rewrite(
    store: &ColdStore,
    inputs: &[RewriteInput],
    out: ObjectKey,
    options: &WriterOptions,
    drop_user: Option<&str>,
) -> Result<Rewritten, ColdError> {
    if let ([input], Some(user)) = (inputs, drop_user) {
        return filter_one(store, input, out, options, user).await;
    }
    let fail = |reason: String| verification(out, reason);
    let mut output = Output {
        store,
        key: out,
        options,
        held: Vec::new(),
        picks: Vec::with_capacity(options.batch_rows),
        writer: None,
    };
    let mut open: Vec<Option<Input>> = Vec::new();
    for input in inputs {
        let mut stream = open_input(store, input, options, out).await?;
        let first = next_batch(&mut stream).await?;
        open.push(first.map(|batch| Input {
            stream,
            slot: output.hold(&batch),
            batch,
            row: 0,
        }));
    }
    let mut heap: BinaryHeap<Reverse<(i64, usize)>> = open
        .iter()
        .enumerate()
        .filter_map(|(i, o)| o.as_ref().map(|o| Reverse((ts_at(&o.batch, 0), i))))
        .collect();

    let (mut read, mut dropped) = (IdChecksum::default(), IdChecksum::default());
    let mut removed: BTreeMap<String, i64> = BTreeMap::new();
    while let Some(Reverse((_, i))) = heap.pop() {
        let Some(input) = open[i].as_mut() else {
            continue;
        };
        let (batch, row) = (&input.batch, input.row);
        let id = strings(batch, ID).value(row);
        let id = Uuid::parse_str(id).map_err(|e| fail(format!("bad event_id {id:?}: {e}")))?;
        read.add(id);
        if drop_user.is_some_and(|u| strings(batch, USER).value(row) == u) {
            dropped.add(id);
            *removed
                .entry(strings(batch, TYPE).value(row).to_owned())
                .or_default() += 1;
        } else {
            output.picks.push((input.slot, row));
        }
        input.row += 1;
        if input.row == input.batch.num_rows() {
            match next_batch(&mut input.stream).await? {
                Some(batch) => {
                    input.slot = output.hold(&batch);
                    input.batch = batch;
                    input.row = 0;
                }
                None => {
                    open[i] = None;
                    continue;
                }
            }
        }
        heap.push(Reverse((ts_at(&input.batch, input.row), i)));
        // Also when rows left out pile up batches that no output needs.
        if output.picks.len() >= options.batch_rows.max(1) || output.held.len() > 2 * open.len() + 2
        {
            output.flush(&mut open).await?;
        }
    }
    output.flush(&mut open).await?;

    let ids = Ids { read, dropped };
    finish(store, out, inputs, ids, removed, output.writer).await
}

fn verification(out: ObjectKey, reason: String) -> ColdError {
    ColdError::Verification {
        key: out.to_string(),
        reason,
    }
}

/// Opens an input, checking it has the event schema (the column positions
/// `ID` … `TS` are the schema's).
async fn open_input(
    store: &ColdStore,
    input: &RewriteInput,
    options: &WriterOptions,
    out: ObjectKey,
) -> Result<ParquetRecordBatchStream<ObjectStoreReader>, ColdError> {
    let reader = ObjectStoreReader::new(store.object_store(), Path::from(input.key.as_str()));
    let builder = ParquetRecordBatchStreamBuilder::new(reader)
        .await?
        .with_batch_size(options.batch_rows.max(1));
    if builder.schema().fields() != event_schema().fields() {
        return Err(verification(
            out,
            format!(
                "input {} has an unexpected schema {:?}",
                input.key,
                builder.schema()
            ),
        ));
    }
    Ok(builder.build()?)
}

/// The ids a rewrite read, and those it left out.
struct Ids {
    read: IdChecksum,
    dropped: IdChecksum,
}

/// One input without one user's rows (an erasure's common case): each
/// batch filtered as it is, no merge.
async fn filter_one(
    store: &ColdStore,
    input: &RewriteInput,
    out: ObjectKey,
    options: &WriterOptions,
    user: &str,
) -> Result<Rewritten, ColdError> {
    let mut stream = open_input(store, input, options, out).await?;
    let mut ids = Ids {
        read: IdChecksum::default(),
        dropped: IdChecksum::default(),
    };
    let mut removed: BTreeMap<String, i64> = BTreeMap::new();
    let mut writer: Option<FileWriter> = None;
    while let Some(batch) = next_batch(&mut stream).await? {
        let (id_col, users, types) = (
            strings(&batch, ID),
            strings(&batch, USER),
            strings(&batch, TYPE),
        );
        let mut keep = BooleanBuilder::with_capacity(batch.num_rows());
        let mut kept = BatchStats::default();
        for row in 0..batch.num_rows() {
            let id = id_col.value(row);
            let id = Uuid::parse_str(id)
                .map_err(|e| verification(out, format!("bad event_id {id:?}: {e}")))?;
            ids.read.add(id);
            let drop = users.value(row) == user;
            if drop {
                ids.dropped.add(id);
                *removed.entry(types.value(row).to_owned()).or_default() += 1;
            } else {
                kept.add(id, ts_at(&batch, row));
            }
            keep.append_value(!drop);
        }
        if kept.rows == 0 {
            continue;
        }
        let batch = if kept.rows as usize == batch.num_rows() {
            batch
        } else {
            filter_record_batch(&batch, &keep.finish())?
        };
        if writer.is_none() {
            writer = Some(FileWriter::create(store, out, options)?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&Batch::with_stats(batch, kept)).await?;
        }
    }
    finish(
        store,
        out,
        std::slice::from_ref(input),
        ids,
        removed,
        writer,
    )
    .await
}

/// Closes and verifies the new file; checks that the ids read are the
/// inputs' recorded ones and that the ids written plus those left out are
/// the ids read.
async fn finish(
    store: &ColdStore,
    out: ObjectKey,
    inputs: &[RewriteInput],
    ids: Ids,
    removed: BTreeMap<String, i64>,
    writer: Option<FileWriter>,
) -> Result<Rewritten, ColdError> {
    let Ids { read, dropped } = ids;
    let fail = |reason: String| verification(out, reason);
    let mut expected = IdChecksum::default();
    for input in inputs {
        expected.merge(&input.checksum);
    }
    if read != expected {
        return Err(fail(format!(
            "the inputs hold ids {} but the manifest recorded {}",
            read.to_hex(),
            expected.to_hex()
        )));
    }
    let file = match writer {
        Some(w) => Some(w.close().await?),
        None => None,
    };
    let mut accounted = dropped;
    if let Some(f) = &file {
        accounted.merge(&f.checksum);
        verify_file(store, f).await?;
    }
    if accounted != read {
        return Err(fail(format!(
            "ids written and left out {} differ from the ids read {}",
            accounted.to_hex(),
            read.to_hex()
        )));
    }
    Ok(Rewritten {
        file,
        rows_read: read.count(),
        removed,
    })
}

/// The output side of a rewrite: the rows picked so far, by their batch's
/// slot among the batches held and their row in it, and the file (created
/// with its first row).
struct Output<'a> {
    store: &'a ColdStore,
    key: ObjectKey,
    options: &'a WriterOptions,
    held: Vec<RecordBatch>,
    picks: Vec<(usize, usize)>,
    writer: Option<FileWriter>,
}

impl Output<'_> {
    /// Holds `batch` for the picks to come; returns its slot.
    fn hold(&mut self, batch: &RecordBatch) -> usize {
        self.held.push(batch.clone());
        self.held.len() - 1
    }

    /// Writes the picked rows as one batch, then keeps only the batches
    /// the open inputs still read from.
    async fn flush(&mut self, open: &mut [Option<Input>]) -> Result<(), ColdError> {
        if !self.picks.is_empty() {
            let refs: Vec<&RecordBatch> = self.held.iter().collect();
            let batch = Batch::from_record_batch(interleave_record_batch(&refs, &self.picks)?)?;
            self.picks.clear();
            if self.writer.is_none() {
                self.writer = Some(FileWriter::create(self.store, self.key, self.options)?);
            }
            if let Some(w) = self.writer.as_mut() {
                w.write(&batch).await?;
            }
        }
        self.held.clear();
        for input in open.iter_mut().flatten() {
            input.slot = self.hold(&input.batch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BatchBuilder, S3Options};
    use futures::TryStreamExt;

    fn options() -> WriterOptions {
        WriterOptions {
            batch_rows: 64,
            row_group_rows: 100,
            zstd_level: 3,
        }
    }

    fn key(seq: u32) -> ObjectKey {
        ObjectKey {
            project_id: 1,
            day: chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap(),
            seq,
            run: 1,
        }
    }

    /// A file of `rows` events at `ts0, ts0 + step, …`, ids from `id0`,
    /// users `u0` … `u4` and types `view`/`buy` in turn.
    async fn write(
        store: &ColdStore,
        seq: u32,
        rows: u32,
        id0: u128,
        ts0: i64,
        step: i64,
    ) -> RewriteInput {
        let mut w = FileWriter::create(store, key(seq), &options()).unwrap();
        let mut b = BatchBuilder::with_capacity(64);
        for i in 0..rows {
            let user = format!("u{}", i % 5);
            let event_type = if i % 2 == 0 { "view" } else { "buy" };
            let ts = ts0 + i64::from(i) * step;
            b.push(
                Uuid::from_u128(id0 + u128::from(i)),
                &user,
                event_type,
                ts,
                None,
                0,
            );
            if b.len() == 64 {
                w.write(&b.finish().unwrap()).await.unwrap();
            }
        }
        if !b.is_empty() {
            w.write(&b.finish().unwrap()).await.unwrap();
        }
        let f = w.close().await.unwrap();
        RewriteInput {
            key: f.key.to_string(),
            checksum: f.checksum,
        }
    }

    /// (ts, user, type) of every row of the file at `key`, in file order.
    async fn rows(store: &ColdStore, key: &ObjectKey) -> Vec<(i64, String, String)> {
        let reader = ObjectStoreReader::new(store.object_store(), key.path());
        let stream = ParquetRecordBatchStreamBuilder::new(reader)
            .await
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        let mut out = Vec::new();
        for b in &batches {
            for r in 0..b.num_rows() {
                out.push((
                    ts_at(b, r),
                    strings(b, USER).value(r).to_owned(),
                    strings(b, TYPE).value(r).to_owned(),
                ));
            }
        }
        out
    }

    #[tokio::test]
    async fn files_merge_by_time_without_the_dropped_user_and_nothing_else_is_lost() {
        let dir = std::env::temp_dir().join(format!("strata-rewrite-{}", Uuid::new_v4()));
        let store =
            ColdStore::from_url(&format!("file://{}", dir.display()), &S3Options::default())
                .unwrap();
        // Interleaved times: even in one file, odd in the other.
        let a = write(&store, 0, 300, 1, 0, 2).await;
        let b = write(&store, 1, 150, 10_000, 1, 2).await;
        assert!(holds_user(&store, &a.key, "u3").await.unwrap());
        assert!(!holds_user(&store, &a.key, "nobody").await.unwrap());
        assert!(
            !holds_user(&store, &a.key, "a-before-every-user")
                .await
                .unwrap()
        );

        let merged = rewrite(&store, &[a.clone(), b.clone()], key(2), &options(), None)
            .await
            .unwrap();
        let file = merged.file.unwrap();
        assert_eq!((merged.rows_read, file.rows), (450, 450));
        assert!(merged.removed.is_empty());
        let got = rows(&store, &file.key).await;
        assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "sorted by ts");
        assert_eq!(got.len(), 450);

        let erased = rewrite(
            &store,
            std::slice::from_ref(&a),
            key(3),
            &options(),
            Some("u3"),
        )
        .await
        .unwrap();
        // u3 is row 3, 8, 13, …: 60 rows, half of each type.
        assert_eq!(erased.rows_removed(), 60);
        assert_eq!(
            erased.removed,
            BTreeMap::from([("buy".to_owned(), 30), ("view".to_owned(), 30)])
        );
        let left = rows(&store, &erased.file.as_ref().unwrap().key).await;
        assert_eq!(left.len(), 240);
        assert!(left.iter().all(|r| r.1 != "u3"));

        // A manifest checksum that does not match what is read: refused.
        let mut wrong = a.clone();
        wrong.checksum = b.checksum;
        let err = rewrite(&store, &[wrong], key(4), &options(), None).await;
        assert!(
            matches!(err, Err(ColdError::Verification { .. })),
            "{err:?}"
        );

        // A file of one user only: nothing is left, nothing is written.
        let mut w = FileWriter::create(&store, key(5), &options()).unwrap();
        let mut bb = BatchBuilder::with_capacity(4);
        bb.push(Uuid::from_u128(99_999), "solo", "view", 7, None, 0);
        w.write(&bb.finish().unwrap()).await.unwrap();
        let solo = w.close().await.unwrap();
        let input = RewriteInput {
            key: solo.key.to_string(),
            checksum: solo.checksum,
        };
        let gone = rewrite(&store, &[input], key(6), &options(), Some("solo"))
            .await
            .unwrap();
        assert!(gone.file.is_none());
        assert_eq!(gone.rows_removed(), 1);
        assert!(store.local_path(&key(6).path()).is_none_or(|p| !p.exists()));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
