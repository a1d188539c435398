//! Random tokens (sessions, CSRF) and their digests.

use sha2::{Digest, Sha256};

/// 32 random bytes, hex: a session or CSRF token.
pub fn new() -> String {
    let mut bytes = [0u8; 32];
    // The operating system's generator does not fail on the platforms Arbiter runs on; a
    // failure here would be a broken machine, not bad input.
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    hex::encode(bytes)
}

/// SHA-256 of a token, hex: what the database keeps of a session token.
pub fn sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether two tokens are equal, compared in time that does not depend on where they differ.
pub fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_compared_whole() {
        let a = new();
        let b = new();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(equal(&a, &a.clone()));
        assert!(!equal(&a, &b));
        assert!(!equal(&a, &a[..63]));
        assert_eq!(
            sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
