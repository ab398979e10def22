//! The primary's duties: catch up when promoted, order operations, replicate each to every
//! backup, and answer a client only once every backup holds the operation.
//!
//! - **Catch-up.** A promoted primary first asks every backup for its log and adopts the
//!   newest (highest stream epoch, then longest: within one stream a longer log extends a
//!   shorter one), waiting at most two heartbeats for the answers. Then it replaces every
//!   backup's log with its own (a snapshot) and starts taking operations.
//! - **Order.** Reads and writes alike get a place in the log: a read answered after every
//!   backup acknowledged its place cannot have missed a write, and a deposed primary cannot
//!   answer one alone, because the backups that moved to a newer epoch no longer acknowledge
//!   it (the MIT 6.824 lab forwards reads for the same reason).
//! - **Replication.** Each new entry goes to every backup at once; every heartbeat, backups
//!   that are behind get what they lack (a lost message is resent). The client's answer waits
//!   until every backup of the view has acknowledged the entry durably.
//!
//! Bug switches change this: `ack_before_backups` answers at once (the entry is sent but not
//! waited for), `async_replication` answers at once and ships entries only with the
//! heartbeat, as asynchronous replication does.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use sim_core::{Ctx, NodeId};

use super::msg::{Entry, Msg};
use super::replica::Replica;
use super::PbBug;
use crate::raft::kv::Applied;
use crate::raft::msg::{ClientResult, KvOp};

/// The catch-up deadline timer's tag (low bits: the epoch).
const CATCHUP_TIMER: u64 = 1 << 59;
/// Most entries in one replication message.
const BATCH_MAX: usize = 64;

/// A client waiting for its answer.
#[derive(Clone, Debug)]
struct Waiting {
    /// The log length at which the answer may go.
    upto: u64,
    client: NodeId,
    req: u64,
    result: ClientResult,
}

/// What a primary keeps beyond the replica's state.
#[derive(Clone, Debug)]
pub struct Primary {
    /// The epoch it leads in.
    pub epoch: u64,
    /// While catching up: the backups yet to answer, and the newest log seen so far.
    catching_up: Option<(BTreeSet<NodeId>, u64, Rc<Vec<Entry>>)>,
    /// The backups that answered the catch-up.
    responders: BTreeSet<NodeId>,
    /// Per backup: entries it holds durably (None: it has not acknowledged a snapshot yet).
    matched: BTreeMap<NodeId, Option<u64>>,
    waiting: Vec<Waiting>,
    /// The longest log prefix any client has been answered for: a backup holds every
    /// acknowledged operation once it holds this much (not tracked by the bugs that answer
    /// at once).
    released: u64,
}

impl Replica {
    /// The view says this replica is the primary: start catching up if the epoch is new to
    /// it, else follow the change of backups.
    pub(crate) fn become_or_stay_primary(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let epoch = self.view.epoch;
        if let Some(p) = &mut self.primary {
            if p.epoch == epoch {
                let backups = &self.view.backups;
                p.matched.retain(|b, _| backups.contains(b));
                for b in backups {
                    if !p.matched.contains_key(b) {
                        p.matched.insert(*b, None);
                        if p.catching_up.is_none() {
                            ctx.send(*b, snapshot(epoch, &self.log));
                        }
                    }
                }
                self.release(ctx);
                return;
            }
        }
        let asked: BTreeSet<NodeId> = self.view.backups.iter().copied().collect();
        for b in &asked {
            ctx.send(*b, Msg::Fetch { epoch });
        }
        ctx.count("pb.catchups", 1.0);
        self.primary = Some(Primary {
            epoch,
            catching_up: Some((asked, self.log_epoch, Rc::new(self.log.clone()))),
            responders: BTreeSet::new(),
            matched: BTreeMap::new(),
            waiting: Vec::new(),
            released: 0,
        });
        ctx.set_timer(2 * self.p.heartbeat_interval.0, CATCHUP_TIMER | epoch);
        self.maybe_caught_up(ctx);
    }

