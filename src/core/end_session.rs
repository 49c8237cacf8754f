//! RP-initiated logout: the request that ends the user's session at the
//! issuer ([OpenID Connect RP-Initiated Logout 1.0 §2](https://openid.net/specs/openid-connect-rpinitiated-1_0.html#RPLogout)).

use crate::core::IdToken;

/// The query parameters of the logout request to `end_session_endpoint`:
/// `id_token_hint` (when the session had an ID token), `client_id` (so the
/// server can check the redirect even without a hint), and
/// `post_logout_redirect_uri` when the app asks to come back.
///
/// The ID token is sent although it is a secret-bearing value: the
/// specification asks for it, and it goes only to the issuer that made it.
pub fn end_session_params(
    id_token_hint: Option<&IdToken>,
    client_id: &str,
    post_logout_redirect_uri: Option<&str>,
) -> Vec<(String, String)> {
    let mut params = Vec::with_capacity(3);
    if let Some(hint) = id_token_hint {
        params.push(("id_token_hint".to_owned(), hint.secret().to_owned()));
    }
    params.push(("client_id".to_owned(), client_id.to_owned()));
    if let Some(uri) = post_logout_redirect_uri {
        params.push(("post_logout_redirect_uri".to_owned(), uri.to_owned()));
    }
    params
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(params: &[(String, String)]) -> Vec<(&str, &str)> {
        params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn hint_client_and_return_address_in_order() {
        let hint = IdToken::new("h.p.s".into());
        let params = end_session_params(Some(&hint), "spa", Some("https://app.example/"));
        assert_eq!(
            pairs(&params),
            vec![
                ("id_token_hint", "h.p.s"),
                ("client_id", "spa"),
                ("post_logout_redirect_uri", "https://app.example/"),
            ]
        );
    }

    #[test]
    fn without_an_id_token_or_return_address_only_the_client() {
        assert_eq!(
            pairs(&end_session_params(None, "spa", None)),
            vec![("client_id", "spa")]
        );
    }
}
