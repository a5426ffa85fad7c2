use thiserror::Error;

use crate::ErrorCode;

/// Why a value from outside was refused. The `Display` text is what the client
/// sees, so it names the field and says what would have been accepted.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ModelError {
    #[error("{field} is required")]
    Missing { field: &'static str },
    #[error("{field} must be {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is {len} bytes, over the limit of {max}")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} must not contain NUL characters")]
    ContainsNul { field: &'static str },
    #[error("event_id {value:?} is not a UUID")]
    BadUuid { value: String },
    #[error("timestamp {value:?} has no UTC offset; add 'Z' or '+hh:mm'")]
    NoOffset { value: String },
    #[error("timestamp {value:?} is not an RFC 3339 date-time (e.g. 2026-11-20T12:00:00Z)")]
    BadTimestamp { value: String },
    #[error("timestamp {value} is more than {limit} in the future")]
    TooFarInFuture { value: String, limit: String },
    #[error("timestamp {value} is older than the {limit} limit")]
    TooFarInPast { value: String, limit: String },
    #[error(
        "{field} holds the number {value}, outside what PostgreSQL stores (at most 16383 digits after the point and 131072 before it)"
    )]
    NumberOutOfRange { field: &'static str, value: String },
    #[error("{field} nest deeper than {max} levels of objects and arrays")]
    TooDeep { field: &'static str, max: usize },
    #[error("{field} hold an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF)")]
    BadSurrogate { field: &'static str },
    #[error(
        "this batch already holds events for {max} distinct days before yesterday (the per-batch limit of late days); send events for further days in another batch"
    )]
    TooManyLateDays { max: usize },
    #[error("properties must be a JSON object")]
    PropertiesNotObject,
    #[error("properties are {len} bytes, over the limit of {max}")]
    PropertiesTooLarge { len: usize, max: usize },
    #[error("event must be a JSON object")]
    EventNotObject,
    #[error("event is not valid: {0}")]
    EventShape(String),
    #[error(
        "project name {0:?} must be 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit"
    )]
    BadProjectName(String),
    #[error(
        "retention {0:?} must be a number of days from 1 to 365000 followed by 'd' (e.g. 400d), or 'forever'"
    )]
    BadRetention(String),
    #[error(
        "unknown scope {0:?}; expected ingest, read or admin (operator keys: `keys create --operator`)"
    )]
    BadScope(String),
    #[error("{field} {value:?} is not a date; expected YYYY-MM-DD")]
    BadDate { field: &'static str, value: String },
    #[error("from {from} is after to {to}")]
    RangeReversed { from: String, to: String },
    #[error("the range spans {days} days, over the limit of {max_days}")]
    RangeTooLong { days: i64, max_days: u32 },
    #[error("period {0:?} is not known; expected day or week")]
    BadPeriod(String),
    #[error("steps {value:?}: {reason}")]
    BadSteps { value: String, reason: String },
    #[error(
        "group_by {0:?} must be property:<key>, the key 1-256 bytes (e.g. group_by=property:plan)"
    )]
    BadGroupBy(String),
    #[error("property {0:?} must be a top-level property key of 1-256 bytes without NUL")]
    BadPropertyKey(String),
    #[error("{field} {value:?} must be an integer between {min} and {max}")]
    OutOfRange {
        field: &'static str,
        value: String,
        min: u32,
        max: u32,
    },
}

impl crate::Classify for ModelError {
    fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Invalid
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::BadDate { .. }
            | Self::RangeReversed { .. }
            | Self::RangeTooLong { .. }
            | Self::BadPeriod(_)
            | Self::BadSteps { .. }
            | Self::BadGroupBy(_)
            | Self::OutOfRange { .. } => ErrorCode::InvalidParameter,
            Self::BadProjectName(_)
            | Self::BadScope(_)
            | Self::BadRetention(_)
            | Self::BadPropertyKey(_) => ErrorCode::InvalidArgument,
            _ => ErrorCode::InvalidEvent,
        }
    }
}

/// Client values echoed in messages are cut so an error never balloons.
pub(crate) fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 64;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
