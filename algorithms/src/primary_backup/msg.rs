//! Primary-backup's messages, views and log entries.
//!
//! The client vocabulary (get, put, cas and their results) is the Raft store's own
//! ([`KvOp`], [`ClientResult`]), so that the same linearizability model judges both.

use std::rc::Rc;

use serde::{Deserialize, Serialize};
use sim_core::{Message, NodeId};

use crate::raft::msg::{ClientResult, KvOp};

/// A view: who is primary, who are the backups. Numbered by the view service; `epoch` is the
/// number of the view in which the primary was promoted (it stays while only backups change),
/// and every replication message carries it, so that a backup never mixes two primaries'
/// streams.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    /// The view number (0: no view yet).
    pub num: u64,
    /// The view number at which the current primary was promoted.
    pub epoch: u64,
    /// The primary, if any.
    pub primary: Option<NodeId>,
    /// The backups, in promotion order.
    pub backups: Vec<NodeId>,
}

/// One operation in the primary's order. Reads are in the order too: a backup that has
/// applied a read's entry has confirmed that it still follows this primary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The client's id (its node index).
    pub client: u32,
    /// The client's sequence number (a retry keeps it).
    pub cseq: u64,
    /// The operation.
    pub op: KvOp,
}

/// Primary-backup's messages.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A replica's heartbeat to the view service.
    Ping {
        /// Heartbeat number (the lease it asks for starts when it was sent).
        ping: u64,
        /// The view the replica knows.
        view: u64,
        /// Primary only: every backup of `view` holds the primary's state (acknowledges it).
        synced: bool,
    },
    /// The view service's answer: the current view, and a lease if the pinger is its primary.
    ViewReply {
        /// The current view.
        view: View,
        /// The heartbeat number whose lease is granted (primary only).
        grant: Option<u64>,
    },
    /// A newly promoted primary asks a backup for its log (catch-up).
    Fetch {
        /// The new primary's epoch.
        epoch: u64,
    },
    /// A backup's log, for the new primary.
    FetchReply {
        /// The epoch asked about.
        epoch: u64,
        /// The epoch of the stream the backup's log follows.
        log_epoch: u64,
        /// The log (shared: the network may copy the message).
        log: Rc<Vec<Entry>>,
    },
    /// The primary's whole log, which the backup adopts.
    Snapshot {
        /// The primary's epoch.
        epoch: u64,
        /// The log.
        log: Rc<Vec<Entry>>,
    },
    /// Entries after `prev` in the primary's order.
    Replicate {
        /// The primary's epoch.
        epoch: u64,
        /// How many entries precede `entries`.
        prev: u64,
        /// The entries.
        entries: Vec<Entry>,
    },
    /// A backup's answer: how many entries of epoch `epoch` it holds (durably); `None` asks
    /// for a snapshot.
    Ack {
        /// The epoch.
        epoch: u64,
        /// Entries held, or None when the backup follows another stream.
        applied: Option<u64>,
    },
    /// A client's operation.
    Request {
        /// The client's request number, echoed.
        req: u64,
        /// Client id.
        client: u32,
        /// Sequence number for deduplication.
        cseq: u64,
        /// The operation.
        op: KvOp,
    },
    /// The answer to a client (`NotLeader` redirects to the primary).
    Reply {
        /// The request number.
        req: u64,
        /// The outcome.
        result: ClientResult,
    },
    /// `failover = "zookeeper"`: Raft's messages of the coordination service, between its
    /// replicas, and the primary-backup replicas' requests and the leader's replies.
    Coord(crate::raft::msg::Msg<super::coord::Coord>),
    /// A replica keeps its session alive (and, as the primary, asks for its lease).
    SessionPing {
        /// The session.
        session: u64,
        /// The ping's number (the lease it asks for starts when it was sent).
        ping: u64,
    },
    /// The coordination leader's answer: whether the session is still alive.
    SessionPong {
        /// The ping answered.
        ping: u64,
        /// False once the service expired the session.
        alive: bool,
    },
    /// A coordination replica that does not lead answers a ping with the leader it believes.
    CoordNotLeader {
        /// That leader, if known.
        hint: Option<NodeId>,
    },
}

impl From<crate::raft::msg::Msg<super::coord::Coord>> for Msg {
    fn from(m: crate::raft::msg::Msg<super::coord::Coord>) -> Msg {
        Msg::Coord(m)
    }
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Ping { .. } => "ping",
            Msg::ViewReply { grant: Some(_), .. } => "view_lease",
            Msg::ViewReply { .. } => "view",
            Msg::Fetch { .. } => "fetch",
            Msg::FetchReply { .. } => "fetch_reply",
            Msg::Snapshot { .. } => "snapshot",
            Msg::Replicate { .. } => "replicate",
            Msg::Ack { .. } => "ack",
            Msg::Request { .. } => "request",
            Msg::Reply { .. } => "reply",
            Msg::Coord(crate::raft::msg::Msg::Request { op, .. }) => match op {
                super::coord::CoordOp::Zk(z) => z.label(),
                super::coord::CoordOp::List => "list",
                super::coord::CoordOp::SetInSync { .. } => "set_in_sync",
            },
            Msg::Coord(crate::raft::msg::Msg::Reply { .. }) => "coord_reply",
            Msg::Coord(m) => m.label(),
            Msg::SessionPing { .. } => "session_ping",
            Msg::SessionPong { .. } => "session_pong",
            Msg::CoordNotLeader { .. } => "coord_not_leader",
        }
    }
}
