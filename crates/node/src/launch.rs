//! Starting, finding and stopping a world node as a separate process: the
//! one way the command line (`start`, `stop`, `restart`) and the runtime
//! manager (`everarcade-manager`) run a node they do not host themselves.
//!
//! - [`running_node`] finds the node of a world: the holder of its world
//!   lock (with the address it recorded in `status.json`), else an amnesia
//!   node in the [`registry`](crate::registry).
//! - [`spawn_detached`] starts `<binary> run …` in its own process group
//!   with its output appended to a log file; [`wait_ready`] polls until the
//!   node with that pid has recorded an address and a caller-given probe of
//!   `/readyz` passes, and on failure returns the end of the log.
//! - [`stop_node`] sends SIGTERM (the node closes admission, finishes its
//!   tick, checkpoints and releases the lock) and waits until no node holds
//!   the world.
//!
//! [`http_readyz`] is a plain-HTTP probe with no dependency for callers that
//! reach nodes over `http://` on a loopback address (the manager); the
//! command line probes through `everarcade-client`, which speaks TLS too.
//!
//! Architecture invariant: nothing here reads or writes world state; it
//! only reads the lock, `status.json` and the registry, and signals pids.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use everarcade_protocol::WorldId;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, LockState, StoreError, WorldDir, WorldLock};

use crate::registry;

/// How often [`wait_ready`] and [`stop_node`] look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of the node's log returned when a start fails.
pub const LOG_TAIL_LINES: usize = 30;

/// The running node of a world.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunningNode {
    /// Its process id (the lock holder).
    pub pid: u32,
    /// Where it listens, once recorded.
    pub address: Option<SocketAddr>,
    /// The certificate it serves TLS with, if it serves TLS.
    pub tls_cert: Option<PathBuf>,
    /// Whether it keeps the world in memory only (found in the registry).
    pub amnesia: bool,
}

impl RunningNode {
    /// `http://host:port` or `https://host:port`.
    pub fn url(&self) -> Option<String> {
        let address = self.address?;
        Some(match self.tls_cert {
            Some(_) => format!("https://{address}"),
            None => format!("http://{address}"),
        })
    }
}

/// Finds the node that runs `world` under `runtime_root`, if one does: the
/// holder of the world lock, else an amnesia node in the registry.
pub fn running_node(
    runtime_root: &Path,
    world: &WorldId,
) -> Result<Option<RunningNode>, StoreError> {
    if let Some(node) = durable_node(&WorldDir::new(runtime_root, world))? {
        return Ok(Some(node));
    }
    let Some(record) = registry::find(runtime_root, world)? else {
        return Ok(None);
    };
    Ok(Some(RunningNode {
        pid: record.pid,
        address: record.addresses.first().and_then(|a| a.parse().ok()),
        tls_cert: record.tls_cert.map(PathBuf::from),
        amnesia: true,
    }))
}

/// The holder of a durable world's lock, with what its `status.json` says
/// when it names that holder.
pub fn durable_node(dir: &WorldDir) -> Result<Option<RunningNode>, StoreError> {
    if !dir.lock().exists() {
        return Ok(None);
    }
    let LockState::Held { pid } = WorldLock::probe(&dir.lock())? else {
        return Ok(None);
    };
    let status: Option<StatusFile> = read_json(&DiskStorage, &dir.status())
        .ok()
        .filter(|s: &StatusFile| s.state == "running" && s.pid == Some(pid));
    Ok(Some(RunningNode {
        pid,
        address: status
            .as_ref()
            .and_then(|s| s.addresses.first().and_then(|a| a.parse().ok())),
        tls_cert: status.and_then(|s| s.tls_cert).map(PathBuf::from),
        amnesia: false,
    }))
}

