//! `federation status|compare|import|promote|leave|rejoin`: the manual's
//! federation recovery (docs/FEDERATION.md §Recovery commands).
//!
//! - `compare` reads the local journal (read-only: the node may be running)
//!   and each trusted peer's record stream, and names the first divergence;
//! - `import` appends the verified records a stopped world is missing from a
//!   trusted peer, through the follower's path (`stream::apply`);
//! - `status` asks the running node (role, authority, lag) and every
//!   configured peer (head, roots), and shows the last comparison;
//! - `promote`, `leave`, `rejoin` call the running node's admin API.
//!
//! Peers are trusted only as configured (`[federation] peers`: URL and
//! operator public key): a `--peer` that is not configured, or that reports
//! another operator key, is refused before anything is fetched from it.

use std::path::PathBuf;
use std::time::Duration;

use everarcade_client::{Client, ClientError, RecordsQuery};
use everarcade_federation::compare::{Comparison, Divergence, Outcome, Summary};
use everarcade_federation::stream::{apply, decode_stream};
use everarcade_node::config::Peer;
use everarcade_protocol::Hash;
use everarcade_store::meta::{StatusFile, read_json};
use everarcade_store::{DiskStorage, JournalReader, StoreError, WorldDir};
use everarcade_world::follow::{FollowError, Head};
use everarcade_world::{DurableWorld, Entry};

use crate::config_cmd::{NodeFlags, effective};
use crate::exit::{
    BAD_SIGNATURE, DIVERGENCE, FAILURE, Failure, INTEGRITY, MALFORMED, NOT_RUNNING, USAGE,
};
use crate::probe;
use crate::target::{DurabilityArgs, Target, WorldRef, open, store_failure, world_failure};
use crate::{JsonWorldArgs, WorldArgs};

/// Framed bytes asked for per page of a peer's record stream.
const PAGE_BYTES_MAX: usize = 4 << 20;
/// The timeout of one call to a peer or to the local node.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Where `compare` leaves its result, under the world's directory.
const LAST_COMPARE_FILE: &str = "federation/last-compare.json";

/// `federation …` arguments.
#[derive(clap::Args)]
pub struct FederationArgs {
    #[command(subcommand)]
    command: FederationCommand,
}

#[derive(clap::Subcommand)]
enum FederationCommand {
    /// The running node's role, authority and lag; each configured peer's head, roots and lag; the last comparison.
    Status(StatusArgs),
    /// Compare the local journal with trusted peers' record streams: checksums at every common record, roots at every (or every N-th) common tick.
    Compare(CompareArgs),
    /// Import the verified records a stopped world is missing from a trusted peer, record by record,
    /// or from the peer's newest checkpoint with --checkpoint, or the ticks of a proof bundle a trusted
    /// peer exported (--bundle).
    Import(ImportArgs),
    /// Make the running node (a caught-up follower) the world's authority.
    Promote(JsonWorldArgs),
    /// Remove the running node from input authority (it stands by).
    Leave(JsonWorldArgs),
    /// Let the running node follow the authority at --authority again.
    Rejoin(RejoinArgs),
}

/// Where the trusted peers are configured.
#[derive(clap::Args, Clone, Debug, Default)]
struct PeerConfigArgs {
    /// The node's TOML configuration file, whose `[federation] peers` lists
    /// the trusted peers (also `EVERARCADE_CONFIG`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct StatusArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    peers: PeerConfigArgs,
}

#[derive(clap::Args)]
struct CompareArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    peers: PeerConfigArgs,
    /// A trusted peer's node, `http://HOST:PORT` (repeatable).
    #[arg(long = "peer", value_name = "URL", required = true)]
    peer: Vec<String>,
    /// Compare the roots of every N-th tick only (the last common tick
    /// always); checksums are compared at every common record.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    sample: u64,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["peer", "bundle"])))]
struct ImportArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    peers: PeerConfigArgs,
    /// The trusted peer to import from, `http://HOST:PORT`.
    #[arg(long = "peer", value_name = "URL")]
    peer: Option<String>,
    /// Start from the peer's newest checkpoint when it is ahead of this
    /// world: the records before it are journaled without being executed,
    /// the checkpoint is checked against them and installed, and the rest
    /// is imported record by record (`replay-verify` re-executes them all).
    #[arg(long, requires = "peer")]
    checkpoint: bool,
    /// Import the ticks after this world's head from a proof bundle
    /// (`export-bundle`) signed by a configured peer's operator key: each
    /// tick's inputs admitted and the tick executed here, its roots
    /// compared with the bundle's before its tick record is written.
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    durability: DurabilityArgs,
}

#[derive(clap::Args)]
struct RejoinArgs {
    #[command(flatten)]
    common: JsonWorldArgs,
    #[command(flatten)]
    peers: PeerConfigArgs,
    /// The authority to follow, `http://HOST:PORT`: a configured peer.
    #[arg(long, value_name = "URL")]
    authority: String,
}

/// Runs `federation …`.
pub fn run(args: FederationArgs) -> Result<(), Failure> {
    match args.command {
        FederationCommand::Status(args) => status(args),
        FederationCommand::Compare(args) => compare(args),
        FederationCommand::Import(args) => import(args),
        FederationCommand::Promote(args) => role_change(&args, RoleChange::Promote),
        FederationCommand::Leave(args) => role_change(&args, RoleChange::Leave),
        FederationCommand::Rejoin(args) => rejoin(args),
    }
}

// ---------------------------------------------------------------- peers

/// The configured peers: `[federation] peers` of the effective node
/// configuration (`--config`, else `EVERARCADE_CONFIG`; the `EVERARCADE_*`
/// environment over it); none without one.
fn configured_peers(args: &PeerConfigArgs) -> Result<Vec<Peer>, Failure> {
    let flags = NodeFlags {
        config: args.config.clone(),
        ..NodeFlags::default()
    };
    effective(&flags)?
        .federation
        .peers()
        .map_err(|error| Failure::new(USAGE, "invalid_config", error.to_string()))
}

