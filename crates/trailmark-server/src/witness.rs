//! Submitting checkpoints to witnesses (c2sp.org/tlog-witness): every new
//! checkpoint of every tenant goes to each configured witness with the
//! consistency proof from the size that witness last cosigned; the
//! cosignatures that come back are checked and kept. A refusal (a fork, a
//! rollback, an unknown log) is said loudly: on standard error, in
//! `/metrics` and as an entry in `_system`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, json};
use trailmark_core::TenantId;
use trailmark_log::{AddCheckpoint, CosignatureKey, Note, NoteSignature, Plan, TreeSize};
use trailmark_store::{CheckpointRecord, Store};

use crate::app::App;

/// How often each witness client offers the newest checkpoints again (after
/// an outage or a refusal; new checkpoints are offered as they are signed).
pub const RETRY: Duration = Duration::from_secs(5);
/// How long one submission may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A configured witness: `NAME+KEYID+KEY@URL` (its vkey, then the URL its
/// `add-checkpoint` lives under).
#[derive(Clone, Debug)]
pub struct WitnessConfig {
    pub key: CosignatureKey,
    pub url: String,
    /// The one HTTP client its submissions share (connections are reused).
    agent: ureq::Agent,
}

impl WitnessConfig {
    /// A witness as `serve` is given it, `NAME+KEYID+KEY@URL`, its
    /// submissions made over `tls` (the built-in roots, or the operator's
    /// authorities).
    pub fn parse(text: &str, tls: ureq::tls::TlsConfig) -> Result<Self, String> {
        let (vkey, url) = text
            .split_once('@')
            .ok_or("give the witness as NAME+KEYID+KEY@URL")?;
        let key = CosignatureKey::parse(vkey).map_err(|e| format!("the witness key: {e}"))?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "the witness URL {url:?} must start with http:// or https://"
            ));
        }
        Ok(Self {
            key,
            url: url.trim_end_matches('/').to_owned(),
            agent: ureq::Agent::config_builder()
                .tls_config(tls)
                .http_status_as_error(false)
                .timeout_global(Some(TIMEOUT))
                .build()
                .into(),
        })
    }
}

/// What one submission came to.
enum Answer {
    Cosigned(NoteSignature),
    /// The witness last cosigned this size (409, `text/x.tlog.size`).
    OldSize(u64),
    Refused(u16, String),
}

