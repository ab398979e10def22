//! Rendezvous (highest random weight) hashing: each key goes to the server whose combined
//! hash with the key is highest. O(n) per lookup, no state but the member list, minimal
//! movement; its balance is that of random assignment.

use super::hash::mix64;

/// The score of `server` for a key hash `h` in a ring salted `salt`.
#[inline]
fn score(h: u64, server: usize, salt: u64) -> u64 {
    mix64(h ^ mix64((server as u64).wrapping_add(salt.rotate_left(17))))
}

/// The member with the highest score for `h` (ties, practically impossible, go to the lower
/// id). Returns the member's position in `members` and the steps (one per member).
pub fn rendezvous(h: u64, members: &[usize], salt: u64) -> (usize, u32) {
    assert!(!members.is_empty(), "rendezvous needs a member");
    let mut best = 0;
    let mut best_score = score(h, members[0], salt);
    for (i, m) in members.iter().enumerate().skip(1) {
        let s = score(h, *m, salt);
        if s > best_score {
            best = i;
            best_score = s;
        }
    }
    (best, members.len() as u32)
}
