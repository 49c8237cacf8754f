//! The standard refresh request
//! ([RFC 6749 §6](https://www.rfc-editor.org/rfc/rfc6749#section-6)) as a
//! [`RefreshTransport`]: the default when the app brings no `refresh`.

use crate::core::ports::{Http, HttpReply, RefreshTransport};
use crate::core::{refresh_params, Error, RawTokenResponse, TokenSet};

/// `POST token_endpoint` with `grant_type=refresh_token`.
pub struct RefreshGrant<'a, H> {
    /// How requests are sent.
    pub http: &'a H,
    /// The token endpoint.
    pub token_endpoint: &'a str,
    /// The public client's id, sent in the body.
    pub client_id: &'a str,
}

impl<H: Http> RefreshTransport for RefreshGrant<'_, H> {
    async fn refresh(&self, current: &TokenSet) -> Result<HttpReply<RawTokenResponse>, Error> {
        let refresh_token = current
            .refresh_token
            .as_ref()
            .ok_or(Error::NotAuthenticated)?;
        // No `scope`: the refreshed set keeps the originally granted scope.
        let form = refresh_params(refresh_token, self.client_id, None);
        self.http.post_form(self.token_endpoint, &form).await
    }
}
