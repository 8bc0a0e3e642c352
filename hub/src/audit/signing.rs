//! Ed25519 keys and signed checkpoints of the log's head.
//!
//! A checkpoint says "the log held `seq` entries and entry `seq` had chain
//! hash `head`", signed with the hub's audit key. Because each entry's hash
//! commits to every entry before it, one signature covers the whole log up
//! to `seq`: an auditor who kept the checkpoint (or its copy in JetStream)
//! and the public key can later show that entries were removed or
//! rewritten, without trusting the hub's disk.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::log::Hash;

/// What is signed, before the fields: so that a checkpoint's signature can
/// never be taken for a signature over anything else.
const DOMAIN: &[u8] = b"mdhub audit checkpoint v1\0";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("audit key file {path}: {error}")]
    File { path: String, error: std::io::Error },
    #[error("audit key file {path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("public key {0:?}: expected 64 hex digits of an Ed25519 public key")]
    PublicKey(String),
    #[error("generating an audit key: no randomness from the system: {0}")]
    Random(String),
}

/// The private key that signs checkpoints.
pub struct AuditKey {
    key: SigningKey,
}

impl AuditKey {
    /// A new key from the system's randomness.
    pub fn generate() -> Result<AuditKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(AuditKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Reads a key file written by `save`: the 32-byte secret in hex.
    pub fn load(path: &Path) -> Result<AuditKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|error| KeyError::File {
            path: path.display().to_string(),
            error,
        })?;
        let invalid = |reason: &str| KeyError::Invalid {
            path: path.display().to_string(),
            reason: reason.to_string(),
        };
        let bytes = hex::decode(text.trim())
            .map_err(|_| invalid("expected 64 hex digits (mdhub audit keygen writes it)"))?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| invalid("expected 64 hex digits (mdhub audit keygen writes it)"))?;
        Ok(AuditKey {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// Writes the secret to a new file only its owner may read. Refuses to
    /// overwrite a file: a lost key cannot sign again, but its old
    /// checkpoints stay verifiable with the public key.
    pub fn save(&self, path: &Path) -> Result<(), KeyError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file_error = |error| KeyError::File {
            path: path.display().to_string(),
            error,
        };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(file_error)?;
        writeln!(file, "{}", hex::encode(self.key.to_bytes())).map_err(file_error)?;
        file.sync_all().map_err(file_error)
    }

    /// The public key, in hex: what an auditor verifies with.
    pub fn public_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Signs "the log held `seq` entries, the last with hash `head`".
    pub fn sign(&self, seq: u64, head: &Hash, signed_at: OffsetDateTime) -> SignedCheckpoint {
        let signed_at = signed_at
            .to_offset(time::UtcOffset::UTC)
            .format(&Rfc3339)
            .expect("a UTC time formats as RFC 3339");
        let signature = self.key.sign(&message(seq, head, &signed_at));
        SignedCheckpoint {
            seq,
            head: hex::encode(head),
            signed_at,
            public_key: self.public_hex(),
            signature: hex::encode(signature.to_bytes()),
        }
    }
}

/// A public key given in hex (or read from a file holding it in hex).
pub fn public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bad = || KeyError::PublicKey(text.to_string());
    let bytes: [u8; 32] = hex::decode(text.trim())
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| bad())
}

/// A signed statement of the log's head. Kept as JSON, one per line, in
/// `checkpoints.jsonl` in the data dir, and published to JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedCheckpoint {
    /// The log held this many entries: the sequence of its last entry.
    pub seq: u64,
    /// The chain hash of entry `seq`, in hex.
    pub head: String,
    /// When it was signed (RFC 3339, UTC). Signed too.
    pub signed_at: String,
    /// The Ed25519 public key that signed it, in hex.
    pub public_key: String,
    /// The Ed25519 signature, in hex.
    pub signature: String,
}

