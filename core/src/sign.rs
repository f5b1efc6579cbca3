//! Signatures over the 32 manifest-digest bytes: Ed25519 always, ML-DSA-65 (FIPS 204, pure,
//! context `rewarder.manifest.v1`) when post-quantum signatures are required; public keys and
//! their key ids (CALCULUS.md §4.6). Keys come in as seeds: the core stores none and draws no
//! randomness (ML-DSA signs deterministically).

use ed25519_dalek::Signer as _;
use libcrux_ml_dsa::ml_dsa_65::{self, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey};

use crate::error::{Code, Error};

/// The ML-DSA context string (FIPS 204 §5.2).
pub const ML_DSA_CONTEXT: &[u8] = b"rewarder.manifest.v1";

/// Wire name of the Ed25519 algorithm.
pub const ED25519: &str = "ed25519";
/// Wire name of the ML-DSA-65 algorithm.
pub const ML_DSA_65: &str = "ml_dsa_65";

/// Bytes of an Ed25519 public key.
pub const ED25519_PUBLIC_KEY_BYTES: usize = 32;
/// Bytes of an ML-DSA-65 public key.
pub const ML_DSA_65_PUBLIC_KEY_BYTES: usize = 1952;
/// Hex digits of a key id: the first 8 bytes of BLAKE3 of the public key.
pub const KEY_ID_HEX_DIGITS: usize = 16;

/// The key id of a public key (CALCULUS.md §4.6): the first 16 lowercase hex digits of
/// BLAKE3 of the key's standard encoding (32 bytes for Ed25519, 1952 for ML-DSA-65). It names
/// a key; trust is decided on the whole key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&blake3::hash(public_key).as_bytes()[..KEY_ID_HEX_DIGITS / 2])
}

/// One signature with the public key that verifies it (lowercase hex) and that key's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Hex of the standard public-key encoding.
    pub public_key: String,
    /// Hex of the standard signature encoding.
    pub signature: String,
    /// [`key_id`] of the public key.
    pub key_id: String,
}

/// A public key of one of the two algorithms, as a verifier trusts it or a node lists it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PublicKey {
    algorithm: &'static str,
    bytes: Vec<u8>,
}

impl PublicKey {
    /// A key from hex (either case); the length names the algorithm: 64 hex digits are an
    /// Ed25519 key, 3904 an ML-DSA-65 key. Anything else is `bad_request`.
    pub fn from_hex(text: &str) -> Result<PublicKey, Error> {
        let bytes = hex::decode(text).map_err(|_| invalid("public key"))?;
        let algorithm = match bytes.len() {
            ED25519_PUBLIC_KEY_BYTES => ED25519,
            ML_DSA_65_PUBLIC_KEY_BYTES => ML_DSA_65,
            n => {
                return Err(Error::new(
                    Code::BadRequest,
                    format!(
                        "a public key of {n} bytes is neither Ed25519 ({ED25519_PUBLIC_KEY_BYTES}) \
                         nor ML-DSA-65 ({ML_DSA_65_PUBLIC_KEY_BYTES})"
                    ),
                ));
            }
        };
        Ok(PublicKey { algorithm, bytes })
    }

    /// [`ED25519`] or [`ML_DSA_65`].
    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    /// Lowercase hex of the key.
    pub fn hex(&self) -> String {
        hex::encode(&self.bytes)
    }

    /// The key's [`key_id`].
    pub fn key_id(&self) -> String {
        key_id(&self.bytes)
    }
}

/// Whether a listed key signs now or only verifies what it signed before (`GET /rewarder/keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// The node signs with it.
    Active,
    /// The node no longer signs with it; it is listed so that results it signed can be checked.
    Retired,
}

impl KeyStatus {
    /// The wire name: `active` or `retired`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
        }
    }
}

/// One entry of a node's published keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedKey {
    /// The key.
    pub key: PublicKey,
    /// Whether the node signs with it.
    pub status: KeyStatus,
}

/// The signatures of one manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// Ed25519 (RFC 8032).
    pub ed25519: Signature,
    /// ML-DSA-65, present when PQ is required.
    pub ml_dsa_65: Option<Signature>,
}

