//! Signatures over the 32 manifest-digest bytes: Ed25519 always, ML-DSA-65 (FIPS 204, pure,
//! context `rewarder.manifest.v1`) when post-quantum signatures are required. Keys come in as
//! seeds: the core stores none and draws no randomness (ML-DSA signs deterministically).

use ed25519_dalek::Signer as _;
use libcrux_ml_dsa::ml_dsa_65::{self, MLDSA65Signature, MLDSA65SigningKey, MLDSA65VerificationKey};

use crate::error::{Code, Error};

/// The ML-DSA context string (FIPS 204 §5.2).
pub const ML_DSA_CONTEXT: &[u8] = b"rewarder.manifest.v1";

/// Wire name of the Ed25519 algorithm.
pub const ED25519: &str = "ed25519";
/// Wire name of the ML-DSA-65 algorithm.
pub const ML_DSA_65: &str = "ml_dsa_65";

/// One signature with the public key that verifies it, both lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Hex of the standard public-key encoding.
    pub public_key: String,
    /// Hex of the standard signature encoding.
    pub signature: String,
}

/// The signatures of one manifest digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures {
    /// Ed25519 (RFC 8032).
    pub ed25519: Signature,
    /// ML-DSA-65, present when PQ is required.
    pub ml_dsa_65: Option<Signature>,
}

/// The signing keys of a node.
pub struct SigningKeys {
    ed: ed25519_dalek::SigningKey,
    ed_public_hex: String,
    pq: Option<(Box<MLDSA65SigningKey>, String)>,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("ed25519", &self.ed_public_hex)
            .field("ml_dsa_65", &self.pq.is_some())
            .finish_non_exhaustive()
    }
}

impl SigningKeys {
    /// Keys from 32-byte seeds: the Ed25519 secret key, and the ML-DSA-65 `ξ` when PQ is on.
    pub fn from_seeds(ed_seed: &[u8; 32], pq_seed: Option<&[u8; 32]>) -> Self {
        let ed = ed25519_dalek::SigningKey::from_bytes(ed_seed);
        let ed_public_hex = hex::encode(ed.verifying_key().to_bytes());
        let pq = pq_seed.map(|seed| {
            // FIPS 204 ML-DSA.KeyGen_internal(ξ = seed).
            let pair = ml_dsa_65::generate_key_pair(*seed);
            (Box::new(pair.signing_key), hex::encode(pair.verification_key.as_slice()))
        });
        SigningKeys { ed, ed_public_hex, pq }
    }

    /// Hex of the Ed25519 public key.
    pub fn ed25519_public_hex(&self) -> &str {
        &self.ed_public_hex
    }

    /// Hex of the ML-DSA-65 public key, when PQ is on.
    pub fn ml_dsa_65_public_hex(&self) -> Option<&str> {
        self.pq.as_ref().map(|(_, p)| p.as_str())
    }

    /// Signs a manifest digest with every key held.
    pub fn sign(&self, digest: &[u8; 32]) -> Signatures {
        let ed = Signature {
            public_key: self.ed_public_hex.clone(),
            signature: hex::encode(self.ed.sign(digest).to_bytes()),
        };
        let pq = self.pq.as_ref().map(|(key, public)| {
            // Deterministic signing is randomness of 32 zero bytes (FIPS 204 §3.4). The context
            // is 20 bytes, under the 255-byte bound, and the rejection loop gives up only after
            // 814 rounds (each passes with probability about 1/4: odds below 2^-300), so signing
            // does not fail.
            let sig = ml_dsa_65::sign(key, digest, ML_DSA_CONTEXT, [0; 32])
                .expect("ML-DSA-65 signing within its rejection bound");
            Signature { public_key: public.clone(), signature: hex::encode(sig.as_slice()) }
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
    fn signing_is_deterministic() {
        let keys = SigningKeys::from_seeds(&[1; 32], Some(&[2; 32]));
        assert_eq!(keys.sign(&[3; 32]), keys.sign(&[3; 32]));
    }
}
