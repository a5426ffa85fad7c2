//! The hot layout decision (ADR-023) on the server under test: what a new
//! database gets under each STRATA_HOT_LAYOUT, what an existing one keeps,
//! and databases migrated by the previous release. `make test` runs this on
//! a server with TimescaleDB installed but not preloaded (the native run, when
//! it built the extension) and on one that preloads it.

use std::path::Path;

use sqlx::{Executor, PgPool};
use strata_store::{Layout, LayoutChoice, Store, StoreError};
use strata_tests::{ServerTimescale, TestDb};

/// Where the table and extension stand in `pool`'s database.
async fn schema_state(pool: &PgPool) -> (Option<String>, bool) {
    sqlx::query_as(
        "SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass('events')),
                EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn server() -> ServerTimescale {
    let admin = PgPool::connect(&strata_tests::admin_database_url())
        .await
        .unwrap();
    let case = ServerTimescale::of(&admin).await;
    admin.close().await;
    case
}

async fn migrate_new(choice: LayoutChoice) -> (TestDb, PgPool, Result<Layout, StoreError>) {
    let db = TestDb::create_empty().await;
    let pool = db.pool().await;
    let result = strata_store::migrate(&pool, choice).await;
    (db, pool, result)
}

#[tokio::test]
async fn a_new_database_gets_the_layout_the_server_can_serve() {
    let server = server().await;

    let (_db, pool, auto) = migrate_new(LayoutChoice::Auto).await;
    let auto = auto.unwrap();
    let (_db2, pool2, native) = migrate_new(LayoutChoice::Native).await;
    assert_eq!(native.unwrap(), Layout::Native);
    // Native never creates the extension, even where it could.
    assert_eq!(schema_state(&pool2).await, (Some("p".into()), false));

    let (_db3, pool3, required) = migrate_new(LayoutChoice::Timescale).await;
    match server {
        ServerTimescale::Preloaded => {
            assert_eq!(auto, Layout::Timescale);
            assert_eq!(required.unwrap(), Layout::Timescale);
            assert_eq!(schema_state(&pool3).await, (Some("r".into()), true));
            assert_eq!(
                Store::open(pool3).await.unwrap().layout(),
                Layout::Timescale
            );
        }
        ServerTimescale::InstalledNotPreloaded | ServerTimescale::Absent => {
            // The bug this guards: CREATE EXTENSION on an installed but not
            // preloaded server ends the session (FATAL), so auto must not try.
            assert_eq!(auto, Layout::Native);
            assert_eq!(schema_state(&pool).await, (Some("p".into()), false));
            let e = required.unwrap_err();
            assert!(matches!(e, StoreError::LayoutUnavailable(_)), "{e:?}");
            let text = e.to_string();
            assert!(
                text.starts_with("STRATA_HOT_LAYOUT=timescaledb cannot be honoured: "),
                "{text}"
            );
            if server == ServerTimescale::InstalledNotPreloaded {
                assert!(
                    text.contains("installed on this PostgreSQL server but not preloaded")
                        && text.contains("shared_preload_libraries = 'timescaledb'"),
                    "{text}"
                );
            } else {
                assert!(text.contains("not installed"), "{text}");
            }
            // Refused before anything was created; the database is still usable.
            assert_eq!(schema_state(&pool3).await, (None, false));
            let tables: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_class WHERE relname = '_sqlx_migrations'",
            )
            .fetch_one(&pool3)
            .await
            .unwrap();
            assert_eq!(tables, 0);
            assert_eq!(
                strata_store::migrate(&pool3, LayoutChoice::Auto)
                    .await
                    .unwrap(),
                Layout::Native
            );
        }
    }
    assert_eq!(Store::open(pool).await.unwrap().layout(), auto);
}

#[tokio::test]
async fn an_existing_database_keeps_its_layout_and_refuses_another() {
    let (_db, pool, layout) = migrate_new(LayoutChoice::Native).await;
    assert_eq!(layout.unwrap(), Layout::Native);
    let e = strata_store::migrate(&pool, LayoutChoice::Timescale)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::LayoutMismatch {
                existing: Layout::Native,
                choice: LayoutChoice::Timescale
            }
        ),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("uses native day partitions, but STRATA_HOT_LAYOUT=timescaledb")
            && text.contains("does not convert"),
        "{text}"
    );
    // auto and the same choice keep it, as many times as asked.
    for choice in [LayoutChoice::Auto, LayoutChoice::Native, LayoutChoice::Auto] {
        assert_eq!(
            strata_store::migrate(&pool, choice).await.unwrap(),
            Layout::Native
        );
    }

    if server().await == ServerTimescale::Preloaded {
        let (_db, pool, layout) = migrate_new(LayoutChoice::Auto).await;
        assert_eq!(layout.unwrap(), Layout::Timescale);
        let e = strata_store::migrate(&pool, LayoutChoice::Native)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("uses a TimescaleDB hypertable, but STRATA_HOT_LAYOUT=native"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn concurrent_first_migrations_agree() {
    let db = TestDb::create_empty().await;
    let pool = db.pool().await;
    let runs =
        futures::future::join_all((0..4).map(|_| strata_store::migrate(&pool, LayoutChoice::Auto)))
            .await;
    let layouts: Vec<Layout> = runs.into_iter().map(Result::unwrap).collect();
    assert!(layouts.windows(2).all(|w| w[0] == w[1]), "{layouts:?}");
    assert_eq!(Store::open(pool).await.unwrap().layout(), layouts[0]);
}

/// The previous release's migrations: its hot-tier migration (kept as a
/// fixture, byte for byte) and the files it shipped beside it (those of
/// 2026-11-26). Later files came after 20261126000000 replaced it, so an
/// upgrade applies them after that one, as `migrate` does below.
fn previous_release_migrations() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let old = root.join("fixtures/superseded-migrations/20261126000001_hot_tier.sql");
    std::fs::copy(&old, dir.path().join(old.file_name().unwrap())).unwrap();
    for entry in std::fs::read_dir(root.join("../migrations")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() > "20261126000001" && name.as_str() < "20261127" {
            std::fs::copy(&path, dir.path().join(name)).unwrap();
        }
    }
    dir
}

#[tokio::test]
async fn databases_migrated_by_the_previous_release_keep_working() {
    let dir = previous_release_migrations();
    let old = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    // The fixture is the released file: same checksum as databases recorded.
    let recorded = old.iter().find(|m| m.version == 20261126000001).unwrap();
    let hex: String = recorded
        .checksum
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        hex,
        "421643d241141bf2e6983d983bd47659178f5aefcf86b24ad0b508016deaa4b707a303021ea33224e79bd77f701a8f39"
    );

    let db = TestDb::create_empty().await;
    let pool = db.pool().await;
    let server = server().await;
    if server == ServerTimescale::InstalledNotPreloaded {
        // The released migration cannot run here (that is the bug: FATAL),
        // so no such database can have been made on this server as it is.
        // Make one with the same bookkeeping: that release's schema (its
        // files, with today's 20261126000000 in place of the fixture),
        // recorded as the released migrations with their checksums.
        let then = tempfile::tempdir().unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for entry in std::fs::read_dir(root.join("../migrations")).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name.as_str() < "20261127" {
                std::fs::copy(&path, then.path().join(name)).unwrap();
            }
        }
        sqlx::migrate::Migrator::new(then.path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        pool.execute("DELETE FROM _sqlx_migrations").await.unwrap();
        for m in old.iter() {
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES ($1, $2, true, $3, 0)",
            )
            .bind(m.version)
            .bind(&*m.description)
            .bind(&*m.checksum)
            .execute(&pool)
            .await
            .unwrap();
        }
    } else {
        old.run(&pool).await.unwrap();
    }
    let expected = if server == ServerTimescale::Preloaded {
        Layout::Timescale
    } else {
        Layout::Native
    };
    let hot = Store::open(pool.clone()).await.unwrap();
    assert_eq!(hot.layout(), expected);
    // A key as that release stored it (today's code writes columns that
    // release did not have).
    sqlx::raw_sql(
        "INSERT INTO projects (name) VALUES ('kept');
         INSERT INTO api_keys (id, project_id, prefix, key_hash, scopes)
         SELECT gen_random_uuid(), id, 'sk_kept', sha256('kept'), ARRAY['read']
           FROM projects WHERE name = 'kept'",
    )
    .execute(&pool)
    .await
    .unwrap();

    // An idempotency record of that release's shape, three days old.
    let id = uuid::Uuid::new_v4();
    sqlx::query(
        "INSERT INTO event_ids (project_id, event_id, received_at)
         VALUES (1, $1, now() - interval '3 days')",
    )
    .bind(id)
    .execute(&pool)
    .await
    .unwrap();
    // First-seen records of that release's shape (no ordinal).
    sqlx::query(
        "INSERT INTO user_first_seen (project_id, user_id, first_ts) VALUES
           (1, 'late', now() - interval '1 day'), (1, 'early', now() - interval '9 days'),
           (1, 'mid', now() - interval '5 days')",
    )
    .execute(&pool)
    .await
    .unwrap();

    // Upgrading: the superseded version is accepted, the new one applies as a
    // no-op, and nothing is lost; the same again is a no-op.
    for _ in 0..2 {
        assert_eq!(
            strata_store::migrate(&pool, LayoutChoice::Auto)
                .await
                .unwrap(),
            expected
        );
    }
    let versions: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(versions[..2], [20261126000000, 20261126000001]);
    // The record moved to the partition of its arrival day.
    let (moved, day): (uuid::Uuid, chrono::NaiveDate) =
        sqlx::query_as("SELECT event_id, day FROM event_ids")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(moved, id);
    assert_eq!(
        day,
        (chrono::Utc::now() - chrono::Duration::days(3)).date_naive()
    );
    let keys = Store::open(pool.clone())
        .await
        .unwrap()
        .list_keys()
        .await
        .unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].project, "kept");
    // Users already seen are numbered in first-seen order, and the
    // project's sequence goes on after them.
    let numbered: Vec<(String, i64)> =
        sqlx::query_as("SELECT user_id, ordinal FROM user_first_seen ORDER BY ordinal")
            .fetch_all(&pool)
            .await
            .unwrap();
    let names: Vec<(&str, i64)> = numbered.iter().map(|(u, o)| (u.as_str(), *o)).collect();
    assert_eq!(names, [("early", 0), ("mid", 1), ("late", 2)]);
    let next: i64 = sqlx::query_scalar("SELECT nextval('user_ordinals_1')")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(next, 3);
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_release_is_refused() {
    let (_db, pool, layout) = migrate_new(LayoutChoice::Auto).await;
    layout.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (20991231000000, 'from the future', true, '\\x00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let e = strata_store::migrate(&pool, LayoutChoice::Auto)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::UnknownMigrations(v) if v == &[20991231000000]),
        "{e:?}"
    );
    assert!(e.to_string().contains("migrated by a newer version"), "{e}");
}