/// The configured peer at `url`, or `peer_unknown`.
fn find_peer<'a>(peers: &'a [Peer], url: &str) -> Result<&'a Peer, Failure> {
    let url = url.trim_end_matches('/');
    peers.iter().find(|peer| peer.url == url).ok_or_else(|| {
        let known: Vec<&str> = peers.iter().map(|peer| peer.url.as_str()).collect();
        Failure::new(
            BAD_SIGNATURE,
            "peer_unknown",
            format!(
                "{url} is not a configured peer ([federation] peers: {}); material from an unconfigured peer is refused",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ),
        )
    })
}

/// A client of a configured peer whose `/status` reports the configured
/// operator key; `peer_key_mismatch` otherwise. Nothing else is fetched
/// from a peer before this.
async fn trusted_client(
    world: &WorldRef,
    peer: &Peer,
) -> Result<(Client, everarcade_client::Status), Failure> {
    let client = probe::client_at(&peer.url, world, None, CALL_TIMEOUT)
        .map_err(probe::client_setup_failure)?;
    let status = client
        .status()
        .await
        .map_err(|e| peer_failure(&peer.url, e))?;
    let reported = hex::encode(status.operator_public_key);
    if reported != peer.operator_public_key {
        return Err(Failure::new(
            BAD_SIGNATURE,
            "peer_key_mismatch",
            format!(
                "{} reports operator key {reported}, but the configured key is {}: refused",
                peer.url, peer.operator_public_key
            ),
        ));
    }
    Ok((client, status))
}

/// A peer's refusal or silence.
fn peer_failure(url: &str, error: ClientError) -> Failure {
    let code = if error.is_transport() {
        "peer_unreachable".to_string()
    } else {
        error.code().to_string()
    };
    Failure::new(FAILURE, &code, format!("peer {url}: {error}"))
}

/// A current-thread runtime for the async client.
fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(FAILURE, "internal", format!("a tokio runtime: {e}")))
}

/// Why a page of a peer's record stream was not had.
enum Fetch {
    /// The peer refused or did not answer.
    Peer(ClientError),
    /// Its framing does not check out: nothing of the page is used.
    Framing(everarcade_federation::FederationError),
}

impl Fetch {
    /// As a command's failure.
    fn failure(self, url: &str) -> Failure {
        match self {
            Fetch::Peer(error) => peer_failure(url, error),
            Fetch::Framing(error) => {
                Failure::new(INTEGRITY, error.code(), format!("peer {url}: {error}"))
            }
        }
    }
}

/// One page of a peer's record stream after `(ordinal, checksum)`.
async fn fetch_page(
    client: &Client,
    after: u64,
    checksum: &Hash,
) -> Result<Vec<everarcade_federation::WireRecord>, Fetch> {
    let checksum = checksum.to_hex();
    let query = RecordsQuery {
        diverged: None,
        after,
        checksum: &checksum,
        wait_ms: 0,
        max_bytes: PAGE_BYTES_MAX,
        follower: None,
    };
    let page = client.records(&query).await.map_err(Fetch::Peer)?;
    decode_stream(&page.body).map_err(Fetch::Framing)
}

// ---------------------------------------------------------------- compare

fn compare(args: CompareArgs) -> Result<(), Failure> {
    let world = WorldRef::resolve(&args.common.world)?;
    world.require_exists()?;
    world.given_package(&args.common.world)?;
    let peers = configured_peers(&args.peers)?;
    let chosen: Vec<Peer> = args
        .peer
        .iter()
        .map(|url| find_peer(&peers, url).cloned())
        .collect::<Result<_, _>>()?;
    let runtime = runtime()?;
    // Every peer is checked before records are fetched from any.
    let clients: Vec<Client> = chosen
        .iter()
        .map(|peer| {
            runtime
                .block_on(trusted_client(&world, peer))
                .map(|(client, _)| client)
        })
        .collect::<Result<_, _>>()?;
    let mut reports = Vec::new();
    for (peer, client) in chosen.iter().zip(&clients) {
        let outcome = runtime.block_on(compare_with(client, &world.dir, args.sample))?;
        reports.push((peer.url.clone(), outcome));
    }
    let object = compare_json(&world, args.sample, &reports);
    write_last_compare(&world.dir, &object)?;
    if !args.common.json {
        for (url, outcome) in &reports {
            print_outcome(url, outcome, args.sample);
        }
    }
    let diverged: Vec<&str> = reports
        .iter()
        .filter(|(_, outcome)| outcome.divergence.is_some())
        .map(|(url, _)| url.as_str())
        .collect();
    if diverged.is_empty() {
        if args.common.json {
            println!("{object}");
        }
        return Ok(());
    }
    // Under --json the comparison is printed beside the error.
    Err(Failure::new(
        DIVERGENCE,
        "peer_root_mismatch",
        format!(
            "the local journal diverges from {} (see above; recorded in {})",
            diverged.join(", "),
            world.dir.path().join(LAST_COMPARE_FILE).display()
        ),
    )
    .with_details(object))
}

