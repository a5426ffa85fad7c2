//! Reading a cold file's (event_type, user) content back, for rebuilding
//! the exact rollups of its day (ADR-027) from the Parquet itself.

use std::collections::{BTreeMap, HashSet};

use arrow::array::{Array, AsArray};
use futures::TryStreamExt;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::async_reader::ParquetRecordBatchStreamBuilder;

use crate::schema::{self, event_schema};
use crate::{ColdError, ColdStore, ObjectStoreReader};

/// One event type's events and distinct users.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeUsers {
    pub events: i64,
    pub users: HashSet<String>,
}

/// Per event type of the file at `key`: its events and distinct users.
pub async fn type_users(
    store: &ColdStore,
    key: &str,
) -> Result<BTreeMap<String, TypeUsers>, ColdError> {
    let fail = |reason: String| ColdError::Verification {
        key: key.to_owned(),
        reason,
    };
    let path = Path::from(key);
    let reader = ObjectStoreReader::new(store.object_store(), path);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let type_col = event_schema().index_of(schema::EVENT_TYPE)?;
    let user_col = event_schema().index_of(schema::USER_ID)?;
    let mask = ProjectionMask::roots(builder.parquet_schema(), [type_col, user_col]);
    let mut stream = builder.with_projection(mask).build()?;
    // The projection keeps the file's column order.
    let (t_at, u_at) = if type_col < user_col { (0, 1) } else { (1, 0) };
    let mut out: BTreeMap<String, TypeUsers> = BTreeMap::new();
    while let Some(batch) = stream.try_next().await? {
        let types = batch.column(t_at).as_string::<i32>();
        let users = batch.column(u_at).as_string::<i32>();
        if types.null_count() > 0 || users.null_count() > 0 {
            return Err(fail("null event_type or user_id".into()));
        }
        for (t, u) in types.iter().flatten().zip(users.iter().flatten()) {
            let entry = match out.get_mut(t) {
                Some(e) => e,
                None => out.entry(t.to_owned()).or_default(),
            };
            entry.events += 1;
            if !entry.users.contains(u) {
                entry.users.insert(u.to_owned());
            }
        }
    }
    Ok(out)
}
