//! The retirement machines ([`retire_machine`](crate::core::retire_machine))
//! run over the ports: [`Retirer`] runs them under the driver loop, and its
//! performers (`Retiring`, `LoggingOut`) do each need, deciding nothing.
//! One for every retirement: `logout()` ([`Retirer::log_out`]), the
//! background revocation of a set a sign-out left behind, and tokens a
//! login refused ([`Retirer::retire`]).

use std::future::Future;

use crate::core::dpop::{Dpop, DpopKeys};
use crate::core::drive::{drive, Perform};
use crate::core::platform::{Clock, Crypto, Http, Timer};
use crate::core::race::within;
use crate::core::retire_machine::{Fed, LogOut, LogoutFed, LogoutNeed, Need, Retire};
use crate::core::retirement::{LoggedOut, LogoutChoices, Retirement};
use crate::core::{Error, TokenSet};

/// Carries out retirements: what a client needs to revoke and to delete
/// keys.
pub struct Retirer<'a, P, K> {
    /// Sends the revocations; its clock and randomness sign them.
    pub platform: &'a P,
    /// The DPoP keys (a bound set's revocation is signed with its key).
    pub dpop: &'a Dpop<'a, K>,
    /// The public client's id, sent with each revocation.
    pub client_id: &'a str,
    /// The longest one revocation request may take.
    pub timeout_ms: u32,
}

impl<P: Http + Timer + Clock + Crypto, K: DpopKeys> Retirer<'_, P, K> {
    /// Retires `tokens` by `plan` ([`Retire`]): the revocation's outcome,
    /// `None` when nothing was revoked.
    pub async fn retire(&self, tokens: &TokenSet, plan: Retirement) -> Option<Result<(), Error>> {
        let (mut machine, first) = Retire::start(tokens, plan, self.client_id, self.timeout_ms);
        drive(&mut machine, first, &mut self.retiring()).await
    }

    /// `logout()` ([`LogOut`]): `signed_out`, the local sign-out, is awaited
    /// when the machine asks for it — first — and resolves to the newest set
    /// it ended; then that set's retirement. What was revoked, and the
    /// end-session address for the caller to navigate to last.
    pub async fn log_out(
        &self,
        signed_out: impl Future<Output = Option<TokenSet>>,
        choices: &LogoutChoices<'_>,
    ) -> LoggedOut {
        let (mut machine, first) = LogOut::start(choices, self.timeout_ms);
        let mut performer = LoggingOut {
            signed_out: Some(signed_out),
            retiring: self.retiring(),
        };
        drive(&mut machine, first, &mut performer).await
    }

    fn retiring(&self) -> Retiring<'_, '_, P, K> {
        Retiring {
            retirer: self,
            key: None,
        }
    }
}

/// Performs one retirement's needs, keeping the key it loads to sign the
/// revocations.
struct Retiring<'r, 'a, P, K: DpopKeys> {
    retirer: &'r Retirer<'a, P, K>,
    key: Option<K::Key>,
}

impl<P: Http + Timer + Clock + Crypto, K: DpopKeys> Retiring<'_, '_, P, K> {
    async fn retire(&mut self, need: Need) -> Fed {
        let retirer = self.retirer;
        match need {
            Need::LoadKey(jkt) => Fed::Key(match retirer.dpop.keys.load(&jkt).await {
                Ok(loaded) => {
                    self.key = Some(loaded);
                    Ok(())
                }
                Err(error) => Err(error),
            }),
            Need::Revoke {
                endpoint,
                form,
                signed,
                ms,
            } => {
                let signed = signed.then_some(self.key.as_ref());
                let request =
                    retirer
                        .dpop
                        .post_form_with(retirer.platform, signed, &endpoint, &form);
                Fed::Answered(within(request, retirer.platform.sleep(ms)).await)
            }
            Need::DeleteKey(jkt) => {
                retirer.dpop.keys.delete(&jkt).await;
                Fed::Deleted
            }
        }
    }
}

