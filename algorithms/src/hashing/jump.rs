//! Jump consistent hash (Lamping and Veach, 2014): no memory, about ln n steps, and going from
//! n to n + 1 buckets moves exactly the keys that land in the new bucket.
//!
//! Jump numbers buckets 0..n and can only grow or shrink at the top. Servers that leave from
//! the middle are handled the usual way: in a run the bucket count is the cluster size (every
//! server that may ever be a member), and a key whose bucket is absent jumps again with a fresh
//! hash (`mix64(h + attempt)`) over the same buckets until it lands on a present one. Only the
//! keys of a leaving server move, and a join takes exactly the keys whose chain meets the
//! joiner first. So movement stays minimal and the absent buckets' keys
//! spread evenly.

use super::hash::mix64;

/// The bucket of `key` among `buckets` (Lamping and Veach's loop). Returns the bucket and the
/// number of loop steps taken.
#[inline]
pub fn jump(mut key: u64, buckets: u32) -> (u32, u32) {
    assert!(buckets > 0, "jump hash needs at least one bucket");
    let mut b: i64 = -1;
    let mut j: i64 = 0;
    let mut steps = 0;
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        // Basic IEEE division is correctly rounded on every platform: deterministic.
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
        steps += 1;
    }
    (b as u32, steps)
}

/// Jump over slots `0..slots` where only `member(slot)` slots are present: re-jump with a new
/// hash until a present slot is hit. Returns the slot and the total steps.
pub fn jump_present(h: u64, slots: u32, member: impl Fn(u32) -> bool) -> (u32, u32) {
    let mut total = 0;
    for attempt in 0..64u64 {
        let (b, steps) = jump(mix64(h.wrapping_add(attempt)), slots);
        total += steps;
        if member(b) {
            return (b, total);
        }
    }
    // Practically unreachable unless almost every slot is absent: scan upward, deterministic.
    let start = jump(h, slots).0;
    for d in 0..slots {
        let s = (start + d) % slots;
        total += 1;
        if member(s) {
            return (s, total);
        }
    }
    panic!("jump_present: no slot of {slots} is present");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growing_from_10_to_12_buckets_moves_one_sixth() {
        let keys = 600_000u64;
        let moved = (0..keys)
            .filter(|k| jump(mix64(*k), 10).0 != jump(mix64(*k), 12).0)
            .count();
        let frac = moved as f64 / keys as f64;
        // The minimum is 2/12 = 1/6; every moved key goes to bucket 10 or 11.
        assert!((frac - 1.0 / 6.0).abs() < 0.003, "moved {frac}");
        assert!((0..10_000u64).all(|k| {
            let (a, b) = (jump(mix64(k), 10).0, jump(mix64(k), 12).0);
            a == b || b >= 10
        }));
    }

    #[test]
    fn absent_slots_are_skipped() {
        let present = |s: u32| s != 3;
        for k in 0..1000u64 {
            assert_ne!(jump_present(mix64(k), 8, present).0, 3);
        }
    }
}
