//! The dashboard (ADR-035): a static page embedded in the binary and served
//! under `/ui/`, which calls the public API with a key the person pastes.
//! Nothing here reads data; the page only sees what its key may see.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: where it is served, its bytes, its media type and
/// whether browsers may keep it (the vendored library is pinned by version;
/// the app's own files are revalidated so an upgrade shows at once).
struct Asset {
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    immutable: bool,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

const fn asset(
    path: &'static str,
    body: &'static [u8],
    content_type: &'static str,
    immutable: bool,
) -> Asset {
    Asset {
        path,
        body,
        content_type,
        immutable,
    }
}

static ASSETS: [Asset; 6] = [
    asset("/ui/", include_bytes!("../../ui/index.html"), HTML, false),
    asset("/ui/app.js", include_bytes!("../../ui/app.js"), JS, false),
    asset(
        "/ui/app.css",
        include_bytes!("../../ui/app.css"),
        CSS,
        false,
    ),
    asset(
        "/ui/vendor/uPlot.iife.min.js",
        include_bytes!("../../ui/vendor/uplot/uPlot.iife.min.js"),
        JS,
        true,
    ),
    asset(
        "/ui/vendor/uPlot.min.css",
        include_bytes!("../../ui/vendor/uplot/uPlot.min.css"),
        CSS,
        true,
    ),
    asset(
        "/ui/vendor/uPlot.LICENSE",
        include_bytes!("../../ui/vendor/uplot/LICENSE"),
        TEXT,
        true,
    ),
];

/// Scripts and styles from this origin only, requests to this origin only,
/// and no framing: a pasted key can only go back to the server that served
/// the page. uPlot sizes its canvas through element styles, hence the
/// inline-style allowance (no inline script is allowed).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

fn serve(a: &'static Asset) -> Response {
    let cache = if a.immutable {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    (
        [
            (header::CONTENT_TYPE, a.content_type),
            (header::CACHE_CONTROL, cache),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        a.body,
    )
        .into_response()
}

/// `/` sends a person to the dashboard; `/ui/…` serves it.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let router = Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }));
    ASSETS.iter().fold(router, |r, a| {
        r.route(a.path, get(move || async move { serve(a) }))
    })
}