/// The signing keys of a node, and the public keys it retired but still lists.
pub struct SigningKeys {
    ed: ed25519_dalek::SigningKey,
    ed_public: PublicKey,
    ed_public_hex: String,
    pq: Option<(Box<MLDSA65SigningKey>, PublicKey, String)>,
    retired: Vec<PublicKey>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("ed25519", &self.ed_public_hex)
            .field("ml_dsa_65", &self.pq.is_some())
            .field("retired", &self.retired.len())
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Keys from 32-byte seeds: the Ed25519 secret key, and the ML-DSA-65 `ξ` when PQ is on.
    pub fn from_seeds(ed_seed: &[u8; 32], pq_seed: Option<&[u8; 32]>) -> Self {
        let ed = ed25519_dalek::SigningKey::from_bytes(ed_seed);
        let ed_public = PublicKey { algorithm: ED25519, bytes: ed.verifying_key().to_bytes().to_vec() };
        let ed_public_hex = ed_public.hex();
        let pq = pq_seed.map(|seed| {
            // FIPS 204 ML-DSA.KeyGen_internal(ξ = seed).
            let pair = ml_dsa_65::generate_key_pair(*seed);
            let public = PublicKey { algorithm: ML_DSA_65, bytes: pair.verification_key.as_slice().to_vec() };
            let hex = public.hex();
            (Box::new(pair.signing_key), public, hex)
        });
        SigningKeys { ed, ed_public, ed_public_hex, pq, retired: Vec::new() }
    }

    /// The same keys, also listing `retired` public keys (`SIGNING_KEYS_RETIRED`): keys the
    /// node signed with before a rotation, published as [`KeyStatus::Retired`] so that the
    /// results they signed can still be checked. Each is listed once; the caller leaves out
    /// the keys it signs with.
    pub fn with_retired(mut self, retired: Vec<PublicKey>) -> Self {
        self.retired = retired;
        self
    }

    /// Every key the node lists (`GET /rewarder/keys`): the active Ed25519 key, the active
    /// ML-DSA-65 key when PQ is on, then the retired keys in the order given.
    pub fn published(&self) -> Vec<PublishedKey> {
        let active = std::iter::once(&self.ed_public).chain(self.pq.as_ref().map(|(_, public, _)| public));
        active
            .map(|key| PublishedKey { key: key.clone(), status: KeyStatus::Active })
            .chain(
                self.retired.iter().map(|key| PublishedKey { key: key.clone(), status: KeyStatus::Retired }),
            )
            .collect()
    }

    /// Hex of the Ed25519 public key.
    pub fn ed25519_public_hex(&self) -> &str {
        &self.ed_public_hex
    }

    /// Hex of the ML-DSA-65 public key, when PQ is on.
    pub fn ml_dsa_65_public_hex(&self) -> Option<&str> {
        self.pq.as_ref().map(|(_, _, hex)| hex.as_str())
    }

    /// Signs a manifest digest with every key held.
    pub fn sign(&self, digest: &[u8; 32]) -> Signatures {
        let ed = Signature {
            public_key: self.ed_public_hex.clone(),
            signature: hex::encode(self.ed.sign(digest).to_bytes()),
            key_id: self.ed_public.key_id(),
        };
        let pq = self.pq.as_ref().map(|(key, public, public_hex)| {
            // Deterministic signing is randomness of 32 zero bytes (FIPS 204 §3.4). The context
            // is 20 bytes, under the 255-byte bound, and the rejection loop gives up only after
            // 814 rounds (each passes with probability about 1/4: odds below 2^-300), so signing
            // does not fail.
            let sig = ml_dsa_65::sign(key, digest, ML_DSA_CONTEXT, [0; 32])
                .expect("ML-DSA-65 signing within its rejection bound");
            Signature {
                public_key: public_hex.clone(),
                signature: hex::encode(sig.as_slice()),
                key_id: public.key_id(),
            }
        });
        Signatures { ed25519: ed, ml_dsa_65: pq }
    }
}

fn invalid(what: &str) -> Error {
    Error::new(Code::BadRequest, format!("{what} is not valid hex of the right length"))
}

fn decode_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], Error> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| invalid(what))?;
    Ok(out)
}

