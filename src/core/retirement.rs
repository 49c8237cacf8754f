//! Putting a session out of use, and in which order: at `logout()`, when a
//! sign-out elsewhere leaves a set behind, when an issued set is refused
//! (an atproto account that fails its check), and when a new login replaces
//! a session. These functions plan; the machines of
//! [`retire_machine`](crate::core::retire_machine) hold the order,
//! [`Retirer`](crate::core::retirer::Retirer) drives them over the ports,
//! and the binding only calls it (`wasm_api.rs`: `logout`, the background
//! revocation; `Logins::finish` for refused tokens).
//!
//! The order is the rule:
//! 1. The local sign-out comes first (`Refresher::sign_out`, before any of
//!    this): a slow or failing server never leaves the user signed in here.
//! 2. Then both tokens are revoked (RFC 7009) — signed with the session's
//!    DPoP key when it is bound, so the key must outlive the revocation.
//! 3. Then the key is deleted.
//! 4. Then, with `endSession`, the browser goes to the issuer's
//!    end-session endpoint (RP-initiated logout), which ends the page.

use crate::core::end_session::end_session_params;
use crate::core::secret::Form;
use crate::core::{Error, TokenSet};

/// Where `tokens` are revoked: their atproto account's server (the
/// configured endpoint belongs to no account), or the configured endpoint.
pub fn revocation_endpoint<'a>(
    tokens: &'a TokenSet,
    configured: Option<&'a str>,
) -> Option<&'a str> {
    match &tokens.atproto {
        Some(account) => account.revocation_endpoint.as_deref(),
        None => configured,
    }
}

/// How one token set is put out of use: revoked at `revoke_at` (when
/// given), then its DPoP key deleted (when bound).
#[derive(Debug, PartialEq, Eq)]
pub struct Retirement {
    /// Revoke the refresh and access tokens here first.
    pub revoke_at: Option<String>,
    /// Then delete this DPoP key (its thumbprint).
    pub delete_key: Option<String>,
}

/// The retirement of a set a sign-out or an expiry left behind: revoked
/// where it is revoked ([`revocation_endpoint`], `configured` the client's
/// endpoint), its key deleted.
pub fn retirement_of_ended(tokens: &TokenSet, configured: Option<&str>) -> Retirement {
    retirement(tokens, revocation_endpoint(tokens, configured))
}

/// The retirement of `tokens`, revoked at `revoke_at` (`None`: not
/// revoked — not asked for, or nowhere to revoke).
pub fn retirement(tokens: &TokenSet, revoke_at: Option<&str>) -> Retirement {
    Retirement {
        revoke_at: revoke_at.map(str::to_owned),
        delete_key: tokens.dpop_jkt.clone(),
    }
}

/// What `logout()` tells the app happened at the server.
#[derive(Debug, PartialEq, Eq)]
pub enum RevocationOutcome {
    /// Both tokens were revoked (or the server already considered them invalid).
    Revoked,
    /// Not asked for, no revocation endpoint, or no session to revoke.
    Skipped,
    /// A revocation request failed; the local session is gone regardless.
    Failed(Error),
}

impl RevocationOutcome {
    /// The outcome of a retirement's revocation: `None` when none was sent.
    pub fn of(revoked: Option<Result<(), Error>>) -> RevocationOutcome {
        match revoked {
            Some(Ok(())) => RevocationOutcome::Revoked,
            Some(Err(error)) => RevocationOutcome::Failed(error),
            None => RevocationOutcome::Skipped,
        }
    }
}

/// `logout()`'s validated choices and the client's configuration.
#[derive(Debug)]
pub struct LogoutChoices<'a> {
    /// `revoke` (default true).
    pub revoke: bool,
    /// The end-session endpoint when `endSession` was asked for.
    pub end_session_endpoint: Option<&'a str>,
    /// `postLogoutRedirectUri`.
    pub post_logout_redirect_uri: Option<&'a str>,
    /// The client, named to the end-session endpoint.
    pub client_id: &'a str,
    /// The configured revocation endpoint.
    pub revocation_endpoint: Option<&'a str>,
}

/// What a logout does once the local sign-out ended `ended` (if a session
/// was in use): steps 2–4 of the order above.
#[derive(Debug, PartialEq, Eq)]
pub struct LogoutPlan {
    /// The ended set's retirement (none without a session).
    pub retire: Option<Retirement>,
    /// Last: the end-session endpoint and its query parameters (the ID
    /// token hint redacted in `Debug`).
    pub end_session: Option<(String, Form)>,
}

