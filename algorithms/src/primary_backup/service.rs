//! The view service (the failure detector and configuration master, as in MIT 6.824's
//! primary-backup lab): replicas ping it every heartbeat; it decides the view and grants the
//! primary its lease.
//!
//! Rules, each there for a reason:
//! - A replica is dead once nothing was heard from it for `wait` of the service's clock
//!   (`lease * (1 + margin) / (1 - margin)`): the primary's lease, counted from a heartbeat
//!   the service received later than the primary sent it, and timed by a clock at most
//!   `margin` slower, must have run out by then. So the primary's death is declared only when
//!   its lease is surely over, and only then is a backup promoted.
//! - Only a backup that holds every acknowledged write may be promoted: one in `in_sync`
//!   (the backups of the last view whose primary reported every backup synced, minus those
//!   removed since). Without one the service waits for the old primary to be heard again
//!   (its log is durable, and it resumes in its epoch): promoting a replica without the data
//!   would lose writes.
//! - Backups are added only once the current view is acknowledged (its primary reported
//!   its backups synced), so that the in-sync set is never guessed; dead backups are
//!   removed at any time (fewer backups to wait for never loses a write).
//! - The view, its acknowledgement and the in-sync set are durable: a restarted service
//!   resumes them, and first waits `wait` as if every replica had just pinged, because the
//!   primary may still hold a lease granted before the crash.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::time::Nanos;
use sim_core::{Ctx, NodeId};

use super::msg::{Msg, View};
use super::{Params, PbBug};

/// Timer tags: a replica's death timer carries the replica and a generation.
const DEATH_TIMER: u64 = 1 << 61;

/// The durable part of the service's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// The current view.
    pub view: View,
    /// Whether the current view's primary reported every backup synced.
    pub acked: bool,
    /// Backups known to hold every acknowledged write.
    pub in_sync: BTreeSet<NodeId>,
}

/// The view service.
pub struct ViewService {
    p: Rc<Params>,
    replicas: usize,
    /// Durable state.
    pub state: ServiceState,
    /// Per replica: the generation of its latest heartbeat (its death timer's tag).
    heard: BTreeMap<NodeId, u64>,
    /// Replicas heard from within `wait`.
    alive: BTreeSet<NodeId>,
    /// Views installed (for metrics).
    pub views_installed: u64,
}

impl ViewService {
    /// The service of a cluster with `replicas` replicas (nodes 1..=replicas).
    pub fn new(p: Rc<Params>, replicas: usize) -> Self {
        ViewService {
            p,
            replicas,
            state: ServiceState::default(),
            heard: BTreeMap::new(),
            alive: BTreeSet::new(),
            views_installed: 0,
        }
    }

    pub(crate) fn on_start(&mut self, ctx: &mut Ctx<'_, Msg>) {
        if let Some(s) = ctx.storage().get_json::<ServiceState>("view") {
            self.state = s;
            // A lease granted before the crash may still run: count every replica as heard
            // just now, so that nobody is declared dead (and replaced) before it surely ended.
            for r in 1..=self.replicas {
                self.heard_from(ctx, r);
            }
        }
    }

    /// How long silence must last before a replica is declared dead.
    fn death_wait(&self, node: NodeId) -> Nanos {
        if self.p.has(PbBug::PromoteWithoutLease) && self.state.view.primary == Some(node) {
            return 3 * self.p.heartbeat_interval.0;
        }
        self.p.service_wait_ns()
    }

    fn heard_from(&mut self, ctx: &mut Ctx<'_, Msg>, node: NodeId) {
        let generation = self.heard.entry(node).or_insert(0);
        *generation += 1;
        let tag = DEATH_TIMER | ((node as u64) << 32) | *generation;
        self.alive.insert(node);
        let wait = self.death_wait(node);
        ctx.set_timer(wait, tag);
    }

