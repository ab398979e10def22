//! The cache cluster's messages.

use sim_core::Message;

/// Messages between clients, cache servers and the database.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A cache server's heartbeat.
    Alive,
    /// A cache server leaves gracefully.
    Leaving,
    /// Client -> cache: read `key`.
    Get {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
    },
    /// Cache -> client: the cached value (`None`: the key was never written).
    Hit {
        /// Request id.
        req: u64,
        /// The value.
        value: Option<u64>,
    },
    /// Cache -> client: not cached. With leases, `token` lets this client fill the key.
    Miss {
        /// Request id.
        req: u64,
        /// The lease token, if one was handed out.
        token: Option<u64>,
    },
    /// Cache -> client: another client holds the lease for this key; ask again shortly.
    Wait {
        /// Request id.
        req: u64,
    },
    /// Client -> cache: store what the database said (cache-aside fill).
    Fill {
        /// Key index.
        key: u32,
        /// The value.
        value: Option<u64>,
        /// The lease token from the miss.
        token: Option<u64>,
    },
    /// Client -> cache: invalidate `key` (and any lease on it).
    Delete {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
    },
    /// Cache -> client: invalidated.
    DeleteOk {
        /// Request id.
        req: u64,
    },
    /// Client -> database: read `key`.
    DbRead {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
    },
    /// Database -> client: the value and its version (0 = never written).
    DbReadOk {
        /// Request id.
        req: u64,
        /// The value.
        value: Option<u64>,
    },
    /// Client -> database: write `value` under `key`.
    DbWrite {
        /// Request id.
        req: u64,
        /// Key index.
        key: u32,
        /// The value.
        value: u64,
    },
    /// Database -> client: written (durably).
    DbWriteOk {
        /// Request id.
        req: u64,
    },
}

impl Message for Msg {
    fn label(&self) -> &'static str {
        match self {
            Msg::Alive => "alive",
            Msg::Leaving => "leaving",
            Msg::Get { .. } => "get",
            Msg::Hit { .. } => "hit",
            Msg::Miss { .. } => "miss",
            Msg::Wait { .. } => "wait",
            Msg::Fill { .. } => "fill",
            Msg::Delete { .. } => "delete",
            Msg::DeleteOk { .. } => "delete_ok",
            Msg::DbRead { .. } => "db_read",
            Msg::DbReadOk { .. } => "db_read_ok",
            Msg::DbWrite { .. } => "db_write",
            Msg::DbWriteOk { .. } => "db_write_ok",
        }
    }
}
