//! Validation of an endorser transaction before commit, as Fabric's committer validates it:
//! the creator's identity and signature, the transaction id, the proposal the endorsements
//! answer, each endorser's identity and signature, and the endorsement policy of every
//! chaincode the transaction invokes or writes, or of each written key that has a key-level
//! policy of its own. MVCC checks follow in the ledger.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::common::{ChannelHeader, Envelope, HeaderType, Payload, SignatureHeader};
use ccvm_proto::kvrwset::KvrwSet;
use ccvm_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ProposalResponsePayload, Transaction, TxValidationCode,
};
use ccvm_proto::rwset::TxReadWriteSet;
use tracing::debug;

use crate::fabric::{compute_tx_id, proposal_hash};
use crate::msp::{OwnSignatures, Trust, ValidatedIdentity};
use crate::policy::{APPLICATION_PREFIX, ChannelPolicies, SignaturePolicy, distinct};

/// The namespace of the lifecycle system chaincode, whose writes need the channel's
/// `LifecycleEndorsement` policy, except an organization's approval, which needs that
/// organization's `Endorsement` policy (its peers).
pub const LIFECYCLE_NAMESPACE: &str = "_lifecycle";

/// What validation reads of committed state: chaincode definitions and key-level policies.
pub trait ValidationState: Send + Sync {
    /// A view of `channel`'s committed state, taken once for the transactions of a block.
    fn view(&self, channel: &str) -> Box<dyn StateView + '_>;

    /// The chaincode whose definition a write of `key` in `_lifecycle`'s namespace commits, if
    /// the key is a definition's.
    fn defined_by(&self, key: &str) -> Option<String>;

    /// The organization whose approval of a definition a write of `key` in `_lifecycle`'s
    /// namespace records, if the key is an approval's.
    fn approving_org(&self, key: &str) -> Option<String>;
}

/// One snapshot of a channel's committed state, as validation reads it.
pub trait StateView {
    /// The endorsement policy of chaincode `name` as text (Fabric's policy language or a channel
    /// policy path); `None` when no definition is committed, and then the channel's
    /// `Endorsement` policy applies.
    fn endorsement_policy(&mut self, name: &str) -> Option<String>;

    /// The key-level endorsement policy of `key` in `namespace` (its `VALIDATION_PARAMETER`
    /// metadata, an encoded `common.SignaturePolicyEnvelope`), if set.
    fn validation_parameter(&mut self, namespace: &str, key: &str) -> Option<Vec<u8>>;
}

/// A transaction to validate.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Its envelope.
    pub envelope: &'a Envelope,
    /// This node verified the creator's signature over the envelope when it was submitted, so
    /// it is not verified again; the creator's identity still is.
    pub signature_verified: bool,
}

/// Fewest transactions in a block before their validation is split across threads: below it,
/// starting a thread costs more than it saves.
pub const PARALLEL_VALIDATION_MIN_TXS: usize = 16;

/// What validation decided about one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Valid, or why not; MVCC is checked at commit.
    pub code: TxValidationCode,
    /// The chaincodes whose definitions the transaction commits.
    pub redefines: Vec<String>,
}

/// Validates transactions of one channel.
pub struct TxValidator {
    trust: Arc<Trust>,
    own_signatures: Arc<OwnSignatures>,
    policies: Arc<ChannelPolicies>,
    state: Arc<dyn ValidationState>,
    /// Threads a large block's validation is spread over: the machine's cores.
    threads: usize,
}

