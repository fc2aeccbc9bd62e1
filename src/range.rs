//! Port ranges: the one place that does arithmetic on port numbers (parity, areas, overlap).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which ports of a range are used: every one, or only the even or the odd ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    Even,
    Odd,
}

impl Parity {
    pub fn of(port: u16) -> Parity {
        if port % 2 == 0 {
            Parity::Even
        } else {
            Parity::Odd
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

/// Why a range cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("port {0} is outside 1-65535")]
    OutOfRange(i64),
    #[error("range {0}-{1} ends before it starts")]
    Reversed(u16, u16),
    #[error("range {lo}-{hi} is marked {parity} but {port} is not {parity}")]
    Parity {
        lo: u16,
        hi: u16,
        parity: &'static str,
        port: u16,
    },
    #[error("area {first} + {multiplier} x {streams} = {end} ends past 65535")]
    AreaOverflow {
        first: u16,
        multiplier: u16,
        streams: u32,
        end: u64,
    },
    #[error("area multiplier must be at least 1")]
    ZeroMultiplier,
}

/// A non-empty set of ports `lo..=hi`, optionally only those of one parity.
///
/// Invariants (kept by the constructors): `1 <= lo <= hi`, and with a parity both ends have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    lo: u16,
    hi: u16,
    parity: Option<Parity>,
}

/// Checks that a number from a file is a usable port.
pub fn port_number(value: i64) -> Result<u16, RangeError> {
    match u16::try_from(value) {
        Ok(p) if p >= 1 => Ok(p),
        _ => Err(RangeError::OutOfRange(value)),
    }
}

impl PortRange {
    pub fn single(port: u16) -> Result<PortRange, RangeError> {
        PortRange::new(port, port, None)
    }

    pub fn new(lo: u16, hi: u16, parity: Option<Parity>) -> Result<PortRange, RangeError> {
        if lo == 0 {
            return Err(RangeError::OutOfRange(0));
        }
        if lo > hi {
            return Err(RangeError::Reversed(lo, hi));
        }
        if let Some(p) = parity {
            for end in [lo, hi] {
                if Parity::of(end) != p {
                    return Err(RangeError::Parity {
                        lo,
                        hi,
                        parity: p.as_str(),
                        port: end,
                    });
                }
            }
        }
        Ok(PortRange { lo, hi, parity })
    }

    /// An MRS-style area: from `first` to `first + multiplier × streams`, end included
    /// (the source page's examples: 8000 + 2 × 200 = 8000–8400).
    pub fn area(first: u16, multiplier: u16, streams: u32) -> Result<PortRange, RangeError> {
        if multiplier == 0 {
            return Err(RangeError::ZeroMultiplier);
        }
        let end = u64::from(first) + u64::from(multiplier) * u64::from(streams);
        let hi = u16::try_from(end).map_err(|_| RangeError::AreaOverflow {
            first,
            multiplier,
            streams,
            end,
        })?;
        PortRange::new(first, hi, None)
    }

    pub fn lo(&self) -> u16 {
        self.lo
    }

    pub fn hi(&self) -> u16 {
        self.hi
    }

    pub fn parity(&self) -> Option<Parity> {
        self.parity
    }

    pub fn is_single(&self) -> bool {
        self.lo == self.hi
    }

    /// How many ports the set holds.
    pub fn count(&self) -> u32 {
        let span = u32::from(self.hi - self.lo);
        match self.parity {
            None => span + 1,
            Some(_) => span / 2 + 1,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi && self.parity.is_none_or(|p| Parity::of(port) == p)
    }

    /// The ports of the set, in order.
    pub fn ports(&self) -> impl Iterator<Item = u16> + use<> {
        let step = if self.parity.is_some() { 2 } else { 1 };
        (u32::from(self.lo)..=u32::from(self.hi))
            .step_by(step)
            .map(|p| p as u16)
    }

    /// The first port both sets hold, if any.
    pub fn first_common(&self, other: &PortRange) -> Option<u16> {
        let lo = self.lo.max(other.lo);
        let hi = self.hi.min(other.hi);
        if lo > hi {
            return None;
        }
        let want = match (self.parity, other.parity) {
            (Some(a), Some(b)) if a != b => return None,
            (Some(p), _) | (_, Some(p)) => p,
            (None, None) => return Some(lo),
        };
        let first = if Parity::of(lo) == want {
            lo
        } else {
            lo.checked_add(1)?
        };
        (first <= hi).then_some(first)
    }

    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.first_common(other).is_some()
    }

    /// `lo-hi` for ranges, the number for a single port; parity is left to the caller.
    pub fn span_text(&self) -> String {
        if self.is_single() {
            self.lo.to_string()
        } else {
            format!("{}-{}", self.lo, self.hi)
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)?;
            if let Some(p) = self.parity {
                write!(f, " {}", p.as_str())?;
            }
            Ok(())
        }
    }
}

/// All pairs `(i, j)` with `i < j` whose ranges share a port, found by sorting and sweeping:
/// O(n log n + k) for k pairs, never a comparison of every pair.
pub fn overlapping_pairs(ranges: &[PortRange]) -> Vec<(usize, usize)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_by_key(|&i| (ranges[i].lo, ranges[i].hi, i));
    // Active ranges, smallest end first, so ranges that ended drop out cheaply.
    let mut active: BinaryHeap<Reverse<(u16, usize)>> = BinaryHeap::new();
    let mut pairs = Vec::new();
    for &i in &order {
        let r = ranges[i];
        while let Some(&Reverse((hi, _))) = active.peek() {
            if hi < r.lo {
                active.pop();
            } else {
                break;
            }
        }
        for &Reverse((_, j)) in active.iter() {
            if ranges[j].overlaps(&r) {
                pairs.push((i.min(j), i.max(j)));
            }
        }
        active.push(Reverse((r.hi, i)));
    }
    pairs.sort_unstable();
    pairs
}

