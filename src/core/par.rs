//! Pushed authorization requests
//! ([RFC 9126](https://www.rfc-editor.org/rfc/rfc9126)): the authorization
//! request's parameters go to the server directly, and the browser is sent
//! to the authorization endpoint with only `client_id` and the short-lived
//! `request_uri` the server answered with. Nothing of the request (scope,
//! `state`, the PKCE challenge) passes through the address bar.
//!
//! A request/process pair, like the other token-endpoint exchanges: the
//! form to post, and the reading of the answer.

use serde::Deserialize;

use crate::core::ports::{Http, HttpReply};
use crate::core::token::Lifetime;
use crate::core::Error;

/// The answer of a pushed authorization request endpoint
/// ([RFC 9126 §2.2](https://www.rfc-editor.org/rfc/rfc9126#section-2.2),
/// errors as [§2.3](https://www.rfc-editor.org/rfc/rfc9126#section-2.3)).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawParResponse {
    /// The reference to the pushed request.
    pub request_uri: Option<String>,
    /// Its lifetime in seconds (required by the RFC; only checked to be a
    /// number, since the browser uses it at once).
    pub expires_in: Option<Lifetime>,
    /// `error`.
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
}

/// The form of a pushed authorization request: the authorization request's
/// parameters as they are, `client_id` among them
/// ([RFC 9126 §2.1](https://www.rfc-editor.org/rfc/rfc9126#section-2.1)).
pub fn par_form(authorization_params: &[(String, String)]) -> Vec<(String, String)> {
    authorization_params.to_vec()
}

/// Reads the endpoint's answer: on success (the RFC says 201; any 2xx is
/// taken) the query of the authorization URL, `client_id` and `request_uri`
/// ([§4](https://www.rfc-editor.org/rfc/rfc9126#section-4)); otherwise
/// `par_failed` with the server's `error`.
pub fn process_par_response(
    reply: HttpReply<RawParResponse>,
    client_id: &str,
) -> Result<Vec<(String, String)>, Error> {
    let status = reply.status;
    let raw = reply.body.unwrap_or_default();
    let refused = |raw: RawParResponse| Error::PushedAuthorization {
        status,
        error: raw.error.unwrap_or_default(),
        error_description: raw.error_description,
    };
    if !(200..300).contains(&status) || raw.error.is_some() {
        return Err(refused(raw));
    }
    let usable = raw
        .request_uri
        .as_deref()
        .is_some_and(|uri| !uri.is_empty() && uri.len() <= 2048)
        && raw
            .expires_in
            .as_ref()
            .is_some_and(|l| l.seconds().is_some());
    if !usable {
        return Err(refused(RawParResponse::default()));
    }
    let request_uri = raw.request_uri.unwrap_or_default();
    Ok(vec![
        ("client_id".to_owned(), client_id.to_owned()),
        ("request_uri".to_owned(), request_uri),
    ])
}

/// Pushes `authorization_params` to `endpoint` and returns the query of the
/// authorization URL to send the browser to.
pub async fn push_authorization_request<H: Http>(
    http: &H,
    endpoint: &str,
    client_id: &str,
    authorization_params: &[(String, String)],
) -> Result<Vec<(String, String)>, Error> {
    let reply = http
        .post_form::<RawParResponse>(endpoint, &par_form(authorization_params))
        .await?;
    process_par_response(reply, client_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str) -> HttpReply<RawParResponse> {
        HttpReply {
            status,
            body: serde_json::from_str(body).map_err(|e| e.to_string()),
            retry_after_s: None,
            dpop_nonce: None,
            oauth_error: None,
        }
    }

    const URI: &str = "urn:ietf:params:oauth:request_uri:abc";

    #[test]
    fn a_created_request_becomes_client_id_and_request_uri() {
        let body = format!(r#"{{"request_uri":"{URI}","expires_in":60}}"#);
        let query = process_par_response(reply(201, &body), "spa").unwrap();
        assert_eq!(
            query,
            vec![
                ("client_id".to_owned(), "spa".to_owned()),
                ("request_uri".to_owned(), URI.to_owned())
            ]
        );
    }

    #[test]
    fn a_refusal_is_par_failed_with_the_servers_error() {
        let body = r#"{"error":"invalid_request","error_description":"bad scope"}"#;
        let error = process_par_response(reply(400, body), "spa").unwrap_err();
        assert_eq!(error.code(), "par_failed");
        assert_eq!(error.server_error(), Some("invalid_request"));
        assert_eq!(error.error_description(), Some("bad scope"));
        assert_eq!(error.status(), Some(400));
    }

    #[test]
    fn an_error_status_without_a_json_body_keeps_its_status() {
        let error = process_par_response(reply(502, "<html>"), "spa").unwrap_err();
        assert_eq!((error.code(), error.status()), ("par_failed", Some(502)));
        assert_eq!(error.server_error(), None);
    }

    #[test]
    fn a_success_without_a_usable_request_uri_is_refused() {
        for body in [
            r#"{"expires_in":60}"#,
            r#"{"request_uri":"","expires_in":60}"#,
            r#"{"request_uri":"urn:x"}"#,
            "not json",
        ] {
            let error = process_par_response(reply(201, body), "spa").unwrap_err();
            assert_eq!(error.code(), "par_failed", "{body}");
            assert!(
                error.to_string().contains("no usable request_uri"),
                "{body}"
            );
        }
    }

    #[test]
    fn the_form_is_the_authorization_request_itself() {
        let params = vec![
            ("client_id".to_owned(), "spa".to_owned()),
            ("scope".to_owned(), "openid".to_owned()),
        ];
        assert_eq!(par_form(&params), params);
    }
}