fn submit(agent: &ureq::Agent, url: &str, body: &str) -> Result<Answer, String> {
    let mut response = agent
        .post(format!("{url}/add-checkpoint"))
        .send(body.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let size_body = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/x.tlog.size"));
    let text = response
        .body_mut()
        .with_config()
        .limit(64 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok(match status {
        200 => {
            let line = text.lines().next().unwrap_or_default();
            Answer::Cosigned(NoteSignature::parse_line(line).map_err(|e| e.to_string())?)
        }
        409 if size_body => match text.trim().parse() {
            Ok(size) => Answer::OldSize(size),
            Err(_) => Answer::Refused(status, text),
        },
        _ => Answer::Refused(status, text),
    })
}

/// One witness's view of one tenant: the size it is known to have cosigned
/// (None until it says), and whether a refusal was already recorded.
#[derive(Default)]
struct Seen {
    cosigned: Option<u64>,
    /// The size last refused (offered again only once the log grows).
    refused: Option<u64>,
    refusal_recorded: bool,
}

async fn refused<S: Store>(
    app: &App<S>,
    witness: &WitnessConfig,
    tenant: &TenantId,
    size: u64,
    status: u16,
    why: &str,
    seen: &mut Seen,
) {
    app.metrics.witness_refusals.fetch_add(1, Ordering::Relaxed);
    seen.refused = Some(size);
    tracing::error!(
        witness = %witness.key.name(),
        %tenant,
        size,
        status,
        reason = why.trim(),
        "a witness refused a checkpoint"
    );
    if seen.refusal_recorded {
        return;
    }
    let mut meta = Map::new();
    meta.insert("tenant".into(), json!(tenant.as_str()));
    meta.insert("size".into(), json!(size));
    meta.insert("status".into(), json!(status));
    meta.insert(
        "answer".into(),
        json!(why.trim().chars().take(500).collect::<String>()),
    );
    let name = witness.key.name().to_string();
    if app
        .audit(
            None,
            "trailmark.witness_refused",
            Some(("witness", &name)),
            meta,
        )
        .await
        .is_ok()
    {
        seen.refusal_recorded = true;
    }
}

/// Submits `cp` to the witness, with a proof from the size it cosigned.
async fn offer<S: Store>(
    app: &App<S>,
    witness: &WitnessConfig,
    cp: &CheckpointRecord,
    seen: &mut Seen,
) -> Result<(), String> {
    let tenant = &cp.tenant;
    let size = cp.size.get();
    for _ in 0..2 {
        let old = seen.cosigned.unwrap_or(0).min(size);
        let proof = if old == 0 || old == size {
            Vec::new()
        } else {
            let first = TreeSize::new(old).ok_or("size too large")?;
            let plan = Plan::consistency(first, cp.size).map_err(|e| e.to_string())?;
            app.run_plan(tenant, &plan)
                .await
                .map_err(|e| e.to_string())?
        };
        let checkpoint = Note::parse(cp.note.as_bytes()).map_err(|e| e.to_string())?;
        let body = AddCheckpoint {
            old,
            proof,
            checkpoint: checkpoint.clone(),
        }
        .to_string();
        let (agent, url) = (witness.agent.clone(), witness.url.clone());
        let answer = tokio::task::spawn_blocking(move || submit(&agent, &url, &body))
            .await
            .map_err(|e| e.to_string())??;
        match answer {
            Answer::Cosigned(signature) => {
                let mut note = checkpoint;
                note.push_signature(signature.clone())
                    .map_err(|e| e.to_string())?;
                witness.key.verify(&note).map_err(|e| {
                    format!("the witness answered a cosignature that does not verify: {e}")
                })?;
                app.store
                    .add_cosignature(
                        tenant,
                        size,
                        witness.key.name().as_str(),
                        &signature.to_string(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
                app.metrics.cosignatures.fetch_add(1, Ordering::Relaxed);
                seen.cosigned = Some(size);
                seen.refused = None;
                seen.refusal_recorded = false;
                return Ok(());
            }
            Answer::OldSize(latest) if latest > size => {
                let why = format!(
                    "the witness has cosigned {latest} entries of this log, more than the {size} it has now: the log was rolled back"
                );
                refused(app, witness, tenant, size, 409, &why, seen).await;
                return Ok(());
            }
            Answer::OldSize(latest) if Some(latest) != seen.cosigned => {
                seen.cosigned = Some(latest);
            }
            Answer::OldSize(latest) => {
                let why = format!("the witness insists on old size {latest}");
                refused(app, witness, tenant, size, 409, &why, seen).await;
                return Ok(());
            }
            Answer::Refused(status, why) => {
                refused(app, witness, tenant, size, status, &why, seen).await;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Offers each tenant's newest stored checkpoint (at start, after a lag,
/// and every [`RETRY`] for what a refusal or an outage left behind).
async fn offer_latest<S: Store>(
    app: &App<S>,
    witness: &WitnessConfig,
    seen: &mut HashMap<TenantId, Seen>,
) {
    let Ok(heads) = app.store.heads().await else {
        return;
    };
    for head in heads {
        // No checkpoint is larger than its tenant's head: one the witness
        // cosigned or refused at that size leaves nothing to offer, and
        // no read of the latest (one a tenant every RETRY, however many
        // tenants there are, was what this cost).
        let size = Some(head.size.get());
        if let Some(state) = seen.get(&head.tenant)
            && (state.cosigned >= size || state.refused == size)
        {
            continue;
        }
        if let Ok(Some(cp)) = app.store.latest_checkpoint(&head.tenant).await {
            offer_one(app, witness, &cp, seen).await;
        }
    }
}

async fn offer_one<S: Store>(
    app: &App<S>,
    witness: &WitnessConfig,
    cp: &CheckpointRecord,
    seen: &mut HashMap<TenantId, Seen>,
) {
    let state = seen.entry(cp.tenant.clone()).or_default();
    let size = Some(cp.size.get());
    if state.cosigned >= size || state.refused == size {
        return;
    }
    if let Err(e) = offer(app, witness, cp, state).await {
        tracing::warn!(
            witness = %witness.key.name(),
            tenant = %cp.tenant,
            error = %e,
            "witness unreachable; will retry"
        );
    }
}

/// Runs until the process ends: offers every checkpoint this server signs
/// to the witness, in order, with the proof from what it last cosigned.
pub async fn run<S: Store>(app: Arc<App<S>>, witness: WitnessConfig) {
    let mut signed = app.signed.subscribe();
    let mut seen: HashMap<TenantId, Seen> = HashMap::new();
    offer_latest(&app, &witness, &mut seen).await;
    let mut retry = tokio::time::interval(RETRY);
    loop {
        tokio::select! {
            next = signed.recv() => match next {
                Ok(cp) => offer_one(&app, &witness, &cp, &mut seen).await,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    offer_latest(&app, &witness, &mut seen).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = retry.tick() => offer_latest(&app, &witness, &mut seen).await,
        }
    }
}
