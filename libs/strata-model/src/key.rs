use std::fmt;
use std::str::FromStr;

use rand::Rng;
use rand::distr::Alphanumeric;
use sha2::{Digest, Sha256};

use crate::ModelError;

const KEY_PREFIX: &str = "strata_";
const KEY_RANDOM_CHARS: usize = 40;
/// Characters of the key kept in clear to name it in `keys list` and
/// `keys revoke`: the fixed prefix and the first random characters.
const DISPLAY_CHARS: usize = KEY_PREFIX.len() + 8;

/// A project's numeric id: the `project_id` of every hot row and of the
/// cold tier's `project_id=<id>` partition folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectId(pub i64);

impl fmt::Display for ProjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A project's name: lowercase slug, 1-64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProjectName(String);

impl ProjectName {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let mut chars = s.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
        if first_ok && rest_ok && s.len() <= 64 {
            Ok(Self(s.to_owned()))
        } else {
            Err(ModelError::BadProjectName(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    Ingest,
    Read,
    /// A project's own admin views and actions.
    Admin,
    /// Service-wide views and actions; only operator keys (no project) have it.
    Operator,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Admin => "admin",
            Self::Operator => "operator",
        }
    }
}

impl FromStr for Scope {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "ingest" => Ok(Self::Ingest),
            "read" => Ok(Self::Read),
            "admin" => Ok(Self::Admin),
            "operator" => Ok(Self::Operator),
            other => Err(ModelError::BadScope(other.to_owned())),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A non-empty, sorted, de-duplicated set of scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    pub fn new(mut scopes: Vec<Scope>) -> Self {
        scopes.sort();
        scopes.dedup();
        Self(scopes)
    }

    /// Parses a comma-separated list such as `ingest,read`.
    pub fn parse_list(s: &str) -> Result<Self, ModelError> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(Scope::from_str)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|v| {
                if v.is_empty() {
                    Err(ModelError::BadScope(s.to_owned()))
                } else {
                    Ok(Self::new(v))
                }
            })
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        self.0.iter().copied()
    }

    pub fn to_strings(&self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.iter().map(Scope::as_str).collect();
        f.write_str(&names.join(","))
    }
}

/// SHA-256 of a key: the only form in which keys are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHash(pub [u8; 32]);

/// A freshly generated secret key. It is shown once and never stored.
pub struct ApiKey(String);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.display_prefix())
    }
}

impl ApiKey {
    pub fn generate() -> Self {
        let random: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(KEY_RANDOM_CHARS)
            .map(char::from)
            .collect();
        Self(format!("{KEY_PREFIX}{random}"))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The part of the key safe to show and store in clear.
    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_CHARS]
    }

    pub fn hash(&self) -> KeyHash {
        Self::hash_presented(&self.0)
    }

    /// Hashes whatever a client presented, valid or not.
    pub fn hash_presented(presented: &str) -> KeyHash {
        KeyHash(Sha256::digest(presented.as_bytes()).into())
    }
}

impl KeyHash {
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert!(ProjectName::parse("demo").is_ok());
        assert!(ProjectName::parse("a-b_c9").is_ok());
        assert!(ProjectName::parse("").is_err());
        assert!(ProjectName::parse("-x").is_err());
        assert!(ProjectName::parse("Demo").is_err());
        assert!(ProjectName::parse(&"a".repeat(65)).is_err());
    }

    #[test]
    fn scopes() {
        let s = Scopes::parse_list("read, ingest,read").unwrap();
        assert_eq!(s.to_string(), "ingest,read");
        assert!(s.contains(Scope::Ingest));
        assert!(!s.contains(Scope::Admin));
        assert!(Scopes::parse_list("write").is_err());
        assert!(Scopes::parse_list("").is_err());
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let a = ApiKey::generate();
        let b = ApiKey::generate();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with("strata_"));
        assert_eq!(a.expose().len(), 47);
        assert_eq!(a.hash(), ApiKey::hash_presented(a.expose()));
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }
}