/// The plan of a logout that ended `ended`.
pub fn plan_logout(ended: Option<&TokenSet>, choices: &LogoutChoices<'_>) -> LogoutPlan {
    let retire = ended.map(|tokens| {
        let endpoint = revocation_endpoint(tokens, choices.revocation_endpoint);
        retirement(tokens, endpoint.filter(|_| choices.revoke))
    });
    let end_session = choices.end_session_endpoint.map(|endpoint| {
        // The ID token, when the session had one, tells the issuer whom.
        let hint = ended.and_then(|tokens| tokens.id_token.as_ref());
        let params = end_session_params(hint, choices.client_id, choices.post_logout_redirect_uri);
        (endpoint.to_owned(), Form(params))
    });
    LogoutPlan {
        retire,
        end_session,
    }
}

/// What a `logout()` did: the revocation's outcome, and where the browser
/// goes last (the end-session endpoint and its query), if anywhere.
#[derive(Debug, PartialEq)]
pub struct LoggedOut {
    /// Whether the ended set was revoked.
    pub outcome: RevocationOutcome,
    /// Step 4, for the caller to navigate to.
    pub end_session: Option<(String, Form)>,
}

/// The DPoP keys a completed login leaves behind.
#[derive(Debug, PartialEq, Eq)]
pub struct KeysAfterLogin {
    /// The replaced session's key, which nothing uses any more.
    pub delete: Option<String>,
    /// The new session's key, to keep in the tab's memory only: with
    /// `storage: "memory"` it was in IndexedDB only to survive the redirect.
    pub memory_only: Option<String>,
}

