//! How text is split into the words `q=` finds: one rule for what an append
//! indexes (`entries.search`) and what a search asks for.

/// Appends the words of `text` to `out`: runs of letters and digits,
/// lower-cased.
pub(crate) fn split(text: &str, out: &mut Vec<String>) {
    out.extend(
        text.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase),
    );
}
