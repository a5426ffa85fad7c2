//! Which deployment a cold store belongs to (ADR-037). The first archive
//! run of a deployment (one PostgreSQL database, identified by the id in
//! its `deployment` table) writes `_strata/owner` under the store's URL;
//! every later run reads it back and refuses to touch a store that names
//! another deployment. Two databases pointed at one bucket or folder (a
//! staging copy, a disaster-recovery restore started beside the original,
//! `make run` sharing a folder by mistake) would otherwise write the same
//! keys and treat each other's files as their own.

use object_store::path::Path;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use uuid::Uuid;

use crate::{ColdError, ColdStore};

/// The marker's key, outside `events/` (readers' globs never see it).
pub const OWNER_KEY: &str = "_strata/owner";

fn render(deployment: Uuid) -> String {
    format!("strata deployment {deployment}\n")
}

fn parse(text: &str) -> Option<Uuid> {
    text.trim().strip_prefix("strata deployment ")?.parse().ok()
}

impl ColdStore {
    /// The deployment named by the store's marker (`None`: no marker yet).
    pub async fn owner(&self) -> Result<Option<Uuid>, ColdError> {
        let store = self.object_store();
        match store.get(&Path::from(OWNER_KEY)).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                let text = String::from_utf8_lossy(&bytes);
                parse(&text)
                    .map(Some)
                    .ok_or_else(|| ColdError::Verification {
                        key: OWNER_KEY.to_owned(),
                        reason: format!("not a Strata owner marker: {:?}", text.trim()),
                    })
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Claims the store for `deployment` when nobody has; `Ok(())` when it
    /// is (now) this deployment's, `Err(ColdError::Owned)` naming the other
    /// deployment otherwise.
    pub async fn claim(&self, deployment: Uuid) -> Result<(), ColdError> {
        if let Some(owner) = self.owner().await? {
            return check(owner, deployment, self.url());
        }
        let store = self.object_store();
        let key = Path::from(OWNER_KEY);
        let payload = || PutPayload::from(render(deployment).into_bytes());
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match store.put_opts(&key, payload(), create).await {
            Ok(_) => {}
            // Another deployment's first run won the race: whoever wrote
            // first owns the store.
            Err(object_store::Error::AlreadyExists { .. }) => {
                let owner = self.owner().await?.unwrap_or(deployment);
                return check(owner, deployment, self.url());
            }
            // A store without conditional writes (some S3 servers refuse
            // the header): a plain write, after the look above found no
            // marker. Only two deployments' first runs in the same instant
            // could race there.
            Err(e) => {
                tracing::debug!(error = %e, "create-only put refused; writing the owner marker plainly");
                store.put(&key, payload()).await?;
            }
        }
        self.make_durable(&key).await?;
        tracing::info!(url = self.url(), %deployment, "claimed the cold store for this deployment");
        Ok(())
    }
}

fn check(owner: Uuid, deployment: Uuid, url: &str) -> Result<(), ColdError> {
    if owner == deployment {
        Ok(())
    } else {
        Err(ColdError::Owned {
            url: url.to_owned(),
            owner,
            deployment,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_round_trips_and_garbage_is_not_an_owner() {
        let id = Uuid::new_v4();
        assert_eq!(parse(&render(id)), Some(id));
        assert_eq!(parse("someone else's file"), None);
    }
}
