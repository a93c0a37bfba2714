//! Checking the signatures of single-input requests together.
//!
//! Under ZIP-215 (docs/PROTOCOL.md §4.3.2) a batch of signatures is checked
//! about five times faster per signature than one at a time, and the batch
//! accepts exactly the signatures single checks accept. A node that takes
//! one input per request would check each alone on the HTTP worker that
//! read it; instead every request waiting at the same moment hands its
//! envelope to one gathering thread, which checks all of them as one batch
//! per core ([`Envelope::all_into_verified`]) while the world actor commits
//! the previous group. A forged signature in a batch is still found at its
//! envelope (the batch falls back to single checks) and answered
//! `bad_signature` to its own request alone.
//!
//! Under strict verification (every world made before ZIP-215) a batch is
//! no cheaper than single checks, so each request is checked on its own
//! HTTP worker as before: the two workers already use both cores.
//!
//! The gathering thread ends once every [`SignatureChecks`] handle is gone.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use everarcade_protocol::{Envelope, EnvelopeError, SignatureRule, Verified};
use tokio::sync::{mpsc, oneshot};

/// Envelopes one gathered check takes at most (more wait for the next); a
/// batch request larger than this is checked alone on the blocking pool.
pub const GATHERED_CHECKS_MAX: usize = 1_024;

/// Requests waiting to be gathered at most; a request beyond it waits for
/// room (the HTTP concurrency limit is far below it).
const WAITING_MAX: usize = 8_192;

/// Under strict checks, envelopes checked on the async worker itself; a
/// larger batch is checked on the blocking pool.
const INLINE_CHECKS_MAX: usize = 8;

/// One envelope's check: the envelope, verified, or the reason it is not.
pub type Checked = Result<Verified, EnvelopeError>;

/// A request's envelopes and where their results go.
type Job = (Vec<Envelope>, oneshot::Sender<Vec<Checked>>);

/// What the gathering thread did, for `/metrics`.
#[derive(Debug, Default)]
pub struct GatheredChecks {
    /// Gathered checks made.
    pub batches: AtomicU64,
    /// Inputs they covered (their ratio is the batch size).
    pub inputs: AtomicU64,
}

/// How a node checks the signatures of a request's inputs: on the HTTP
/// worker or the blocking pool (strict), or gathered with every other
/// waiting request's (ZIP-215). Cheap to clone.
#[derive(Clone, Debug)]
pub struct SignatureChecks {
    rule: SignatureRule,
    gather: Option<mpsc::Sender<Job>>,
}

/// The signature checks could not run (the node is stopping).
#[derive(Debug, thiserror::Error)]
#[error("signature checks could not run: {0}")]
pub struct ChecksStopped(String);

impl SignatureChecks {
    /// Checks under `rule`; under ZIP-215 starts the gathering thread,
    /// which counts its checks in `counts`.
    pub fn start(
        rule: SignatureRule,
        counts: Arc<GatheredChecks>,
    ) -> std::io::Result<SignatureChecks> {
        let gather = match rule {
            SignatureRule::Strict => None,
            SignatureRule::Zip215 => {
                let (sender, receiver) = mpsc::channel(WAITING_MAX);
                std::thread::Builder::new()
                    .name("signatures".into())
                    .spawn(move || gather(receiver, rule, &counts))?;
                Some(sender)
            }
        };
        Ok(SignatureChecks { rule, gather })
    }

    /// The world's signature rule.
    pub fn rule(&self) -> SignatureRule {
        self.rule
    }

    /// Whether requests' inputs are checked together (ZIP-215).
    pub fn gathers(&self) -> bool {
        self.gather.is_some()
    }

    /// Checks each envelope's signature under the world's rule; the
    /// results in the envelopes' order.
    pub async fn check_all(&self, envelopes: Vec<Envelope>) -> Result<Vec<Checked>, ChecksStopped> {
        let rule = self.rule;
        match &self.gather {
            Some(gather) if envelopes.len() <= GATHERED_CHECKS_MAX => {
                let (reply, answer) = oneshot::channel();
                let stopped = || ChecksStopped("the gathering thread has stopped".into());
                gather
                    .send((envelopes, reply))
                    .await
                    .map_err(|_| stopped())?;
                answer.await.map_err(|_| stopped())
            }
            None if envelopes.len() <= INLINE_CHECKS_MAX => Ok(check_together(envelopes, rule)),
            _ => tokio::task::spawn_blocking(move || check_together(envelopes, rule))
                .await
                .map_err(|error| ChecksStopped(error.to_string())),
        }
    }

