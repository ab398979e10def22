//! A shard: its keys' values and versions, the optimistic prepare marks, and the pessimistic
//! lock table with undo records. Every request is answered idempotently (a transaction's
//! decision is remembered), so clients may resend freely.

use std::collections::BTreeMap;

use sim_core::{Ctx, NodeId};

use super::{write_tag, CcBug, Deadlock, LockResult, Msg, Params, TxnId};

/// A key's committed (or, under two-phase locking, written-in-place) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// The value.
    pub value: i64,
    /// Bumped by every committed write.
    pub version: u64,
    /// The write that produced the value ([`write_tag`] of its transaction; `None` for the
    /// initial value): what the transactional checker reads as the key's register.
    pub writer: Option<i64>,
}

/// An optimistic write: (key, version read, new value).
type Planned = (u32, u64, i64);

/// A lock's holder or waiter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locker {
    /// The transaction.
    pub txn: TxnId,
    /// Its timestamp (smaller is older).
    pub ts: u64,
    /// Its client.
    pub client: NodeId,
    /// The timeout timer's tag (0 when none).
    pub timer: u64,
}

/// One key's lock: its holder and the queue of waiters.
#[derive(Clone, Debug, Default)]
pub struct Lock {
    /// The holder.
    pub holder: Option<Locker>,
    /// Waiters, first come first served.
    pub queue: Vec<Locker>,
}

/// A shard of the store.
pub struct Shard {
    params: Params,
    /// Values by key (absent = `initial`, version 0).
    pub cells: BTreeMap<u32, Cell>,
    /// Optimistic: key -> the transaction that prepared it.
    pub marks: BTreeMap<u32, TxnId>,
    /// Optimistic: prepared writes per transaction, and its vote.
    prepared: BTreeMap<TxnId, (bool, Vec<Planned>)>,
    /// Pessimistic: the lock table.
    pub locks: BTreeMap<u32, Lock>,
    /// Pessimistic: per transaction, the cells its writes replaced.
    pub undo: BTreeMap<TxnId, Vec<(u32, Cell)>>,
    /// Decided transactions: committed (true) or aborted.
    pub decided: BTreeMap<TxnId, bool>,
    /// Timeout timers: tag -> (key, transaction).
    timers: BTreeMap<u64, (u32, TxnId)>,
    next_timer: u64,
}

impl Shard {
    /// An empty shard.
    pub fn new(params: Params) -> Self {
        Shard {
            params,
            cells: BTreeMap::new(),
            marks: BTreeMap::new(),
            prepared: BTreeMap::new(),
            locks: BTreeMap::new(),
            undo: BTreeMap::new(),
            decided: BTreeMap::new(),
            timers: BTreeMap::new(),
            next_timer: 0,
        }
    }

    /// A key's cell.
    pub fn cell(&self, key: u32) -> Cell {
        self.cells.get(&key).copied().unwrap_or(Cell {
            value: self.params.initial,
            version: 0,
            writer: None,
        })
    }

    /// A key's committed value: under two-phase locking, an undecided writer's undo record
    /// holds it.
    pub fn committed(&self, key: u32) -> i64 {
        for writes in self.undo.values() {
            if let Some((_, old)) = writes.iter().find(|(k, _)| *k == key) {
                return old.value;
            }
        }
        self.cell(key).value
    }

    fn write(&mut self, key: u32, value: i64, txn: TxnId) {
        let c = self.cell(key);
        self.cells.insert(
            key,
            Cell {
                value,
                version: c.version + 1,
                writer: Some(write_tag(txn)),
            },
        );
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        match msg {
            Msg::Read { txn, key } => {
                let c = self.cell(key);
                let (value, version, writer) = (c.value, c.version, c.writer);
                ctx.send(
                    from,
                    Msg::ReadReply {
                        txn,
                        key,
                        value,
                        version,
                        writer,
                    },
                );
            }
            Msg::Cas {
                txn,
                key,
                version,
                value,
            } => {
                let yes = self.cas(txn, key, version, value);
                ctx.send(from, Msg::Vote { txn, yes });
            }
            Msg::Prepare { txn, writes } => {
                let yes = self.prepare(txn, writes);
                ctx.send(from, Msg::Vote { txn, yes });
            }
            Msg::Decide { txn, commit } => {
                self.decide(ctx, txn, commit);
                ctx.send(from, Msg::Decided { txn });
            }
            Msg::Lock { txn, ts, key } => self.lock(ctx, from, txn, ts, key),
            Msg::Write { txn, key, value } => {
                if self.write_locked(ctx, txn, key, value) {
                    ctx.send(from, Msg::WriteAck { txn, key });
                } else {
                    // The lock is gone (this shard restarted and lost its lock table): the
                    // write cannot be made under two-phase locking, so the transaction aborts.
                    ctx.count("cc.writes_refused_without_lock", 1.0);
                    ctx.send(from, Msg::Wounded { txn });
                }
            }
            _ => {}
        }
    }

