//! Rewrites the README's results table, between the markers
//! `<!-- bench:start -->` and `<!-- bench:end -->` (kept).

use std::path::Path;

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

/// Replaces the text between the markers of `path` with `body`.
pub(crate) fn update(path: &Path, body: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(s), Some(e)) = (text.find(START), text.find(END)) else {
        return Err(format!(
            "{} has no {START} ... {END} markers",
            path.display()
        ));
    };
    if e < s {
        return Err(format!("{END} comes before {START}"));
    }
    let new = format!("{}{START}\n{body}{}", &text[..s], &text[e..]);
    std::fs::write(path, new).map_err(|e| format!("{}: {e}", path.display()))
}
