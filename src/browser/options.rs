//! Reading and validating `AuthClient.create`'s options object once, with
//! errors that name the offending field.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::browser::store::StorageKind;
use crate::core::{EndpointOverrides, Error};

/// Every option `create` accepts; anything else is a typo and refused.
const KNOWN: &[&str] = &[
    "issuer",
    "clientId",
    "redirectUri",
    "scope",
    "storage",
    "refreshLeewaySeconds",
    "allowInsecureLoopback",
    "authorizationEndpoint",
    "tokenEndpoint",
    "revocationEndpoint",
    "endSessionEndpoint",
    "jwksUri",
    "userinfoEndpoint",
    "isTokenExpired",
    "refresh",
];

/// The validated options.
pub struct ClientOptions {
    /// `issuer`.
    pub issuer: String,
    /// `clientId`.
    pub client_id: String,
    /// `redirectUri`.
    pub redirect_uri: String,
    /// `scope` (default `"openid"`).
    pub scope: String,
    /// `storage` (default IndexedDB).
    pub storage: StorageKind,
    /// `refreshLeewaySeconds` (default 30).
    pub refresh_leeway_seconds: u32,
    /// `allowInsecureLoopback` (default false).
    pub allow_insecure_loopback: bool,
    /// The explicit endpoints.
    pub overrides: EndpointOverrides,
}

fn get(options: &JsValue, field: &str) -> JsValue {
    Reflect::get(options, &JsValue::from_str(field)).unwrap_or(JsValue::UNDEFINED)
}

fn string(options: &JsValue, field: &'static str, required: bool) -> Result<Option<String>, Error> {
    let value = get(options, field);
    if value.is_undefined() || value.is_null() {
        return if required {
            Err(Error::invalid_option(field, "is required"))
        } else {
            Ok(None)
        };
    }
    match value.as_string() {
        Some(text) if !text.trim().is_empty() => Ok(Some(text)),
        Some(_) => Err(Error::invalid_option(field, "must not be empty")),
        None => Err(Error::invalid_option(field, "must be a string")),
    }
}

fn boolean(options: &JsValue, field: &'static str) -> Result<bool, Error> {
    let value = get(options, field);
    if value.is_undefined() {
        return Ok(false);
    }
    value
        .as_bool()
        .ok_or_else(|| Error::invalid_option(field, "must be a boolean"))
}

/// Validates an absolute `http(s)` URL with the browser's URL parser.
fn absolute_url(field: &'static str, value: &str) -> Result<(), Error> {
    let url = web_sys::Url::new(value)
        .map_err(|_| Error::invalid_option(field, "must be an absolute URL"))?;
    match url.protocol().as_str() {
        "https:" | "http:" => Ok(()),
        _ => Err(Error::invalid_option(field, "must be an http(s) URL")),
    }
}

/// Parses and validates the options object.
pub fn parse(options: &JsValue) -> Result<ClientOptions, Error> {
    if !options.is_object() {
        return Err(Error::invalid_option("options", "must be an object"));
    }
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !KNOWN.contains(&key.as_str()) {
            return Err(Error::invalid_option(
                "options",
                format!("unknown option {key:?}"),
            ));
        }
    }
    let issuer = string(options, "issuer", true)?.unwrap_or_default();
    let client_id = string(options, "clientId", true)?.unwrap_or_default();
    let redirect_uri = string(options, "redirectUri", true)?.unwrap_or_default();
    absolute_url("redirectUri", &redirect_uri)?;
    let scope = string(options, "scope", false)?.unwrap_or_else(|| "openid".into());
    let storage = match string(options, "storage", false)? {
        None => StorageKind::IndexedDb,
        Some(kind) => StorageKind::parse(&kind).ok_or_else(|| {
            Error::invalid_option(
                "storage",
                "must be \"indexeddb\", \"localstorage\" or \"memory\"",
            )
        })?,
    };
    let leeway = get(options, "refreshLeewaySeconds");
    let refresh_leeway_seconds = if leeway.is_undefined() {
        30
    } else {
        match leeway.as_f64() {
            Some(n) if (0.0..=86_400.0).contains(&n) && n.fract() == 0.0 => n as u32,
            _ => {
                return Err(Error::invalid_option(
                    "refreshLeewaySeconds",
                    "must be a whole number of seconds from 0 to 86400",
                ))
            }
        }
    };
    for field in ["isTokenExpired", "refresh"] {
        let value = get(options, field);
        if !value.is_undefined() && !value.is_function() {
            return Err(Error::invalid_option(field, "must be a function"));
        }
    }
    Ok(ClientOptions {
        issuer,
        client_id,
        redirect_uri,
        scope,
        storage,
        refresh_leeway_seconds,
        allow_insecure_loopback: boolean(options, "allowInsecureLoopback")?,
        overrides: EndpointOverrides {
            authorization: string(options, "authorizationEndpoint", false)?,
            token: string(options, "tokenEndpoint", false)?,
            revocation: string(options, "revocationEndpoint", false)?,
            end_session: string(options, "endSessionEndpoint", false)?,
            jwks_uri: string(options, "jwksUri", false)?,
            userinfo: string(options, "userinfoEndpoint", false)?,
        },
    })
}