/// Why a launch or a stop failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The log file or the binary could not be opened or spawned.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The world's lock or registry could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The node exited before it was ready.
    #[error("the node exited ({status}) before it was ready; the end of {}:\n{tail}", log.display())]
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The log file.
        log: PathBuf,
        /// The log's last lines written by this start.
        tail: String,
    },
    /// Not ready in time; the node was sent SIGTERM.
    #[error("not ready within {} s: {reason}; sent SIGTERM to pid {pid}; the end of {}:\n{tail}", timeout.as_secs(), log.display())]
    Timeout {
        /// The wait.
        timeout: Duration,
        /// The last reason it was not ready.
        reason: String,
        /// Its pid.
        pid: u32,
        /// The log file.
        log: PathBuf,
        /// The log's last lines written by this start.
        tail: String,
    },
    /// SIGTERM could not be sent.
    #[error("SIGTERM to pid {pid}: {source}")]
    Signal {
        /// The pid.
        pid: u32,
        /// The error.
        source: rustix::io::Errno,
    },
    /// The lock is held but names no pid.
    #[error("the world lock is held but names no pid; stop the holder by hand")]
    LockUnreadable,
    /// The node still runs after the stop timeout.
    #[error("pid {pid} still runs world {world} after {} s; see {}", timeout.as_secs(), log.display())]
    StopTimeout {
        /// The pid.
        pid: u32,
        /// The world.
        world: WorldId,
        /// The wait.
        timeout: Duration,
        /// The node's log.
        log: PathBuf,
    },
}

impl LaunchError {
    /// A stable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            LaunchError::Io { .. } => "io",
            LaunchError::Store(error) => error.code(),
            LaunchError::Exited { .. } => "start_failed",
            LaunchError::Timeout { .. } => "start_timeout",
            LaunchError::Signal { .. } => "stop_failed",
            LaunchError::LockUnreadable => "lock_unreadable",
            LaunchError::StopTimeout { .. } => "stop_timeout",
        }
    }
}

/// What to launch: `binary args…` with output appended to `log`.
#[derive(Clone, Debug)]
pub struct LaunchSpec {
    /// The `everarcade-runtime` binary.
    pub binary: PathBuf,
    /// Its arguments, starting with `run`.
    pub args: Vec<String>,
    /// Where its stdout and stderr go (appended, created 0600).
    pub log: PathBuf,
}

/// A node process just spawned.
#[derive(Debug)]
pub struct Launched {
    /// The child (the caller reaps it).
    pub child: Child,
    /// Its pid.
    pub pid: u32,
    /// Its log.
    pub log: PathBuf,
    /// Where this start's output begins in the log.
    pub log_start: u64,
}

/// Spawns the node in its own process group (a signal to the caller's
/// terminal does not reach it; it outlives the caller), stdin closed.
pub fn spawn_detached(spec: &LaunchSpec) -> Result<Launched, LaunchError> {
    let io = |what: String| move |source| LaunchError::Io { what, source };
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&spec.log)
        .map_err(io(spec.log.display().to_string()))?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let child = Command::new(&spec.binary)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .map_err(io(spec.log.display().to_string()))?,
        )
        .stderr(log)
        .process_group(0)
        .spawn()
        .map_err(io(format!("spawning the node {}", spec.binary.display())))?;
    Ok(Launched {
        pid: child.id(),
        child,
        log: spec.log.clone(),
        log_start,
    })
}

/// A node found ready.
#[derive(Clone, Debug)]
pub struct Ready {
    /// The node.
    pub node: RunningNode,
    /// What the probe returned (the URL it reached).
    pub url: String,
    /// Time from the call to readiness.
    pub elapsed: Duration,
}

