//! Durable storage per node: survives a crash once synced.
//!
//! Two kinds of data: keyed values and append-only logs (a write-ahead log, a Raft log). Writes
//! land in a pending overlay that reads see at once; `sync` makes them durable. A crash throws
//! the overlay away (and a log's unsynced tail), so an algorithm that replies before syncing can
//! be caught losing data it promised to keep.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// An append-only log whose first `durable_len` entries survive a crash.
#[derive(Clone, Debug, Default)]
struct Log {
    entries: Vec<Vec<u8>>,
    durable_len: usize,
}

/// One node's disk.
#[derive(Clone, Debug, Default)]
pub struct Storage {
    durable: BTreeMap<String, Vec<u8>>,
    pending: BTreeMap<String, Option<Vec<u8>>>,
    logs: BTreeMap<String, Log>,
    syncs_count: u64,
    bytes_written: u64,
}

impl Storage {
    /// Reads a key, seeing unsynced writes.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        match self.pending.get(key) {
            Some(Some(v)) => Some(v),
            Some(None) => None,
            None => self.durable.get(key).map(|v| v.as_slice()),
        }
    }

    /// Writes a key; durable only after [`Storage::sync`].
    pub fn put(&mut self, key: &str, value: Vec<u8>) {
        self.bytes_written += value.len() as u64;
        self.pending.insert(key.to_string(), Some(value));
    }

    /// Deletes a key; durable only after [`Storage::sync`].
    pub fn delete(&mut self, key: &str) {
        self.pending.insert(key.to_string(), None);
    }

    /// Appends an entry to a log; durable only after [`Storage::sync`].
    pub fn append(&mut self, log: &str, entry: Vec<u8>) {
        self.bytes_written += entry.len() as u64;
        match self.logs.get_mut(log) {
            Some(l) => l.entries.push(entry),
            None => {
                self.logs.insert(
                    log.to_string(),
                    Log {
                        entries: vec![entry],
                        durable_len: 0,
                    },
                );
            }
        }
    }

    /// Keeps only the first `len` entries of a log. Truncation takes effect at once, durably
    /// (a crash never brings truncated entries back).
    pub fn truncate(&mut self, log: &str, len: usize) {
        if let Some(l) = self.logs.get_mut(log) {
            l.entries.truncate(len);
            l.durable_len = l.durable_len.min(len);
        }
    }

    /// A log's entries as reads see them (the unsynced tail included).
    pub fn log(&self, log: &str) -> &[Vec<u8>] {
        self.logs
            .get(log)
            .map(|l| l.entries.as_slice())
            .unwrap_or(&[])
    }

    /// Makes every pending write durable.
    pub fn sync(&mut self) {
        self.syncs_count += 1;
        for l in self.logs.values_mut() {
            l.durable_len = l.entries.len();
        }
        for (k, v) in std::mem::take(&mut self.pending) {
            match v {
                Some(v) => {
                    self.durable.insert(k, v);
                }
                None => {
                    self.durable.remove(&k);
                }
            }
        }
    }

    /// Writes a value as JSON; durable only after [`Storage::sync`].
    pub fn put_json<T: Serialize>(&mut self, key: &str, value: &T) {
        // Our own algorithm types always serialize; a failure is a programming error.
        let bytes = serde_json::to_vec(value).expect("storage value serializes to JSON");
        self.put(key, bytes);
    }

    /// Reads a JSON value written by [`Storage::put_json`]; `None` when absent.
    pub fn get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.get(key)
            .map(|b| serde_json::from_slice(b).expect("storage holds JSON written by put_json"))
    }

    /// The keys starting with `prefix`, in order, as reads see them (unsynced writes included).
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let mut keys: std::collections::BTreeSet<&String> = self
            .durable
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k)
            .collect();
        for (k, v) in self
            .pending
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
        {
            if v.is_some() {
                keys.insert(k);
            } else {
                keys.remove(k);
            }
        }
        keys.into_iter().cloned().collect()
    }

    /// Whether unsynced writes exist.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.logs.values().any(|l| l.durable_len < l.entries.len())
    }

    /// What a crash does: unsynced writes are gone.
    pub fn crash(&mut self) -> usize {
        let mut lost = self.pending.len();
        self.pending.clear();
        for l in self.logs.values_mut() {
            lost += l.entries.len() - l.durable_len;
            l.entries.truncate(l.durable_len);
        }
        lost
    }

    /// Number of syncs so far.
    pub fn syncs_count(&self) -> u64 {
        self.syncs_count
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_and_loses_unsynced() {
        let mut s = Storage::default();
        s.put_json("term", &3u64);
        s.sync();
        s.put_json("term", &4u64);
        s.put_json("vote", &1u64);
        assert_eq!(s.get_json::<u64>("term"), Some(4));
        assert_eq!(s.crash(), 2);
        assert_eq!(s.get_json::<u64>("term"), Some(3));
        assert_eq!(s.get_json::<u64>("vote"), None);
        s.delete("term");
        s.sync();
        assert_eq!(s.get("term"), None);
        s.put("v/1", vec![]);
        s.put("v/2", vec![]);
        s.sync();
        s.delete("v/1");
        s.put("v/3", vec![]);
        s.put("w/1", vec![]);
        assert_eq!(s.keys_with_prefix("v/"), vec!["v/2", "v/3"]);
    }

    #[test]
    fn a_log_keeps_its_synced_prefix() {
        let mut s = Storage::default();
        s.append("wal", vec![1]);
        s.append("wal", vec![2]);
        s.sync();
        s.append("wal", vec![3]);
        assert_eq!(s.log("wal").len(), 3);
        assert!(s.has_pending());
        assert_eq!(s.crash(), 1);
        assert_eq!(s.log("wal"), &[vec![1], vec![2]]);
        s.truncate("wal", 1);
        s.append("wal", vec![9]);
        s.crash();
        assert_eq!(
            s.log("wal"),
            &[vec![1]],
            "truncation is durable, the new tail was not synced"
        );
        assert!(s.log("other").is_empty());
    }
}
