//! Decisions about users: registration, bootstrap, profile, password, sessions, role,
//! activation, KYC and deletion.

use crate::actor::{Action, Role, authorize};
use crate::command::{Command, ProfileChange, Register, UpdateUser, UserChange};
use crate::error::{Error, Result};
use crate::identity::{KycStatus, UserRecord};
use crate::ids::UserId;
use crate::money::Money;
use crate::wallet::{WalletState, WalletStatus};

use super::{Decision, Effects, NewUser, State, acting};

/// A placeholder id for a record not yet inserted; the store assigns the real one.
fn placeholder_id() -> Result<UserId> {
    UserId::new(i64::MAX)
}

pub(super) fn register(cmd: &Command, r: &Register, state: &State) -> Result<Decision> {
    if r.bootstrap && state.active_superusers > 0 {
        return Err(Error::AlreadyBootstrapped);
    }
    if state.username_owner.is_some() {
        return Err(Error::UserExists { field: "username" });
    }
    if state.email_owner.is_some() {
        return Err(Error::UserExists { field: "email" });
    }
    let (role, kyc) = if r.bootstrap {
        (Role::Superuser, KycStatus::Verified)
    } else {
        (Role::User, KycStatus::Pending)
    };
    Ok(Decision::Apply(Effects::InsertUser(NewUser {
        record: UserRecord {
            id: placeholder_id()?,
            profile: Some(r.profile.clone()),
            role,
            active: true,
            kyc,
            kyc_reason: None,
            password: Some(r.password.clone()),
            token_version: 0,
            created_at: cmd.now,
            updated_at: cmd.now,
            deleted_at: None,
        },
    })))
}

/// The user the command is about, undeleted.
fn target(state: &State, id: UserId) -> Result<&UserRecord> {
    match &state.user {
        Some(u) if u.id == id && !u.is_deleted() => Ok(u),
        _ => Err(Error::UserNotFound),
    }
}

/// Refuses a change that would leave no active SUPERUSER.
fn keep_a_superuser(before: &UserRecord, after: &UserRecord, state: &State) -> Result<()> {
    if before.is_active_superuser() && !after.is_active_superuser() && state.active_superusers <= 1
    {
        return Err(Error::LastSuperuser);
    }
    Ok(())
}

fn bump(version: u32) -> Result<u32> {
    version
        .checked_add(1)
        .ok_or_else(|| Error::internal("token version overflow"))
}

pub(super) fn update(cmd: &Command, u: &UpdateUser, state: &State) -> Result<Decision> {
    let (actor, _) = acting(cmd, state)?;
    let before = target(state, u.user)?;
    let action = match &u.change {
        UserChange::Profile(_) => Action::UpdateProfile {
            target: u.user,
            target_role: before.role,
        },
        UserChange::Password { .. } | UserChange::UpgradeHash { .. } => {
            Action::ChangePassword { target: u.user }
        }
        UserChange::RevokeSessions => Action::RevokeSessions {
            target: u.user,
            target_role: before.role,
        },
        UserChange::Role(_) => Action::SetRole { target: u.user },
        UserChange::Active(_) => Action::SetUserActive {
            target: u.user,
            target_role: before.role,
        },
        UserChange::Kyc { .. } => Action::ReviewKyc {
            target: u.user,
            target_role: before.role,
        },
        UserChange::Delete => Action::DeleteUser { target: u.user },
    };
    authorize(&actor, action)?;

    let mut after = before.clone();
    after.updated_at = cmd.now.max(before.updated_at);
    match &u.change {
        UserChange::Profile(change) => apply_profile(&mut after, change, state)?,
        UserChange::Password { hash } => {
            after.password = Some(hash.clone());
            after.token_version = bump(before.token_version)?;
        }
        UserChange::UpgradeHash { replaces, hash } => {
            if before.password.as_ref() != Some(replaces) {
                // Changed since the login read it: keep the newer password.
                return Ok(Decision::Apply(Effects::Nothing));
            }
            after.password = Some(hash.clone());
        }
        UserChange::RevokeSessions => after.token_version = bump(before.token_version)?,
        UserChange::Role(role) => {
            after.role = *role;
            if *role != before.role {
                after.token_version = bump(before.token_version)?;
            }
        }
        UserChange::Active(active) => {
            after.active = *active;
            if !*active && before.active {
                after.token_version = bump(before.token_version)?;
            }
        }
        UserChange::Kyc { status, reason } => {
            let allowed = matches!(
                (before.kyc, status),
                (
                    KycStatus::Pending,
                    KycStatus::Verified | KycStatus::Rejected
                ) | (KycStatus::Rejected, KycStatus::Pending)
            );
            if !allowed {
                return Err(Error::KycAlreadyDecided);
            }
            after.kyc = *status;
            after.kyc_reason = Some(reason.clone());
        }
        UserChange::Delete => return delete(before, after, cmd, state),
    }
    keep_a_superuser(before, &after, state)?;
    Ok(Decision::Apply(Effects::UpdateUser(after)))
}