/// Walks the local journal and the peer's stream in step.
async fn compare_with(client: &Client, dir: &WorldDir, sample: u64) -> Result<Outcome, Failure> {
    let storage = DiskStorage;
    let journal = dir.journal();
    let mut reader = JournalReader::open(&storage, &journal).map_err(store_failure)?;
    let genesis = reader.next().map_err(store_failure)?.ok_or_else(|| {
        Failure::new(
            FAILURE,
            "world_missing",
            "the journal has no genesis record",
        )
    })?;
    let mut comparison = Comparison::new(genesis.checksum, sample);
    let mut local_done = false;
    loop {
        let (after, checksum) = comparison.peer_position();
        let records = match fetch_page(client, after, &checksum).await {
            Ok(records) => records,
            Err(Fetch::Peer(ClientError::Node { code, .. }))
                if after == 0 && code == "peer_diverged" =>
            {
                return genesis_diverged(&mut reader);
            }
            Err(fetch) => return Err(fetch.failure(client.address())),
        };
        if records.is_empty() {
            break;
        }
        comparison.push_peer(&records).map_err(|error| {
            Failure::new(
                INTEGRITY,
                error.code(),
                format!("peer {}: {error}", client.address()),
            )
        })?;
        let peer_ordinal = comparison.peer_position().0;
        while !local_done && comparison.local_ordinal() < peer_ordinal {
            match reader.next().map_err(store_failure)? {
                Some(raw) => {
                    let record = raw.decode().map_err(store_failure)?;
                    let ordinal = comparison.local_ordinal() + 1;
                    comparison.push_local(Summary::of(ordinal, raw.checksum, &record));
                }
                None => local_done = true,
            }
        }
        if !comparison.wants_more(local_done) {
            break;
        }
    }
    let mut outcome = comparison.finish();
    outcome.local_head = local_head(&mut reader, outcome.local_head)?;
    Ok(outcome)
}

/// The rest of our journal, read only to learn its head.
fn local_head(reader: &mut JournalReader<'_>, mut head: (u64, u64)) -> Result<(u64, u64), Failure> {
    while let Some(raw) = reader.next().map_err(store_failure)? {
        head.0 += 1;
        if let Some(tick) = raw.tick() {
            head.1 = tick;
        }
    }
    Ok(head)
}

/// The peer's genesis record is not ours: nothing is common.
fn genesis_diverged(reader: &mut JournalReader<'_>) -> Result<Outcome, Failure> {
    Ok(Outcome {
        records_compared: 0,
        ticks_compared: 0,
        last_common: (0, 0),
        local_head: local_head(reader, (0, 0))?,
        peer_head: (0, 0),
        divergence: Some(Divergence {
            ordinal: Some(0),
            checksums: None,
            record_tick: Some(0),
            tick: None,
            roots: Vec::new(),
        }),
    })
}

fn outcome_json(url: &str, outcome: &Outcome) -> serde_json::Value {
    let divergence = outcome.divergence.as_ref().map(|divergence| {
        let roots: Vec<serde_json::Value> = divergence
            .roots
            .iter()
            .map(|(name, peer, ours)| {
                serde_json::json!({"root": name, "peer": peer.to_hex(), "ours": ours.to_hex()})
            })
            .collect();
        serde_json::json!({
            "record": divergence.ordinal,
            "record_tick": divergence.record_tick,
            "peer_checksum": divergence.checksums.map(|(peer, _)| peer.to_hex()),
            "our_checksum": divergence.checksums.map(|(_, ours)| ours.to_hex()),
            "tick": divergence.tick,
            "roots": roots,
        })
    });
    serde_json::json!({
        "peer": url,
        "result": if divergence.is_some() { "diverged" } else { "equal" },
        "last_common_record": outcome.last_common.0,
        "last_common_tick": outcome.last_common.1,
        "records_compared": outcome.records_compared,
        "ticks_compared": outcome.ticks_compared,
        "local_head_tick": outcome.local_head.1,
        "local_head_record": outcome.local_head.0,
        "peer_head_tick": outcome.peer_head.1,
        "peer_head_record": outcome.peer_head.0,
        "divergence": divergence,
    })
}

fn compare_json(world: &WorldRef, sample: u64, reports: &[(String, Outcome)]) -> serde_json::Value {
    let peers: Vec<serde_json::Value> = reports
        .iter()
        .map(|(url, outcome)| outcome_json(url, outcome))
        .collect();
    let compared_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    let equal = reports
        .iter()
        .all(|(_, outcome)| outcome.divergence.is_none());
    serde_json::json!({
        "world": world.id.as_str(),
        "result": if equal { "equal" } else { "diverged" },
        "sample_ticks": sample,
        "compared_at_unix": compared_at,
        "peers": peers,
    })
}

/// `<world dir>/federation/last-compare.json`, replaced atomically.
fn write_last_compare(dir: &WorldDir, object: &serde_json::Value) -> Result<(), Failure> {
    let path = dir.path().join(LAST_COMPARE_FILE);
    let parent = path.parent().expect("the file is in a folder");
    let io = |e: std::io::Error| store_failure(StoreError::io("write", &path)(e));
    std::fs::create_dir_all(parent).map_err(io)?;
    let mut bytes = serde_json::to_vec_pretty(object).expect("JSON serializes");
    bytes.push(b'\n');
    everarcade_store::storage::write_atomic(&DiskStorage, &path, &bytes).map_err(io)
}

fn print_outcome(url: &str, outcome: &Outcome, sample: u64) {
    let every = match sample {
        1 => "every common tick".to_string(),
        n => format!("every {n}th common tick and the last"),
    };
    println!(
        "peer {url}: {} records and {} ticks compared ({every}); our head tick {}, the peer's {}",
        outcome.records_compared, outcome.ticks_compared, outcome.local_head.1, outcome.peer_head.1
    );
    let Some(divergence) = &outcome.divergence else {
        println!(
            "  equal through tick {} (record {})",
            outcome.last_common.1, outcome.last_common.0
        );
        return;
    };
    match (divergence.ordinal, divergence.checksums) {
        (Some(0), None) => {
            println!("  DIVERGED at the genesis record: the peer runs another lineage")
        }
        (Some(ordinal), Some((peer, ours))) => println!(
            "  DIVERGED at record {ordinal} (tick {}): the peer's checksum {peer}, ours {ours}",
            divergence.record_tick.unwrap_or_default()
        ),
        _ => {}
    }
    if let Some(tick) = divergence.tick {
        println!("  first divergent tick {tick}:");
        for (name, peer, ours) in &divergence.roots {
            println!("    {name:<16} peer {peer}, ours {ours}");
        }
    }
}

// ---------------------------------------------------------------- import