    pub(crate) fn on_fetch_reply(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        epoch: u64,
        log_epoch: u64,
        log: Rc<Vec<Entry>>,
    ) {
        let Some(p) = &mut self.primary else { return };
        let Some((asked, best_epoch, best)) = &mut p.catching_up else {
            return;
        };
        if p.epoch != epoch || !asked.remove(&from) {
            return;
        }
        p.responders.insert(from);
        if (log_epoch, log.len()) > (*best_epoch, best.len()) {
            *best_epoch = log_epoch;
            *best = log;
        }
        self.maybe_caught_up(ctx);
    }

    pub(crate) fn on_primary_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag & CATCHUP_TIMER != 0 {
            let epoch = tag & !CATCHUP_TIMER;
            let complete = self
                .primary
                .as_ref()
                .is_some_and(|p| self.catchup_complete(&p.responders));
            let backups = self.view.backups.clone();
            let again = 2 * self.p.heartbeat_interval.0;
            if let Some(p) = &mut self.primary {
                if p.epoch == epoch {
                    if let Some((asked, _, _)) = &mut p.catching_up {
                        if complete {
                            // Unanswered backups get the snapshot like the others.
                            asked.clear();
                        } else {
                            // No log from the in-sync set yet: ask again, and keep waiting.
                            ctx.count("pb.catchup_waits", 1.0);
                            *asked = backups.iter().copied().collect();
                            for b in &backups {
                                ctx.send(*b, Msg::Fetch { epoch });
                            }
                            ctx.set_timer(again, CATCHUP_TIMER | epoch);
                        }
                    }
                }
            }
            self.maybe_caught_up(ctx);
        }
    }

    /// Once every backup answered (or time is up): adopt the newest log, start the new
    /// stream, and send it whole to every backup.
    fn maybe_caught_up(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(p) = &mut self.primary else { return };
        let Some((asked, _, _)) = &p.catching_up else {
            return;
        };
        if !asked.is_empty() {
            return;
        }
        let responders = p.responders.clone();
        if !self.catchup_complete(&responders) {
            return;
        }
        let Some(p) = &mut self.primary else { return };
        let (_, _, best) = p.catching_up.take().expect("checked above");
        let epoch = p.epoch;
        debug_assert!(epoch >= self.log_epoch, "a primary's epoch is the newest");
        if best.len() > self.log.len() {
            ctx.count("pb.catchup_entries", (best.len() - self.log.len()) as f64);
        }
        let (mine, theirs) = (self.log.len(), best.len());
        ctx.note(|| format!("epoch {epoch}: caught up from {mine} to {theirs} entries"));
        self.install(ctx, epoch, &best);
        let p = self.primary.as_mut().expect("still primary");
        // Everything inherited may have been acknowledged by an earlier primary.
        p.released = self.log.len() as u64;
        for b in &self.view.backups {
            p.matched.insert(*b, None);
            ctx.send(*b, snapshot(epoch, &self.log));
        }
        self.release(ctx);
    }

    /// Whether this replica takes client operations now: the primary of its view, caught up,
    /// with an unexpired lease.
    pub fn serving(&self) -> bool {
        self.acting()
            && self.elector_allows_serving()
            && self
                .primary
                .as_ref()
                .is_some_and(|p| p.epoch == self.view.epoch && p.catching_up.is_none())
    }

    /// Primary only: every backup of the view follows this primary's stream and holds every
    /// operation a client has been answered for (the view service takes this as the view's
    /// acknowledgement and counts the backups in sync: promotable without losing a write).
    /// A backup that merely acknowledged *some* prefix (a re-added backup answering a late
    /// message) is not in sync until it holds everything answered.
    pub(crate) fn primary_synced(&self) -> bool {
        let Some(p) = &self.primary else { return false };
        p.catching_up.is_none()
            && p.epoch == self.view.epoch
            && self.view.backups.iter().all(|b| {
                p.matched
                    .get(b)
                    .copied()
                    .flatten()
                    .is_some_and(|m| m >= p.released)
            })
    }

    /// Primary only, once caught up in its epoch: the backups that hold every operation a
    /// client has been answered for (promotable without losing a write).
    pub(crate) fn synced_backups(&self) -> Option<BTreeSet<NodeId>> {
        let p = self.primary.as_ref()?;
        if p.catching_up.is_some() || p.epoch != self.view.epoch {
            return None;
        }
        let synced = self.view.backups.iter().copied().filter(|b| {
            p.matched
                .get(b)
                .copied()
                .flatten()
                .is_some_and(|m| m >= p.released)
        });
        Some(synced.collect())
    }

    /// Orders a client's operation, makes it durable, replicates it, and answers when allowed.
    pub(crate) fn take_request(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        req: u64,
        client: u32,
        cseq: u64,
        op: KvOp,
    ) {
        let before = self.log.len();
        let entry = Entry { client, cseq, op };
        let result = match self.kv.apply(client, cseq, &entry.op, true) {
            Applied::Fresh(r) => {
                self.log.push(entry);
                self.persist(ctx, before);
                r
            }
            Applied::Duplicate(r) => r,
            Applied::Stale => return,
        };
        let upto = self.log.len() as u64;
        let p = self.primary.as_mut().expect("serving");
        p.waiting.push(Waiting {
            upto,
            client: from,
            req,
            result,
        });
        if self.log.len() > before && !self.p.has(PbBug::AsyncReplication) {
            let epoch = p.epoch;
            let msg = Msg::Replicate {
                epoch,
                prev: before as u64,
                entries: self.log[before..].to_vec(),
            };
            for b in &self.view.backups {
                ctx.send(*b, msg.clone());
            }
        }
        self.release(ctx);
    }

    pub(crate) fn on_ack(
        &mut self,
        ctx: &mut Ctx<'_, Msg>,
        from: NodeId,
        epoch: u64,
        applied: Option<u64>,
    ) {
        let Some(p) = &mut self.primary else { return };
        if p.epoch != epoch || p.catching_up.is_some() {
            return;
        }
        let Some(m) = p.matched.get_mut(&from) else {
            return;
        };
        match applied {
            Some(n) => {
                debug_assert!(
                    n <= self.log.len() as u64,
                    "a backup holds no entry we lack"
                );
                *m = Some(m.unwrap_or(0).max(n));
            }
            None => ctx.send(from, snapshot(epoch, &self.log)),
        }
        self.release(ctx);
    }

    /// Answers every client whose entry every backup holds (or at once, with the bugs that
    /// do not wait).
    fn release(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let also = self.elector_ack_set();
        let Some(p) = &mut self.primary else { return };
        let eager = self.p.has(PbBug::AckBeforeBackups) || self.p.has(PbBug::AsyncReplication);
        let held = self
            .view
            .backups
            .iter()
            .chain(also.iter())
            .map(|b| p.matched.get(b).copied().flatten().unwrap_or(0))
            .min()
            .unwrap_or(self.log.len() as u64);
        debug_assert!(held <= self.log.len() as u64);
        let (ready, wait): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut p.waiting)
            .into_iter()
            .partition(|w| eager || w.upto <= held);
        p.waiting = wait;
        if !eager {
            let answered = ready.iter().map(|w| w.upto).max().unwrap_or(0);
            debug_assert!(answered <= held, "an answer waits for every backup");
            p.released = p.released.max(answered);
        }
        for w in ready {
            ctx.send(
                w.client,
                Msg::Reply {
                    req: w.req,
                    result: w.result,
                },
            );
        }
    }

    /// Every heartbeat: each backup gets what it lacks (its snapshot, or the entries after
    /// what it acknowledged).
    pub(crate) fn ship(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(p) = &self.primary else { return };
        if p.catching_up.is_some() || p.epoch != self.view.epoch {
            return;
        }
        for (b, m) in &p.matched {
            match m {
                None => ctx.send(*b, snapshot(p.epoch, &self.log)),
                Some(n) if (*n as usize) < self.log.len() => {
                    let from = *n as usize;
                    let to = self.log.len().min(from + BATCH_MAX);
                    ctx.send(
                        *b,
                        Msg::Replicate {
                            epoch: p.epoch,
                            prev: *n,
                            entries: self.log[from..to].to_vec(),
                        },
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn snapshot(epoch: u64, log: &[Entry]) -> Msg {
    Msg::Snapshot {
        epoch,
        log: Rc::new(log.to_vec()),
    }
}
