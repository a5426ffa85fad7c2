//! Declared properties (ADR-043): the top-level properties, at most
//! [`MAX_DECLARED_PROPERTIES`] per project, whose values the rollups keep
//! per closed day. Every rollup written after a declaration holds its
//! values; days rolled up before hold them after `rollups rebuild`. A
//! rollup records which properties it holds, so a breakdown by a declared
//! property uses it only when it holds that one.

use strata_model::{ProjectId, PropertyKey};

use crate::{Store, StoreError};

/// How many properties a project may declare: each multiplies the rows of
/// every day's rollup by its number of values.
pub const MAX_DECLARED_PROPERTIES: usize = 8;

impl Store {
    /// `project`'s declared properties, by name.
    pub async fn declared_properties(&self, project: ProjectId) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT property FROM project_properties WHERE project_id = $1 ORDER BY property",
        )
        .bind(project.0)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Declares `property` for `project` (nothing changes when it already
    /// is); returns the declared properties. Refused past
    /// [`MAX_DECLARED_PROPERTIES`]. The project's row is locked, so two
    /// declarations at once cannot both pass the cap.
    pub async fn declare_property(
        &self,
        project: ProjectId,
        property: &PropertyKey,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM projects WHERE id = $1 FOR UPDATE")
                .bind(project.0)
                .fetch_optional(&mut *tx)
                .await?;
        if found.is_none() {
            return Err(StoreError::NotFound(format!(
                "project {project} does not exist"
            )));
        }
        let declared: Vec<String> = sqlx::query_scalar(
            "SELECT property FROM project_properties WHERE project_id = $1 ORDER BY property",
        )
        .bind(project.0)
        .fetch_all(&mut *tx)
        .await?;
        if declared.iter().any(|p| p == property.as_str()) {
            return Ok(declared);
        }
        if declared.len() >= MAX_DECLARED_PROPERTIES {
            return Err(StoreError::Invalid(format!(
                "a project declares at most {MAX_DECLARED_PROPERTIES} properties \
                 ({}); undeclare one first",
                declared.join(", ")
            )));
        }
        sqlx::query("INSERT INTO project_properties (project_id, property) VALUES ($1, $2)")
            .bind(project.0)
            .bind(property.as_str())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.declared_properties(project).await
    }

    /// Undeclares `property`: breakdowns by it read the events again, and
    /// rollups written from now on leave its values out (those written
    /// before keep them until rewritten). Returns the declared properties;
    /// an error when it was not declared.
    pub async fn undeclare_property(
        &self,
        project: ProjectId,
        property: &PropertyKey,
    ) -> Result<Vec<String>, StoreError> {
        let gone =
            sqlx::query("DELETE FROM project_properties WHERE project_id = $1 AND property = $2")
                .bind(project.0)
                .bind(property.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound(format!(
                "property {:?} is not declared for project {project}",
                property.as_str()
            )));
        }
        self.declared_properties(project).await
    }
}
