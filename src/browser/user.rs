//! `getUser()`: the signed-in user's claims, from the verified ID token and,
//! on request, the UserInfo endpoint
//! ([OIDC Core §5.3](https://openid.net/specs/openid-connect-core-1_0.html#UserInfo)).

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;
use web_sys::Response;

use crate::browser::http::{read_text, MAX_BODY_BYTES};
use crate::browser::options::single_flag;
use crate::core::drive::{drive, Perform};
use crate::core::userinfo::{userinfo_may_set, Body, CheckAnswer, ReadBody};
use crate::core::Error;

/// `getUser`'s options: `{ userinfo?: boolean }`.
pub fn wants_userinfo(options: &JsValue) -> Result<bool, Error> {
    single_flag(options, "getUser", "userinfo")
}

/// Reads a UserInfo response through the core's checks ([`CheckAnswer`]:
/// status and not `application/jwt` first; only then is the body read and
/// checked: JSON, an object, the ID token's `sub`); the checked object.
pub async fn read_userinfo(response: &Response, id_sub: &str) -> Result<Object, Error> {
    let content_type = response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .unwrap_or_default();
    let (mut check, first) = CheckAnswer::start(id_sub, response.status(), &content_type);
    let mut reader = BodyReader {
        response,
        parsed: None,
    };
    drive(&mut check, first, &mut reader).await?;
    Ok(reader
        .parsed
        .map(JsCast::unchecked_into)
        .unwrap_or_default())
}

/// Reads a UserInfo answer's body as JSON, keeping what it parsed.
struct BodyReader<'r> {
    response: &'r Response,
    parsed: Option<JsValue>,
}

impl Perform<CheckAnswer<'_>> for BodyReader<'_> {
    async fn perform(&mut self, ReadBody: ReadBody, _: &CheckAnswer<'_>) -> Body {
        // Bounded like every other answer latchkey reads.
        let parsed = match read_text(self.response, MAX_BODY_BYTES).await {
            Ok(text) => js_sys::JSON::parse(&text).ok(),
            Err(error) => {
                return Body::Unread {
                    reason: error.to_string(),
                }
            }
        };
        let sub = parsed
            .as_ref()
            .and_then(|body| Reflect::get(body, &"sub".into()).ok())
            .and_then(|sub| sub.as_string());
        let body = match &parsed {
            None => Body::NotJson,
            Some(body) if !body.is_object() || js_sys::Array::is_array(body) => Body::NotObject,
            Some(_) => Body::Object { sub },
        };
        self.parsed = parsed;
        body
    }

    fn with(&self) {}
}

/// The ID token's claims with UserInfo's on top (fresher profile data),
/// except those only the ID token speaks for ([`userinfo_may_set`]; the
/// `sub` is the same, checked by [`read_userinfo`]).
pub fn merge(id_claims: &Object, userinfo: &Object) -> Object {
    let merged = Object::assign(&Object::new(), id_claims);
    for entry in Object::entries(userinfo).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let name = entry.get(0);
        if name.as_string().is_some_and(|name| userinfo_may_set(&name)) {
            let _ = Reflect::set(&merged, &name, &entry.get(1));
        }
    }
    merged
}
