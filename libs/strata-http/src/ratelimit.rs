//! Per-key token buckets in Redis, shared by every api replica.
//!
//! One `EVALSHA` per request: the script refills the bucket from the time
//! elapsed on Redis's own clock (`TIME`, so replicas' clocks do not matter),
//! takes one token if it can, and answers (allowed, tokens left, ms until a
//! token is available, ms until the bucket is full). When Redis fails or is
//! slower than the timeout, the request is let through (`open`, default) or
//! refused with 503 (`closed`); the first failure of an incident is logged,
//! and so is the recovery.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

const SCRIPT: &str = r#"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1])
local ts = tonumber(b[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
local full = math.ceil((burst - tokens) * 1000 / rate)
redis.call('PEXPIRE', KEYS[1], full + 1000)
return {allowed, math.floor(tokens), wait, full}
"#;

/// What Redis trouble means for requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRedisError {
    /// Let requests through unlimited.
    Open,
    /// Refuse them with 503.
    Closed,
}

impl OnRedisError {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "open" => Some(Self::Open),
            "closed" => Some(Self::Closed),
            _ => None,
        }
    }
}

/// A bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Tokens added per second.
    pub rate: f64,
    /// Bucket size: the most requests at once.
    pub burst: u32,
}

/// Limiter settings. Debug output leaves out the URL (it may hold a password).
#[derive(Clone)]
pub struct RateLimitConfig {
    pub redis_url: String,
    pub default: Limit,
    pub on_error: OnRedisError,
    /// Longest wait for Redis per request.
    pub timeout: Duration,
}

impl std::fmt::Debug for RateLimitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitConfig")
            .field("default", &self.default)
            .field("on_error", &self.on_error)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Allowed {
        limit: Limit,
        remaining: u64,
        reset_secs: u64,
    },
    Limited {
        limit: Limit,
        retry_after_secs: u64,
        reset_secs: u64,
    },
    /// Redis failed and the limiter is open.
    Unchecked,
    /// Redis failed and the limiter is closed.
    Unavailable,
}

/// The shared limiter. Cheap to clone.
#[derive(Clone)]
pub struct RateLimiter {
    conn: ConnectionManager,
    script: Arc<Script>,
    config: RateLimitConfig,
    in_incident: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("default", &self.config.default)
            .field("on_error", &self.config.on_error)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Connects lazily: a Redis that is down at start-up is handled like
    /// one that fails later.
    pub fn new(config: RateLimitConfig) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(config.redis_url.as_str())?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self {
            conn,
            script: Arc::new(Script::new(SCRIPT)),
            config,
            in_incident: Arc::default(),
            errors: Arc::default(),
        })
    }

    /// `PING` within the timeout (for `/readyz`).
    pub async fn ping(&self) -> Result<(), String> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut conn);
        match tokio::time::timeout(self.config.timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
        }
    }

    /// Redis failures seen so far (for `/metrics`).
    pub fn redis_errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Takes one token from `bucket` (a key id, or a client key's id and
    /// client address), with the key's own limit or the default.
    pub async fn check(&self, bucket: &str, own: Option<Limit>) -> Decision {
        let limit = own.unwrap_or(self.config.default);
        let mut conn = self.conn.clone();
        let mut invocation = self.script.key(format!("strata:ratelimit:{bucket}"));
        invocation.arg(limit.rate).arg(limit.burst);
        let call = invocation.invoke_async::<(i64, i64, i64, i64)>(&mut conn);
        let result = match tokio::time::timeout(self.config.timeout, call).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.config.timeout)),
        };
        match result {
            Ok((allowed, remaining, wait_ms, full_ms)) => {
                if self.in_incident.swap(false, Ordering::Relaxed) {
                    tracing::info!("Redis answers again; rate limits apply");
                }
                let reset_secs = ms_to_secs(full_ms);
                if allowed == 1 {
                    Decision::Allowed {
                        limit,
                        remaining: remaining.max(0) as u64,
                        reset_secs,
                    }
                } else {
                    Decision::Limited {
                        limit,
                        retry_after_secs: ms_to_secs(wait_ms).max(1),
                        reset_secs,
                    }
                }
            }
            Err(e) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                if !self.in_incident.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        error = %e,
                        on_error = ?self.config.on_error,
                        "Redis is unavailable for rate limiting"
                    );
                }
                match self.config.on_error {
                    OnRedisError::Open => Decision::Unchecked,
                    OnRedisError::Closed => Decision::Unavailable,
                }
            }
        }
    }
}

fn ms_to_secs(ms: i64) -> u64 {
    (ms.max(0) as u64).div_ceil(1000)
}