impl SignedCheckpoint {
    /// The signed head hash.
    pub fn head_hash(&self) -> Result<Hash, String> {
        hex::decode(&self.head)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("head {:?} is not a hex SHA-256 hash", self.head))
    }

    /// Checks the signature with `key`, or with the key the checkpoint
    /// names when none is given (which shows only that it was not damaged:
    /// anyone can sign with a key of their own).
    pub fn check_signature(&self, key: Option<&VerifyingKey>) -> Result<(), String> {
        let named;
        let key = match key {
            Some(k) => {
                if hex::encode(k.to_bytes()) != self.public_key {
                    return Err(format!(
                        "signed with key {}, not with the key given",
                        self.public_key
                    ));
                }
                k
            }
            None => {
                named = public_key(&self.public_key).map_err(|e| e.to_string())?;
                &named
            }
        };
        let head = self.head_hash()?;
        let bytes: [u8; 64] = hex::decode(&self.signature)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or("the signature is not 128 hex digits")?;
        key.verify(
            &message(self.seq, &head, &self.signed_at),
            &Signature::from_bytes(&bytes),
        )
        .map_err(|_| "the signature does not verify".to_string())
    }
}

/// The bytes a checkpoint's signature covers.
fn message(seq: u64, head: &Hash, signed_at: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN.len() + 8 + 32 + signed_at.len());
    m.extend_from_slice(DOMAIN);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(signed_at.as_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2026-12-06 12:00 UTC)
    }

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_not_once_changed() {
        let key = AuditKey::generate().unwrap();
        let public = public_key(&key.public_hex()).unwrap();
        let c = key.sign(42, &[7; 32], at());
        assert_eq!(c.check_signature(Some(&public)), Ok(()));
        assert_eq!(c.check_signature(None), Ok(()));

        let mut moved = c.clone();
        moved.seq = 41;
        assert_eq!(
            moved.check_signature(Some(&public)).unwrap_err(),
            "the signature does not verify"
        );
        let mut rehashed = c.clone();
        rehashed.head = hex::encode([8u8; 32]);
        assert!(rehashed.check_signature(Some(&public)).is_err());
        let mut redated = c.clone();
        redated.signed_at = "2027-01-01T00:00:00Z".into();
        assert!(redated.check_signature(Some(&public)).is_err());
    }

    #[test]
    fn a_checkpoint_signed_by_another_key_is_refused() {
        let ours = AuditKey::generate().unwrap();
        let theirs = AuditKey::generate().unwrap();
        let c = theirs.sign(1, &[1; 32], at());
        let public = public_key(&ours.public_hex()).unwrap();
        assert!(c
            .check_signature(Some(&public))
            .unwrap_err()
            .contains("not with the key given"));
        // Claiming our key does not help: the signature is not ours.
        let mut claimed = c;
        claimed.public_key = ours.public_hex();
        assert_eq!(
            claimed.check_signature(Some(&public)).unwrap_err(),
            "the signature does not verify"
        );
    }

    #[test]
    fn a_saved_key_loads_as_the_same_key_and_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let key = AuditKey::generate().unwrap();
        key.save(&path).unwrap();
        assert_eq!(
            AuditKey::load(&path).unwrap().public_hex(),
            key.public_hex()
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "only the owner may read the key");
        assert!(AuditKey::generate().unwrap().save(&path).is_err());
        std::fs::write(&path, "not hex\n").unwrap();
        let e = AuditKey::load(&path).err().unwrap().to_string();
        assert!(
            e.contains("audit.key") && e.contains("64 hex digits"),
            "{e}"
        );
    }

    #[test]
    fn malformed_fields_are_named_not_panicked_on() {
        let key = AuditKey::generate().unwrap();
        let mut c = key.sign(3, &[3; 32], at());
        c.signature = "zz".into();
        assert!(c.check_signature(None).unwrap_err().contains("128 hex"));
        c.head = "short".into();
        assert!(c.check_signature(None).unwrap_err().contains("head"));
        assert!(public_key("abc").is_err());
    }
}
