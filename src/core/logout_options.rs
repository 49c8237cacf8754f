//! `logout()`'s choices, checked together before anything changes, so a
//! mistake rejects with the session untouched. The binding reads each
//! option's type (and that `postLogoutRedirectUri` is an absolute URL);
//! the rules between them, in this order, are here:
//! 1. `postLogoutRedirectUri` only applies with `endSession: true`;
//! 2. `endSession: true` needs the issuer's end-session endpoint.

use crate::core::Error;

/// `logout`'s options as the app gave them, each of the right type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutRequest {
    /// `revoke` (default true).
    pub revoke: bool,
    /// `endSession` (default false).
    pub end_session: bool,
    /// `postLogoutRedirectUri`, an absolute URL.
    pub post_logout_redirect_uri: Option<String>,
}

impl Default for LogoutRequest {
    /// `logout()` without options: revoke, stay on the page.
    fn default() -> Self {
        LogoutRequest {
            revoke: true,
            end_session: false,
            post_logout_redirect_uri: None,
        }
    }
}

/// `logout`'s validated options.
#[derive(Debug, PartialEq, Eq)]
pub struct LogoutOptions {
    /// Revoke the tokens when there is a revocation endpoint.
    pub revoke: bool,
    /// With `endSession`, the end-session endpoint to navigate to once
    /// signed out here.
    pub end_session: Option<String>,
    /// Where the issuer sends the user back.
    pub post_logout_redirect_uri: Option<String>,
}

impl LogoutRequest {
    /// The options, checked against each other and against the issuer's
    /// `end_session_endpoint` (in the module's order).
    pub fn check(self, end_session_endpoint: Option<&str>) -> Result<LogoutOptions, Error> {
        if self.post_logout_redirect_uri.is_some() && !self.end_session {
            return Err(Error::invalid_option(
                "postLogoutRedirectUri",
                "only applies with endSession: true",
            ));
        }
        let end_session = match (self.end_session, end_session_endpoint) {
            (false, _) => None,
            (true, Some(endpoint)) => Some(endpoint.to_owned()),
            (true, None) => {
                return Err(Error::invalid_option(
                    "endSession",
                    "the issuer has no end_session_endpoint (give endSessionEndpoint)",
                ))
            }
        };
        Ok(LogoutOptions {
            revoke: self.revoke,
            end_session,
            post_logout_redirect_uri: self.post_logout_redirect_uri,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const END: &str = "https://as.example/logout";
    const BACK: &str = "https://app.example/bye";

    fn field(error: Error) -> &'static str {
        match error {
            Error::InvalidOption { field, .. } => field,
            other => panic!("not an invalid option: {other:?}"),
        }
    }

    #[test]
    fn no_options_revoke_and_stay() {
        let options = LogoutRequest::default().check(Some(END)).unwrap();
        assert_eq!(
            options,
            LogoutOptions {
                revoke: true,
                end_session: None,
                post_logout_redirect_uri: None,
            }
        );
    }

    #[test]
    fn a_return_address_without_end_session_is_refused_first() {
        let request = LogoutRequest {
            post_logout_redirect_uri: Some(BACK.into()),
            ..LogoutRequest::default()
        };
        // Refused for the address even where there is no endpoint.
        assert_eq!(
            field(request.clone().check(None).unwrap_err()),
            "postLogoutRedirectUri"
        );
        assert_eq!(
            field(request.check(Some(END)).unwrap_err()),
            "postLogoutRedirectUri"
        );
    }

    #[test]
    fn end_session_without_an_endpoint_is_refused() {
        let request = LogoutRequest {
            end_session: true,
            ..LogoutRequest::default()
        };
        assert_eq!(field(request.check(None).unwrap_err()), "endSession");
    }

    #[test]
    fn end_session_with_an_endpoint_goes_there_with_the_return_address() {
        let request = LogoutRequest {
            revoke: false,
            end_session: true,
            post_logout_redirect_uri: Some(BACK.into()),
        };
        let options = request.check(Some(END)).unwrap();
        assert_eq!(
            options,
            LogoutOptions {
                revoke: false,
                end_session: Some(END.into()),
                post_logout_redirect_uri: Some(BACK.into()),
            }
        );
    }
}
