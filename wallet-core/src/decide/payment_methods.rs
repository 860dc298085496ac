//! Decisions about payment methods.

use crate::actor::{Action, Actor, authorize};
use crate::command::{Command, PAYMENT_METHODS_PER_USER_MAX, PaymentMethodOp};
use crate::error::{Error, Result};
use crate::payment_method::{PaymentMethod, PaymentMethodId, PaymentMethodStatus};

use super::{Decision, Effects, State, acting};

/// The method the operation names, as loaded. A customer asking about someone else's method
/// learns nothing, not even that it exists.
fn loaded<'a>(state: &'a State, id: PaymentMethodId, actor: &Actor) -> Result<&'a PaymentMethod> {
    state
        .payment_method
        .as_ref()
        .filter(|m| m.id == id && (m.owner == actor.user || actor.is_admin()))
        .ok_or(Error::PaymentMethodNotFound)
}

fn usable(m: &PaymentMethod, cmd: &Command) -> Result<()> {
    match m.effective_status(cmd.now) {
        PaymentMethodStatus::Active => Ok(()),
        PaymentMethodStatus::Expired => Err(Error::CardExpired),
        _ => Err(Error::InvalidPaymentMethod {
            reason: "the method is not active",
        }),
    }
}

pub(super) fn decide(cmd: &Command, op: &PaymentMethodOp, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let mut after = match op {
        PaymentMethodOp::Add { owner, method } => {
            authorize(&actor, Action::ManagePaymentMethod { owner: *owner })?;
            match &state.user {
                Some(u) if u.id == *owner && !u.is_deleted() => {}
                _ => return Err(Error::UserNotFound),
            }
            if state.methods.len() >= PAYMENT_METHODS_PER_USER_MAX {
                return Err(Error::InvalidPaymentMethod {
                    reason: "a user may hold at most 20 payment methods",
                });
            }
            if let Some(expiry) = method.display().card_expiry()
                && expiry.is_expired(cmd.now)
            {
                return Err(Error::CardExpired);
            }
            let first = !state.methods.iter().any(|m| m.is_default);
            let record = PaymentMethod {
                id: PaymentMethodId::new(i64::MAX)?,
                owner: *owner,
                kind: method.kind(),
                provider: method.provider().to_owned(),
                token: method.token().clone(),
                display: method.display().clone(),
                nickname: method.nickname().map(str::to_owned),
                is_default: first || method.make_default(),
                verified: false,
                status: PaymentMethodStatus::Active,
                created_at: cmd.now,
                updated_at: cmd.now,
            };
            return Ok(Decision::Apply(Effects::InsertPaymentMethod(record)));
        }
        PaymentMethodOp::SetDefault(id) => {
            let m = loaded(state, *id, &actor)?;
            authorize(&actor, Action::ManagePaymentMethod { owner: m.owner })?;
            usable(m, cmd)?;
            let mut after = m.clone();
            after.is_default = true;
            after
        }
        PaymentMethodOp::SetStatus(id, status) => {
            let m = loaded(state, *id, &actor)?;
            let from = m.effective_status(cmd.now);
            if from.needs_admin(*status) {
                authorize(&actor, Action::ReviewPaymentMethod)?;
            } else {
                authorize(&actor, Action::ManagePaymentMethod { owner: m.owner })?;
            }
            if !from.can_become(*status) {
                return Err(if from == PaymentMethodStatus::Expired {
                    Error::CardExpired
                } else {
                    Error::InvalidPaymentMethod {
                        reason: "that status change is not allowed",
                    }
                });
            }
            let mut after = m.clone();
            after.status = *status;
            if *status != PaymentMethodStatus::Active {
                after.is_default = false;
            }
            after
        }
        PaymentMethodOp::Verify(id) => {
            let m = loaded(state, *id, &actor)?;
            authorize(&actor, Action::ReviewPaymentMethod)?;
            let mut after = m.clone();
            after.verified = true;
            after
        }
        PaymentMethodOp::Delete(id) => {
            let m = loaded(state, *id, &actor)?;
            authorize(&actor, Action::DeletePaymentMethod)?;
            return Ok(Decision::Apply(Effects::DeletePaymentMethod(m.id)));
        }
    };
    after.updated_at = cmd.now.max(after.updated_at);
    Ok(Decision::Apply(Effects::UpdatePaymentMethod(after)))
}
