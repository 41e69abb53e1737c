//! Host-name matching: exact names and `*.suffix` wildcards, in hash maps walked label by label.
//!
//! A lookup costs one hash probe for the exact name and one per dot in the name, whatever the
//! number of patterns stored. A wildcard `*.example.com` matches `a.example.com` and
//! `a.b.example.com`, never the bare `example.com`.

use super::lists::ValueLists;
use crossline_config::registry::HostPattern;
use foldhash::HashMap;

/// Longest host name handled (DNS limit); longer names never match.
pub const MAX_NAME: usize = 253;

/// Exact and wildcard host patterns, each carrying a sorted list of `u32` values.
#[derive(Debug, Clone, Default)]
pub struct HostMatcher {
    /// Name -> index into `lists`.
    exact: HashMap<Box<str>, u32>,
    suffix: HashMap<Box<str>, u32>,
    lists: ValueLists,
}

fn add(map: &mut HashMap<Box<str>, u32>, lists: &mut ValueLists, key: &str, value: u32) {
    let i = *map.entry(key.into()).or_insert_with(|| lists.push_list());
    lists.insert(i, value);
}

/// Lower-case `name` into `buf` and strip one trailing dot; `None` when it is empty, too long
/// or not plain ASCII.
pub fn normalise<'b>(name: &str, buf: &'b mut [u8; MAX_NAME]) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME || !name.is_ascii() {
        return None;
    }
    let out = &mut buf[..name.len()];
    out.copy_from_slice(name.as_bytes());
    out.make_ascii_lowercase();
    std::str::from_utf8(out).ok()
}

impl HostMatcher {
    /// Store `value` under a pattern.
    pub fn insert(&mut self, pattern: &HostPattern, value: u32) {
        match pattern {
            HostPattern::Exact(h) => add(&mut self.exact, &mut self.lists, h, value),
            HostPattern::Suffix(s) => add(&mut self.suffix, &mut self.lists, s, value),
        }
    }

    /// Pack the value lists into one array (better locality for lookups).
    pub fn freeze(&mut self) {
        self.lists.freeze();
    }

    fn values(&self, i: u32) -> &[u32] {
        self.lists.get(i)
    }

    /// Whether no pattern is stored.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.suffix.is_empty()
    }

    /// Call `f(exact, values)` for the exact entry and every wildcard that matches `name`
    /// (already lower case, see [`normalise`]).
    pub fn for_each_match(&self, name: &str, mut f: impl FnMut(bool, &[u32])) {
        if let Some(&v) = self.exact.get(name) {
            f(true, self.values(v));
        }
        if self.suffix.is_empty() {
            return;
        }
        // Each strict parent suffix: after every dot.
        for (i, b) in name.bytes().enumerate() {
            if b == b'.' {
                if let Some(rest) = name.get(i + 1..) {
                    if let Some(&v) = self.suffix.get(rest) {
                        f(false, self.values(v));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_and_wildcard_never_bare_parent() {
        let mut m = HostMatcher::default();
        m.insert(&HostPattern::Suffix("cro.example.de".into()), 1);
        m.insert(&HostPattern::Exact("api.partner.example".into()), 2);
        m.insert(&HostPattern::Exact("eu.cro.example.de".into()), 3);
        let hits = |n: &str| {
            let mut v = Vec::new();
            m.for_each_match(n, |e, s| v.push((e, s.to_vec())));
            v
        };
        assert_eq!(hits("cro.example.de"), vec![]);
        assert_eq!(hits("x.cro.example.de"), vec![(false, vec![1])]);
        assert_eq!(hits("a.b.cro.example.de"), vec![(false, vec![1])]);
        assert_eq!(
            hits("eu.cro.example.de"),
            vec![(true, vec![3]), (false, vec![1])]
        );
        assert_eq!(hits("api.partner.example"), vec![(true, vec![2])]);
        assert_eq!(hits("xapi.partner.example"), vec![]);
        assert_eq!(hits("evilcro.example.de"), vec![]);
    }

    #[test]
    fn normalise_names() {
        let mut buf = [0u8; MAX_NAME];
        assert_eq!(
            normalise("API.Partner.Example.", &mut buf),
            Some("api.partner.example")
        );
        assert_eq!(normalise("", &mut buf), None);
        let long = "a".repeat(300);
        assert_eq!(normalise(&long, &mut buf), None);
    }
}
