//! The Parquet schema of an event file: standard types only, so DuckDB,
//! pyarrow, Polars and Spark read it without help. `project_id` and `date`
//! are Hive partition columns taken from the path, not stored in the file.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

pub const EVENT_ID: &str = "event_id";
pub const USER_ID: &str = "user_id";
pub const EVENT_TYPE: &str = "event_type";
pub const TS: &str = "ts";
pub const PROPERTIES: &str = "properties";
pub const RECEIVED_AT: &str = "received_at";

/// Stored in the file's key-value metadata.
pub const SCHEMA_VERSION_KEY: &str = "strata.schema_version";
pub const SCHEMA_VERSION: &str = "1";

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        // Canonical lowercase 36-character UUID text.
        Field::new(EVENT_ID, DataType::Utf8, false),
        Field::new(USER_ID, DataType::Utf8, false),
        Field::new(EVENT_TYPE, DataType::Utf8, false),
        // Parquet TIMESTAMP(isAdjustedToUTC = true, MICROS).
        Field::new(TS, utc_micros(), false),
        // The properties object as JSON text; null when the event had none.
        Field::new(PROPERTIES, DataType::Utf8, true),
        Field::new(RECEIVED_AT, utc_micros(), false),
    ]))
});

/// The Arrow schema of every event file.
pub fn event_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}
