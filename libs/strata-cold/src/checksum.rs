use uuid::Uuid;

/// An order-independent checksum over a set of event_ids: the wrapping sum
/// and the xor of a 64-bit mix of each id, with the count. Computed while a
/// chunk streams out of PostgreSQL and again over the written file; a
/// missing, extra or altered id changes it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IdChecksum {
    count: u64,
    sum: u64,
    xor: u64,
}

/// splitmix64's finaliser: a cheap, well-distributed 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl IdChecksum {
    pub fn add(&mut self, id: Uuid) {
        let (hi, lo) = id.as_u64_pair();
        let h = mix(hi ^ mix(lo));
        self.count += 1;
        self.sum = self.sum.wrapping_add(h);
        self.xor ^= h;
    }

    /// Combines the checksums of two disjoint sets.
    pub fn merge(&mut self, other: &IdChecksum) {
        self.count += other.count;
        self.sum = self.sum.wrapping_add(other.sum);
        self.xor ^= other.xor;
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// `count:sum:xor`, as stored in the manifest.
    pub fn to_hex(&self) -> String {
        format!("{}:{:016x}:{:016x}", self.count, self.sum, self.xor)
    }

    /// Reads [`IdChecksum::to_hex`]'s form back.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut parts = s.split(':');
        let count = parts.next()?.parse().ok()?;
        let sum = u64::from_str_radix(parts.next()?, 16).ok()?;
        let xor = u64::from_str_radix(parts.next()?, 16).ok()?;
        parts.next().is_none().then_some(Self { count, sum, xor })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_independent_and_sensitive_to_content() {
        let ids: Vec<Uuid> = (0..100u128).map(Uuid::from_u128).collect();
        let mut a = IdChecksum::default();
        ids.iter().for_each(|i| a.add(*i));
        let mut b = IdChecksum::default();
        ids.iter().rev().for_each(|i| b.add(*i));
        assert_eq!(a, b);
        assert_eq!(IdChecksum::from_hex(&a.to_hex()), Some(a));
        assert_eq!(IdChecksum::from_hex("1:2"), None);
        let mut c = IdChecksum::default();
        ids[1..].iter().for_each(|i| c.add(*i));
        c.add(ids[1]); // one missing, one duplicated: same count, other sum
        assert_eq!(c.count(), a.count());
        assert_ne!(a, c);
    }
}