/// The keys after a login whose session is bound to `bound` replaced one
/// bound to `replaced`, with the session stored in memory or not.
pub fn keys_after_login(
    replaced: Option<&str>,
    bound: Option<&str>,
    memory_storage: bool,
) -> KeysAfterLogin {
    KeysAfterLogin {
        delete: replaced
            .filter(|old| Some(*old) != bound)
            .map(str::to_owned),
        memory_only: bound.filter(|_| memory_storage).map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::atproto::Account;
    use crate::core::{AccessToken, IdToken, RefreshToken};

    const CONFIGURED: Option<&str> = Some("https://issuer.example/revoke");

    fn tokens(jkt: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new("at".into()),
            token_type: if jkt.is_some() { "DPoP" } else { "Bearer" }.into(),
            expires_at_ms: Some(3_600_000),
            refresh_token: Some(RefreshToken::new("rt".into())),
            scope: None,
            id_token: Some(IdToken::new("h.p.s".into())),
            refresh_expires_at_ms: None,
            issued_at_ms: 0,
            login_at_ms: 0,
            rotation: 0,
            dpop_jkt: jkt.map(str::to_owned),
            atproto: None,
        }
    }

    fn atproto(revocation: Option<&str>) -> TokenSet {
        let mut set = tokens(Some("jkt"));
        set.atproto = Some(Box::new(Account {
            did: "did:plc:abc".into(),
            handle: Some("alice.test".into()),
            pds: "https://pds.example".into(),
            issuer: "https://pds.example".into(),
            token_endpoint: "https://pds.example/oauth/token".into(),
            revocation_endpoint: revocation.map(str::to_owned),
        }));
        set
    }

    fn choices(revoke: bool, end_session: Option<&'static str>) -> LogoutChoices<'static> {
        LogoutChoices {
            revoke,
            end_session_endpoint: end_session,
            post_logout_redirect_uri: None,
            client_id: "spa",
            revocation_endpoint: CONFIGURED,
        }
    }

    #[test]
    fn a_session_is_revoked_at_the_configured_endpoint() {
        assert_eq!(revocation_endpoint(&tokens(None), CONFIGURED), CONFIGURED);
    }

    #[test]
    fn an_atproto_session_is_revoked_at_its_account_server_only() {
        let account = "https://pds.example/oauth/revoke";
        assert_eq!(
            revocation_endpoint(&atproto(Some(account)), CONFIGURED),
            Some(account)
        );
        assert_eq!(revocation_endpoint(&atproto(None), CONFIGURED), None);
    }

    #[test]
    fn a_bound_set_is_revoked_then_its_key_deleted() {
        let plan = retirement(&tokens(Some("jkt")), CONFIGURED);
        assert_eq!(
            plan,
            Retirement {
                revoke_at: CONFIGURED.map(str::to_owned),
                delete_key: Some("jkt".into()),
            }
        );
    }

    #[test]
    fn a_set_left_behind_is_revoked_where_it_is_revoked_and_loses_its_key() {
        let ended = atproto(Some("https://pds.example/oauth/revoke"));
        let plan = retirement_of_ended(&ended, CONFIGURED);
        assert_eq!(
            plan.revoke_at.as_deref(),
            Some("https://pds.example/oauth/revoke")
        );
        assert_eq!(plan.delete_key.as_deref(), Some("jkt"));
        let plan = retirement_of_ended(&tokens(None), CONFIGURED);
        assert_eq!(plan.revoke_at.as_deref(), CONFIGURED);
    }

    #[test]
    fn a_bearer_set_has_no_key_to_delete() {
        assert_eq!(retirement(&tokens(None), CONFIGURED).delete_key, None);
    }

    #[test]
    fn the_outcome_says_what_the_revocation_did() {
        assert_eq!(RevocationOutcome::of(None), RevocationOutcome::Skipped);
        assert_eq!(
            RevocationOutcome::of(Some(Ok(()))),
            RevocationOutcome::Revoked
        );
        assert_eq!(
            RevocationOutcome::of(Some(Err(Error::NotAuthenticated))),
            RevocationOutcome::Failed(Error::NotAuthenticated)
        );
    }

    #[test]
    fn a_logout_revokes_and_deletes_the_key_of_the_ended_session() {
        let ended = tokens(Some("jkt"));
        let plan = plan_logout(Some(&ended), &choices(true, None));
        assert_eq!(plan.retire, Some(retirement(&ended, CONFIGURED)));
        assert_eq!(plan.end_session, None);
    }

    #[test]
    fn a_logout_without_revoke_still_deletes_the_key() {
        let plan = plan_logout(Some(&tokens(Some("jkt"))), &choices(false, None));
        let retire = plan.retire.expect("the ended session is retired");
        assert_eq!(retire.revoke_at, None);
        assert_eq!(retire.delete_key.as_deref(), Some("jkt"));
    }

    #[test]
    fn a_logout_with_no_session_retires_nothing() {
        assert_eq!(plan_logout(None, &choices(true, None)).retire, None);
    }

    #[test]
    fn end_session_names_the_ended_session_and_the_client() {
        let endpoint = "https://issuer.example/session/end";
        let plan = plan_logout(Some(&tokens(None)), &choices(true, Some(endpoint)));
        let (to, params) = plan.end_session.expect("end session asked for");
        assert_eq!(to, endpoint);
        let names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["id_token_hint", "client_id"]);
    }

    #[test]
    fn end_session_without_a_session_still_goes_with_the_client_only() {
        let endpoint = "https://issuer.example/session/end";
        let plan = plan_logout(None, &choices(true, Some(endpoint)));
        let (_, params) = plan.end_session.expect("end session asked for");
        assert_eq!(params.0, [("client_id".to_owned(), "spa".to_owned())]);
    }

    #[test]
    fn a_login_deletes_the_key_of_the_session_it_replaced() {
        let keys = keys_after_login(Some("old"), Some("new"), false);
        assert_eq!(keys.delete.as_deref(), Some("old"));
        assert_eq!(keys.memory_only, None);
    }

    #[test]
    fn a_login_keeps_a_key_the_new_session_still_uses() {
        assert_eq!(
            keys_after_login(Some("same"), Some("same"), false).delete,
            None
        );
    }

    #[test]
    fn a_login_replacing_no_bound_session_deletes_nothing() {
        assert_eq!(keys_after_login(None, Some("new"), false).delete, None);
        assert_eq!(
            keys_after_login(Some("old"), None, false).delete.as_deref(),
            Some("old")
        );
    }

    #[test]
    fn a_memory_session_keeps_its_key_in_memory_only() {
        let keys = keys_after_login(None, Some("new"), true);
        assert_eq!(keys.memory_only.as_deref(), Some("new"));
        assert_eq!(keys_after_login(None, None, true).memory_only, None);
    }
}
