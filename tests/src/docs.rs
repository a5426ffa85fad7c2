//! The fenced code blocks of the repository's Markdown pages, for the tests
//! that run a page's examples as a reader would.

use std::path::Path;

/// One fenced block of a page.
#[derive(Debug, Clone)]
pub struct CodeBlock {
    /// `page:line` of the opening fence, for messages.
    pub place: String,
    /// The heading the block sits under.
    pub section: String,
    /// Its lines, without the fences.
    pub lines: Vec<String>,
}

/// The blocks of `page` (a path from the repository's root) fenced as
/// ```` ```lang ````. Every block is skipped whole, whatever its language,
/// so a `#` line inside one is never taken for a heading.
pub fn code_blocks(page: &str, lang: &str) -> Vec<CodeBlock> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(page);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(fence) = line.trim().strip_prefix("```") else {
            if line.starts_with('#') {
                section = line.trim_start_matches('#').trim().to_owned();
            }
            continue;
        };
        let body: Vec<String> = lines
            .by_ref()
            .map(|(_, l)| l)
            .take_while(|l| l.trim() != "```")
            .map(str::to_owned)
            .collect();
        if fence == lang {
            out.push(CodeBlock {
                place: format!("{page}:{}", n + 1),
                section: section.clone(),
                lines: body,
            });
        }
    }
    out
}

/// `block` with each `(from, to)` replaced; every `from` must be there, so
/// the page cannot drift from what is run.
pub fn substitute(block: &str, pairs: &[(&str, String)]) -> String {
    let mut out = block.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "the recipe no longer says {from:?}:\n{block}"
        );
        out = out.replace(from, to);
    }
    out
}
