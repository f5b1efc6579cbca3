//! Where a node's signing keys come from: fresh random seeds per process (the default), or
//! `SIGNING_KEY_FILE` (one identity across restarts and nodes); and the retired public keys a
//! node still lists (`SIGNING_KEYS_RETIRED`).

use rewarder_core::{PublicKey, SigningKeys};

/// Fresh signing keys from the operating system's randomness; ML-DSA-65 too when `pq`.
pub fn fresh(pq: bool) -> std::io::Result<SigningKeys> {
    let mut ed = [0u8; 32];
    let mut ml = [0u8; 32];
    getrandom::fill(&mut ed).map_err(std::io::Error::other)?;
    getrandom::fill(&mut ml).map_err(std::io::Error::other)?;
    Ok(SigningKeys::from_seeds(&ed, pq.then_some(&ml)))
}

/// Keys from `SIGNING_KEY_FILE`. The file is text: the hex of a 32-byte Ed25519 seed and,
/// separated by whitespace (a space or a new line), optionally the hex of a 32-byte ML-DSA-65
/// seed (`ξ`). Lines starting with `#` are comments. With `pq`, the ML-DSA seed is required;
/// without, it is ignored.
pub fn from_file(path: &std::path::Path, pq: bool) -> Result<SigningKeys, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_seeds(&text, pq).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the text of a signing-key file (see [`from_file`]).
pub fn parse_seeds(text: &str, pq: bool) -> Result<SigningKeys, String> {
    let mut words = text.lines().filter(|l| !l.trim_start().starts_with('#')).flat_map(str::split_whitespace);
    let seed = |word: Option<&str>, what: &str| -> Result<Option<[u8; 32]>, String> {
        let Some(word) = word else { return Ok(None) };
        let mut seed = [0u8; 32];
        hex::decode_to_slice(word, &mut seed)
            .map_err(|_| format!("the {what} seed is not 64 hex characters"))?;
        Ok(Some(seed))
    };
    let ed = seed(words.next(), "Ed25519")?.ok_or("no Ed25519 seed (64 hex characters) in the file")?;
    let ml = seed(words.next(), "ML-DSA-65")?;
    if words.next().is_some() {
        return Err("more than two seeds in the file".into());
    }
    if pq && ml.is_none() {
        return Err("REQUIRE_PQ_ON=true needs an ML-DSA-65 seed as the second value".into());
    }
    Ok(SigningKeys::from_seeds(&ed, if pq { ml.as_ref() } else { None }))
}

/// Parses `SIGNING_KEYS_RETIRED`: public keys in hex (64 digits for Ed25519, 3904 for
/// ML-DSA-65), separated by commas or whitespace, each listed once.
pub fn parse_public_keys(text: &str) -> Result<Vec<PublicKey>, String> {
    let mut keys: Vec<PublicKey> = Vec::new();
    for (i, word) in text.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).enumerate()
    {
        let key = PublicKey::from_hex(word).map_err(|e| format!("key {}: {}", i + 1, e.message()))?;
        if keys.contains(&key) {
            return Err(format!("key {} ({}) is listed twice", i + 1, key.key_id()));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The node's keys with the retired ones listed beside them; refused when a retired key is
/// one the node signs with (the same key cannot be both).
pub fn with_retired(keys: SigningKeys, retired: &[PublicKey]) -> Result<SigningKeys, String> {
    let active = keys.published();
    if let Some(both) = retired.iter().find(|r| active.iter().any(|a| a.key == **r)) {
        return Err(format!("{} is the key this node signs with, not a retired one", both.key_id()));
    }
    Ok(keys.with_retired(retired.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const ML: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn seeds_parse_with_comments_and_either_separator() {
        let keys = parse_seeds(&format!("# node key\n{ED}\n{ML}\n"), true).unwrap();
        // RFC 8032 test 1: this seed's public key.
        assert_eq!(
            keys.ed25519_public_hex(),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert!(keys.ml_dsa_65_public_hex().is_some());
        let classic = parse_seeds(&format!("{ED} {ML}"), false).unwrap();
        assert!(classic.ml_dsa_65_public_hex().is_none());
    }

    #[test]
    fn retired_keys_parse_once_each_and_never_name_the_active_key() {
        let old = parse_seeds(ED, false).unwrap();
        let old_hex = old.ed25519_public_hex().to_owned();
        let new = parse_seeds(ML, false).unwrap();
        let keys = parse_public_keys(&format!(" {old_hex},\n")).unwrap();
        assert_eq!(keys.len(), 1);
        let listed = with_retired(new, &keys).unwrap().published();
        assert_eq!(listed[1].key.hex(), old_hex);
        assert!(with_retired(parse_seeds(ED, false).unwrap(), &keys).is_err(), "the active key as retired");
        assert!(parse_public_keys(&format!("{old_hex} {old_hex}")).is_err());
        assert!(parse_public_keys("abcd").is_err());
        assert_eq!(parse_public_keys("").unwrap(), []);
    }

    #[test]
    fn bad_files_are_refused() {
        assert!(parse_seeds("", false).is_err());
        assert!(parse_seeds("abcd", false).is_err());
        assert!(parse_seeds(ED, true).is_err(), "PQ without an ML-DSA seed");
        assert!(parse_seeds(&format!("{ED} {ML} {ML}"), true).is_err());
    }
}
