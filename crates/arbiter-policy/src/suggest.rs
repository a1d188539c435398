//! "Did you mean ...?" for misspelt names.

/// ` (did you mean `X`?)` when one candidate is close to `word`, else an empty string.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> String {
    closest(word, candidates)
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// The candidate closest to `word` by edit distance, case-insensitively, when it is close
/// enough to be a likely typo: at most a third of the word's length, and at least 1.
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = word.to_lowercase();
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, counting characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        assert_eq!(edit_distance("HGH", "HIGH"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("HGH", ["LOW", "MEDIUM", "HIGH"]), Some("HIGH"));
        assert_eq!(closest("high", ["LOW", "MEDIUM", "HIGH"]), Some("HIGH"));
        assert_eq!(closest("XYZ", ["LOW", "MEDIUM", "HIGH"]), None);
        assert_eq!(
            did_you_mean(
                "verdict.confidance",
                ["verdict.confidence", "verdict.label"]
            ),
            " (did you mean `verdict.confidence`?)"
        );
        assert_eq!(did_you_mean("nothing", ["verdict.label"]), "");
    }
}