impl TxValidator {
    /// A validator trusting `trust`'s organizations under `policies`, reading `state`; an
    /// endorsement that `own_signatures` says this node made is not verified again.
    pub fn new(
        trust: Arc<Trust>,
        own_signatures: Arc<OwnSignatures>,
        policies: Arc<ChannelPolicies>,
        state: Arc<dyn ValidationState>,
    ) -> Self {
        Self {
            trust,
            own_signatures,
            policies,
            state,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    /// The verdicts on the transactions `candidates` of one block on `channel`, in order, read
    /// against one snapshot of its state and spread over the machine's cores for a large block.
    pub fn validate_block(&self, channel: &str, candidates: &[Candidate<'_>]) -> Vec<Verdict> {
        if self.threads < 2 || candidates.len() < PARALLEL_VALIDATION_MIN_TXS {
            return self.validate_all(channel, candidates);
        }
        let chunk = candidates.len().div_ceil(self.threads);
        std::thread::scope(|scope| {
            let parts: Vec<_> = candidates
                .chunks(chunk)
                .map(|part| scope.spawn(move || self.validate_all(channel, part)))
                .collect();
            parts
                .into_iter()
                .flat_map(|part| {
                    part.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    fn validate_all(&self, channel: &str, candidates: &[Candidate<'_>]) -> Vec<Verdict> {
        let mut view = self.state.view(channel);
        candidates
            .iter()
            .map(|candidate| self.validate(channel, candidate, view.as_mut()))
            .collect()
    }

    /// The verdict on `envelope` on `channel`: [`TxValidationCode::Valid`] when its signatures
    /// and policies hold (MVCC is checked at commit).
    fn validate(
        &self,
        channel: &str,
        candidate: &Candidate<'_>,
        view: &mut dyn StateView,
    ) -> Verdict {
        match self.check(channel, candidate, view) {
            Ok(redefines) => Verdict {
                code: TxValidationCode::Valid,
                redefines,
            },
            Err(refusal) => {
                debug!(%channel, code = refusal.code.as_str_name(), reason = %refusal.reason, "transaction invalid");
                Verdict {
                    code: refusal.code,
                    redefines: Vec::new(),
                }
            }
        }
    }

    fn check(
        &self,
        channel: &str,
        candidate: &Candidate<'_>,
        view: &mut dyn StateView,
    ) -> Result<Vec<String>, Refusal> {
        let envelope = candidate.envelope;
        let payload = Payload::decode(envelope.payload.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadPayload, e))?;
        let header = payload
            .header
            .ok_or_else(|| Refusal::new(TxValidationCode::BadCommonHeader, "no header"))?;
        let channel_header = ChannelHeader::decode(header.channel_header.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadChannelHeader, e))?;
        if channel_header.r#type != HeaderType::EndorserTransaction as i32 {
            return Err(Refusal::new(
                TxValidationCode::UnknownTxType,
                channel_header.r#type,
            ));
        }
        if channel_header.channel_id != channel {
            return Err(Refusal::new(
                TxValidationCode::TargetChainNotFound,
                &channel_header.channel_id,
            ));
        }
        let signature_header = SignatureHeader::decode(header.signature_header.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadCommonHeader, e))?;
        let creator = if candidate.signature_verified {
            self.trust.validate(&signature_header.creator)
        } else {
            self.trust.verify(
                &signature_header.creator,
                &envelope.payload,
                &envelope.signature,
            )
        };
        creator.map_err(|e| Refusal::new(TxValidationCode::BadCreatorSignature, e))?;
        if channel_header.tx_id != compute_tx_id(&signature_header.nonce, &signature_header.creator)
        {
            return Err(Refusal::new(
                TxValidationCode::BadProposalTxid,
                "the transaction id is not the hash of nonce and creator",
            ));
        }
        let invalid = |reason: &dyn std::fmt::Display| {
            Refusal::new(TxValidationCode::InvalidEndorserTransaction, reason)
        };
        let transaction = Transaction::decode(payload.data.as_slice()).map_err(|e| invalid(&e))?;
        let [action] = transaction.actions.as_slice() else {
            return Err(invalid(&"a transaction carries exactly one action"));
        };
        if action.header != header.signature_header {
            return Err(invalid(
                &"the action's signature header differs from the transaction's",
            ));
        }
        let action_payload =
            ChaincodeActionPayload::decode(action.payload.as_slice()).map_err(|e| invalid(&e))?;
        let endorsed = action_payload
            .action
            .ok_or_else(|| invalid(&"no endorsed action"))?;
        let response_payload =
            ProposalResponsePayload::decode(endorsed.proposal_response_payload.as_slice())
                .map_err(|e| invalid(&e))?;
        let expected_hash = proposal_hash(
            &header.channel_header,
            &header.signature_header,
            &action_payload.chaincode_proposal_payload,
        );
        if response_payload.proposal_hash != expected_hash {
            return Err(invalid(
                &"the endorsements answer a different proposal than the transaction's",
            ));
        }
        let chaincode_action = ChaincodeAction::decode(response_payload.extension.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadResponsePayload, e))?;
        let rwset = TxReadWriteSet::decode(chaincode_action.results.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadRwset, e))?;
        let endorsers = self.endorsers(&endorsed.proposal_response_payload, &endorsed.endorsements);
        let invoked = chaincode_action
            .chaincode_id
            .map(|id| id.name)
            .unwrap_or_default();
        let (written, lifecycle_writes) = written_keys(&invoked, &rwset)?;
        for (namespace, written) in written {
            let mut chaincode_policy_needed = written.chaincode_policy || written.keys.is_empty();
            for key in written.keys {
                if namespace == LIFECYCLE_NAMESPACE
                    && let Some(msp_id) = self.state.approving_org(&key)
                {
                    self.check_approval_endorsed(&msp_id, &endorsers)?;
                    continue;
                }
                match view.validation_parameter(&namespace, &key) {
                    Some(envelope) => {
                        let satisfied = SignaturePolicy::from_envelope(&envelope)
                            .map(|policy| policy.is_satisfied_by(&endorsers))
                            .unwrap_or(false);
                        if !satisfied {
                            return Err(Refusal::new(
                                TxValidationCode::EndorsementPolicyFailure,
                                format!(
                                    "key {key:?} of chaincode {namespace}: its key-level endorsement policy is not satisfied"
                                ),
                            ));
                        }
                    }
                    None => chaincode_policy_needed = true,
                }
            }
            if chaincode_policy_needed {
                let policy = endorsement_policy(view, &namespace);
                self.policies
                    .check_endorsement(&policy, &endorsers)
                    .map_err(|e| {
                        Refusal::new(
                            TxValidationCode::EndorsementPolicyFailure,
                            format!("chaincode {namespace}: {e}"),
                        )
                    })?;
            }
        }
        Ok(lifecycle_writes
            .iter()
            .filter_map(|key| self.state.defined_by(key))
            .collect())
    }

    /// Checks that an approval of organization `msp_id` is endorsed as Fabric endorses a write
    /// of the organization's implicit collection: by its own `Endorsement` policy, its peers.
    /// An organization approves for itself; the channel's other organizations cannot.
    fn check_approval_endorsed(
        &self,
        msp_id: &str,
        endorsers: &[Arc<ValidatedIdentity>],
    ) -> Result<(), Refusal> {
        self.policies
            .check(
                &format!("{APPLICATION_PREFIX}{msp_id}/Endorsement"),
                endorsers,
            )
            .map_err(|e| {
                Refusal::new(
                    TxValidationCode::EndorsementPolicyFailure,
                    format!("the approval of {msp_id}: {e}"),
                )
            })
    }

    /// The distinct valid identities whose endorsement signatures verify over `payload`; the
    /// rest do not count.
    fn endorsers(
        &self,
        payload: &[u8],
        endorsements: &[ccvm_proto::protos::Endorsement],
    ) -> Vec<Arc<ValidatedIdentity>> {
        let verified = endorsements
            .iter()
            .filter_map(|endorsement| {
                let own = self.own_signatures.take(
                    payload,
                    &endorsement.endorser,
                    &endorsement.signature,
                );
                let checked = if own {
                    self.trust.validate(&endorsement.endorser)
                } else {
                    let signed = [payload, endorsement.endorser.as_slice()].concat();
                    self.trust
                        .verify(&endorsement.endorser, &signed, &endorsement.signature)
                };
                checked
                    .inspect_err(|e| debug!(reason = %e, "endorsement not counted"))
                    .ok()
            })
            .collect();
        distinct(verified)
    }
}

/// The endorsement policy of `namespace`: `LifecycleEndorsement` for `_lifecycle`, else its
/// definition's (empty for the channel's default).
fn endorsement_policy(view: &mut dyn StateView, namespace: &str) -> String {
    if namespace == LIFECYCLE_NAMESPACE {
        return format!("{APPLICATION_PREFIX}LifecycleEndorsement");
    }
    view.endorsement_policy(namespace).unwrap_or_default()
}

/// The namespaces whose endorsement policies a transaction must satisfy, each with the public
/// keys it writes (values or metadata): the invoked chaincode (with no keys when it only reads)
/// and every namespace written. As in Fabric, a namespace's own policy is needed unless every
/// key written there has a key-level policy. Also the keys written in `_lifecycle`'s namespace.
fn written_keys(
    invoked: &str,
    rwset: &TxReadWriteSet,
) -> Result<(BTreeMap<String, Written>, Vec<String>), Refusal> {
    let mut namespaces: BTreeMap<String, Written> = BTreeMap::new();
    let mut lifecycle_writes = Vec::new();
    if !invoked.is_empty() {
        namespaces.insert(invoked.to_owned(), Written::default());
    }
    for ns in &rwset.ns_rwset {
        let kv = KvrwSet::decode(ns.rwset.as_slice())
            .map_err(|e| Refusal::new(TxValidationCode::BadRwset, e))?;
        let private_writes = ns
            .collection_hashed_rwset
            .iter()
            .any(|c| !c.hashed_rwset.is_empty());
        if kv.writes.is_empty() && kv.metadata_writes.is_empty() && !private_writes {
            continue;
        }
        let written = namespaces.entry(ns.namespace.clone()).or_default();
        written
            .keys
            .extend(kv.writes.iter().map(|write| write.key.clone()));
        written
            .keys
            .extend(kv.metadata_writes.iter().map(|write| write.key.clone()));
        written.chaincode_policy |= private_writes;
        if ns.namespace == LIFECYCLE_NAMESPACE {
            lifecycle_writes.extend(kv.writes.into_iter().map(|write| write.key));
        }
    }
    if namespaces.is_empty() {
        return Err(Refusal::new(
            TxValidationCode::InvalidEndorserTransaction,
            "the transaction names no chaincode",
        ));
    }
    Ok((namespaces, lifecycle_writes))
}

/// What a transaction writes in one namespace.
#[derive(Default)]
struct Written {
    /// Public keys whose values or metadata it writes.
    keys: BTreeSet<String>,
    /// The namespace's own policy applies whatever the keys' policies: the transaction writes
    /// its private data. (It applies too when no key is written, or a key has no policy.)
    chaincode_policy: bool,
}

/// Why a transaction is invalid.
struct Refusal {
    code: TxValidationCode,
    reason: String,
}

impl Refusal {
    fn new(code: TxValidationCode, reason: impl std::fmt::Display) -> Self {
        Self {
            code,
            reason: reason.to_string(),
        }
    }
}
