//! GrowthBook namespaces: mutually exclusive experiments share a namespace id and take disjoint
//! slices of it.

use crate::hash::{fnv1a32_update, FNV32_OFFSET_BASIS};

/// A namespace slice: a unit is in it when `start <= hash < end`, where the hash is GrowthBook's
/// v1 hash of the unit id with seed `"__" + id`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Namespace id, shared by the experiments that must not overlap.
    pub id: String,
    /// `[start, end)` slice of the namespace, `0 <= start <= end <= 1`.
    pub range: (f64, f64),
}

/// The unit's position in namespace `id`: `hash("__" + id, unit_id, 1)`, computed without
/// building the concatenated string.
#[inline]
pub fn namespace_hash(unit_id: &str, id: &str) -> f64 {
    let h = fnv1a32_update(
        fnv1a32_update(fnv1a32_update(FNV32_OFFSET_BASIS, unit_id), "__"),
        id,
    );
    f64::from(h % 1000) / 1000.0
}

/// GrowthBook's `inNamespace(hashValue, [id, start, end])`.
#[inline]
pub fn in_namespace(unit_id: &str, id: &str, start: f64, end: f64) -> bool {
    let n = namespace_hash(unit_id, id);
    n >= start && n < end
}

impl Namespace {
    /// Whether `unit_id` falls in this namespace slice.
    #[inline]
    pub fn contains(&self, unit_id: &str) -> bool {
        in_namespace(unit_id, &self.id, self.range.0, self.range.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{hash, HashVersion};

    #[test]
    fn namespace_hash_is_v1_hash_with_prefixed_seed() {
        for (unit, id) in [("1", "namespace1"), ("é", "名前"), ("", "")] {
            let seed = format!("__{id}");
            assert_eq!(namespace_hash(unit, id), hash(&seed, unit, HashVersion::V1));
        }
    }
}