    pub(crate) fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, from: NodeId, msg: Msg) {
        let Msg::Ping { ping, view, synced } = msg else {
            return;
        };
        self.heard_from(ctx, from);
        let s = &mut self.state;
        if s.view.primary == Some(from) && view == s.view.num && synced && !s.acked {
            s.acked = true;
            s.in_sync = s.view.backups.iter().copied().collect();
            let (num, in_sync) = (s.view.num, s.in_sync.clone());
            ctx.note(|| format!("view {num} acknowledged, in sync {in_sync:?}"));
            self.persist(ctx);
        }
        self.maybe_change(ctx);
        let s = &self.state;
        let grant = (s.view.primary == Some(from)).then_some(ping);
        ctx.send(
            from,
            Msg::ViewReply {
                view: s.view.clone(),
                grant,
            },
        );
    }

    pub(crate) fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if tag & DEATH_TIMER == 0 {
            return;
        }
        let node = ((tag >> 32) & 0xff_ffff) as NodeId;
        let generation = tag & 0xffff_ffff;
        if self.heard.get(&node) == Some(&generation) {
            self.alive.remove(&node);
            ctx.count("pb.declared_dead", 1.0);
            self.maybe_change(ctx);
        }
    }

    /// Applies at most one view change allowed by the rules above.
    fn maybe_change(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let Some(next) = self.next_view() else {
            return;
        };
        let s = &mut self.state;
        let promoted = next.primary != s.view.primary;
        if promoted && s.view.num > 0 {
            ctx.count("pb.promotions", 1.0);
        }
        if let Some(p) = next.primary {
            s.in_sync.remove(&p);
        }
        s.in_sync.retain(|b| next.backups.contains(b));
        debug_assert!(next.num == s.view.num + 1, "views advance one at a time");
        s.acked = false;
        s.view = next;
        let (v, in_sync) = (s.view.clone(), s.in_sync.clone());
        ctx.note(|| format!("view {v:?}, in sync {in_sync:?}"));
        self.views_installed += 1;
        self.persist(ctx);
        let view = self.state.view.clone();
        for r in view.primary.iter().chain(view.backups.iter()) {
            ctx.send(
                *r,
                Msg::ViewReply {
                    view: view.clone(),
                    grant: None,
                },
            );
        }
    }

    fn next_view(&self) -> Option<View> {
        let s = &self.state;
        let v = &s.view;
        let num = v.num + 1;
        let Some(primary) = v.primary else {
            // The first view: the first replica heard from, with an empty log like all.
            let first = *self.alive.iter().next()?;
            return Some(View {
                num,
                epoch: num,
                primary: Some(first),
                backups: Vec::new(),
            });
        };
        let live_backups = || -> Vec<NodeId> {
            v.backups
                .iter()
                .copied()
                .filter(|b| self.alive.contains(b))
                .collect()
        };
        if !self.alive.contains(&primary) {
            let candidate = v
                .backups
                .iter()
                .copied()
                .find(|b| s.in_sync.contains(b) && self.alive.contains(b))?;
            let backups = live_backups().into_iter().filter(|b| *b != candidate);
            return Some(View {
                num,
                epoch: num,
                primary: Some(candidate),
                backups: backups.collect(),
            });
        }
        if v.backups.iter().any(|b| !self.alive.contains(b)) {
            return Some(View {
                backups: live_backups(),
                num,
                ..v.clone()
            });
        }
        let idle: Vec<NodeId> = self
            .alive
            .iter()
            .copied()
            .filter(|r| *r != primary && !v.backups.contains(r))
            .collect();
        if s.acked && !idle.is_empty() {
            let mut backups = v.backups.clone();
            backups.extend(idle);
            return Some(View {
                backups,
                num,
                ..v.clone()
            });
        }
        None
    }

    fn persist(&mut self, ctx: &mut Ctx<'_, Msg>) {
        let s = self.state.clone();
        ctx.storage().put_json("view", &s);
        ctx.storage().sync();
    }
}