impl<P: Http + Timer + Clock + Crypto, K: DpopKeys> Perform<Retire> for Retiring<'_, '_, P, K> {
    async fn perform(&mut self, need: Need, _: &Retire) -> Fed {
        self.retire(need).await
    }

    fn with(&self) {}
}

/// Performs a logout's needs: the local sign-out, awaited once, then the
/// ended set's retirement.
struct LoggingOut<'r, 'a, F, P, K: DpopKeys> {
    signed_out: Option<F>,
    retiring: Retiring<'r, 'a, P, K>,
}

impl<F, P, K> Perform<LogOut<'_>> for LoggingOut<'_, '_, F, P, K>
where
    F: Future<Output = Option<TokenSet>>,
    P: Http + Timer + Clock + Crypto,
    K: DpopKeys,
{
    async fn perform(&mut self, need: LogoutNeed, _: &LogOut<'_>) -> LogoutFed {
        match need {
            LogoutNeed::SignOut => LogoutFed::SignedOut(match self.signed_out.take() {
                Some(signing_out) => signing_out.await,
                // Asked twice: the machine says what that means.
                None => None,
            }),
            LogoutNeed::Retire(need) => LogoutFed::Retire(self.retiring.retire(need).await),
        }
    }

    fn with(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{bearer_set, block_on, FakePlatform};
    use crate::core::retirement::RevocationOutcome;

    const REVOKE: &str = "https://idp.example/revoke";

    fn retirer<'a>(
        platform: &'a FakePlatform,
        dpop: &'a Dpop<'a, crate::core::fakes::FakeDpopKeys>,
    ) -> Retirer<'a, FakePlatform, crate::core::fakes::FakeDpopKeys> {
        Retirer {
            platform,
            dpop,
            client_id: "spa",
            timeout_ms: 5_000,
        }
    }

    #[test]
    fn a_logout_signs_out_before_any_request_then_revokes_signed_then_deletes_the_key() {
        let platform = FakePlatform::at(0);
        let dpop = platform.dpop();
        let (jkt, _) = block_on(dpop.keys.create()).expect("a key");
        let ended = TokenSet {
            token_type: "DPoP".into(),
            dpop_jkt: Some(jkt.clone()),
            ..bearer_set("at-1")
        };
        for (token, hint) in [("rt-1", "refresh_token"), ("at-1", "access_token")] {
            let form = [
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", "spa"),
            ];
            platform.expect_post(REVOKE, &form, 200, "");
            platform.with_proof(&[("htm", "POST"), ("htu", REVOKE)], None);
        }
        let signed_out = async {
            assert_eq!(
                platform.requests_left(),
                2,
                "nothing sent before the sign-out"
            );
            assert!(
                block_on(dpop.keys.load(&jkt)).is_ok(),
                "the key still there"
            );
            Some(ended)
        };
        let choices = LogoutChoices {
            revoke: true,
            end_session_endpoint: None,
            post_logout_redirect_uri: None,
            client_id: "spa",
            revocation_endpoint: Some(REVOKE),
        };
        let done = block_on(retirer(&platform, &dpop).log_out(signed_out, &choices));
        assert_eq!(done.outcome, RevocationOutcome::Revoked);
        assert!(
            block_on(dpop.keys.load(&jkt)).is_err(),
            "the key deleted last"
        );
    }

    #[test]
    fn a_key_that_is_gone_sends_no_revocation() {
        let platform = FakePlatform::at(0);
        let dpop = platform.dpop();
        let ended = TokenSet {
            token_type: "DPoP".into(),
            dpop_jkt: Some("gone".into()),
            ..bearer_set("at-1")
        };
        let plan = Retirement {
            revoke_at: Some(REVOKE.into()),
            delete_key: Some("gone".into()),
        };
        let outcome = block_on(retirer(&platform, &dpop).retire(&ended, plan));
        let error = outcome.expect("a revocation was due").unwrap_err();
        assert_eq!(error.code(), "dpop_key_unavailable");
    }
}
