//! Content signatures: literal byte patterns (negative-list categories, important-data
//! catalogue markers) searched in cleartext export payload.
//!
//! One pass over the payload: a 256-entry table gives, for each byte value, the set of patterns
//! starting with it (a 64-bit mask), and only those are compared at that position. At most 64
//! signatures are active (the rest are ignored with a warning at start-up). Patterns are matched
//! inside one packet; a pattern split across two packets is not found.

use crossline_config::agent::Signature;

/// Most signatures handled.
pub const MAX_SIGNATURES: usize = 64;

/// Compiled signature set.
#[derive(Debug, Clone)]
pub struct SignatureSet {
    sigs: Vec<Signature>,
    first: Box<[u64; 256]>,
}

impl SignatureSet {
    /// Compile; empty patterns are skipped.
    pub fn new(sigs: &[Signature]) -> SignatureSet {
        if sigs.len() > MAX_SIGNATURES {
            eprintln!(
                "crossline: {} signatures configured; only the first {MAX_SIGNATURES} are used",
                sigs.len()
            );
        }
        let sigs: Vec<Signature> = sigs.iter().take(MAX_SIGNATURES).cloned().collect();
        let mut first = Box::new([0u64; 256]);
        for (i, s) in sigs.iter().enumerate() {
            if let Some(&b) = s.pattern.first() {
                first[b as usize] |= 1 << i;
            }
        }
        SignatureSet { sigs, first }
    }

    /// Whether there is nothing to search for.
    pub fn is_empty(&self) -> bool {
        self.sigs.is_empty()
    }

    /// Signature by index.
    pub fn get(&self, index: usize) -> Option<&Signature> {
        self.sigs.get(index)
    }

    /// Set bit `i` of `hits` for every signature `i` found in `data`.
    pub fn scan(&self, data: &[u8], hits: &mut u64) {
        if self.sigs.is_empty() {
            return;
        }
        for (pos, &b) in data.iter().enumerate() {
            let mut cands = self.first[b as usize] & !*hits;
            while cands != 0 {
                let i = cands.trailing_zeros() as usize;
                cands &= cands - 1;
                if data[pos..].starts_with(&self.sigs[i].pattern) {
                    *hits |= 1 << i;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossline_config::agent::SignatureKind;

    #[test]
    fn finds_patterns() {
        let sig = |id: &str, p: &str| Signature {
            id: id.into(),
            kind: SignatureKind::ImportantData,
            pattern: p.as_bytes().to_vec(),
            category: "c".into(),
            approved_scenarios: vec![],
        };
        let set =
            SignatureSet::new(&[sig("a", "GENOME-SEQ"), sig("b", "GEO-SURVEY"), sig("c", "")]);
        let mut hits = 0;
        set.scan(b"xx GENOME-SE", &mut hits);
        assert_eq!(hits, 0);
        set.scan(b"header GEO-SURVEY; GENOME-SEQ", &mut hits);
        assert_eq!(hits, 0b11);
    }
}
