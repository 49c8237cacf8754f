//! Protocol and session logic. Nothing in here may use web-sys or js-sys:
//! the browser is reached only through the traits in [`crate::core::ports`].

pub mod app_events;
pub mod atproto;
pub mod atproto_login;
pub mod authorize;
pub mod authorized_call;
pub mod base64url;
pub mod call_target;
pub mod callback_machine;
pub mod create_machine;
mod decimal;
pub mod discover_machine;
pub mod discovery;
pub mod dpop;
pub mod dpop_post;
pub mod drive;
pub mod error;
pub mod id_token;
pub mod jose;
pub mod json_member;
pub mod json_text;
pub mod jwks;
pub mod message;
pub mod pkce;
pub mod platform;
pub mod ports;
pub mod secret;
pub mod token;
pub mod verify;
pub mod www_authenticate;

pub use authorize::{
    scope_requests_openid, validate_callback, AuthorizationRequest, PendingTransaction,
    ValidatedCallback, TRANSACTION_MAX_AGE_MS,
};
pub use discovery::{
    check_endpoint_url, discovery_urls, EndpointOverrides, Endpoints, ProviderMetadata,
};
pub use error::{Error, ALL_CODES};
pub use id_token::{validate_claims, Expectations, IdTokenClaims, CLOCK_SKEW_MS};
pub use jose::{parse_compact_jws, select_key, CompactJws, JoseHeader, Jwk, Jwks, JwsAlgorithm};
pub use jwks::JwksCache;
pub use pkce::{PkceChallenge, PKCE_METHOD};
pub use secret::{
    AccessToken, AuthorizationCode, IdToken, Nonce, PkceVerifier, RefreshToken, State,
};
pub use token::{
    code_exchange_params, refresh_params, CallbackOutcome, Lifetime, RawTokenResponse, TokenSet,
};
pub use verify::{verify_id_token, VerifiedIdToken};

pub mod end_session;
pub mod envelope;
pub mod login;
pub mod login_profile;
pub mod logout_options;
pub mod marked_values;
pub mod memory_store;
pub mod oidc;
pub mod origin;
pub mod par;
pub mod public_api;
pub mod public_key;
pub mod quoted;
pub mod race;
pub mod record_machine;
pub mod record_store;
pub mod refresh_answer;
pub mod refresh_grant;
pub mod refresh_machine;
pub mod refresher;
pub mod resolution;
pub mod resolve_machine;
pub mod retire_machine;
pub mod retirement;
pub mod retirer;
pub mod revocation;
pub mod session;
pub mod sign_in_out;
pub mod single_flight;
pub mod start_machine;
pub mod startup;
pub mod steps;
pub mod user;
pub mod userinfo;

#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod redaction_tests;
#[cfg(test)]
mod simulation;
