//! Finding the node that runs a world, and talking to it: the lifecycle and
//! operations commands (`start` waits on `/readyz`; `status`, `checkpoint`
//! and `backup` ask the running node) go through `everarcade-client`, the
//! same client game developers use.

use std::net::SocketAddr;
use std::time::Duration;

use everarcade_client::{BlockingClient, Client, ClientError};
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, LockState, StoreError, WorldDir, WorldLock};

use crate::exit::{FAILURE, Failure};
use crate::target::Target;

/// The running node of a world: its pid and address, when the world lock
/// is held and `status.json` (written by the holder) names an address.
pub struct RunningNode {
    /// The lock holder.
    pub pid: u32,
    /// Where it listens, if recorded.
    pub address: Option<SocketAddr>,
}

/// Finds the node that runs the world in `dir`, if one does.
pub fn running_node(dir: &WorldDir) -> Result<Option<RunningNode>, StoreError> {
    let LockState::Held { pid } = WorldLock::probe(&dir.lock())? else {
        return Ok(None);
    };
    let status: Option<StatusFile> = read_json(&DiskStorage, &dir.status()).ok();
    let address = status
        .filter(|s| s.state == "running" && s.pid == Some(pid))
        .and_then(|s| s.addresses.first().and_then(|a| a.parse().ok()));
    Ok(Some(RunningNode { pid, address }))
}

/// A client of the node at `address` for `target`'s world; every call is
/// bounded by `timeout`.
pub fn client(
    target: &Target,
    address: SocketAddr,
    timeout: Duration,
) -> Result<BlockingClient, ClientError> {
    let client = Client::new(&address.to_string(), target.id.clone())?.with_timeout(timeout);
    Ok(BlockingClient::new(client))
}

/// A client that carries the admin token: `EVERARCADE_ADMIN_TOKEN`, else
/// `<root>/admin.token`. Fails with `admin_token` when there is none.
pub fn admin_client(
    target: &Target,
    address: SocketAddr,
    timeout: Duration,
) -> Result<BlockingClient, Failure> {
    let token = admin_token(&target.dir).ok_or_else(|| {
        Failure::new(
            FAILURE,
            "admin_token",
            format!(
                "no admin token: set EVERARCADE_ADMIN_TOKEN or create {}",
                target.dir.admin_token().display()
            ),
        )
    })?;
    let client = Client::new(&address.to_string(), target.id.clone())
        .map_err(|error| Failure::new(FAILURE, "node_unreachable", error.to_string()))?
        .with_timeout(timeout)
        .with_admin_token(token);
    Ok(BlockingClient::new(client))
}

fn admin_token(dir: &WorldDir) -> Option<String> {
    if let Ok(token) = std::env::var("EVERARCADE_ADMIN_TOKEN") {
        return Some(token);
    }
    std::fs::read_to_string(dir.admin_token())
        .ok()
        .map(|text| text.trim().to_string())
}
