/// What a Parquet file's footer says about one of its columns, in the text
/// form a table catalog keeps (DuckLake's `ducklake_file_column_stats`):
/// `min`/`max` are absent when the footer's bounds are not exact (a long
/// string the writer truncated) or missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnStats {
    pub column: String,
    /// Compressed bytes of the column's chunks.
    pub bytes: i64,
    /// Non-null values.
    pub values: i64,
    pub nulls: i64,
    pub min: Option<String>,
    pub max: Option<String>,
}
