//! Sorted lists of `u32` values (scenario indices) shared by the prefix and host matchers:
//! built one insert at a time while the registry compiles, then packed into one array so a
//! lookup reads a contiguous slice.

/// A set of sorted, duplicate-free `u32` lists addressed by index.
#[derive(Debug, Clone, Default)]
pub struct ValueLists {
    /// Lists while building.
    lists: Vec<Vec<u32>>,
    /// Per list: (start, len) in `flat`, after [`ValueLists::freeze`]; empty while building.
    ranges: Vec<(u32, u32)>,
    flat: Vec<u32>,
}

impl ValueLists {
    /// Number of lists.
    pub fn len(&self) -> usize {
        self.lists.len()
    }

    /// Whether there is no list.
    pub fn is_empty(&self) -> bool {
        self.lists.is_empty()
    }

    /// Start a new empty list and return its index.
    pub fn push_list(&mut self) -> u32 {
        self.ranges.clear();
        self.lists.push(Vec::new());
        (self.lists.len() - 1) as u32
    }

    /// Add `value` to list `i` (kept sorted, no duplicates). Unpacks until the next freeze.
    pub fn insert(&mut self, i: u32, value: u32) {
        self.ranges.clear();
        if let Some(list) = self.lists.get_mut(i as usize) {
            if let Err(pos) = list.binary_search(&value) {
                list.insert(pos, value);
            }
        }
    }

    /// Pack the lists into one array (better locality for lookups). Called after the last
    /// insert; inserting again is allowed and re-packs on the next freeze.
    pub fn freeze(&mut self) {
        self.flat.clear();
        self.ranges.clear();
        for l in &self.lists {
            self.ranges.push((self.flat.len() as u32, l.len() as u32));
            self.flat.extend_from_slice(l);
        }
    }

    /// The values of list `i` (empty for an unknown index).
    pub fn get(&self, i: u32) -> &[u32] {
        match self.ranges.get(i as usize) {
            Some(&(start, n)) => self
                .flat
                .get(start as usize..(start + n) as usize)
                .unwrap_or(&[]),
            None => self.lists.get(i as usize).map_or(&[], Vec::as_slice),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_deduplicated_and_same_after_freeze() {
        let mut v = ValueLists::default();
        let a = v.push_list();
        let b = v.push_list();
        for x in [5, 1, 5, 3] {
            v.insert(a, x);
        }
        v.insert(b, 9);
        assert_eq!(v.get(a), &[1, 3, 5]);
        v.freeze();
        assert_eq!(v.get(a), &[1, 3, 5]);
        assert_eq!(v.get(b), &[9]);
        assert_eq!(v.get(7), &[] as &[u32]);
        v.insert(b, 2);
        assert_eq!(v.get(b), &[2, 9]);
    }
}
