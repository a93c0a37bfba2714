//! [`BlockingClient`]: the same calls for code without an async runtime
//! (command-line tools, tests), each run to completion on a private
//! single-threaded tokio runtime.

use everarcade_protocol::{Envelope, WorldId};

use crate::api::{
    Ack, Admission, BackupTaken, CheckpointTaken, Drained, Refusal, Status, TickInfo, Version,
};
use crate::client::{Client, ProvenValue};
use crate::error::ClientError;

/// A [`Client`] whose calls block the calling thread.
pub struct BlockingClient {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl BlockingClient {
    /// Wraps `client` with its own runtime.
    ///
    /// # Panics
    ///
    /// If the runtime cannot be built (the OS refuses a timer or an epoll
    /// instance), or when called from inside an async runtime.
    pub fn new(client: Client) -> BlockingClient {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a single-threaded tokio runtime builds");
        BlockingClient { runtime, client }
    }

    /// A blocking client of the node at `address` serving `world`.
    pub fn connect(address: &str, world: WorldId) -> Result<BlockingClient, ClientError> {
        Ok(BlockingClient::new(Client::new(address, world)?))
    }

    /// The async client inside.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// See [`Client::submit`].
    pub fn submit(&self, envelope: &Envelope) -> Result<Ack, ClientError> {
        self.runtime.block_on(self.client.submit(envelope))
    }

    /// See [`Client::submit_batch`].
    pub fn submit_batch(
        &self,
        envelopes: &[Envelope],
    ) -> Result<Vec<Result<Ack, Refusal>>, ClientError> {
        self.runtime.block_on(self.client.submit_batch(envelopes))
    }

    /// See [`Client::status`].
    pub fn status(&self) -> Result<Status, ClientError> {
        self.runtime.block_on(self.client.status())
    }

    /// See [`Client::tick`].
    pub fn tick(&self, tick: u64) -> Result<TickInfo, ClientError> {
        self.runtime.block_on(self.client.tick(tick))
    }

    /// See [`Client::state`].
    pub fn state(&self, key: &[u8]) -> Result<ProvenValue, ClientError> {
        self.runtime.block_on(self.client.state(key))
    }

    /// See [`Client::readyz`].
    pub fn readyz(&self) -> Result<(), ClientError> {
        self.runtime.block_on(self.client.readyz())
    }

    /// See [`Client::wait_ready`].
    pub fn wait_ready(
        &self,
        within: std::time::Duration,
    ) -> Result<std::time::Duration, ClientError> {
        self.runtime.block_on(self.client.wait_ready(within))
    }

    /// See [`Client::metrics`].
    pub fn metrics(&self) -> Result<String, ClientError> {
        self.runtime.block_on(self.client.metrics())
    }

    /// See [`Client::version`].
    pub fn version(&self) -> Result<Version, ClientError> {
        self.runtime.block_on(self.client.version())
    }

    /// See [`Client::admission_open`].
    pub fn admission_open(&self) -> Result<Admission, ClientError> {
        self.runtime.block_on(self.client.admission_open())
    }

    /// See [`Client::admission_close`].
    pub fn admission_close(&self) -> Result<Admission, ClientError> {
        self.runtime.block_on(self.client.admission_close())
    }

    /// See [`Client::checkpoint`].
    pub fn checkpoint(&self) -> Result<CheckpointTaken, ClientError> {
        self.runtime.block_on(self.client.checkpoint())
    }

    /// See [`Client::backup`].
    pub fn backup(&self, backup_dir: Option<&std::path::Path>) -> Result<BackupTaken, ClientError> {
        self.runtime.block_on(self.client.backup(backup_dir))
    }

    /// See [`Client::drain`].
    pub fn drain(&self) -> Result<Drained, ClientError> {
        self.runtime.block_on(self.client.drain())
    }
}