/// The ranges that share ports, in groups: `i` and `j` are in one group when they share a port,
/// directly or through a chain of ranges that do. Only groups of two or more, each ascending,
/// in order of their first index. O(n log n) whatever the overlaps (`overlapping_pairs` is
/// O(k) in the pairs, which grow quadratically when many ranges share a port).
///
/// Exact with parities: the even ports and the odd ports are two lines, on each of which every
/// range is a plain interval (a range without parity lies on both); on a line sorted by start,
/// a range that starts before the furthest end so far shares its start with the range that
/// reaches that end.
pub fn overlap_groups(ranges: &[PortRange]) -> Vec<Vec<usize>> {
    fn find(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..ranges.len()).collect();
    for line in [Parity::Even, Parity::Odd] {
        let mut spans: Vec<(u32, u32, usize)> = ranges
            .iter()
            .enumerate()
            .filter(|(_, r)| r.parity.is_none_or(|p| p == line))
            .filter_map(|(i, r)| {
                let (lo, hi) = (u32::from(r.lo), u32::from(r.hi));
                let lo = if Parity::of(r.lo) == line { lo } else { lo + 1 };
                let hi = if Parity::of(r.hi) == line {
                    hi
                } else {
                    hi.checked_sub(1)?
                };
                (lo <= hi).then_some((lo, hi, i))
            })
            .collect();
        spans.sort_unstable();
        let mut reach: Option<(u32, usize)> = None;
        for (lo, hi, i) in spans {
            match reach {
                Some((end, j)) if lo <= end => {
                    let (a, b) = (find(&mut parent, i), find(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                    if hi > end {
                        reach = Some((hi, i));
                    }
                }
                _ => reach = Some((hi, i)),
            }
        }
    }
    let mut members: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..ranges.len() {
        let root = find(&mut parent, i);
        members.entry(root).or_default().push(i);
    }
    let mut groups: Vec<Vec<usize>> = members.into_values().filter(|g| g.len() > 1).collect();
    groups.sort_unstable_by_key(|g| g[0]);
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_examples() {
        assert_eq!(
            PortRange::area(8000, 2, 200).unwrap().to_string(),
            "8000-8400"
        );
        assert_eq!(
            PortRange::area(9000, 6, 200).unwrap().to_string(),
            "9000-10200"
        );
        let rtp = PortRange::new(5004, 5030, Some(Parity::Even)).unwrap();
        let rtcp = PortRange::new(5005, 5031, Some(Parity::Odd)).unwrap();
        assert_eq!((rtp.count(), rtcp.count()), (14, 14));
        assert!(!rtp.overlaps(&rtcp));
        assert_eq!(overlapping_pairs(&[rtp, rtcp]), vec![]);
        assert!(overlap_groups(&[rtp, rtcp]).is_empty());
        let one = PortRange::single(5006).unwrap();
        assert_eq!(overlap_groups(&[rtp, rtcp, one]), vec![vec![0, 2]]);
    }

    fn arb_range() -> impl proptest::strategy::Strategy<Value = PortRange> {
        use proptest::prelude::*;
        (1u16..80, 0u16..12, 0u8..3).prop_map(|(lo, len, p)| {
            let parity = match p {
                0 => None,
                1 => Some(Parity::Even),
                _ => Some(Parity::Odd),
            };
            let mut lo = lo;
            if let Some(p) = parity {
                if Parity::of(lo) != p {
                    lo += 1;
                }
            }
            let hi = if parity.is_some() {
                lo + 2 * len
            } else {
                lo + len
            };
            PortRange::new(lo, hi, parity).unwrap()
        })
    }

    proptest::proptest! {
        /// The groups are exactly the connected components of the pairs that share a port.
        #[test]
        fn groups_are_the_components_of_the_pairs(
            ranges in proptest::collection::vec(arb_range(), 0..30)
        ) {
            let mut comp: Vec<usize> = (0..ranges.len()).collect();
            for (i, j) in overlapping_pairs(&ranges) {
                let (a, b) = (comp[i], comp[j]);
                for c in comp.iter_mut() {
                    if *c == b.max(a) {
                        *c = a.min(b);
                    }
                }
            }
            let mut want: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
            for (i, c) in comp.iter().enumerate() {
                want.entry(*c).or_default().push(i);
            }
            let want: Vec<Vec<usize>> = want.into_values().filter(|g| g.len() > 1).collect();
            proptest::prop_assert_eq!(overlap_groups(&ranges), want);
        }
    }

    #[test]
    fn many_ranges_on_one_port_are_one_group_quickly() {
        let all = vec![PortRange::single(21018).unwrap(); 200_000];
        let t = std::time::Instant::now();
        let groups = overlap_groups(&all);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].len(), 200_000);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn area_overflow_is_an_error() {
        assert!(matches!(
            PortRange::area(65000, 6, 200),
            Err(RangeError::AreaOverflow { .. })
        ));
        assert_eq!(PortRange::area(65335, 1, 200).unwrap().hi(), 65535);
    }

    #[test]
    fn parity_at_the_top_does_not_overflow() {
        let a = PortRange::new(65535, 65535, None).unwrap();
        let b = PortRange::new(65534, 65534, Some(Parity::Even)).unwrap();
        assert_eq!(a.first_common(&b), None);
        let c = PortRange::new(65533, 65535, Some(Parity::Odd)).unwrap();
        assert_eq!(a.first_common(&c), Some(65535));
    }
}