fn apply_profile(after: &mut UserRecord, change: &ProfileChange, state: &State) -> Result<()> {
    let Some(profile) = after.profile.as_mut() else {
        return Err(Error::UserNotFound);
    };
    if let Some(email) = &change.email {
        if state.email_owner.is_some_and(|owner| owner != after.id) {
            return Err(Error::UserExists { field: "email" });
        }
        profile.email = email.clone();
    }
    if let Some(name) = &change.full_name {
        profile.full_name = name.clone();
    }
    if let Some(phone) = &change.phone {
        profile.phone = phone.clone();
    }
    if let Some(national_id) = &change.national_id {
        profile.national_id = national_id.clone();
    }
    Ok(())
}

fn delete(
    before: &UserRecord,
    mut after: UserRecord,
    cmd: &Command,
    state: &State,
) -> Result<Decision> {
    let mut wallets: Vec<WalletState> = Vec::with_capacity(state.owner_wallets.len());
    for w in &state.owner_wallets {
        if w.record.owner != Some(before.id) {
            return Err(Error::internal(
                "wallet of another owner loaded for deletion",
            ));
        }
        if w.head.balance_minor != 0 || w.record.held_minor != 0 {
            return Err(Error::WalletNotEmpty {
                balance: Money::from_minor(w.head.balance_minor, w.record.currency),
            });
        }
        if w.record.status != WalletStatus::Closed {
            let mut closed = w.clone();
            closed.record.status = WalletStatus::Closed;
            closed.record.updated_at = cmd.now.max(w.record.updated_at);
            wallets.push(closed);
        }
    }
    after.profile = None;
    after.password = None;
    after.kyc_reason = None;
    after.active = false;
    after.deleted_at = Some(after.updated_at);
    after.token_version = bump(before.token_version)?;
    keep_a_superuser(before, &after, state)?;
    Ok(Decision::Apply(Effects::DeleteUser {
        user: after,
        wallets,
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::actor::Actor;
    use crate::auth::PasswordHash;
    use crate::command::Op;
    use crate::config::Config;
    use crate::identity::{Email, FullName, PhoneNumber, Profile, Username};
    use crate::time::Timestamp;

    fn record(id: i64, role: Role) -> UserRecord {
        UserRecord {
            id: UserId::new(id).unwrap(),
            profile: Some(Profile {
                username: Username::new(&format!("user{id}")).unwrap(),
                email: Email::new(&format!("user{id}@example.com")).unwrap(),
                full_name: FullName::new("Some One").unwrap(),
                phone: PhoneNumber::new("+14155550100").unwrap(),
                national_id: None,
            }),
            role,
            active: true,
            kyc: KycStatus::Verified,
            kyc_reason: None,
            password: Some(
                PasswordHash::from_phc(
                    "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA".into(),
                )
                .unwrap(),
            ),
            token_version: 3,
            created_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(1),
            deleted_at: None,
        }
    }

    fn command(actor: &UserRecord, user: UserId, change: UserChange) -> Command {
        Command::new(
            Some(Actor::new(actor.id, actor.role)),
            Timestamp::from_secs(10),
            Arc::new(Config::default()),
            Op::UpdateUser(UpdateUser { user, change }),
        )
    }

    /// The policy keeps anyone from demoting themselves, so through the service another
    /// active SUPERUSER always exists when one is demoted; the rule still holds on its own
    /// against any state (a second process, a restored database).
    #[test]
    fn the_last_active_superuser_stays() {
        let root = record(1, Role::Superuser);
        let other = record(2, Role::Superuser);
        for change in [
            UserChange::Role(Role::Admin),
            UserChange::Active(false),
            UserChange::Delete,
        ] {
            let state = State {
                actor: Some(root.clone()),
                user: Some(other.clone()),
                active_superusers: 1,
                ..State::default()
            };
            let cmd = command(&root, other.id, change.clone());
            assert_eq!(
                decide_update(&cmd, &state),
                Err(Error::LastSuperuser),
                "{change:?}"
            );
            let state = State {
                active_superusers: 2,
                ..state
            };
            assert!(decide_update(&cmd, &state).is_ok(), "{change:?}");
        }
    }

    fn decide_update(cmd: &Command, state: &State) -> Result<Decision> {
        match &cmd.op {
            Op::UpdateUser(u) => update(cmd, u, state),
            _ => unreachable!("only updates here"),
        }
    }

    /// A login re-hashes the password it verified; if the password changed in between, the
    /// upgrade must not bring the old one back.
    #[test]
    fn hash_upgrades_are_compare_and_swap() {
        let user = record(2, Role::User);
        let old = user.password.clone().unwrap();
        let upgraded = PasswordHash::from_phc(
            "$argon2id$v=19$m=128,t=1,p=1$c29tZXNhbHQ$YWJjZGVmZ2hpamtsbW5vcA".into(),
        )
        .unwrap();
        let state = State {
            actor: Some(user.clone()),
            user: Some(user.clone()),
            ..State::default()
        };
        let upgrade = |replaces: PasswordHash| UserChange::UpgradeHash {
            replaces,
            hash: upgraded.clone(),
        };
        match decide_update(&command(&user, user.id, upgrade(old)), &state) {
            Ok(Decision::Apply(Effects::UpdateUser(u))) => {
                assert_eq!(u.password.as_ref(), Some(&upgraded));
                assert_eq!(u.token_version, user.token_version, "sessions kept");
            }
            other => panic!("{other:?}"),
        }
        let stale = upgraded.clone();
        assert_eq!(
            decide_update(&command(&user, user.id, upgrade(stale)), &state),
            Ok(Decision::Apply(Effects::Nothing))
        );
    }

    #[test]
    fn session_ending_changes_bump_the_token_version() {
        let root = record(1, Role::Superuser);
        let user = record(2, Role::User);
        let state = State {
            actor: Some(root.clone()),
            user: Some(user.clone()),
            active_superusers: 1,
            ..State::default()
        };
        let version = |change| match decide_update(&command(&root, user.id, change), &state) {
            Ok(Decision::Apply(Effects::UpdateUser(u))) => u.token_version,
            Ok(Decision::Apply(Effects::DeleteUser { user, .. })) => user.token_version,
            other => panic!("{other:?}"),
        };
        assert_eq!(version(UserChange::RevokeSessions), 4);
        assert_eq!(version(UserChange::Role(Role::Admin)), 4);
        assert_eq!(
            version(UserChange::Role(Role::User)),
            3,
            "no change, no revocation"
        );
        assert_eq!(version(UserChange::Active(false)), 4);
        assert_eq!(version(UserChange::Active(true)), 3);
        assert_eq!(version(UserChange::Delete), 4);
    }
}
