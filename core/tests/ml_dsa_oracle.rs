//! core signs and verifies ML-DSA-65 with libcrux-ml-dsa (docs/adr/0004); the RustCrypto
//! `ml-dsa` crate is an independent implementation of the same FIPS 204 algorithms. The two
//! must agree byte for byte on keys and deterministic signatures, and each must accept the
//! other's signatures, or a verifier using either would reject our manifests.

use ml_dsa::{ExpandedSigningKey, MlDsa65, Signature as OracleSignature, VerifyingKey};
use rewarder_core::SigningKeys;
use rewarder_core::sign::{self, ML_DSA_65, ML_DSA_CONTEXT};

fn digest(i: u32) -> [u8; 32] {
    *blake3::hash(&i.to_le_bytes()).as_bytes()
}

#[test]
fn keys_and_signatures_equal_the_oracle() {
    for seed in [[0u8; 32], [9; 32], *blake3::hash(b"seed").as_bytes()] {
        let ours = SigningKeys::from_seeds(&[1; 32], Some(&seed));
        let oracle = ExpandedSigningKey::<MlDsa65>::from_seed(&ml_dsa::Seed::from(seed));
        let public = hex::encode(oracle.verifying_key().encode());
        assert_eq!(ours.ml_dsa_65_public_hex(), Some(public.as_str()));
        // Enough digests that the signer's rejection loop runs from one round to many.
        for i in 0..32 {
            let d = digest(i);
            let sig = ours.sign(&d).ml_dsa_65.expect("PQ keys sign with ML-DSA-65");
            let expected = oracle.sign_deterministic(&d, ML_DSA_CONTEXT).unwrap();
            assert_eq!(sig.signature, hex::encode(expected.encode()), "seed {seed:?}, digest {i}");
        }
    }
}

#[test]
fn each_accepts_the_others_signatures_and_rejects_a_flipped_bit() {
    let seed = [5u8; 32];
    let ours = SigningKeys::from_seeds(&[1; 32], Some(&seed));
    let public = ours.ml_dsa_65_public_hex().unwrap().to_owned();
    let oracle = ExpandedSigningKey::<MlDsa65>::from_seed(&ml_dsa::Seed::from(seed));
    let oracle_vk = VerifyingKey::<MlDsa65>::decode(&oracle.verifying_key().encode());
    for i in 0..8 {
        let d = digest(i);
        let from_oracle = hex::encode(oracle.sign_deterministic(&d, ML_DSA_CONTEXT).unwrap().encode());
        assert!(sign::verify(ML_DSA_65, &public, &d, &from_oracle).unwrap());
        let ours_hex = ours.sign(&d).ml_dsa_65.unwrap().signature;
        let ours_bytes = hex::decode(&ours_hex).unwrap();
        let decoded = OracleSignature::<MlDsa65>::decode(ours_bytes.as_slice().try_into().unwrap()).unwrap();
        assert!(oracle_vk.verify_with_context(&d, ML_DSA_CONTEXT, &decoded));
        let mut flipped = ours_bytes.clone();
        flipped[i as usize * 97] ^= 1;
        assert!(!sign::verify(ML_DSA_65, &public, &d, &hex::encode(flipped)).unwrap());
        let mut other = d;
        other[0] ^= 0x80;
        assert!(!sign::verify(ML_DSA_65, &public, &other, &ours_hex).unwrap());
    }
}
