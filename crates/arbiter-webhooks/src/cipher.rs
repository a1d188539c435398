//! Webhook secrets at rest: ChaCha20-Poly1305 under a 32-byte key kept in a file of its own
//! (mode 0600), apart from the database. Each stored secret is bound to its owner (a tenant or
//! an endpoint id) as associated data, so a row copied onto another owner does not decrypt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

const VERSION: &str = "v1.";
const NONCE_LEN: usize = 12;

/// Why a secret could not be sealed or opened, or the key file used.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// The key file could not be read or written.
    #[error("webhook secret key file {path}: {source}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The key file may be read by group or others.
    #[error(
        "webhook secret key file {path}: it may be read by group or others (mode {mode:o}); run `chmod 600` on it"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file does not hold a base64 32-byte key.
    #[error("webhook secret key file {0}: expected the base64 of 32 bytes")]
    BadKey(PathBuf),
    /// A stored secret is damaged, or was sealed under another key or for another owner.
    #[error("a stored webhook secret does not decrypt (another key file, or damaged)")]
    Open,
    /// The system gave no randomness.
    #[error("no randomness: {0}")]
    Random(String),
}

/// Seals and opens stored webhook secrets. Prints `[REDACTED]` in `Debug`.
#[derive(Clone)]
pub struct SecretCipher {
    aead: ChaCha20Poly1305,
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCipher([REDACTED])")
    }
}

impl SecretCipher {
    /// A cipher under a raw key.
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            aead: ChaCha20Poly1305::new(&Key::from(key)),
        }
    }

    /// The key in `path`, created (0600, atomically) when the file does not exist yet. A key
    /// file group or others may read is refused, as the audit signing key is.
    pub fn load_or_create(path: &Path) -> Result<Self, CipherError> {
        let io = |source| CipherError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        match Self::read_private(path) {
            Ok(text) => return Self::parse(path, &text),
            Err(CipherError::KeyFile { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|err| CipherError::Random(err.to_string()))?;
        // Write a private temporary file, then link it into place: a concurrent starter either
        // wins or reads the winner's key.
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&temp).map_err(io)?;
            writeln!(file, "{}", STANDARD.encode(key)).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let linked = std::fs::hard_link(&temp, path);
        std::fs::remove_file(&temp).ok();
        match linked {
            Ok(()) => Ok(Self::new(key)),
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = Self::read_private(path)?;
                Self::parse(path, &text)
            }
            Err(err) => Err(io(err)),
        }
    }

    /// Reads the key file, refusing it when group or others may read it (checked on the file
    /// opened, not on the name).
    fn read_private(path: &Path) -> Result<String, CipherError> {
        use std::io::Read as _;
        let io = |source| CipherError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata().map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(CipherError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let mut text = String::new();
        // A key is 45 bytes of text; more is not a key file.
        (&mut file)
            .take(4096)
            .read_to_string(&mut text)
            .map_err(io)?;
        Ok(text)
    }

    fn parse(path: &Path, text: &str) -> Result<Self, CipherError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| CipherError::BadKey(path.to_path_buf()))?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| CipherError::BadKey(path.to_path_buf()))?;
        Ok(Self::new(key))
    }

    /// Seals `plain` for `owner`: `v1.<base64(nonce || ciphertext)>`.
    pub fn seal(&self, owner: &str, plain: &str) -> Result<String, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|err| CipherError::Random(err.to_string()))?;
        let sealed = self
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{VERSION}{}", STANDARD.encode(out)))
    }

    /// Opens what [`SecretCipher::seal`] sealed for `owner`.
    pub fn open(&self, owner: &str, sealed: &str) -> Result<String, CipherError> {
        let bytes = sealed
            .strip_prefix(VERSION)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|bytes| bytes.len() > NONCE_LEN)
            .ok_or(CipherError::Open)?;
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| CipherError::Open)?;
        let plain = self
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Open)?;
        String::from_utf8(plain).map_err(|_| CipherError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_for_their_owner_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/webhook-secrets.key");
        let cipher = SecretCipher::load_or_create(&path).unwrap();
        let sealed = cipher.seal("acme", "whsec_abc").unwrap();
        assert!(sealed.starts_with("v1.") && !sealed.contains("whsec_abc"));
        assert_eq!(cipher.open("acme", &sealed).unwrap(), "whsec_abc");
        assert!(matches!(
            cipher.open("globex", &sealed),
            Err(CipherError::Open)
        ));
        // The same file gives the same key; another key cannot open it.
        let again = SecretCipher::load_or_create(&path).unwrap();
        assert_eq!(again.open("acme", &sealed).unwrap(), "whsec_abc");
        let other = SecretCipher::new([7; 32]);
        assert!(other.open("acme", &sealed).is_err());
        assert!(cipher.open("acme", "v1.AAAA").is_err());
        assert_eq!(format!("{cipher:?}"), "SecretCipher([REDACTED])");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook-secrets.key");
        SecretCipher::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "created private");
        assert!(SecretCipher::load_or_create(&path).is_ok());
        for loose in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
            let err = SecretCipher::load_or_create(&path).unwrap_err();
            assert!(
                matches!(err, CipherError::Permissions { mode, .. } if mode == loose),
                "{loose:o}: {err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn a_damaged_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not a key").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let err = SecretCipher::load_or_create(&path).unwrap_err();
        assert!(matches!(err, CipherError::BadKey(_)), "{err}");
        assert!(err.to_string().contains("bad.key"), "{err}");
    }
}
