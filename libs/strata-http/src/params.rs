//! Query strings: every endpoint names the parameters it takes; an unknown
//! or repeated parameter, or an unparsable query string, is a 400.

use std::collections::HashMap;
use strata_model::ErrorCode;

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use crate::ApiError;

/// A handler's raw query string, parse errors kept for [`query_params`].
pub(crate) type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// The query string as a map, refusing unknown and repeated parameters.
pub(crate) fn query_params(
    raw: QueryParams,
    allowed: &[&str],
) -> Result<HashMap<String, String>, ApiError> {
    let Query(pairs) = raw.map_err(|e| {
        ApiError::invalid(
            ErrorCode::InvalidQueryString,
            format!("bad query string: {e}"),
        )
    })?;
    let mut map = HashMap::new();
    for (k, v) in pairs {
        if !allowed.contains(&k.as_str()) {
            return Err(ApiError::invalid(
                ErrorCode::UnknownParameter,
                format!(
                    "unknown parameter {k:?}; this endpoint takes {}",
                    allowed.join(", ")
                ),
            ));
        }
        if map.insert(k.clone(), v).is_some() {
            return Err(ApiError::invalid(
                ErrorCode::RepeatedParameter,
                format!("parameter {k:?} is repeated"),
            ));
        }
    }
    Ok(map)
}
