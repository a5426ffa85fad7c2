//! Projects and API keys. Keys are stored only as SHA-256 hashes.

use chrono::{DateTime, Utc};
use strata_model::{ApiKey, KeyHash, ProjectId, ProjectName, Scope, Scopes};
use uuid::Uuid;

use crate::{Store, StoreError};

/// A key as listed by `keys list` (never the secret itself).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub id: Uuid,
    pub project: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key's own rate limit; `None`: the server's default.
    pub limit: Option<KeyLimit>,
    /// A client key (ADR-040): ingest only, limited per client address.
    pub client: bool,
}

/// A key's token bucket: `rate_per_sec` refill, `burst` size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyLimit {
    pub rate_per_sec: f64,
    pub burst: u32,
}

impl KeyLimit {
    /// Both positive (and finite), or an error naming the bad one.
    pub fn new(rate_per_sec: f64, burst: u32) -> Result<Self, StoreError> {
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            return Err(StoreError::Invalid(format!(
                "rate {rate_per_sec} must be a positive number of requests per second"
            )));
        }
        if burst == 0 || burst > i32::MAX as u32 {
            return Err(StoreError::Invalid(format!(
                "burst {burst} must be a positive number of requests"
            )));
        }
        Ok(Self {
            rate_per_sec,
            burst,
        })
    }

    fn from_db(rate: Option<f64>, burst: Option<i32>) -> Option<Self> {
        Some(Self {
            rate_per_sec: rate?,
            burst: u32::try_from(burst?).ok()?,
        })
    }
}

/// Whom a key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner {
    Project {
        id: ProjectId,
        name: String,
    },
    /// An operator key: no project, the `operator` scope only.
    Operator,
}

/// The identity behind an accepted key.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatedKey {
    pub key_id: Uuid,
    pub owner: KeyOwner,
    pub scopes: Scopes,
    pub limit: Option<KeyLimit>,
    /// A client key (ADR-040): its limit applies per client address.
    pub client: bool,
}

/// Shown for an operator key where a project name would be.
pub const OPERATOR_OWNER: &str = "(operator)";

fn scopes_from_db(raw: Vec<String>) -> Result<Scopes, StoreError> {
    raw.iter()
        .map(|s| s.parse::<Scope>())
        .collect::<Result<Vec<_>, _>>()
        .map(Scopes::new)
        .map_err(|e| StoreError::Unexpected(format!("a stored key has {e}")))
}

type KeyRow = (
    Uuid,
    String,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<f64>,
    Option<i32>,
    bool,
);

fn key_info(row: KeyRow) -> Result<KeyInfo, StoreError> {
    let (id, project, prefix, scopes, created_at, revoked_at, rate, burst, client) = row;
    Ok(KeyInfo {
        id,
        project,
        prefix,
        scopes: scopes_from_db(scopes)?,
        created_at,
        revoked_at,
        limit: KeyLimit::from_db(rate, burst),
        client,
    })
}

const KEY_COLUMNS: &str = "k.id, coalesce((SELECT p.name FROM projects p WHERE p.id = k.project_id), '(operator)'), k.prefix, k.scopes, k.created_at, k.revoked_at, k.rate_per_sec, k.burst, k.client";

async fn upsert_project(
    conn: &mut sqlx::PgConnection,
    project: &ProjectName,
) -> Result<ProjectId, StoreError> {
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

impl Store {
    /// The id of `project`, created if new.
    pub async fn ensure_project(&self, project: &ProjectName) -> Result<ProjectId, StoreError> {
        let mut conn = self.pool.acquire().await?;
        upsert_project(&mut conn, project).await
    }

    /// The id of `project`, if it exists.
    pub async fn find_project(
        &self,
        project: &ProjectName,
    ) -> Result<Option<ProjectId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
            .bind(project.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.map(ProjectId))
    }

    /// Creates `project` if it is new, then a fresh key for it. The returned
    /// [`ApiKey`] is the only copy of the secret.
    pub async fn create_key(
        &self,
        project: &ProjectName,
        scopes: &Scopes,
        limit: Option<KeyLimit>,
    ) -> Result<(ApiKey, KeyInfo), StoreError> {
        if scopes.contains(Scope::Operator) {
            return Err(StoreError::Invalid(
                "the operator scope is for operator keys, which belong to no project: use `keys create --operator`".into(),
            ));
        }
        self.create_project_key(project, scopes, limit, false).await
    }

    /// Creates `project` if it is new, then a fresh client key for it
    /// (ADR-040): the `ingest` scope only, fit to embed in a browser or
    /// mobile app; `limit` (or the server's default) applies to each client
    /// address on its own.
    pub async fn create_client_key(
        &self,
        project: &ProjectName,
        limit: Option<KeyLimit>,
    ) -> Result<(ApiKey, KeyInfo), StoreError> {
        let scopes = Scopes::new(vec![Scope::Ingest]);
        self.create_project_key(project, &scopes, limit, true).await
    }

    async fn create_project_key(
        &self,
        project: &ProjectName,
        scopes: &Scopes,
        limit: Option<KeyLimit>,
        client: bool,
    ) -> Result<(ApiKey, KeyInfo), StoreError> {
        let mut tx = self.pool.begin().await?;
        let project_id = upsert_project(&mut tx, project).await?.0;
        let (key, info) = insert_key(&mut tx, Some(project_id), scopes, limit, client).await?;
        tx.commit().await?;
        Ok((
            key,
            KeyInfo {
                project: project.as_str().to_owned(),
                ..info
            },
        ))
    }

    /// A fresh operator key: no project, the `operator` scope only.
    pub async fn create_operator_key(
        &self,
        limit: Option<KeyLimit>,
    ) -> Result<(ApiKey, KeyInfo), StoreError> {
        let mut conn = self.pool.acquire().await?;
        let scopes = Scopes::new(vec![Scope::Operator]);
        insert_key(&mut conn, None, &scopes, limit, false).await
    }
}

