//! Finding the node that runs a world, and talking to it: the lifecycle and
//! operations commands (`start` waits on `/readyz`; `status`, `checkpoint`
//! and `backup` ask the running node) go through `everarcade-client`, the
//! same client game developers use.
//!
//! A node is found by `everarcade_node::launch::running_node`: a durable
//! node through its world lock and `status.json`, an amnesia node through
//! the node registry in the OS runtime directory. A
//! node that serves TLS is reached over `https://`, trusting `--ca` if given,
//! else the certificate the node recorded that it serves.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use everarcade_client::{BlockingClient, Client, ClientError, Trust};
use everarcade_node::launch;
use everarcade_store::{StoreError, WorldDir};

use crate::exit::{FAILURE, Failure, USAGE};
use crate::target::WorldRef;

/// `--ca`: the certificates to trust for `https://` nodes, set once by `main`.
static CA: OnceLock<PathBuf> = OnceLock::new();

/// Records `--ca` for every client this process makes.
pub fn set_ca(path: PathBuf) {
    let _ = CA.set(path);
}

/// The running node of a world (found by `everarcade_node::launch`).
pub use everarcade_node::launch::RunningNode;

/// Finds the node that runs the world, if one does: the holder of the
/// world lock, else an amnesia node in the registry.
pub fn running_node(world: &WorldRef) -> Result<Option<RunningNode>, StoreError> {
    launch::running_node(world.dir.runtime_root(), &world.id)
}

/// The trust for an `https://` node: `--ca`, else the node's own
/// certificate as it recorded it.
fn trust(recorded: Option<&Path>) -> Result<Option<Trust>, ClientError> {
    match CA.get().map(PathBuf::as_path).or(recorded) {
        Some(path) => Trust::from_pem_file(path).map(Some),
        None => Ok(None),
    }
}

/// A client of the node at `url` (`host:port`, `http://…` or `https://…`)
/// for `world`; every call bounded by `timeout`.
pub fn client_at(
    url: &str,
    world: &WorldRef,
    recorded_cert: Option<&Path>,
    timeout: Duration,
) -> Result<Client, ClientError> {
    let client = match trust(recorded_cert)? {
        Some(trust) => Client::with_trust(url, world.id.clone(), &trust)?,
        None => Client::new(url, world.id.clone())?,
    };
    Ok(client.with_timeout(timeout))
}

/// A client of `node`, at its recorded address with its recorded trust.
fn node_client(
    world: &WorldRef,
    node: &RunningNode,
    timeout: Duration,
) -> Result<Client, ClientError> {
    let url = node.url().ok_or_else(|| ClientError::Address {
        address: String::new(),
        reason: format!("node pid {} has not recorded an address yet", node.pid),
    })?;
    client_at(&url, world, node.tls_cert.as_deref(), timeout)
}

/// A blocking client of `node`.
pub fn client(
    world: &WorldRef,
    node: &RunningNode,
    timeout: Duration,
) -> Result<BlockingClient, ClientError> {
    node_client(world, node, timeout).map(BlockingClient::new)
}

/// A client that carries the admin token: `EVERARCADE_ADMIN_TOKEN`, else
/// `<root>/admin.token`. Fails with `admin_token` when there is none.
pub fn admin_client(
    world: &WorldRef,
    node: &RunningNode,
    timeout: Duration,
) -> Result<BlockingClient, Failure> {
    let token = admin_token(&world.dir).ok_or_else(|| {
        Failure::new(
            FAILURE,
            "admin_token",
            format!(
                "no admin token: set EVERARCADE_ADMIN_TOKEN or create {}",
                world.dir.admin_token().display()
            ),
        )
    })?;
    let client = node_client(world, node, timeout).map_err(client_setup_failure)?;
    Ok(BlockingClient::new(client.with_admin_token(token)))
}

/// A client that could not be made: a bad address or trust file is the
/// operator's to fix.
pub fn client_setup_failure(error: ClientError) -> Failure {
    Failure::new(USAGE, error.code(), error.to_string())
}

fn admin_token(dir: &WorldDir) -> Option<String> {
    if let Ok(token) = std::env::var("EVERARCADE_ADMIN_TOKEN") {
        return Some(token);
    }
    std::fs::read_to_string(dir.admin_token())
        .ok()
        .map(|text| text.trim().to_string())
}