fn import(args: ImportArgs) -> Result<(), Failure> {
    let world = WorldRef::resolve(&args.common.world)?;
    if let Some(node) = probe::running_node(&world).map_err(store_failure)? {
        return Err(Failure::new(
            FAILURE,
            "world_running",
            format!(
                "node pid {} holds world {}: stop it first (a running follower imports by itself)",
                node.pid, world.id
            ),
        ));
    }
    let peers = configured_peers(&args.peers)?;
    // clap lets exactly one of the two through.
    let peer_url = match (&args.peer, &args.bundle) {
        (_, Some(path)) => return import_bundle(&args, &peers, path),
        (Some(url), None) => url,
        (None, None) => {
            return Err(Failure::new(
                USAGE,
                "usage",
                "give --peer URL or --bundle FILE",
            ));
        }
    };
    let peer = find_peer(&peers, peer_url)?.clone();
    let target = Target::resolve(&args.common.world)?;
    target.require_bound()?;
    let runtime = runtime()?;
    let (client, peer_status) = runtime.block_on(trusted_client(&world, &peer))?;
    let opened = open(&target.door()?, Entry::existing(args.durability.config()))?;
    let (mut world_open, _lock) = (opened.world, opened.lock);
    let start = world_open.durable_head();
    let checkpoint = match args.checkpoint {
        true => runtime.block_on(peer_checkpoint(&client, &peer.url, start))?,
        false => None,
    };
    let report = runtime.block_on(import_from(
        &client,
        &mut world_open,
        start,
        peer_status.head_tick,
        checkpoint.as_ref(),
    ));
    let roots = world_open.roots();
    match &report.stop {
        // A refusal may have poisoned the world in memory: the journal
        // holds what was made durable, and reopening recovers exactly it.
        Some(_) => drop(world_open),
        None => {
            world_open.close().map_err(world_failure)?;
        }
    }
    finish_import(&args, &Source::Peer(&peer.url), start, report, roots)
}

/// Where an import's material came from.
enum Source<'a> {
    Peer(&'a str),
    Bundle(&'a std::path::Path),
}

impl Source<'_> {
    fn describe(&self) -> String {
        match self {
            Source::Peer(url) => url.to_string(),
            Source::Bundle(path) => format!("the bundle {}", path.display()),
        }
    }
}

/// Prints an import's account (under `--json`, beside the error if it
/// stopped early) and returns how it ended.
fn finish_import(
    args: &ImportArgs,
    source: &Source<'_>,
    start: Head,
    report: ImportReport,
    roots: everarcade_protocol::TickRoots,
) -> Result<(), Failure> {
    let object = import_json(args, source, start, &report, roots);
    match (&report.stop, args.common.json) {
        (None, true) => println!("{object}"),
        (None, false) | (Some(_), false) => print_import(source, &report, roots),
        (Some(_), true) => {}
    }
    match report.stop {
        None => Ok(()),
        // Under --json the import's account is printed beside the error.
        Some(failure) => Err(failure.with_details(object)),
    }
}

/// Ticks of a bundle handed to the follower's path at once.
const BUNDLE_TICKS_PER_BATCH: usize = 256;
/// The most envelope bytes put in one inputs record built from a bundle
/// tick (a tick's inputs beyond it go in more records, as an authority's
/// group commits would split them; a record body is at most 16 MiB).
const BUNDLE_INPUTS_RECORD_BYTES: usize = 4 << 20;

/// `federation import --bundle FILE` (docs/FEDERATION.md): the ticks after
/// the world's head, from a proof bundle signed by a configured peer's
/// operator key. Before anything is written: the bundle's structure and
/// checksum, its signature and key history (the signer a configured peer's
/// key or endorsed after one), its world and genesis root, and the
/// bundle's recorded roots at this world's head equal to this world's.
/// Then each tick is built into an inputs record (or several) and a tick
/// record chained on this journal, and goes through the follower's path:
/// every input admitted (nonce, signature), the tick executed and its four
/// roots and receipts compared before its tick record is journaled.
fn import_bundle(args: &ImportArgs, peers: &[Peer], path: &std::path::Path) -> Result<(), Failure> {
    use everarcade_audit::bundle::{BUNDLE_BYTES_MAX, decode};
    use everarcade_audit::verify::check_signature;

    let trusted: Vec<everarcade_protocol::PublicKey> = peers
        .iter()
        .filter_map(|peer| Hash::from_hex(&peer.operator_public_key).map(|key| key.0))
        .collect();
    if trusted.is_empty() {
        return Err(Failure::new(
            BAD_SIGNATURE,
            "untrusted_operator_key",
            "no peer is configured ([federation] peers): a bundle is trusted only when a configured peer's operator key signed it",
        ));
    }
    let bytes = crate::bundle_cmd::read_bounded(path, BUNDLE_BYTES_MAX, MALFORMED)?;
    let named = |code: &str, what: String| format!("{}: {what} ({code})", path.display());
    let sealed = decode(&bytes).map_err(|error| {
        Failure::new(
            MALFORMED,
            error.code(),
            named(error.code(), error.to_string()),
        )
    })?;
    check_signature(&sealed, &trusted).map_err(|error| {
        Failure::new(
            crate::bundle_cmd::exit_of(error.class()),
            error.code(),
            named(error.code(), error.to_string()),
        )
    })?;
    let bundle = &sealed.bundle;
    if bundle.world.as_str() != args.common.world.world_id {
        return Err(Failure::new(
            USAGE,
            "bundle_world_mismatch",
            format!(
                "{} is a bundle of world {}, not {}",
                path.display(),
                bundle.world,
                args.common.world.world_id
            ),
        ));
    }
    let target = Target::resolve(&args.common.world)?;
    target.require_bound()?;
    let opened = open(&target.door()?, Entry::existing(args.durability.config()))?;
    let (mut world, _lock) = (opened.world, opened.lock);
    let lineage = everarcade_world::lineage::read_lineage(&**world.storage(), world.dir())
        .map_err(world_failure)?;
    if !lineage.transitions.is_empty() {
        return Err(Failure::new(
            USAGE,
            "upgraded_world_unsupported",
            "this world changed package; a version-1 bundle carries only the genesis package (docs/BUNDLES.md §3.3)",
        ));
    }
    if world.genesis().genesis_root != bundle.genesis_root {
        return Err(Failure::new(
            DIVERGENCE,
            "peer_diverged",
            format!(
                "the bundle's genesis root {} is not this world's {}: it is another lineage; nothing imported",
                bundle.genesis_root,
                world.genesis().genesis_root
            ),
        ));
    }
    let start = world.durable_head();
    let roots = world.roots();
    if start.tick < bundle.from_tick {
        return Err(Failure::new(
            INTEGRITY,
            "bundle_not_adjacent",
            format!(
                "the bundle's window begins at tick {} and this world's head is tick {}: ticks {} to {} are missing (import them from a peer or an earlier bundle first); nothing imported",
                bundle.from_tick,
                start.tick,
                start.tick + 1,
                bundle.from_tick
            ),
        ));
    }
    let report = ImportReport::starting(start);
    if start.tick >= bundle.to_tick {
        // Nothing in the window is newer than the head.
        return finish_import(args, &Source::Bundle(path), start, report, roots);
    }
    let recorded = match start.tick - bundle.from_tick {
        0 => bundle.anchor,
        offset => bundle.ticks[offset as usize - 1].roots,
    };
    if recorded != roots {
        let differ: Vec<String> = everarcade_world::replay::differing_roots(&recorded, &roots)
            .iter()
            .map(|(name, theirs, ours)| format!("{name} bundle {theirs}, here {ours}"))
            .collect();
        return Err(Failure::new(
            DIVERGENCE,
            "peer_root_mismatch",
            format!(
                "at this world's head, tick {}, the bundle records other roots ({}): the histories parted at or before it; nothing imported",
                start.tick,
                differ.join("; ")
            ),
        ));
    }
    let first = (start.tick - bundle.from_tick) as usize;
    let report = import_bundle_ticks(&mut world, start, &bundle.ticks[first..], report);
    let roots = world.roots();
    match &report.stop {
        // A refusal may have poisoned the world in memory: the journal
        // holds what was made durable, and reopening recovers exactly it.
        Some(_) => drop(world),
        None => {
            world.close().map_err(world_failure)?;
        }
    }
    finish_import(args, &Source::Bundle(path), start, report, roots)
}

