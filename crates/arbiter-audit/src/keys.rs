//! The checkpoint signing key and the published verifier key (C2SP signed-note keys, Ed25519).
//!
//! The signing key file holds one line: the 32-byte Ed25519 secret key in lowercase hex (the
//! form RFC 8032 writes its test keys in). It is created with permissions 0600 and refused when
//! group or others may read it. The key is kept apart from webhook secrets and API keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer as _;
use sha2::{Digest, Sha256};
use std::fmt;
use std::path::{Path, PathBuf};

/// The signature algorithm byte of an Ed25519 key in a C2SP note.
const ALG_ED25519: u8 = 0x01;

/// Why a key could not be made, read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system's random source failed.
    #[error("cannot draw random bytes for a new key: {0}")]
    Random(String),
    /// The key file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The key file may be read by others.
    #[error(
        "{path}: the signing key file may be read by group or others (mode {mode:o}); run `chmod 600` on it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a key.
    #[error("{path}: not a signing key (expected one line of 64 hex digits)")]
    BadKeyFile {
        /// The file.
        path: PathBuf,
    },
    /// The log name cannot name a note signer.
    #[error("log name {0:?} is not usable: it must be non-empty, without spaces, `+` or newlines")]
    BadLogName(String),
    /// A verifier key string is malformed.
    #[error("verifier key is malformed: {0}")]
    BadVerifierKey(&'static str),
}

/// The Ed25519 key that signs checkpoints. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<Self, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|err| KeyError::Random(err.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The key with this 32-byte secret.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Reads a key file, refusing one that group or others may read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        let bad = || KeyError::BadKeyFile {
            path: path.to_path_buf(),
        };
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        Ok(Self::from_seed(seed))
    }

    /// Writes a new key file with permissions 0600; an existing file is never overwritten.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;
        let io = |source| KeyError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(io)?;
        let line = format!("{}\n", hex::encode(self.0.to_bytes()));
        file.write_all(line.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads the key file at `path`, or makes one there (mode 0600) when there is none; `true`
    /// when it was made. Two processes starting at once end up with the same key: the file
    /// appears complete or not at all.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load(path) {
            Err(KeyError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
            loaded => return loaded.map(|key| (key, false)),
        }
        let key = Self::generate()?;
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|err| KeyError::Random(err.to_string()))?;
        let mut staged = path.as_os_str().to_owned();
        staged.push(format!(".{}.tmp", hex::encode(suffix)));
        let staged = std::path::PathBuf::from(staged);
        key.write_new(&staged)?;
        let linked = std::fs::hard_link(&staged, path);
        std::fs::remove_file(&staged).ok();
        match linked {
            Ok(()) => Ok((key, true)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                Self::load(path).map(|key| (key, false))
            }
            Err(source) => Err(KeyError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.verifying_key().to_bytes()
    }
}

/// First 4 bytes of SHA-256(`name` || 0x0A || 0x01 || public key).
fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update([b'\n', ALG_ED25519]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn check_log_name(name: &str) -> Result<(), KeyError> {
    if name.is_empty() || name.contains(|c: char| c == '+' || c.is_whitespace() || c.is_control()) {
        return Err(KeyError::BadLogName(name.to_owned()));
    }
    Ok(())
}

/// A signing key bound to the log name it signs for.
#[derive(Debug, Clone)]
pub struct Signer {
    key: SigningKey,
    log_name: String,
    key_id: [u8; 4],
}

impl Signer {
    /// The signer of the log `log_name` (e.g. `audit.example.com/arbiter`).
    pub fn new(key: SigningKey, log_name: &str) -> Result<Self, KeyError> {
        check_log_name(log_name)?;
        let key_id = key_id(log_name, &key.public_key());
        Ok(Self {
            key,
            log_name: log_name.to_owned(),
            key_id,
        })
    }

    /// The log name.
    pub fn log_name(&self) -> &str {
        &self.log_name
    }

    /// The key anyone verifies this signer's checkpoints with.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.log_name.clone(),
            key_id: self.key_id,
            key: self.key.0.verifying_key(),
        }
    }

    /// A note signature line (`— <name> <base64(key id || signature)>\n`) over `body`.
    pub fn signature_line(&self, body: &str) -> String {
        let signature = self.key.0.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.key_id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("\u{2014} {} {}\n", self.log_name, BASE64.encode(blob))
    }
}

