//! Property tests of the range arithmetic against brute-force oracles.

use proptest::prelude::*;
use scc_ports::flows::union;
use scc_ports::range::{Parity, PortRange, overlapping_pairs};

fn any_range() -> impl Strategy<Value = PortRange> {
    (
        1u16..=65535,
        0u16..200,
        prop::option::of(prop_oneof![Just(Parity::Even), Just(Parity::Odd)]),
    )
        .prop_filter_map("valid range", |(lo, len, parity)| {
            let hi = lo.saturating_add(len);
            let (lo, hi) = match parity {
                Some(p) => {
                    let lo = if Parity::of(lo) == p {
                        lo
                    } else {
                        lo.checked_add(1)?
                    };
                    let hi = if Parity::of(hi) == p {
                        hi
                    } else {
                        hi.checked_sub(1)?
                    };
                    (lo, hi)
                }
                None => (lo, hi),
            };
            PortRange::new(lo, hi, parity).ok()
        })
}

/// Ranges packed into a small window so that overlaps are common.
fn near_range() -> impl Strategy<Value = PortRange> {
    (
        5000u16..5060,
        0u16..20,
        prop::option::of(prop_oneof![Just(Parity::Even), Just(Parity::Odd)]),
    )
        .prop_filter_map("valid", |(lo, len, parity)| {
            let hi = lo + len;
            let lo = match parity {
                Some(p) if Parity::of(lo) != p => lo + 1,
                _ => lo,
            };
            let hi = match parity {
                Some(p) if Parity::of(hi) != p => hi - 1,
                _ => hi,
            };
            PortRange::new(lo, hi, parity).ok()
        })
}

proptest! {
    #[test]
    fn count_and_contains_match_the_ports(r in any_range()) {
        let ports: Vec<u16> = r.ports().collect();
        prop_assert_eq!(ports.len() as u32, r.count());
        for p in &ports {
            prop_assert!(r.contains(*p));
        }
        prop_assert!(r.lo() == 1 || !r.contains(r.lo() - 1));
        prop_assert!(r.hi() == 65535 || !r.contains(r.hi() + 1));
        if let Some(p) = r.parity() {
            prop_assert!(ports.iter().all(|x| Parity::of(*x) == p));
        }
    }

    #[test]
    fn overlap_matches_brute_force(a in near_range(), b in near_range()) {
        let brute = a.ports().find(|p| b.contains(*p));
        prop_assert_eq!(a.first_common(&b), brute);
        prop_assert_eq!(a.overlaps(&b), b.overlaps(&a));
    }

    #[test]
    fn sweep_finds_exactly_the_overlapping_pairs(rs in prop::collection::vec(near_range(), 0..40)) {
        let mut brute = vec![];
        for i in 0..rs.len() {
            for j in i + 1..rs.len() {
                if rs[i].ports().any(|p| rs[j].contains(p)) {
                    brute.push((i, j));
                }
            }
        }
        prop_assert_eq!(overlapping_pairs(&rs), brute);
    }

    #[test]
    fn areas_are_exact_or_refused(first in 1u16..=65535, multiplier in 0u16..10, streams in 0u32..100_000) {
        let end = u64::from(first) + u64::from(multiplier) * u64::from(streams);
        match PortRange::area(first, multiplier, streams) {
            Ok(r) => {
                prop_assert!(multiplier > 0 && end <= 65535);
                prop_assert_eq!((u64::from(r.lo()), u64::from(r.hi())), (u64::from(first), end));
            }
            Err(_) => prop_assert!(multiplier == 0 || end > 65535),
        }
    }

    #[test]
    fn union_is_exact(a in near_range(), b in near_range()) {
        let mut both: Vec<u16> = a.ports().chain(b.ports()).collect();
        both.sort();
        both.dedup();
        match union(a, b) {
            Some(u) => prop_assert_eq!(u.ports().collect::<Vec<_>>(), both),
            None => {
                // Refused only when the union is not one plain range.
                let plain = both.windows(2).all(|w| w[1] == w[0] + 1);
                prop_assert!(!plain || (a.parity().is_some() && !a.is_single()) || (b.parity().is_some() && !b.is_single()));
            }
        }
    }
}

#[test]
fn constructor_rejects_what_it_must() {
    assert!(PortRange::new(0, 5, None).is_err());
    assert!(PortRange::new(6, 5, None).is_err());
    assert!(PortRange::new(5004, 5031, Some(Parity::Even)).is_err());
    assert!(PortRange::new(65535, 65535, Some(Parity::Odd)).is_ok());
}