async fn insert_key(
    conn: &mut sqlx::PgConnection,
    project_id: Option<i64>,
    scopes: &Scopes,
    limit: Option<KeyLimit>,
    client: bool,
) -> Result<(ApiKey, KeyInfo), StoreError> {
    {
        let key = ApiKey::generate();
        let (id, created_at): (Uuid, DateTime<Utc>) = sqlx::query_as(
            "INSERT INTO api_keys (id, project_id, prefix, key_hash, scopes, rate_per_sec, burst, client)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id, created_at",
        )
        .bind(Uuid::new_v4())
        .bind(project_id)
        .bind(key.display_prefix())
        .bind(key.hash().0.as_slice())
        .bind(scopes.to_strings())
        .bind(limit.map(|l| l.rate_per_sec))
        .bind(limit.map(|l| l.burst as i32))
        .bind(client)
        .fetch_one(&mut *conn)
        .await?;
        let info = KeyInfo {
            id,
            project: OPERATOR_OWNER.to_owned(),
            prefix: key.display_prefix().to_owned(),
            scopes: scopes.clone(),
            created_at,
            revoked_at: None,
            limit,
            client,
        };
        Ok((key, info))
    }
}

impl Store {
    /// Sets (or with `None`, clears) the rate limit of the active key whose
    /// id or prefix is `prefix_or_id`.
    pub async fn set_key_limit(
        &self,
        prefix_or_id: &str,
        limit: Option<KeyLimit>,
    ) -> Result<KeyInfo, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(&format!(
            "UPDATE api_keys k SET rate_per_sec = $2, burst = $3
              WHERE k.revoked_at IS NULL
                AND (k.id::text = $1 OR starts_with($1, k.prefix))
              RETURNING {KEY_COLUMNS}"
        ))
        .bind(prefix_or_id.trim())
        .bind(limit.map(|l| l.rate_per_sec))
        .bind(limit.map(|l| l.burst as i32))
        .fetch_optional(&self.pool)
        .await?;
        row.map(key_info).transpose()?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no active key has id or prefix {prefix_or_id:?} (see `strata-api keys list`)"
            ))
        })
    }

    /// Revokes the active key whose id is `prefix_or_id`, or whose displayed
    /// prefix begins `prefix_or_id` (so the whole key works too).
    pub async fn revoke_key(&self, prefix_or_id: &str) -> Result<KeyInfo, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(&format!(
            "UPDATE api_keys k SET revoked_at = now()
              WHERE k.revoked_at IS NULL
                AND (k.id::text = $1 OR starts_with($1, k.prefix))
              RETURNING {KEY_COLUMNS}"
        ))
        .bind(prefix_or_id.trim())
        .fetch_optional(&self.pool)
        .await?;
        row.map(key_info).transpose()?.ok_or_else(|| {
            StoreError::NotFound(format!(
                "no active key has id or prefix {prefix_or_id:?} (see `strata-api keys list`)"
            ))
        })
    }

    /// Every key, newest first.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k
              ORDER BY k.created_at DESC, k.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_info).collect()
    }

    /// Looks a presented key up by its hash. `None` for unknown and revoked keys.
    pub async fn authenticate(
        &self,
        hash: &KeyHash,
    ) -> Result<Option<AuthenticatedKey>, StoreError> {
        type Row = (
            Uuid,
            Option<i64>,
            Option<String>,
            Vec<String>,
            Option<f64>,
            Option<i32>,
            bool,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT k.id, k.project_id, p.name, k.scopes, k.rate_per_sec, k.burst, k.client
               FROM api_keys k LEFT JOIN projects p ON p.id = k.project_id
              WHERE k.key_hash = $1 AND k.revoked_at IS NULL",
        )
        .bind(hash.0.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.map(
            |(key_id, project_id, project, scopes, rate, burst, client)| {
                let owner = match (project_id, project) {
                    (Some(id), Some(name)) => KeyOwner::Project {
                        id: ProjectId(id),
                        name,
                    },
                    _ => KeyOwner::Operator,
                };
                Ok(AuthenticatedKey {
                    key_id,
                    owner,
                    scopes: scopes_from_db(scopes)?,
                    limit: KeyLimit::from_db(rate, burst),
                    client,
                })
            },
        )
        .transpose()
    }
}