/// Hands `ticks` (each the next after the world's head) to the follower's
/// path as records chained on the world's journal, a batch at a time.
fn import_bundle_ticks(
    world: &mut DurableWorld,
    start: Head,
    ticks: &[everarcade_audit::bundle::BundleTick],
    mut report: ImportReport,
) -> ImportReport {
    use everarcade_store::journal::{InputsRecord, Record, TickRecord, encode_record};

    for batch in ticks.chunks(BUNDLE_TICKS_PER_BATCH) {
        let head = world.durable_head();
        let (mut ordinal, mut prev) = (head.ordinal, head.checksum);
        let mut records: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut push = |record: Record| {
            let mut bytes = Vec::new();
            prev = encode_record(record.kind(), &record.encode_body(), &prev, &mut bytes);
            ordinal += 1;
            records.push((ordinal, bytes));
        };
        for tick in batch {
            let mut envelopes = Vec::new();
            let mut size = 0;
            for envelope in &tick.inputs {
                let length = envelope.encode().len() + 4;
                if size + length > BUNDLE_INPUTS_RECORD_BYTES && !envelopes.is_empty() {
                    push(Record::Inputs(InputsRecord {
                        tick: tick.roots.tick,
                        envelopes: std::mem::take(&mut envelopes),
                    }));
                    size = 0;
                }
                size += length;
                envelopes.push(envelope.clone());
            }
            if !envelopes.is_empty() {
                push(Record::Inputs(InputsRecord {
                    tick: tick.roots.tick,
                    envelopes,
                }));
            }
            push(Record::Tick(TickRecord {
                roots: tick.roots,
                input_count: tick.inputs.len() as u32,
                receipts: tick.receipts.clone(),
            }));
        }
        let borrowed: Vec<(u64, &[u8])> = records
            .iter()
            .map(|(ordinal, bytes)| (*ordinal, bytes.as_slice()))
            .collect();
        let (applied, error) = world.apply_records_until_refused(&borrowed);
        report.ticks += applied.ticks;
        report.durable = applied.durable;
        report.records = applied.durable.ordinal - start.ordinal;
        if let Some(error) = error {
            report.refused = Some(refused_ordinal(&error));
            report.stop = Some(follow_failure(error));
            break;
        }
    }
    report
}

/// The peer's newest checkpoint, if it has one ahead of `start`.
async fn peer_checkpoint(
    client: &Client,
    url: &str,
    start: Head,
) -> Result<Option<everarcade_client::CheckpointFile>, Failure> {
    match client.checkpoint_file().await {
        Ok(file) if file.tick > start.tick => Ok(Some(file)),
        Ok(_) => Ok(None),
        Err(ClientError::Node { code, .. }) if code == "no_checkpoint" => Ok(None),
        Err(error) => Err(peer_failure(url, error)),
    }
}

/// What an import did.
struct ImportReport {
    /// The peer checkpoint's tick the import started from, if it did.
    from_checkpoint: Option<u64>,
    /// Right after the last durable record.
    durable: Head,
    /// Records journaled.
    records: u64,
    /// Ticks executed and journaled.
    ticks: u64,
    /// Why it stopped early.
    stop: Option<Failure>,
    /// The refused record, if one was.
    refused: Option<(u64, String)>,
}

impl ImportReport {
    /// Nothing imported yet, at `start`.
    fn starting(start: Head) -> ImportReport {
        ImportReport {
            from_checkpoint: None,
            durable: start,
            records: 0,
            ticks: 0,
            stop: None,
            refused: None,
        }
    }
}

