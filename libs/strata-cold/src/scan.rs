//! Reading a cold file's (event type, property value, user) content back, for rebuilding
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

/// What a cold file holds, as a day's rollup counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileContent {
    /// Per event type.
    pub types: BTreeMap<String, TypeUsers>,
    /// Per (property, value, event type), for each property asked for; the
    /// value as [`strata_model::property_text`] gives it (`None`: null or
    /// missing).
    pub values: BTreeMap<(String, Option<String>, String), TypeUsers>,
}

fn count(into: &mut TypeUsers, user: &str) {
    into.events += 1;
    if !into.users.contains(user) {
        into.users.insert(user.to_owned());
    }
}

/// The content of the file at `key`: its events and distinct users per
/// event type and per value of each of `properties` (top-level keys).
pub async fn file_content(
    store: &ColdStore,
    key: &str,
    properties: &[String],
) -> Result<FileContent, ColdError> {
    let fail = |reason: String| ColdError::Verification {
        key: key.to_owned(),
        reason,
    };
    let path = Path::from(key);
    let reader = ObjectStoreReader::new(store.object_store(), path);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let fields = event_schema();
    let mut columns = vec![
        fields.index_of(schema::EVENT_TYPE)?,
        fields.index_of(schema::USER_ID)?,
    ];
    if !properties.is_empty() {
        columns.push(fields.index_of(schema::PROPERTIES)?);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), columns.iter().copied());
    let mut stream = builder.with_projection(mask).build()?;
    // The projection keeps the file's column order.
    let at = |col: usize| columns.iter().filter(|c| **c < col).count();
    let (t_at, u_at, p_at) = (
        at(columns[0]),
        at(columns[1]),
        columns.get(2).map(|c| at(*c)),
    );
    let mut out = FileContent::default();
    while let Some(batch) = stream.try_next().await? {
        let types = batch.column(t_at).as_string::<i32>();
        let users = batch.column(u_at).as_string::<i32>();
        if types.null_count() > 0 || users.null_count() > 0 {
            return Err(fail("null event_type or user_id".into()));
        }
        let props = p_at.map(|i| batch.column(i).as_string::<i32>());
        for i in 0..batch.num_rows() {
            let (t, u) = (types.value(i), users.value(i));
            let entry = match out.types.get_mut(t) {
                Some(e) => e,
                None => out.types.entry(t.to_owned()).or_default(),
            };
            count(entry, u);
            let Some(props) = props else {
                continue;
            };
            let object: Option<serde_json::Map<String, serde_json::Value>> = if props.is_null(i) {
                None
            } else {
                Some(serde_json::from_str(props.value(i)).map_err(|e| {
                    fail(format!("properties that do not read as a JSON object: {e}"))
                })?)
            };
            for p in properties {
                let raw = object
                    .as_ref()
                    .and_then(|o| o.get(p))
                    .map(serde_json::Value::to_string);
                let value = strata_model::property_text(raw.as_deref());
                count(
                    out.values
                        .entry((p.clone(), value, t.to_owned()))
                        .or_default(),
                    u,
                );
            }
        }
    }
    Ok(out)
}