    fn version_ok(&self, key: u32, version: u64) -> bool {
        self.params.has(CcBug::SkipVersionCheck) || self.cell(key).version == version
    }

    fn cas(&mut self, txn: TxnId, key: u32, version: u64, value: i64) -> bool {
        if let Some(d) = self.decided.get(&txn) {
            return *d;
        }
        let yes = self.version_ok(key, version) && !self.marks.contains_key(&key);
        if yes {
            self.write(key, value, txn);
        }
        self.decided.insert(txn, yes);
        yes
    }

    fn prepare(&mut self, txn: TxnId, writes: Vec<(u32, u64, i64)>) -> bool {
        if let Some(d) = self.decided.get(&txn) {
            return *d;
        }
        if let Some((vote, _)) = self.prepared.get(&txn) {
            return *vote;
        }
        let yes = writes
            .iter()
            .all(|(k, v, _)| self.version_ok(*k, *v) && !self.marks.contains_key(k));
        if yes {
            for (k, _, _) in &writes {
                self.marks.insert(*k, txn);
            }
        }
        self.prepared.insert(txn, (yes, writes));
        yes
    }

    fn decide(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, commit: bool) {
        if self.decided.contains_key(&txn) {
            return;
        }
        self.decided.insert(txn, commit);
        if let Some((vote, writes)) = self.prepared.remove(&txn) {
            assert!(vote || !commit, "a commit needs every shard's yes vote");
            for (k, _, v) in writes {
                if vote {
                    self.marks.remove(&k);
                }
                if commit {
                    self.write(k, v, txn);
                }
            }
        }
        if let Some(undo) = self.undo.remove(&txn) {
            if !commit {
                for (k, old) in undo.into_iter().rev() {
                    let c = self.cell(k);
                    self.cells.insert(
                        k,
                        Cell {
                            version: c.version + 1,
                            ..old
                        },
                    );
                }
            }
        }
        let held: Vec<u32> = self
            .locks
            .iter()
            .filter(|(_, l)| {
                l.holder.is_some_and(|h| h.txn == txn) || l.queue.iter().any(|w| w.txn == txn)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in held {
            if let Some(l) = self.locks.get_mut(&k) {
                l.queue.retain(|w| w.txn != txn);
            }
            self.release(ctx, k, txn, !commit);
        }
    }

    /// Releases `key` if `txn` holds it and grants it to the next waiter.
    fn release(&mut self, ctx: &mut Ctx<'_, Msg>, key: u32, txn: TxnId, victim: bool) {
        let Some(l) = self.locks.get_mut(&key) else {
            return;
        };
        let Some(h) = l.holder.filter(|h| h.txn == txn) else {
            return;
        };
        l.holder = None;
        lock_series(ctx, key, h.client, if victim { 5 } else { 2 });
        if l.queue.is_empty() {
            return;
        }
        let next = l.queue.remove(0);
        l.holder = Some(next);
        self.timers.remove(&next.timer);
        let c = self.cell(key);
        lock_series(ctx, key, next.client, 1);
        self.dirty_read_check(ctx, key, next.txn);
        ctx.send(
            next.client,
            Msg::LockReply {
                txn: next.txn,
                key,
                result: LockResult::Granted(c.value, c.writer),
            },
        );
        self.recheck_waiters(ctx, key);
    }

    /// The lock has a new holder: the waiters' deadlock rule is judged again against it
    /// (a waiter queued behind an older holder may be younger than the new one).
    fn recheck_waiters(&mut self, ctx: &mut Ctx<'_, Msg>, key: u32) {
        if self.params.has(CcBug::NoDeadlockHandling) {
            return;
        }
        let l = self.locks.get_mut(&key).expect("a lock with a holder");
        let h = l.holder.expect("just granted");
        match self.params.deadlock {
            Deadlock::WaitDie => {
                let (die, stay): (Vec<Locker>, Vec<Locker>) =
                    l.queue.drain(..).partition(|w| w.ts > h.ts);
                l.queue = stay;
                for w in die {
                    ctx.count("cc.deadlock_victims", 1.0);
                    lock_series(ctx, key, w.client, 4);
                    let result = LockResult::Died;
                    ctx.send(
                        w.client,
                        Msg::LockReply {
                            txn: w.txn,
                            key,
                            result,
                        },
                    );
                }
            }
            Deadlock::WoundWait if l.queue.iter().any(|w| w.ts < h.ts) => {
                ctx.count("cc.wounds", 1.0);
                ctx.send(h.client, Msg::Wounded { txn: h.txn });
            }
            _ => {}
        }
    }

    fn dirty_read_check(&self, ctx: &mut Ctx<'_, Msg>, key: u32, reader: TxnId) {
        let uncommitted = self
            .undo
            .iter()
            .any(|(t, w)| *t != reader && w.iter().any(|(k, _)| *k == key));
        if uncommitted {
            ctx.count("cc.dirty_reads", 1.0);
        }
    }

    fn lock(&mut self, ctx: &mut Ctx<'_, Msg>, client: NodeId, txn: TxnId, ts: u64, key: u32) {
        if self.decided.contains_key(&txn) {
            return; // a late copy of an aborted transaction's request
        }
        let l = self.locks.entry(key).or_default();
        let me = Locker {
            txn,
            ts,
            client,
            timer: 0,
        };
        let reply = |ctx: &mut Ctx<'_, Msg>, result| {
            ctx.send(client, Msg::LockReply { txn, key, result });
        };
        match l.holder {
            None => {
                l.holder = Some(me);
                let c = self.cell(key);
                lock_series(ctx, key, client, 1);
                self.dirty_read_check(ctx, key, txn);
                reply(ctx, LockResult::Granted(c.value, c.writer));
            }
            Some(h) if h.txn == txn => {
                // A resent request: the cell as it was granted, unless this transaction has
                // written it since (then the undo record holds what it read).
                let c = self
                    .undo
                    .get(&txn)
                    .and_then(|u| u.iter().find(|(k, _)| *k == key))
                    .map_or(self.cell(key), |(_, old)| *old);
                reply(ctx, LockResult::Granted(c.value, c.writer));
            }
            Some(h) if l.queue.iter().any(|w| w.txn == txn) => {
                // A resent request while waiting: resend the wound too, in case it was lost.
                let wound = self.params.deadlock == Deadlock::WoundWait
                    && !self.params.has(CcBug::NoDeadlockHandling);
                if wound && ts < h.ts {
                    ctx.send(h.client, Msg::Wounded { txn: h.txn });
                }
            }
            Some(h) => {
                let handling = !self.params.has(CcBug::NoDeadlockHandling);
                match self.params.deadlock {
                    Deadlock::WaitDie if handling && ts > h.ts => {
                        ctx.count("cc.deadlock_victims", 1.0);
                        lock_series(ctx, key, client, 4);
                        return reply(ctx, LockResult::Died);
                    }
                    Deadlock::WoundWait if handling && ts < h.ts => {
                        ctx.count("cc.wounds", 1.0);
                        ctx.send(h.client, Msg::Wounded { txn: h.txn });
                    }
                    _ => {}
                }
                let mut w = me;
                if handling && self.params.deadlock == Deadlock::Timeout {
                    self.next_timer += 1;
                    w.timer = self.next_timer;
                    self.timers.insert(w.timer, (key, txn));
                    ctx.set_timer(self.params.lock_timeout.0, w.timer);
                }
                ctx.count("cc.lock_waits", 1.0);
                lock_series(ctx, key, client, 3);
                self.locks.get_mut(&key).expect("just used").queue.push(w);
            }
        }
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        let Some((key, txn)) = self.timers.remove(&tag) else {
            return;
        };
        let Some(l) = self.locks.get_mut(&key) else {
            return;
        };
        let Some(pos) = l.queue.iter().position(|w| w.txn == txn) else {
            return;
        };
        let w = l.queue.remove(pos);
        ctx.count("cc.deadlock_victims", 1.0);
        lock_series(ctx, key, w.client, 4);
        ctx.send(
            w.client,
            Msg::LockReply {
                txn,
                key,
                result: LockResult::TimedOut,
            },
        );
    }

    /// Applies a write under the key's lock; false when the writer does not hold the lock.
    fn write_locked(&mut self, ctx: &mut Ctx<'_, Msg>, txn: TxnId, key: u32, value: i64) -> bool {
        if self.decided.contains_key(&txn) {
            return true;
        }
        let holds = self
            .locks
            .get(&key)
            .is_some_and(|l| l.holder.is_some_and(|h| h.txn == txn));
        let old = self.cell(key);
        let undo = self.undo.entry(txn).or_default();
        if undo.iter().any(|(k, _)| *k == key) {
            return true; // a resent write, already applied
        }
        if !holds {
            return false;
        }
        undo.push((key, old));
        self.write(key, value, txn);
        if self.params.has(CcBug::EarlyLockRelease) {
            self.release(ctx, key, txn, false);
        }
        true
    }
}

/// Records a point of the `locks.keys` series for the lock panel:
/// `(key * 1024 + client) * 8 + event`: event 1 granted, 2 released at commit, 3 waiting,
/// 4 a waiter chosen as deadlock victim (died or timed out), 5 released by an abort.
fn lock_series(ctx: &mut Ctx<'_, Msg>, key: u32, client: NodeId, event: u64) {
    let v = ((key as u64) * 1024 + (client as u64 % 1024)) * 8 + event;
    ctx.series("locks.keys", v as f64);
}