/// Pages the peer's stream after `start` into the world until the peer has
/// nothing more or the world reaches `until_tick` (the peer's head when the
/// import began: a live authority keeps going); with `checkpoint`, first up
/// to its tick unexecuted, then the checkpoint (docs/FEDERATION.md).
async fn import_from(
    client: &Client,
    world: &mut DurableWorld,
    start: Head,
    until_tick: u64,
    checkpoint: Option<&everarcade_client::CheckpointFile>,
) -> ImportReport {
    let mut report = ImportReport::starting(start);
    if let Some(file) = checkpoint {
        let ahead = import_ahead(client, world, file).await;
        report.durable = world.durable_head();
        report.records = report.durable.ordinal - start.ordinal;
        match ahead {
            Ok(()) => report.from_checkpoint = Some(file.tick),
            Err((failure, refused)) => {
                report.stop = Some(failure);
                report.refused = refused;
                return report;
            }
        }
    }
    loop {
        let head = report.durable;
        let records = match fetch_page(client, head.ordinal, &head.checksum).await {
            Ok(records) => records,
            Err(Fetch::Peer(ClientError::Node { code, message, .. }))
                if code == "peer_diverged" =>
            {
                report.stop = Some(Failure::new(
                    DIVERGENCE,
                    "peer_diverged",
                    format!(
                        "the local journal is not a prefix of the peer's (record {} here has no equal there: {message}); nothing more imported",
                        head.ordinal
                    ),
                ));
                break;
            }
            Err(fetch) => {
                report.stop = Some(fetch.failure(client.address()));
                break;
            }
        };
        if records.is_empty() {
            break;
        }
        match apply(world, &records) {
            Ok(batch) => {
                report.ticks += batch.ticks;
                report.records = batch.durable.ordinal - start.ordinal;
                report.durable = batch.durable;
            }
            Err(error) => {
                report.refused = Some(refused_ordinal(&error));
                report.stop = Some(follow_failure(error));
                break;
            }
        }
        if report.durable.tick >= until_tick {
            break;
        }
    }
    if report.stop.is_some() {
        // The ticks of the last batch before a refused record were made
        // durable; the journal's head says how far.
        report.durable = world.durable_head();
        report.records = report.durable.ordinal - start.ordinal;
    }
    report
}

/// Journals the peer's records up to `file`'s tick without executing them,
/// then checks and installs the checkpoint (`everarcade_world::catch_up`).
/// A failure leaves the world to be reopened, which executes what was
/// journaled (nothing journaled is lost).
async fn import_ahead(
    client: &Client,
    world: &mut DurableWorld,
    file: &everarcade_client::CheckpointFile,
) -> Result<(), (Failure, Option<(u64, String)>)> {
    loop {
        let head = world.durable_head();
        if head.tick >= file.tick {
            break;
        }
        let records = fetch_page(client, head.ordinal, &head.checksum)
            .await
            .map_err(|fetch| (fetch.failure(client.address()), None))?;
        if records.is_empty() {
            let reason = format!(
                "the peer's records end at tick {} before its checkpoint's tick {}",
                head.tick, file.tick
            );
            return Err((Failure::new(INTEGRITY, "checkpoint_refused", reason), None));
        }
        let borrowed: Vec<(u64, &[u8])> = records
            .iter()
            .map(|record| (record.ordinal, record.bytes.as_slice()))
            .collect();
        if let Err(error) = world.journal_ahead(&borrowed, file.tick) {
            let refused = refused_ordinal(&error);
            return Err((follow_failure(error), Some(refused)));
        }
    }
    if let Err(error) = world.install_checkpoint(&file.bytes) {
        let refused = refused_ordinal(&error);
        return Err((follow_failure(error), Some(refused)));
    }
    Ok(())
}

fn refused_ordinal(error: &FollowError) -> (u64, String) {
    match error {
        FollowError::Refused { ordinal, code, .. } => (*ordinal, code.to_string()),
        FollowError::PeerRootMismatch(mismatch) => {
            (mismatch.ordinal, "peer_root_mismatch".to_string())
        }
        FollowError::World(error) => (0, error.code().to_string()),
    }
}

fn follow_failure(error: FollowError) -> Failure {
    match error {
        FollowError::World(error) => world_failure(error),
        FollowError::PeerRootMismatch(_) => {
            Failure::new(DIVERGENCE, "peer_root_mismatch", error.to_string())
        }
        FollowError::Refused { code, .. } => Failure::new(INTEGRITY, code, error.to_string()),
    }
}

fn import_json(
    args: &ImportArgs,
    source: &Source<'_>,
    start: Head,
    report: &ImportReport,
    roots: everarcade_protocol::TickRoots,
) -> serde_json::Value {
    let refused = report
        .refused
        .as_ref()
        .map(|(ordinal, code)| serde_json::json!({"record": ordinal, "code": code}));
    serde_json::json!({
            "world": args.common.world.world_id,
            "peer": match source { Source::Peer(url) => Some(url.to_string()), Source::Bundle(_) => None },
            "bundle": match source { Source::Bundle(path) => Some(path.display().to_string()), Source::Peer(_) => None },
            "from_record": start.ordinal,
            "from_tick": start.tick,
            "from_checkpoint": report.from_checkpoint,
            "records_imported": report.records,
            "ticks_imported": report.ticks,
            "head_record": report.durable.ordinal,
            "head_tick": report.durable.tick,
            "head_checksum": report.durable.checksum.to_hex(),
            "state_root": roots.state_root.to_hex(),
            "refused": refused,
    })
}

fn print_import(source: &Source<'_>, report: &ImportReport, roots: everarcade_protocol::TickRoots) {
    println!(
        "imported {} records ({} ticks) from {}: head now record {} at tick {} (checksum {})",
        report.records,
        report.ticks,
        source.describe(),
        report.durable.ordinal,
        report.durable.tick,
        report.durable.checksum
    );
    println!("state root       {}", roots.state_root);
    if let Some(tick) = report.from_checkpoint {
        println!(
            "started from the peer's checkpoint of tick {tick}: the ticks up to it were journaled, \
             not executed (replay-verify re-executes them)"
        );
    }
    if let Some((ordinal, code)) = &report.refused {
        println!("refused record {ordinal} ({code}): nothing of it, or after it, was journaled");
    }
}

