//! Projects and API keys. Keys are stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use strata_model::{ApiKey, KeyHash, ProjectId, ProjectName, Scope, Scopes};
use uuid::Uuid;

use crate::{HotError, HotStore};

/// A key as listed by `keys list` (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: Uuid,
    pub project: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// The identity behind an accepted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    pub key_id: Uuid,
    pub project_id: ProjectId,
    pub project: String,
    pub scopes: Scopes,
}

fn scopes_from_db(raw: Vec<String>) -> Result<Scopes, HotError> {
    raw.iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map(Scopes::new)
        .map_err(|e| HotError::Invalid(e.to_string()))
}

type KeyRow = (
    Uuid,
    String,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn key_info(row: KeyRow) -> Result<KeyInfo, HotError> {
    let (id, project, prefix, scopes, created_at, revoked_at) = row;
    Ok(KeyInfo {
        id,
        project,
        prefix,
        scopes: scopes_from_db(scopes)?,
        created_at,
        revoked_at,
    })
}

const KEY_COLUMNS: &str = "k.id, p.name, k.prefix, k.scopes, k.created_at, k.revoked_at";

async fn upsert_project(
    conn: &mut sqlx::PgConnection,
    project: &ProjectName,
) -> Result<ProjectId, HotError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO projects (name) VALUES ($1)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id",
    )
    .bind(project.as_str())
    .fetch_one(conn)
    .await?;
    Ok(ProjectId(id))
}

impl HotStore {
    /// The id of `project`, created if new.
    pub async fn ensure_project(&self, project: &ProjectName) -> Result<ProjectId, HotError> {
        let mut conn = self.pool.acquire().await?;
        upsert_project(&mut conn, project).await
    }

    /// Creates `project` if it is new, then a fresh key for it. The returned
    /// [`ApiKey`] is the only copy of the secret.
    pub async fn create_key(
        &self,
        project: &ProjectName,
        scopes: &Scopes,
    ) -> Result<(ApiKey, KeyInfo), HotError> {
        let key = ApiKey::generate();
        let mut tx = self.pool.begin().await?;
        let project_id = upsert_project(&mut tx, project).await?.0;
        let (id, created_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO api_keys (id, project_id, prefix, key_hash, scopes)
             VALUES ($1, $2, $3, $4, $5) RETURNING id, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(project_id)
        .bind(key.display_prefix())
        .bind(key.hash().0.as_slice())
        .bind(scopes.to_strings())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let info = KeyInfo {
            id,
            project: project.as_str().to_owned(),
            prefix: key.display_prefix().to_owned(),
            scopes: scopes.clone(),
            created_at,
            revoked_at: None,
        };
        Ok((key, info))
    }

    /// Revokes the active key whose id is `prefix_or_id`, or whose displayed
    /// prefix begins `prefix_or_id` (so the whole key works too).
    pub async fn revoke_key(&self, prefix_or_id: &str) -> Result<KeyInfo, HotError> {
        let row: Option<KeyRow> = sqlx::query_as(&format!(
            "UPDATE api_keys k SET revoked_at = now()
               FROM projects p
              WHERE p.id = k.project_id AND k.revoked_at IS NULL
                AND (k.id::text = $1 OR starts_with($1, k.prefix))
              RETURNING {KEY_COLUMNS}"
        ))
        .bind(prefix_or_id.trim())
        .fetch_optional(&self.pool)
        .await?;
        row.map(key_info).transpose()?.ok_or_else(|| {
            HotError::NotFound(format!(
                "no active key has id or prefix {prefix_or_id:?} (see `strata-api keys list`)"
            ))
        })
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, HotError> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k JOIN projects p ON p.id = k.project_id
              ORDER BY k.created_at DESC, k.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_info).collect()
    }

    /// Looks a presented key up by its hash. `None` for unknown and revoked keys.
    pub async fn authenticate(&self, hash: &KeyHash) -> Result<Option<AuthenticatedKey>, HotError> {
        let row: Option<(Uuid, i64, String, Vec<String>)> = sqlx::query_as(
            "SELECT k.id, k.project_id, p.name, k.scopes
               FROM api_keys k JOIN projects p ON p.id = k.project_id
              WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(key_id, project_id, project, scopes)| {
            Ok(AuthenticatedKey {
                key_id,
                project_id: ProjectId(project_id),
                project,
                scopes: scopes_from_db(scopes)?,
            })
        })
        .transpose()
    }
}
