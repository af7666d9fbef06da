//! GrowthBook-compatible hashing: FNV-1a 32-bit over UTF-16 code units.
//!
//! GrowthBook's JavaScript SDK hashes `str.charCodeAt(i)` for every index, i.e. UTF-16 code
//! units (astral characters such as emoji contribute two surrogate units), and XORs the *whole*
//! 16-bit unit into the state (`hval ^= code`, no `& 0xff` mask). Its multiply is written as
//! `hval += (hval << 1) + (hval << 4) + (hval << 7) + (hval << 8) + (hval << 24)`, which is
//! `hval * 0x01000193 mod 2^32`, the standard FNV-1a prime. These functions do the same without
//! allocating: the concatenations the SDK builds (`seed + value`, …) are hashed piecewise.

use std::fmt;

/// FNV-1a 32-bit offset basis.
pub const FNV32_OFFSET_BASIS: u32 = 0x811c_9dc5;
/// FNV-1a 32-bit prime.
pub const FNV32_PRIME: u32 = 0x0100_0193;

/// Continues an FNV-1a hash over the UTF-16 code units of `s`.
#[inline]
pub fn fnv1a32_update(mut state: u32, s: &str) -> u32 {
    if s.is_ascii() {
        // ASCII bytes are exactly the UTF-16 code units.
        for &b in s.as_bytes() {
            state = (state ^ u32::from(b)).wrapping_mul(FNV32_PRIME);
        }
    } else {
        for unit in s.encode_utf16() {
            state = (state ^ u32::from(unit)).wrapping_mul(FNV32_PRIME);
        }
    }
    state
}

/// FNV-1a 32-bit hash of a string's UTF-16 code units (GrowthBook's `hashFnv32a`).
#[inline]
pub fn fnv1a32(s: &str) -> u32 {
    fnv1a32_update(FNV32_OFFSET_BASIS, s)
}

/// FNV-1a 32-bit hash of the decimal representation of `n` (what `hashFnv32a(n + "")` does),
/// without formatting into a `String`.
#[inline]
fn fnv1a32_decimal(mut n: u32) -> u32 {
    let mut digits = [0u8; 10];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut state = FNV32_OFFSET_BASIS;
    for &d in &digits[i..] {
        state = (state ^ u32::from(d)).wrapping_mul(FNV32_PRIME);
    }
    state
}

/// GrowthBook hashing algorithm version.
///
/// `V1` is the SDK's original (biased) algorithm and its default when an experiment gives none;
/// `V2` is the unbiased one GrowthBook uses for new experiments.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum HashVersion {
    /// `(fnv(value + seed) % 1000) / 1000`
    #[default]
    V1,
    /// `(fnv(str(fnv(seed + value))) % 10000) / 10000`
    V2,
}

/// A hash version other than 1 or 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown hash version {0}: use 1 (GrowthBook's original) or 2 (unbiased, recommended)")]
pub struct UnknownHashVersion(pub i64);

impl TryFrom<u8> for HashVersion {
    type Error = UnknownHashVersion;
    fn try_from(v: u8) -> Result<Self, Self::Error> {
        Self::try_from(i64::from(v))
    }
}

impl TryFrom<i64> for HashVersion {
    type Error = UnknownHashVersion;
    fn try_from(v: i64) -> Result<Self, Self::Error> {
        match v {
            1 => Ok(Self::V1),
            2 => Ok(Self::V2),
            other => Err(UnknownHashVersion(other)),
        }
    }
}

impl From<HashVersion> for u8 {
    fn from(v: HashVersion) -> u8 {
        match v {
            HashVersion::V1 => 1,
            HashVersion::V2 => 2,
        }
    }
}

impl fmt::Display for HashVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u8::from(*self))
    }
}

/// GrowthBook's `hash(seed, value, version)`: a number in `[0, 1)` that places `value` on the
/// bucketing line of the experiment identified by `seed`.
#[inline]
pub fn hash(seed: &str, value: &str, version: HashVersion) -> f64 {
    match version {
        HashVersion::V1 => {
            let h = fnv1a32_update(fnv1a32_update(FNV32_OFFSET_BASIS, value), seed);
            f64::from(h % 1000) / 1000.0
        }
        HashVersion::V2 => hash_v2_after_seed(fnv1a32(seed), value),
    }
}

/// [`hash`] for version 2 when the FNV state after the seed, `fnv1a32(seed)`, is already known
/// (v2 hashes `seed + value`, so an experiment can hash its seed once).
#[inline]
pub fn hash_v2_after_seed(seed_state: u32, value: &str) -> f64 {
    f64::from(fnv1a32_decimal(fnv1a32_update(seed_state, value)) % 10000) / 10000.0
}

/// Like [`hash`] but with the version as a plain number, as in the SDK: `None` for a version
/// other than 1 or 2 (the SDK returns `null`).
pub fn hash_any_version(seed: &str, value: &str, version: i64) -> Option<f64> {
    HashVersion::try_from(version)
        .ok()
        .map(|v| hash(seed, value, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: build the concatenated strings like the SDK does.
    fn reference(seed: &str, value: &str, version: HashVersion) -> f64 {
        let fnv = |s: &str| {
            s.encode_utf16().fold(FNV32_OFFSET_BASIS, |h, u| {
                (h ^ u32::from(u)).wrapping_mul(FNV32_PRIME)
            })
        };
        match version {
            HashVersion::V1 => f64::from(fnv(&format!("{value}{seed}")) % 1000) / 1000.0,
            HashVersion::V2 => {
                f64::from(fnv(&fnv(&format!("{seed}{value}")).to_string()) % 10000) / 10000.0
            }
        }
    }

    #[test]
    fn piecewise_hash_equals_hash_of_concatenation() {
        let strs = ["", "a", "seed", "é", "日本", "😀x", "\u{100}", "0123456789"];
        for s in strs {
            for v in strs {
                for ver in [HashVersion::V1, HashVersion::V2] {
                    assert_eq!(hash(s, v, ver), reference(s, v, ver), "{s:?} {v:?} {ver}");
                }
            }
        }
    }

    #[test]
    fn decimal_hash_matches_formatted() {
        for n in [0u32, 1, 9, 10, 4_294_967_295, 1_000_000_000, 123_456] {
            assert_eq!(fnv1a32_decimal(n), fnv1a32(&n.to_string()));
        }
    }

    #[test]
    fn code_units_above_255_are_not_masked() {
        // U+0100 and U+0000 would collide if the unit were masked to 8 bits.
        assert_ne!(fnv1a32("\u{100}"), fnv1a32("\u{0}"));
        // Astral characters hash as their two surrogates.
        assert_eq!(fnv1a32("😀"), fnv1a32_units(&[0xD83D, 0xDE00]));
    }

    fn fnv1a32_units(units: &[u16]) -> u32 {
        units.iter().fold(FNV32_OFFSET_BASIS, |h, &u| {
            (h ^ u32::from(u)).wrapping_mul(FNV32_PRIME)
        })
    }

    #[test]
    fn unknown_versions_are_rejected() {
        assert_eq!(hash_any_version("a", "b", 3), None);
        assert!(HashVersion::try_from(0u8).is_err());
        assert_eq!(HashVersion::try_from(2u8), Ok(HashVersion::V2));
    }
}
