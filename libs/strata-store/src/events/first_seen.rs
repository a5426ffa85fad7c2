//! Each user's first-seen time (`user_first_seen`), kept at ingest: the
//! batch's earliest timestamp per user lowers the stored one.
//!
//! `first_ts` only ever decreases, so any value once committed is an upper
//! bound of the stored one forever after. The process remembers the bound
//! of the users it has written or seen (`Known`), and a batch sends only
//! the users whose earliest event is before that bound: for returning users
//! (most of a mature product's traffic) the statement is skipped entirely.
//! The memory is bounded; when full it starts over, which costs lookups,
//! never correctness. An erasure deletes first-seen records, so what is
//! remembered is tagged with the project's `ordinals_epoch` that the batch
//! read under the project's users lock (`claims.rs`), and a batch that
//! reads another epoch ignores it (ADR-032).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use strata_model::{ProjectId, ValidEvent};

/// Users remembered per process (about 100 bytes each).
const KNOWN_MAX: usize = 200_000;

/// Upper bounds of stored first-seen times, by project, then user (looked
/// up by `&str`, so a batch allocates only for users it adds).
#[derive(Debug, Default)]
pub(crate) struct Known(Mutex<KnownUsers>);

#[derive(Debug, Default)]
struct KnownUsers {
    /// Per project: the epoch its bounds were read at, and the bounds.
    by_project: HashMap<i64, (i64, HashMap<String, DateTime<Utc>>)>,
    len: usize,
}

/// A batch's earliest time per user.
pub(crate) type Firsts<'a> = BTreeMap<&'a str, DateTime<Utc>>;

pub(crate) fn firsts<'a>(events: &[&'a ValidEvent]) -> Firsts<'a> {
    let mut first: Firsts<'a> = BTreeMap::new();
    for e in events {
        let ts = e.timestamp.as_datetime();
        first
            .entry(e.user_id.as_str())
            .and_modify(|t| *t = (*t).min(ts))
            .or_insert(ts);
    }
    first
}

impl Known {
    fn lock(&self) -> std::sync::MutexGuard<'_, KnownUsers> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The users of `firsts` whose stored time may be later than the
    /// batch's: the ones to send.
    pub(crate) fn unsettled<'a>(
        &self,
        project: ProjectId,
        epoch: i64,
        firsts: &Firsts<'a>,
    ) -> Firsts<'a> {
        let known = self.lock();
        let users = known
            .by_project
            .get(&project.0)
            .filter(|(e, _)| *e == epoch)
            .map(|(_, users)| users);
        firsts
            .iter()
            .filter(|(u, t)| {
                users
                    .and_then(|users| users.get(**u))
                    .is_none_or(|bound| *bound > **t)
            })
            .map(|(u, t)| (*u, *t))
            .collect()
    }

    /// After the commit that sent (or skipped) `firsts`: each stored time
    /// is now at most the batch's.
    /// A batch read at an older epoch than the one remembered adds nothing;
    /// one read at a newer epoch replaces the project's bounds.
    pub(crate) fn committed(&self, project: ProjectId, epoch: i64, firsts: &Firsts<'_>) {
        let mut known = self.lock();
        if known.len + firsts.len() > KNOWN_MAX {
            *known = KnownUsers::default();
        }
        let KnownUsers { by_project, len } = &mut *known;
        let (kept, users) = by_project
            .entry(project.0)
            .or_insert_with(|| (epoch, HashMap::new()));
        if *kept > epoch {
            return;
        }
        if *kept < epoch {
            *len -= users.len();
            users.clear();
            *kept = epoch;
        }
        for (u, t) in firsts {
            match users.get_mut(*u) {
                Some(bound) => *bound = (*bound).min(*t),
                None => {
                    users.insert((*u).to_owned(), *t);
                    *len += 1;
                }
            }
        }
    }
}

/// Lowers the stored first-seen time of each of `firsts` inside the ingest
/// transaction, and numbers the users seen for the first time. Users
/// already stored with an earlier-or-equal time are filtered out by a plain
/// read first, so a returning user takes no row lock; `first_ts` only ever
/// decreases, so that filter stays right under concurrency.
///
/// A new user's ordinal comes from the project's sequence
/// (`user_ordinals_<project>`), in user order within the batch: no lock is
/// held until commit, so batches with new users never queue behind each
/// other. An ordinal is never reused; a user first seen by two batches at
/// once keeps the ordinal of the batch that committed first, and the other
/// batch's number is skipped.
pub(crate) async fn lower(
    tx: &mut sqlx::PgConnection,
    project: ProjectId,
    firsts: &Firsts<'_>,
) -> Result<(), sqlx::Error> {
    if firsts.is_empty() {
        return Ok(());
    }
    let (users, times): (Vec<&str>, Vec<DateTime<Utc>>) =
        firsts.iter().map(|(u, t)| (*u, *t)).unzip();
    sqlx::query(
        "WITH batch AS (
             SELECT n.u, n.t,
                    (SELECT o.ordinal FROM user_first_seen o
                      WHERE o.project_id = $1 AND o.user_id = n.u) AS ordinal
               FROM unnest($2::text[], $3::timestamptz[]) AS n(u, t)
              WHERE NOT EXISTS (SELECT 1 FROM user_first_seen o
                                 WHERE o.project_id = $1 AND o.user_id = n.u AND o.first_ts <= n.t)),
         fresh AS (
             SELECT u, nextval(strata_user_ordinals($1)) AS ordinal
               FROM (SELECT u FROM batch WHERE ordinal IS NULL ORDER BY u) AS s)
         INSERT INTO user_first_seen AS f (project_id, user_id, first_ts, ordinal)
         SELECT $1, b.u, b.t, coalesce(b.ordinal, fr.ordinal)
           FROM batch b LEFT JOIN fresh fr ON fr.u = b.u
          ORDER BY b.u
         ON CONFLICT (project_id, user_id)
         DO UPDATE SET first_ts = EXCLUDED.first_ts WHERE f.first_ts > EXCLUDED.first_ts",
    )
    .bind(project.0)
    .bind(&users)
    .bind(&times)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    #[test]
    fn only_users_the_batch_may_lower_are_sent() {
        let known = Known::default();
        let p = ProjectId(1);
        let batch: Firsts<'_> = [("a", t(100)), ("b", t(100))].into_iter().collect();
        assert_eq!(known.unsettled(p, 0, &batch).len(), 2, "nothing known yet");
        known.committed(p, 0, &batch);
        let later: Firsts<'_> = [("a", t(100)), ("b", t(200))].into_iter().collect();
        assert!(
            known.unsettled(p, 0, &later).is_empty(),
            "not earlier: skipped"
        );
        let earlier: Firsts<'_> = [("a", t(50)), ("b", t(200))].into_iter().collect();
        let sent = known.unsettled(p, 0, &earlier);
        assert_eq!(sent.keys().copied().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            known.unsettled(ProjectId(2), 0, &later).len(),
            2,
            "another project's users are its own"
        );
        known.committed(p, 0, &earlier);
        assert!(known.unsettled(p, 0, &earlier).is_empty());
        // After an erasure (epoch 1) every user is sent again, and a late
        // commit read at epoch 0 does not bring the old bounds back.
        assert_eq!(known.unsettled(p, 1, &earlier).len(), 2);
        known.committed(p, 1, &later);
        known.committed(p, 0, &earlier);
        let sent = known.unsettled(p, 1, &earlier);
        assert_eq!(sent.keys().copied().collect::<Vec<_>>(), ["a"]);
    }
}
