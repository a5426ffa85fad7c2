//! Realistic synthetic events for demos and benchmarks: users join over
//! time and the earliest are the most active (a skewed, power-law-like
//! activity), event types follow a 1/rank law, events cluster in sessions,
//! and each carries a properties object of about 200 bytes. Deterministic per seed.

use chrono::{Duration, NaiveDate, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

use crate::{EventId, EventTime, EventType, Properties, UserId, ValidEvent};

const TYPES: [&str; 16] = [
    "page_view",
    "click",
    "search",
    "scroll",
    "add_to_cart",
    "video_play",
    "share",
    "signup",
    "login",
    "checkout_start",
    "purchase",
    "invite_sent",
    "comment",
    "export",
    "settings_change",
    "logout",
];

/// What to generate.
#[derive(Debug, Clone)]
pub struct GeneratorSpec {
    /// Days ending with `last_day`, oldest first.
    pub days: u32,
    pub last_day: NaiveDate,
    pub users: u32,
    pub events_per_day: u32,
    pub seed: u64,
}

/// Produces one day of events at a time.
#[derive(Debug)]
pub struct Generator {
    spec: GeneratorSpec,
    rng: StdRng,
    type_cdf: Vec<f64>,
}

impl Generator {
    pub fn new(spec: GeneratorSpec) -> Self {
        let weights: Vec<f64> = (1..=TYPES.len()).map(|r| 1.0 / r as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let type_cdf = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let rng = StdRng::seed_from_u64(spec.seed);
        Self {
            spec,
            rng,
            type_cdf,
        }
    }

    /// The days this generator covers, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + use<> {
        let (n, last) = (self.spec.days, self.spec.last_day);
        (0..n)
            .rev()
            .map(move |back| last - Duration::days(i64::from(back)))
    }

    /// The events of `day` (the `index`-th day, 0 = oldest).
    pub fn day(&mut self, index: u32, day: NaiveDate) -> Vec<ValidEvent> {
        let spec = &self.spec;
        // Users join evenly over the period; a day sees those joined so far.
        let joined = (u64::from(spec.users) * u64::from(index + 1) / u64::from(spec.days.max(1)))
            .max(1) as f64;
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        let mut out = Vec::with_capacity(spec.events_per_day as usize);
        while out.len() < spec.events_per_day as usize {
            // A session: one user, a few events minutes apart.
            let x: f64 = self.rng.random();
            let user = (joined * x * x) as u64;
            let session_len = self.rng.random_range(1..=8usize);
            let mut at = midnight + Duration::seconds(self.rng.random_range(0..86_000));
            for _ in 0..session_len {
                if out.len() == spec.events_per_day as usize {
                    break;
                }
                let y: f64 = self.rng.random();
                let t = self
                    .type_cdf
                    .partition_point(|c| *c < y)
                    .min(TYPES.len() - 1);
                at += Duration::milliseconds(self.rng.random_range(200..90_000));
                let at = at.min(midnight + Duration::days(1) - Duration::microseconds(1));
                let id = Uuid::from_u128(self.rng.random());
                // Draws in a fixed order (path, session, plan, ms): the
                // referrer derives from the path, so no extra draw shifts
                // the users, types and times of a seed.
                let path = self.rng.random_range(0..500u32);
                let session = self.rng.random::<u32>();
                let plan = ["free", "pro", "team"][self.rng.random_range(0..3usize)];
                let ms = self.rng.random_range(1..5_000u32);
                let props = format!(
                    r#"{{"path":"/p/{path}","session":"s{session}","ua":"Mozilla/5.0 (X11; Linux x86_64)","plan":"{plan}","ms":{ms},"ref":"https://news.example.com/article/{}","locale":"en-US","screen":"1920x1080"}}"#,
                    path * 37 % 10_007,
                );
                out.push(build(id, user, TYPES[t], at, &props));
            }
        }
        out
    }
}

fn build(
    id: Uuid,
    user: u64,
    event_type: &str,
    at: chrono::DateTime<Utc>,
    props: &str,
) -> ValidEvent {
    // Every part is valid by construction; parse anyway so the only way to
    // make a ValidEvent stays the checked one.
    ValidEvent {
        event_id: EventId::parse(&id.to_string()).unwrap_or_else(|_| unreachable!()),
        user_id: UserId::parse(format!("user_{user}")).unwrap_or_else(|_| unreachable!()),
        event_type: EventType::parse(event_type).unwrap_or_else(|_| unreachable!()),
        timestamp: EventTime::from_datetime(at).unwrap_or_else(|| unreachable!()),
        properties: Properties::parse(props, usize::MAX).unwrap_or_else(|_| unreachable!()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_skewed_and_inside_each_day() {
        let spec = GeneratorSpec {
            days: 10,
            last_day: NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(),
            users: 500,
            events_per_day: 2_000,
            seed: 7,
        };
        let mut a = Generator::new(spec.clone());
        let mut b = Generator::new(spec);
        let days: Vec<_> = a.days().collect();
        assert_eq!(days.first().unwrap().to_string(), "2026-03-01");
        let ev = a.day(9, days[9]);
        assert_eq!(ev, b.day(9, days[9]));
        assert_eq!(ev.len(), 2_000);
        assert!(
            ev.iter()
                .all(|e| e.timestamp.as_datetime().date_naive() == days[9])
        );
        let views = ev
            .iter()
            .filter(|e| e.event_type.as_str() == "page_view")
            .count();
        let logouts = ev
            .iter()
            .filter(|e| e.event_type.as_str() == "logout")
            .count();
        assert!(views > 5 * logouts.max(1), "{views} vs {logouts}");
    }
}