/// Waits until the node `launched` is ready: it holds the world lock, has
/// recorded an address and `probe` passes. Fails with the end of the log
/// when it exits first, or after `timeout` (then it is sent SIGTERM).
pub fn wait_ready(
    launched: &mut Launched,
    runtime_root: &Path,
    world: &WorldId,
    timeout: Duration,
    mut probe: impl FnMut(&RunningNode) -> Result<String, String>,
) -> Result<Ready, LaunchError> {
    let started = Instant::now();
    let pid = launched.pid;
    loop {
        if let Ok(Some(status)) = launched.child.try_wait() {
            return Err(LaunchError::Exited {
                status,
                log: launched.log.clone(),
                tail: log_tail(&launched.log, launched.log_start),
            });
        }
        let reason = match running_node(runtime_root, world) {
            Err(error) => error.to_string(),
            Ok(found) => match found.filter(|node| node.pid == pid && node.address.is_some()) {
                None => "the node is still starting (recovering the world)".to_string(),
                Some(node) => match probe(&node) {
                    Ok(url) => {
                        return Ok(Ready {
                            node,
                            url,
                            elapsed: started.elapsed(),
                        });
                    }
                    Err(reason) => reason,
                },
            },
        };
        if started.elapsed() >= timeout {
            let _ = terminate(pid);
            return Err(LaunchError::Timeout {
                timeout,
                reason,
                pid,
                log: launched.log.clone(),
                tail: log_tail(&launched.log, launched.log_start),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) -> Result<(), LaunchError> {
    let target = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(LaunchError::LockUnreadable)?;
    rustix::process::kill_process(target, rustix::process::Signal::TERM)
        .map_err(|source| LaunchError::Signal { pid, source })
}

/// A node stopped by [`stop_node`].
#[derive(Clone, Debug)]
pub struct Stopped {
    /// The node that ran.
    pub node: RunningNode,
    /// Time from SIGTERM to the lock's release.
    pub elapsed: Duration,
    /// Its log.
    pub log: PathBuf,
}

/// The log a detached node of `world` writes: `node.log` in the world
/// directory, or, under amnesia, beside its registry entry.
pub fn node_log(runtime_root: &Path, world: &WorldId, amnesia: bool) -> PathBuf {
    match amnesia {
        true => registry::paths(runtime_root, world).log,
        false => WorldDir::new(runtime_root, world).node_log(),
    }
}

/// Stops `node` (the running node of `world`): SIGTERM, then waits up to
/// `timeout` until no node with its pid holds the world.
pub fn stop_node(
    runtime_root: &Path,
    world: &WorldId,
    node: RunningNode,
    timeout: Duration,
) -> Result<Stopped, LaunchError> {
    if node.pid == 0 {
        return Err(LaunchError::LockUnreadable);
    }
    let pid = node.pid;
    let started = Instant::now();
    terminate(pid)?;
    let log = node_log(runtime_root, world, node.amnesia);
    while running_node(runtime_root, world)?.is_some_and(|now| now.pid == pid) {
        if started.elapsed() >= timeout {
            return Err(LaunchError::StopTimeout {
                pid,
                world: world.clone(),
                timeout,
                log,
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    Ok(Stopped {
        node,
        elapsed: started.elapsed(),
        log,
    })
}

/// The last [`LOG_TAIL_LINES`] lines of `path` from byte `from` (at most
/// 1 MiB read).
pub fn log_tail(path: &Path, from: u64) -> String {
    let mut text = String::new();
    if let Ok(mut file) = std::fs::File::open(path) {
        let _ = file.seek(SeekFrom::Start(from));
        let _ = file.take(1 << 20).read_to_string(&mut text);
    }
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

/// `GET /readyz` over plain HTTP/1.1 at `address`, bounded by `timeout`:
/// `Ok` on 200, else the status line or the connection error.
pub fn http_readyz(address: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("connecting to {address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    let request = format!("GET /readyz HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("writing to {address}: {e}"))?;
    let mut head = Vec::with_capacity(256);
    let _ = (&mut stream).take(4096).read_to_end(&mut head);
    let text = String::from_utf8_lossy(&head);
    let status_line = text.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1);
    match code {
        Some("200") => Ok(()),
        Some(_) => {
            let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
            Err(format!("{status_line}: {body}"))
        }
        None => Err(format!("no HTTP answer from {address}")),
    }
}