// ---------------------------------------------------------------- status

fn status(args: StatusArgs) -> Result<(), Failure> {
    let world = WorldRef::resolve(&args.common.world)?;
    world.given_package(&args.common.world)?;
    let peers = configured_peers(&args.peers)?;
    let runtime = runtime()?;
    let node = probe::running_node(&world).map_err(store_failure)?;
    let local = match &node {
        Some(node) => runtime.block_on(local_live(&world, node)),
        None => Err("not running".to_string()),
    };
    let local = match local {
        Ok(local) => local,
        Err(reason) => {
            world.require_exists()?;
            local_disk(&world.dir, reason)?
        }
    };
    let mut peer_objects = Vec::new();
    for peer in &peers {
        peer_objects.push(runtime.block_on(peer_view(&world, peer, local.head_tick)));
    }
    let last_compare: Option<serde_json::Value> =
        std::fs::read(world.dir.path().join(LAST_COMPARE_FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    let object = serde_json::json!({
        "world": world.id.as_str(),
        "running": local.running,
        "not_running_reason": local.reason,
        "role": local.role,
        "authority": local.authority,
        "lag_ticks": local.lag_ticks,
        "follow_error": local.follow_error,
        "caught_up_from_checkpoint": local.caught_up_from_checkpoint,
        "lease_revision": local.lease_revision,
        "followers": local.followers,
        "head_tick": local.head_tick,
        "state_root": local.state_root,
        "peers": peer_objects,
        "last_compare": last_compare,
    });
    if !args.common.json {
        print_status(&object);
    } else if local.running {
        println!("{object}");
    }
    if local.running {
        return Ok(());
    }
    let failure = Failure::new(
        NOT_RUNNING,
        "not_running",
        format!("no node runs world {} (the disk's head is shown)", world.id),
    );
    // Under --json the disk's view is printed beside the error.
    Err(match args.common.json {
        true => failure.with_details(object),
        false => failure,
    })
}

/// The local side of `federation status`.
struct LocalView {
    running: bool,
    reason: Option<String>,
    role: Option<String>,
    authority: Option<String>,
    lag_ticks: Option<u64>,
    follow_error: Option<String>,
    /// The authority checkpoint a following node caught up from, if it did.
    caught_up_from_checkpoint: Option<u64>,
    lease_revision: Option<u64>,
    /// The HTTP followers a running node has heard from.
    followers: Vec<everarcade_client::api::FollowerSeen>,
    head_tick: u64,
    state_root: String,
}

async fn local_live(world: &WorldRef, node: &probe::RunningNode) -> Result<LocalView, String> {
    let url = node
        .url()
        .ok_or_else(|| format!("node pid {} has recorded no address yet", node.pid))?;
    let client = probe::client_at(&url, world, node.tls_cert.as_deref(), CALL_TIMEOUT)
        .map_err(|e| e.to_string())?;
    let unreachable = |e: ClientError| format!("node pid {} does not answer: {e}", node.pid);
    let status = client.status().await.map_err(unreachable)?;
    let authority = client.authority().await.map_err(unreachable)?;
    Ok(LocalView {
        running: true,
        reason: None,
        role: Some(status.role),
        authority: status.authority,
        lag_ticks: status.lag_ticks,
        follow_error: status.follow_error,
        caught_up_from_checkpoint: status.caught_up_from_checkpoint,
        lease_revision: authority.lease_revision,
        followers: status.followers,
        head_tick: status.head_tick,
        state_root: status.state_root.to_hex(),
    })
}

fn local_disk(dir: &WorldDir, reason: String) -> Result<LocalView, Failure> {
    let status: StatusFile = read_json(&DiskStorage, &dir.status()).map_err(store_failure)?;
    Ok(LocalView {
        running: false,
        reason: Some(reason),
        role: None,
        authority: None,
        lag_ticks: None,
        follow_error: None,
        caught_up_from_checkpoint: None,
        lease_revision: None,
        followers: Vec::new(),
        head_tick: status.head_tick,
        state_root: status.state_root,
    })
}

/// One configured peer as it answers now.
async fn peer_view(world: &WorldRef, peer: &Peer, local_head_tick: u64) -> serde_json::Value {
    match trusted_client(world, peer).await {
        Ok((_, status)) => serde_json::json!({
            "url": peer.url,
            "reachable": true,
            "head_tick": status.head_tick,
            "state_root": status.state_root.to_hex(),
            "input_root": status.input_root.to_hex(),
            "receipt_root": status.receipt_root.to_hex(),
            "continuity_root": status.continuity_root.to_hex(),
            "lag_ticks": local_head_tick as i64 - status.head_tick as i64,
        }),
        Err(failure) => serde_json::json!({
            "url": peer.url,
            "reachable": false,
            "error": {"code": failure.code, "message": failure.message},
        }),
    }
}

fn print_status(object: &serde_json::Value) {
    let or_none = |value: &serde_json::Value| match value {
        serde_json::Value::Null => "none".to_string(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    println!("world            {}", or_none(&object["world"]));
    if object["running"].as_bool() == Some(true) {
        println!("node             running");
        println!("role             {}", or_none(&object["role"]));
        println!("authority        {}", or_none(&object["authority"]));
        match (object["role"].as_str(), object["lag_ticks"].as_u64()) {
            (Some("authority"), _) => {
                println!("lag              none (this node is the authority)")
            }
            (_, Some(lag)) => println!("lag              {lag} ticks behind the authority"),
            (_, None) => println!("lag              not known yet"),
        }
        println!("lease revision   {}", or_none(&object["lease_revision"]));
        if let Some(error) = object["follow_error"].as_str() {
            println!("following fails  {error}");
        }
        if let Some(tick) = object["caught_up_from_checkpoint"].as_u64() {
            println!(
                "caught up        from the authority's checkpoint of tick {tick} (ticks up to it \
                 journaled, not executed here; replay-verify re-executes them)"
            );
        }
        for follower in object["followers"].as_array().into_iter().flatten() {
            let state = match follower["diverged_at_tick"].as_u64() {
                Some(tick) => format!("DIVERGED at tick {tick} (it stopped following)"),
                None => "following".to_string(),
            };
            println!(
                "follower         {}: durable record {}, {state}",
                or_none(&follower["name"]),
                or_none(&follower["durable_record"])
            );
        }
    } else {
        println!(
            "node             {} (the disk's head follows)",
            or_none(&object["not_running_reason"])
        );
    }
    println!("head tick        {}", or_none(&object["head_tick"]));
    println!("state root       {}", or_none(&object["state_root"]));
    for peer in object["peers"].as_array().into_iter().flatten() {
        if peer["reachable"].as_bool() == Some(true) {
            let lag = peer["lag_ticks"].as_i64().unwrap_or_default();
            let relation = match lag {
                0 => "at our head tick".to_string(),
                lag if lag > 0 => format!("{lag} ticks behind us"),
                lag => format!("{} ticks ahead of us", -lag),
            };
            println!(
                "peer             {}: head tick {} ({relation}), state root {}",
                or_none(&peer["url"]),
                or_none(&peer["head_tick"]),
                or_none(&peer["state_root"])
            );
        } else {
            println!(
                "peer             {}: {} ({})",
                or_none(&peer["url"]),
                or_none(&peer["error"]["code"]),
                or_none(&peer["error"]["message"])
            );
        }
    }
    match &object["last_compare"] {
        serde_json::Value::Null => println!("last comparison  none"),
        last => println!(
            "last comparison  {} at unix time {}",
            or_none(&last["result"]),
            or_none(&last["compared_at_unix"])
        ),
    }
}

// ---------------------------------------------------------------- role changes

/// `promote` or `leave`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoleChange {
    Promote,
    Leave,
}

fn role_change(args: &JsonWorldArgs, change: RoleChange) -> Result<(), Failure> {
    let (world, client) = admin(&args.world)?;
    let runtime = runtime()?;
    let answer = match change {
        RoleChange::Promote => runtime.block_on(client.federation_promote()),
        RoleChange::Leave => runtime.block_on(client.federation_leave()),
    };
    report_role(&world, answer, args.json)
}

fn rejoin(args: RejoinArgs) -> Result<(), Failure> {
    let peers = configured_peers(&args.peers)?;
    let peer = find_peer(&peers, &args.authority)?.clone();
    let (world, client) = admin(&args.common.world)?;
    let runtime = runtime()?;
    runtime.block_on(trusted_client(&world, &peer))?;
    let answer = runtime.block_on(client.federation_rejoin(&peer.url));
    report_role(&world, answer, args.common.json)
}

/// The running node's admin client, or `not_running`.
fn admin(args: &WorldArgs) -> Result<(WorldRef, Client), Failure> {
    let world = WorldRef::resolve(args)?;
    world.given_package(args)?;
    let node = probe::running_node(&world)
        .map_err(store_failure)?
        .filter(|node| node.address.is_some())
        .ok_or_else(|| {
            Failure::new(
                NOT_RUNNING,
                "not_running",
                format!("no node runs world {}", world.id),
            )
        })?;
    let client = probe::admin_client(&world, &node, CALL_TIMEOUT)?
        .client()
        .clone();
    Ok((world, client))
}

fn report_role(
    world: &WorldRef,
    answer: Result<everarcade_client::api::RoleChange, ClientError>,
    json: bool,
) -> Result<(), Failure> {
    let change = answer.map_err(|error| {
        let code = if error.is_transport() {
            "node_unreachable"
        } else {
            error.code()
        };
        Failure::new(FAILURE, code, error.to_string())
    })?;
    if json {
        println!(
            "{}",
            serde_json::to_value(&change).expect("a role serializes")
        );
        return Ok(());
    }
    let mut line = format!("world {}: role {}", world.id, change.role);
    if let Some(tick) = change.tick {
        line.push_str(&format!(" at tick {tick}"));
    }
    if let Some(authority) = &change.authority {
        line.push_str(&format!(", following {authority}"));
    }
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_configured_peers_are_found() {
        let peers = vec![Peer {
            url: "http://127.0.0.1:8081".into(),
            operator_public_key: "0".repeat(64),
        }];
        assert!(find_peer(&peers, "http://127.0.0.1:8081/").is_ok());
        let failure = find_peer(&peers, "http://127.0.0.1:8082").unwrap_err();
        assert_eq!(failure.code, "peer_unknown");
        assert_eq!(failure.exit, BAD_SIGNATURE);
    }

    #[test]
    fn role_commands_parse_their_arguments() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            command: FederationCommand,
        }
        let parse = |line: &[&str]| Cli::try_parse_from(line).map(|cli| cli.command);
        assert!(matches!(
            parse(&["x", "promote", "root", "world", "--json"]),
            Ok(FederationCommand::Promote(args)) if args.json && args.world.world_id == "world"
        ));
        assert!(matches!(
            parse(&["x", "leave", "root", "world", "pkg"]),
            Ok(FederationCommand::Leave(_))
        ));
        assert!(
            parse(&["x", "rejoin", "root", "world"]).is_err(),
            "rejoin needs --authority"
        );
        assert!(matches!(
            parse(&["x", "rejoin", "root", "world", "--authority", "http://127.0.0.1:1"]),
            Ok(FederationCommand::Rejoin(args)) if args.authority == "http://127.0.0.1:1"
        ));
        assert!(
            parse(&["x", "compare", "root", "world"]).is_err(),
            "compare needs --peer"
        );
        assert!(
            parse(&[
                "x", "compare", "root", "world", "--peer", "u", "--sample", "0"
            ])
            .is_err()
        );
    }
}