    /// [`SignatureChecks::check_all`] of one envelope.
    pub async fn check(&self, envelope: Envelope) -> Result<Checked, ChecksStopped> {
        let mut checked = self.check_all(vec![envelope]).await?;
        Ok(checked.pop().expect("one result per envelope"))
    }
}

/// [`Envelope::all_into_verified`], without the refused envelopes.
fn check_together(envelopes: Vec<Envelope>, rule: SignatureRule) -> Vec<Checked> {
    Envelope::all_into_verified(envelopes, rule)
        .into_iter()
        .map(|checked| checked.map_err(|(error, _)| error))
        .collect()
}

/// The gathering thread: takes every request waiting, checks all their
/// envelopes together (a batch per core), answers each request; then
/// again.
fn gather(mut receiver: mpsc::Receiver<Job>, rule: SignatureRule, counts: &GatheredChecks) {
    while let Some(first) = receiver.blocking_recv() {
        let mut jobs = vec![first];
        let mut envelopes: usize = jobs[0].0.len();
        while envelopes < GATHERED_CHECKS_MAX {
            match receiver.try_recv() {
                Ok(job) => {
                    envelopes += job.0.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        counts.batches.fetch_add(1, Ordering::Relaxed);
        counts.inputs.fetch_add(envelopes as u64, Ordering::Relaxed);
        let mut sizes = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut all = Vec::with_capacity(envelopes);
        for (job, reply) in jobs {
            sizes.push(job.len());
            replies.push(reply);
            all.extend(job);
        }
        let mut checked = check_together(all, rule).into_iter();
        for (reply, size) in replies.into_iter().zip(sizes) {
            // A request that went away (its client closed) needs no answer.
            let _ = reply.send(checked.by_ref().take(size).collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use everarcade_protocol::{WorldId, test_signing_key};

    fn envelopes(count: u64) -> Vec<Envelope> {
        let world = WorldId::new("gather").expect("world id");
        let key = test_signing_key("gatherer");
        (0..count)
            .map(|nonce| Envelope::sign(&world, &key, nonce + 1, vec![nonce as u8]))
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn gathered_checks_answer_each_request_as_single_checks_would() {
        for rule in [SignatureRule::Strict, SignatureRule::Zip215] {
            let counts = Arc::new(GatheredChecks::default());
            let checks = SignatureChecks::start(rule, counts.clone()).expect("start");
            assert_eq!(checks.gathers(), rule == SignatureRule::Zip215);
            let mut sent = envelopes(300);
            // Forge two signatures among the rest, far apart.
            for index in [17, 211] {
                sent[index].signature[5] ^= 0x01;
            }
            let expected: Vec<bool> = sent
                .iter()
                .map(|envelope| envelope.clone().into_verified_under(rule).is_ok())
                .collect();
            assert_eq!(expected.iter().filter(|good| !**good).count(), 2);
            // Every request at once, so that the thread gathers them: one
            // envelope a request, then requests of up to five.
            let mut requests: Vec<Vec<usize>> = (0..150).map(|index| vec![index]).collect();
            let mut next = 150;
            while next < sent.len() {
                let size = (next % 5 + 1).min(sent.len() - next);
                requests.push((next..next + size).collect());
                next += size;
            }
            let waiting: Vec<_> = requests
                .iter()
                .map(|indices| {
                    let checks = checks.clone();
                    let envelopes: Vec<Envelope> =
                        indices.iter().map(|index| sent[*index].clone()).collect();
                    tokio::spawn(async move { checks.check_all(envelopes).await })
                })
                .collect();
            for (indices, task) in requests.iter().zip(waiting) {
                let checked = task.await.expect("task").expect("checks ran");
                assert_eq!(checked.len(), indices.len());
                for (index, checked) in indices.iter().zip(checked) {
                    match checked {
                        Ok(verified) => {
                            assert!(expected[*index], "{rule:?}: forgery {index} passed");
                            assert_eq!(verified.envelope(), &sent[*index]);
                        }
                        Err(error) => {
                            assert!(!expected[*index], "{rule:?}: good {index} refused");
                            assert_eq!(error.code(), "bad_signature");
                        }
                    }
                }
            }
            let (batches, inputs) = (
                counts.batches.load(Ordering::Relaxed),
                counts.inputs.load(Ordering::Relaxed),
            );
            if rule == SignatureRule::Zip215 {
                // Requests waiting together were checked together.
                assert_eq!(inputs, 300);
                assert!(batches < inputs, "{batches} checks for {inputs} inputs");
            } else {
                assert_eq!((batches, inputs), (0, 0));
            }
        }
    }
}
