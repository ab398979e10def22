//! Clients: each operation is one transaction, sent to its coordinator (the lowest-numbered
//! participant it touches); `ok` when committed, `fail` when aborted, `info` on a timeout.
//!
//! - `transfer`: move 1..=max_transfer from one account to an account on another participant
//!   (a "no" vote if the balance is short). Ok value: `[from, to, amount]`.
//! - `read_all`: every account, under shared locks. Ok value: the balances in account order.
//! - `write`: one register on each of `write_span` participants, all set to the operation's
//!   value. Ok value: the value.

use std::rc::Rc;

use rand::Rng;
use serde_json::json;
use sim_core::{Ctx, EventType, NodeId, Op};

use super::msg::{Body, Msg, Piece, TxnSpec};
use super::Params;
use crate::client::RequestTracker;

/// A commit client.
pub struct Client {
    p: Rc<Params>,
    id: NodeId,
    n: usize,
    timeout_ns: u64,
    tracker: RequestTracker,
    /// The running operation's request id and its ok value (None for read_all: the reads).
    current: Option<(u64, Option<serde_json::Value>)>,
}

impl Client {
    /// A client of `n` participants.
    pub fn new(p: Rc<Params>, id: NodeId, n: usize, timeout_ns: u64) -> Client {
        Client {
            p,
            id,
            n,
            timeout_ns,
            tracker: RequestTracker::default(),
            current: None,
        }
    }

    /// Builds the transaction for `op` and sends it to its coordinator.
    pub fn on_invoke(&mut self, ctx: &mut Ctx<'_, Msg>, op: Op) {
        let (pieces, ok_value) = match op.f.as_str() {
            "transfer" => self.transfer(ctx),
            "read_all" => (self.read_all(), None),
            _ => self.write(ctx, &op),
        };
        let mut parts: Vec<NodeId> = pieces.iter().map(|(n, _)| *n).collect();
        parts.sort_unstable();
        parts.dedup();
        let req = self.tracker.begin(ctx, self.timeout_ns);
        let spec = TxnSpec {
            id: ((self.id as u64) << 32) | req,
            client: self.id,
            coord: parts[0],
            parts,
            pieces,
        };
        self.current = Some((req, ok_value));
        let coord = spec.coord;
        ctx.send(
            coord,
            Msg {
                depth: 1,
                body: Body::Begin(Rc::new(spec)),
            },
        );
    }

    fn transfer(
        &self,
        ctx: &mut Ctx<'_, Msg>,
    ) -> (Vec<(NodeId, Piece)>, Option<serde_json::Value>) {
        let (n, accounts) = (self.n, self.p.accounts);
        let from = ctx.rng().random_range(0..accounts);
        // Another participant holding accounts, then one of its accounts (q, q + n, ...).
        let holders = n.min(accounts as usize);
        let p = from as usize % n;
        let q = (p + ctx.rng().random_range(1..holders)) % holders;
        let on_q = (accounts as usize - q).div_ceil(n);
        let to = (q + n * ctx.rng().random_range(0..on_q)) as u32;
        debug_assert!(to < accounts && to as usize % n != p);
        let amount = ctx.rng().random_range(1..=self.p.max_transfer);
        let pieces = vec![
            (from as usize % n, Piece::Debit { acct: from, amount }),
            (to as usize % n, Piece::Credit { acct: to, amount }),
        ];
        (pieces, Some(json!([from, to, amount])))
    }

    fn read_all(&self) -> Vec<(NodeId, Piece)> {
        let holders = self.n.min(self.p.accounts as usize);
        (0..holders).map(|p| (p, Piece::ReadAll)).collect()
    }

    fn write(
        &self,
        ctx: &mut Ctx<'_, Msg>,
        op: &Op,
    ) -> (Vec<(NodeId, Piece)>, Option<serde_json::Value>) {
        let span = if self.p.write_span == 0 {
            self.n
        } else {
            self.p.write_span
        };
        let mut nodes: Vec<NodeId> = (0..self.n).collect();
        for i in 0..span {
            let j = ctx.rng().random_range(i..self.n);
            nodes.swap(i, j);
        }
        let value = op
            .value
            .as_i64()
            .unwrap_or_else(|| ctx.rng().random_range(0..1_000_000));
        let per_node = (self.p.registers as usize).div_ceil(self.n).max(1);
        let pieces = nodes[..span]
            .iter()
            .map(|&p| {
                let reg = (p + self.n * ctx.rng().random_range(0..per_node)) as u32;
                (p, Piece::Write { reg, value })
            })
            .collect();
        (pieces, Some(json!(value)))
    }

    /// The coordinator's answer.
    pub fn on_message(&mut self, ctx: &mut Ctx<'_, Msg>, msg: Msg) {
        let Body::Outcome {
            txn,
            commit,
            mut reads,
        } = msg.body
        else {
            return;
        };
        let req = txn & 0xffff_ffff;
        let Some((cur, ok_value)) = self.current.clone() else {
            return;
        };
        if cur != req {
            return;
        }
        let (outcome, value) = if !commit {
            (EventType::Fail, serde_json::Value::Null)
        } else if let Some(v) = ok_value {
            (EventType::Ok, v)
        } else {
            reads.sort_unstable();
            (
                EventType::Ok,
                json!(reads.iter().map(|r| r.1).collect::<Vec<_>>()),
            )
        };
        if self.tracker.finish(ctx, req, outcome, value) {
            self.current = None;
        }
    }

    /// The request timed out: `info`.
    pub fn on_timer(&mut self, ctx: &mut Ctx<'_, Msg>, tag: u64) {
        if self.tracker.on_timer(ctx, tag) {
            self.current = None;
        }
    }
}