/// A published verifier key: `<name>+<hex key id>+<base64(0x01 || public key)>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    key_id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Parses a verifier key string (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(KeyError::BadVerifierKey("expected <name>+<key id>+<key>"));
        };
        check_log_name(name).map_err(|_| KeyError::BadVerifierKey("bad name"))?;
        let id: [u8; 4] = hex::decode(id)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(KeyError::BadVerifierKey("the key id is not 8 hex digits"))?;
        let key = BASE64
            .decode(key)
            .map_err(|_| KeyError::BadVerifierKey("the key is not base64"))?;
        let Some((&ALG_ED25519, public)) = key.split_first() else {
            return Err(KeyError::BadVerifierKey("not an Ed25519 key"));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| KeyError::BadVerifierKey("an Ed25519 public key has 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(KeyError::BadVerifierKey(
                "the key id does not match the name and key",
            ));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| KeyError::BadVerifierKey("not a valid Ed25519 point"))?;
        Ok(Self {
            name: name.to_owned(),
            key_id: id,
            key,
        })
    }

    /// The log name the key signs for.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `blob` (key id || signature, from a signature line) is this key's valid signature
    /// of `body`. `None` when the blob is for another key.
    pub fn check(&self, body: &[u8], blob: &[u8]) -> Option<bool> {
        let (id, signature) = blob.split_at_checked(4)?;
        if id != self.key_id {
            return None;
        }
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return Some(false);
        };
        Some(self.key.verify_strict(body, &signature).is_ok())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut key = vec![ALG_ED25519];
        key.extend_from_slice(self.key.as_bytes());
        write!(
            f,
            "{}+{}+{}",
            self.name,
            hex::encode(self.key_id),
            BASE64.encode(key)
        )
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The RFC 8032 test-1 secret key of the audit reference.
    pub(crate) fn reference_signer() -> Signer {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        Signer::new(SigningKey::from_seed(seed), "audit.example.com/arbiter").unwrap()
    }

    pub(crate) const REFERENCE_VKEY: &str =
        "audit.example.com/arbiter+d496a7ba+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea";

    #[test]
    fn load_or_create_makes_a_private_key_once_and_then_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let (made, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(created);
        let (read, created) = SigningKey::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(made.public_key(), read.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Only the key file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        std::fs::write(&path, "not a key\n").unwrap();
        assert!(matches!(
            SigningKey::load_or_create(&path),
            Err(KeyError::BadKeyFile { .. })
        ));
    }

    #[test]
    fn reproduces_the_reference_verifier_key() {
        let vkey = reference_signer().verifier_key();
        assert_eq!(vkey.to_string(), REFERENCE_VKEY);
        assert_eq!(VerifierKey::parse(REFERENCE_VKEY).unwrap(), vkey);
    }

    #[test]
    fn malformed_verifier_keys_are_refused() {
        for bad in [
            "",
            "audit.example.com/arbiter",
            "audit.example.com/arbiter+d496a7bb+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea",
            "other+d496a7ba+AddamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea",
            "audit.example.com/arbiter+d496a7ba+AtdamAGCsQq31Uv+08lkBzoO4XLz2qYjJa8CGmj3B1Ea",
            "audit.example.com/arbiter+d496a7ba+not base64",
        ] {
            assert!(VerifierKey::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let signer = reference_signer();
        let shown = format!("{signer:?}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(!shown.contains("9d61b1"), "{shown}");
        assert!(!shown.contains("157, 97"), "{shown}"); // nor its bytes (0x9d, 0x61)
    }

    #[test]
    fn log_names_that_cannot_sign_notes_are_refused() {
        for bad in ["", "a+b", "a b", "a\nb"] {
            assert!(
                Signer::new(SigningKey::from_seed([7; 32]), bad).is_err(),
                "{bad:?}"
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_written_0600_never_overwritten_and_refused_when_readable_by_others() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let key = SigningKey::generate().unwrap();
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            SigningKey::load(&path).unwrap().public_key(),
            key.public_key()
        );
        assert!(matches!(
            SigningKey::generate().unwrap().write_new(&path),
            Err(KeyError::Io { .. })
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SigningKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }
}
