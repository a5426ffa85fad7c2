//! The dashboard (ADR-035): a static page embedded in the binary and served
//! under `/ui/`, which calls the public API with a key the person pastes.
//! Nothing here reads data; the page only sees what its key may see.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// One embedded file: its bytes, its media type and whether browsers may
/// keep it (the vendored library is pinned by version; the app's own files
/// are revalidated so an upgrade shows at once).
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    immutable: bool,
}

const INDEX: Asset = Asset {
    body: include_bytes!("../ui/index.html"),
    content_type: "text/html; charset=utf-8",
    immutable: false,
};
const APP_JS: Asset = Asset {
    body: include_bytes!("../ui/app.js"),
    content_type: "text/javascript; charset=utf-8",
    immutable: false,
};
const APP_CSS: Asset = Asset {
    body: include_bytes!("../ui/app.css"),
    content_type: "text/css; charset=utf-8",
    immutable: false,
};
const UPLOT_JS: Asset = Asset {
    body: include_bytes!("../ui/vendor/uplot/uPlot.iife.min.js"),
    content_type: "text/javascript; charset=utf-8",
    immutable: true,
};
const UPLOT_CSS: Asset = Asset {
    body: include_bytes!("../ui/vendor/uplot/uPlot.min.css"),
    content_type: "text/css; charset=utf-8",
    immutable: true,
};
const UPLOT_LICENSE: Asset = Asset {
    body: include_bytes!("../ui/vendor/uplot/LICENSE"),
    content_type: "text/plain; charset=utf-8",
    immutable: true,
};

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
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { serve(&INDEX) }))
        .route("/ui/app.js", get(|| async { serve(&APP_JS) }))
        .route("/ui/app.css", get(|| async { serve(&APP_CSS) }))
        .route(
            "/ui/vendor/uPlot.iife.min.js",
            get(|| async { serve(&UPLOT_JS) }),
        )
        .route(
            "/ui/vendor/uPlot.min.css",
            get(|| async { serve(&UPLOT_CSS) }),
        )
        .route(
            "/ui/vendor/uPlot.LICENSE",
            get(|| async { serve(&UPLOT_LICENSE) }),
        )
}