/// Verifies a signature over a digest. A wrong signature is `Ok(false)`; malformed hex, a
/// wrong length or an unknown algorithm is an error.
pub fn verify(
    algorithm: &str,
    public_key_hex: &str,
    digest: &[u8; 32],
    signature_hex: &str,
) -> Result<bool, Error> {
    match algorithm {
        ED25519 => {
            let pk: [u8; 32] = decode_hex(public_key_hex, "public key")?;
            let sig: [u8; 64] = decode_hex(signature_hex, "signature")?;
            let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(&pk) else {
                return Ok(false);
            };
            let sig = ed25519_dalek::Signature::from_bytes(&sig);
            Ok(vk.verify_strict(digest, &sig).is_ok())
        }
        ML_DSA_65 => {
            let pk = MLDSA65VerificationKey::new(decode_hex(public_key_hex, "public key")?);
            let sig = MLDSA65Signature::new(decode_hex(signature_hex, "signature")?);
            Ok(ml_dsa_65::verify(&pk, digest, ML_DSA_CONTEXT, &sig).is_ok())
        }
        other => Err(Error::new(Code::BadRequest, format!("unknown signature algorithm {other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_signatures_verify_and_fail_after_a_flipped_bit() {
        let keys = SigningKeys::from_seeds(&[7; 32], Some(&[9; 32]));
        let digest = [42u8; 32];
        let sigs = keys.sign(&digest);
        let pq = sigs.ml_dsa_65.clone().unwrap();
        assert_eq!(pq.public_key.len(), 2 * 1952);
        assert_eq!(pq.signature.len(), 2 * 3309);
        assert!(verify(ED25519, &sigs.ed25519.public_key, &digest, &sigs.ed25519.signature).unwrap());
        assert!(verify(ML_DSA_65, &pq.public_key, &digest, &pq.signature).unwrap());
        let mut other = digest;
        other[31] ^= 1;
        assert!(!verify(ED25519, &sigs.ed25519.public_key, &other, &sigs.ed25519.signature).unwrap());
        assert!(!verify(ML_DSA_65, &pq.public_key, &other, &pq.signature).unwrap());
    }

    #[test]
    fn malformed_hex_is_an_error_not_false() {
        assert!(verify(ED25519, "zz", &[0; 32], "00").is_err());
        assert!(verify("rsa", "00", &[0; 32], "00").is_err());
    }

    #[test]
    fn key_ids_are_16_hex_of_blake3_of_the_key_bytes() {
        let keys = SigningKeys::from_seeds(&[7; 32], Some(&[9; 32]));
        let sigs = keys.sign(&[0; 32]);
        let ed = hex::decode(&sigs.ed25519.public_key).unwrap();
        assert_eq!(sigs.ed25519.key_id, hex::encode(&blake3::hash(&ed).as_bytes()[..8]));
        assert_eq!(sigs.ed25519.key_id.len(), KEY_ID_HEX_DIGITS);
        let pq = sigs.ml_dsa_65.unwrap();
        assert_eq!(pq.key_id, PublicKey::from_hex(&pq.public_key).unwrap().key_id());
        // RFC 8032 test 1's public key, pinned so that another implementation can check its ids.
        let rfc =
            PublicKey::from_hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a").unwrap();
        assert_eq!(rfc.algorithm(), ED25519);
        assert_eq!(rfc.key_id(), "6c31041268f47160", "CALCULUS.md §4.6's example");
    }

    #[test]
    fn public_keys_name_their_algorithm_by_length() {
        assert_eq!(PublicKey::from_hex(&"AB".repeat(32)).unwrap().algorithm(), ED25519);
        assert_eq!(PublicKey::from_hex(&"ab".repeat(1952)).unwrap().algorithm(), ML_DSA_65);
        for bad in ["", "zz", &"ab".repeat(31), &"ab".repeat(33)] {
            assert_eq!(PublicKey::from_hex(bad).unwrap_err().code(), Code::BadRequest, "{bad:?}");
        }
    }

    #[test]
    fn published_keys_list_the_active_then_the_retired() {
        let old = SigningKeys::from_seeds(&[1; 32], None).published().remove(0).key;
        let keys = SigningKeys::from_seeds(&[7; 32], Some(&[9; 32])).with_retired(vec![old.clone()]);
        let listed: Vec<(&str, KeyStatus)> =
            keys.published().iter().map(|p| (p.key.algorithm(), p.status)).collect();
        assert_eq!(
            listed,
            [(ED25519, KeyStatus::Active), (ML_DSA_65, KeyStatus::Active), (ED25519, KeyStatus::Retired)]
        );
        assert_eq!(keys.published()[0].key.hex(), keys.ed25519_public_hex());
        assert_eq!(keys.published()[2].key, old);
    }

    #[test]
    fn signing_is_deterministic() {
        let keys = SigningKeys::from_seeds(&[1; 32], Some(&[2; 32]));
        assert_eq!(keys.sign(&[3; 32]), keys.sign(&[3; 32]));
    }
}
