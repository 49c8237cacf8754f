//! Where `getUser()` finds the signed-in user, decided in one place: an
//! AT Protocol account is its DID, handle and PDS; an OpenID Connect
//! session is its verified ID token's claims, with UserInfo's laid over
//! them when asked ([`crate::core::userinfo`] checks that answer); any
//! other session has no user to show.

use crate::core::atproto::Account;
use crate::core::oidc::read_stored;
use crate::core::platform::Json;
use crate::core::userinfo;
use crate::core::{scope_requests_openid, Error, TokenSet};

/// What `getUser()` answers from.
#[derive(Debug, PartialEq, Eq)]
pub enum UserSource<'a> {
    /// An atproto account.
    Account(&'a Account),
    /// The stored ID token's claims.
    Claims {
        /// The claims as JSON text (they were verified when stored).
        json: String,
        /// Their `sub`: UserInfo's must be the same.
        sub: String,
        /// The UserInfo endpoint to ask, when `{ userinfo: true }`.
        userinfo: Option<&'a str>,
    },
    /// No user to show (`null`): a plain OAuth 2.0 session.
    Nothing,
}

/// Whether someone is signed in at `now_ms` with the session `tokens`
/// (`isAuthenticated`, and whom `getUser` may show): its access token is
/// usable, or it can be refreshed ([`TokenSet::signs_in`]).
pub fn signed_in(tokens: Option<&TokenSet>, now_ms: u64) -> bool {
    tokens.is_some_and(|tokens| tokens.signs_in(now_ms))
}

/// The source of `getUser({ userinfo })` at `now_ms` for the session
/// `tokens` of a client that asked for `scope`, with `configured` its
/// UserInfo endpoint. Only a session that signs the user in
/// ([`signed_in`], as `isAuthenticated` says) has a user:
/// otherwise `not_authenticated`. Without `openid` the app asked for no ID
/// token: one kept by an earlier version was never verified, so it is not
/// shown. A token whose claims cannot be read shows nothing either.
/// UserInfo asked for without an endpoint is an `invalid_option`.
pub fn user_source<'a, J: Json>(
    json: &J,
    (tokens, now_ms): (Option<&'a TokenSet>, u64),
    scope: &str,
    configured: Option<&'a str>,
    wants_userinfo: bool,
) -> Result<UserSource<'a>, Error> {
    let tokens = tokens
        .filter(|_| signed_in(tokens, now_ms))
        .ok_or(Error::NotAuthenticated)?;
    if let Some(account) = &tokens.atproto {
        return Ok(UserSource::Account(account));
    }
    let stored = tokens
        .id_token
        .as_ref()
        .filter(|_| scope_requests_openid(scope))
        .and_then(|token| read_stored(json, token));
    let Some((claims, text)) = stored else {
        return Ok(UserSource::Nothing);
    };
    let userinfo = match wants_userinfo {
        true => Some(userinfo::endpoint(configured)?),
        false => None,
    };
    Ok(UserSource::Claims {
        json: text,
        sub: claims.sub,
        userinfo,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::base64url;
    use crate::core::fakes::FakePlatform;
    use crate::core::IdToken;

    const CLAIMS: &str = r#"{"iss":"https://idp.example","sub":"u-1","aud":"spa"}"#;
    const USERINFO: Option<&str> = Some("https://idp.example/me");

    fn tokens(id_token: Option<&str>) -> TokenSet {
        TokenSet {
            refresh_token: None,
            scope: None,
            id_token: id_token.map(|t| IdToken::new(t.into())),
            ..crate::core::fakes::bearer_set("at")
        }
    }

    fn id_token(claims: &str) -> String {
        let header = base64url::encode(br#"{"alg":"RS256","kid":"k1"}"#);
        format!("{header}.{}.c2ln", base64url::encode(claims.as_bytes()))
    }

    fn source<'a>(
        tokens: &'a TokenSet,
        scope: &str,
        userinfo: bool,
    ) -> Result<UserSource<'a>, Error> {
        let platform = FakePlatform::default();
        user_source(&platform, (Some(tokens), 0), scope, USERINFO, userinfo)
    }

    #[test]
    fn an_atproto_account_is_the_user() {
        let mut set = tokens(Some(&id_token(CLAIMS)));
        set.atproto = Some(Box::new(Account {
            did: "did:plc:abc".into(),
            handle: Some("alice.test".into()),
            pds: "https://pds.example".into(),
            issuer: "https://auth.example".into(),
            token_endpoint: "https://auth.example/token".into(),
            revocation_endpoint: None,
        }));
        let found = source(&set, "atproto", true).unwrap();
        assert!(matches!(found, UserSource::Account(a) if a.did == "did:plc:abc"));
    }

    #[test]
    fn without_openid_a_kept_id_token_is_not_shown() {
        let set = tokens(Some(&id_token(CLAIMS)));
        assert_eq!(source(&set, "api", false).unwrap(), UserSource::Nothing);
    }

    #[test]
    fn an_openid_session_without_an_id_token_has_no_user() {
        assert_eq!(
            source(&tokens(None), "openid", false).unwrap(),
            UserSource::Nothing
        );
    }

    #[test]
    fn claims_that_cannot_be_read_are_not_shown() {
        let set = tokens(Some(&id_token(r#"{"sub":"u-1"}"#)));
        assert_eq!(source(&set, "openid", false).unwrap(), UserSource::Nothing);
    }

    #[test]
    fn the_verified_claims_are_the_user() {
        let set = tokens(Some(&id_token(CLAIMS)));
        let expected = UserSource::Claims {
            json: CLAIMS.into(),
            sub: "u-1".into(),
            userinfo: None,
        };
        assert_eq!(source(&set, "openid profile", false).unwrap(), expected);
    }

    #[test]
    fn with_userinfo_the_endpoint_is_asked_too() {
        let set = tokens(Some(&id_token(CLAIMS)));
        match source(&set, "openid", true).unwrap() {
            UserSource::Claims { userinfo, sub, .. } => {
                assert_eq!((userinfo, sub.as_str()), (USERINFO, "u-1"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn userinfo_without_an_endpoint_is_an_invalid_option() {
        let platform = FakePlatform::default();
        let set = tokens(Some(&id_token(CLAIMS)));
        let error = user_source(&platform, (Some(&set), 0), "openid", None, true).unwrap_err();
        assert_eq!(error.code(), "invalid_option");
    }

    #[test]
    fn without_a_session_there_is_no_user() {
        let platform = FakePlatform::default();
        let error = user_source(&platform, (None, 0), "openid", USERINFO, false).unwrap_err();
        assert_eq!(error.code(), "not_authenticated");
    }

    #[test]
    fn a_session_that_no_longer_signs_the_user_in_has_no_user() {
        // Its access token expired and it has no refresh token: as
        // `isAuthenticated` says, nobody is signed in.
        let mut set = tokens(Some(&id_token(CLAIMS)));
        set.expires_at_ms = Some(1_000);
        let platform = FakePlatform::default();
        let at = |now| user_source(&platform, (Some(&set), now), "openid", USERINFO, false);
        assert!(matches!(at(999), Ok(UserSource::Claims { .. })));
        assert_eq!(at(1_000).unwrap_err().code(), "not_authenticated");
    }
}
