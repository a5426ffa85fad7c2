//! The lake catalog (ADR-041) from the outside: the state it must always be
//! in (showing exactly the manifest), and DuckDB with its `ducklake` and
//! `postgres_scanner` extensions (the PyPI wheels `scripts/ensure-tools.sh`
//! installs, loaded from their files) as the reader.

use sqlx::PgPool;

/// Runs `script` with the readers' Python (DuckDB, pyarrow); its stdout.
pub async fn python(script: &str) -> String {
    let out = python_command(script).output().await.unwrap();
    assert!(
        out.status.success(),
        "{}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command [`python`] runs, for a reader left running in the background.
pub fn python_command(script: &str) -> tokio::process::Command {
    let bin = std::env::var("STRATA_TEST_READERS_PYTHON")
        .expect("STRATA_TEST_READERS_PYTHON (scripts/ensure-tools.sh installs DuckDB and pyarrow)");
    let mut cmd = tokio::process::Command::new(bin);
    cmd.arg("-c").arg(script).kill_on_drop(true);
    cmd
}

/// The path of an extension file from a PyPI wheel, as the tools script
/// exported it.
pub fn extension(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| panic!("{var} (scripts/ensure-tools.sh exports it)"))
}

/// Python that loads the lake extensions into `con` and attaches the
/// catalog of the database at `database_url` read-only as `strata`.
pub fn attach(database_url: &str) -> String {
    format!(
        "import duckdb\n\
         con = duckdb.connect()\n\
         con.execute(\"LOAD '{ducklake}'\")\n\
         con.execute(\"LOAD '{postgres}'\")\n\
         con.execute(\"ATTACH 'ducklake:postgres:{database_url}' AS strata (METADATA_SCHEMA 'strata_lake', READ_ONLY)\")\n",
        ducklake = extension("STRATA_TEST_DUCKDB_DUCKLAKE"),
        postgres = extension("STRATA_TEST_DUCKDB_POSTGRES"),
    )
}

/// The catalog's latest snapshot shows exactly the manifest's files (path,
/// rows, bytes, project and day), and its counters agree with its rows.
pub async fn assert_lake_shows_manifest(pool: &PgPool, context: &str) {
    type File = (String, i64, i64, String, String);
    let manifest: Vec<File> = sqlx::query_as(
        "SELECT object_key, rows, bytes, project_id::text, to_char(day, 'YYYY-MM-DD')
           FROM cold_files ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let lake: Vec<File> = sqlx::query_as(
        "SELECT f.path, f.record_count, f.file_size_bytes, p.partition_value, d.partition_value
           FROM strata_lake.ducklake_data_file f
           JOIN strata_lake.ducklake_file_partition_value p
             ON p.data_file_id = f.data_file_id AND p.partition_key_index = 0
           JOIN strata_lake.ducklake_file_partition_value d
             ON d.data_file_id = f.data_file_id AND d.partition_key_index = 1
          WHERE f.end_snapshot IS NULL ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        lake, manifest,
        "{context}: the lake's files are not the manifest's"
    );
    let (files_above, records, bytes, rows, size): (i64, i64, i64, i64, i64) =
        sqlx::query_as(
            "SELECT (SELECT count(*) FROM strata_lake.ducklake_data_file f
                      WHERE f.data_file_id >= (SELECT next_file_id FROM strata_lake.ducklake_snapshot
                                                ORDER BY snapshot_id DESC LIMIT 1)),
                    t.record_count, t.file_size_bytes,
                    (SELECT coalesce(sum(rows), 0)::int8 FROM cold_files),
                    (SELECT coalesce(sum(bytes), 0)::int8 FROM cold_files)
               FROM strata_lake.ducklake_table_stats t",
        )
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        files_above, 0,
        "{context}: a file id at or above next_file_id"
    );
    assert_eq!((records, bytes), (rows, size), "{context}: table stats");
}
