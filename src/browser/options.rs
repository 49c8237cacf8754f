//! Reading and validating `AuthClient.create`'s options object once, with
//! errors that name the offending field.

use js_sys::{Object, Reflect};
use wasm_bindgen::prelude::*;

use crate::browser::store::StorageKind;
use crate::core::atproto::{self, Resolver};
use crate::core::login_profile::Profile;
use crate::core::origin::{check_redirect_uri, AllowedOrigins, OriginEntry, TokenPlacement};
use crate::core::quoted::Quoted;
use crate::core::session::{SecondsOption, REFRESH_LEEWAY, REFRESH_TIMEOUT};
use crate::core::{check_endpoint_url, EndpointOverrides, Error};

/// Every option `create` accepts (written once, in the core).
const KNOWN: &[&str] = crate::core::public_api::CREATE_OPTIONS;

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
    /// `refreshTimeoutSeconds` (default 10): the longest a refresh may hold
    /// the lock.
    pub refresh_timeout_seconds: u32,
    /// `isTokenExpired(response)`, the app's "expired" predicate.
    pub is_token_expired: Option<js_sys::Function>,
    /// `refresh(ctx)`, the app's own refresh request.
    pub refresh: Option<js_sys::Function>,
    /// `allowInsecureLoopback` (default false).
    pub allow_insecure_loopback: bool,
    /// `par` (default false): every login through a pushed authorization
    /// request, not only when the server requires it.
    pub par: bool,
    /// `dpop` (default false): tokens bound to a DPoP key made for each
    /// login (RFC 9449).
    pub dpop: bool,
    /// `allowedOrigins` (default the page's own origin).
    pub allowed_origins: AllowedOrigins,
    /// The explicit endpoints.
    pub overrides: EndpointOverrides,
    /// `profile: "atproto"`: where AT Protocol identities are resolved.
    /// Then there is no `issuer` (it comes from the user's account), and
    /// DPoP and PAR are always on.
    pub atproto: Option<Resolver>,
}

/// `options[field]`, `undefined` when absent.
pub(crate) fn get(options: &JsValue, field: &str) -> JsValue {
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

/// Refuses any key of `options` not in `known` (a typo would otherwise be
/// silently ignored); `owner` names the options object in the error.
pub(crate) fn reject_unknown(
    options: &JsValue,
    known: &[&str],
    owner: &'static str,
) -> Result<(), Error> {
    for key in Object::keys(options.unchecked_ref::<Object>()).iter() {
        let key = key.as_string().unwrap_or_default();
        if !known.contains(&key.as_str()) {
            return Err(Error::invalid_option(
                owner,
                format!("unknown option {}", Quoted(&key)),
            ));
        }
    }
    Ok(())
}

/// An optional boolean, `default` when absent.
pub(crate) fn flag(options: &JsValue, field: &'static str, default: bool) -> Result<bool, Error> {
    let value = get(options, field);
    if value.is_undefined() {
        return Ok(default);
    }
    value
        .as_bool()
        .ok_or_else(|| Error::invalid_option(field, "must be a boolean"))
}

/// The options of a method that takes one boolean, `{ field?: boolean }`
/// (`getUser`'s `userinfo`, `getAccessToken`'s `forceRefresh`): false when
/// absent, `undefined` or `null`; anything else refused.
pub(crate) fn single_flag(
    options: &JsValue,
    owner: &'static str,
    field: &'static str,
) -> Result<bool, Error> {
    if options.is_undefined() || options.is_null() {
        return Ok(false);
    }
    if !options.is_object() {
        return Err(Error::invalid_option(owner, "options must be an object"));
    }
    reject_unknown(options, &[field], owner)?;
    flag(options, field, false)
}

/// The seconds option `field`, read as a number and checked by the core.
fn seconds(options: &JsValue, field: &'static str, option: SecondsOption) -> Result<u32, Error> {
    let value = get(options, field);
    option.value(field, (!value.is_undefined()).then(|| value.as_f64()))
}

/// An optional function.
fn function(options: &JsValue, field: &'static str) -> Result<Option<js_sys::Function>, Error> {
    let value = get(options, field);
    if value.is_undefined() {
        return Ok(None);
    }
    value
        .dyn_into()
        .map(Some)
        .map_err(|_| Error::invalid_option(field, "must be a function"))
}

/// `base` (the endpoint named `field`) with `params` appended to its query.
pub(crate) fn url_with_query(
    base: &str,
    field: &'static str,
    params: &[(String, String)],
) -> Result<String, Error> {
    let url = web_sys::Url::new(base)
        .map_err(|_| Error::invalid_option(field, "must be an absolute URL"))?;
    let search = url.search_params();
    for (name, value) in params {
        search.append(name, value);
    }
    Ok(url.href())
}

/// Validates an absolute `http(s)` URL with the browser's URL parser; the
/// URL as the browser normalised it (`href`).
fn absolute_url(field: &'static str, value: &str) -> Result<String, Error> {
    let url = web_sys::Url::new(value)
        .map_err(|_| Error::invalid_option(field, "must be an absolute URL"))?;
    match url.protocol().as_str() {
        "https:" | "http:" => Ok(url.href()),
        _ => Err(Error::invalid_option(field, "must be an http(s) URL")),
    }
}

/// The page's origin (empty outside a window).
fn page_origin() -> String {
    web_sys::window()
        .and_then(|w| w.location().origin().ok())
        .unwrap_or_default()
}

/// The keys of an `allowedOrigins` object entry.
const ORIGIN_ENTRY_KEYS: &[&str] = &["origin", "tokenIn"];

/// Reads `allowedOrigins` (an array of origin strings or
/// `{ origin, tokenIn? }`) and checks it against the page's origin; absent,
/// the page's own origin only.
fn allowed_origins(
    options: &JsValue,
    allow_insecure_loopback: bool,
) -> Result<AllowedOrigins, Error> {
    const FIELD: &str = "allowedOrigins";
    let page_origin = page_origin();
    let value = get(options, FIELD);
    if value.is_undefined() {
        return Ok(AllowedOrigins::page_only(&page_origin));
    }
    if !js_sys::Array::is_array(&value) {
        return Err(Error::invalid_option(FIELD, "must be an array of origins"));
    }
    let mut entries = Vec::new();
    for (i, item) in js_sys::Array::from(&value).iter().enumerate() {
        let entry = if let Some(origin) = item.as_string() {
            OriginEntry {
                origin,
                placement: TokenPlacement::Header,
            }
        } else if item.is_object() {
            reject_unknown(&item, ORIGIN_ENTRY_KEYS, FIELD)?;
            let origin = get(&item, "origin").as_string().ok_or_else(|| {
                Error::invalid_option(FIELD, format!("entry {i} needs an origin string"))
            })?;
            let placement = match get(&item, "tokenIn").as_string().as_deref() {
                None if get(&item, "tokenIn").is_undefined() => TokenPlacement::Header,
                Some("header") => TokenPlacement::Header,
                Some("query") => TokenPlacement::Query,
                _ => {
                    return Err(Error::invalid_option(
                        FIELD,
                        format!(
                            "entry {}: tokenIn must be \"header\" or \"query\"",
                            Quoted(&origin)
                        ),
                    ))
                }
            };
            OriginEntry { origin, placement }
        } else {
            return Err(Error::invalid_option(
                FIELD,
                format!("entry {i} must be an origin string or {{ origin, tokenIn }}"),
            ));
        };
        entries.push(entry);
    }
    AllowedOrigins::from_entries(&entries, &page_origin, allow_insecure_loopback)
}

/// Parses and validates the options object.
pub fn parse(options: &JsValue) -> Result<ClientOptions, Error> {
    if !options.is_object() {
        return Err(Error::invalid_option("options", "must be an object"));
    }
    reject_unknown(options, KNOWN, "options")?;
    let allow_insecure_loopback = flag(options, "allowInsecureLoopback", false)?;
    // What the profile makes of the options is the core's (`Profile`).
    let profile = Profile::parse(string(options, "profile", false)?.as_deref())?;
    // Any value counts, `null` included, as for an atproto client's issuer.
    profile.refuse_other_profiles_options(|name| !get(options, name).is_undefined())?;
    let atproto = match profile {
        Profile::Oidc => None,
        Profile::Atproto => Some(atproto_resolver(options, allow_insecure_loopback)?),
    };
    // An atproto client may give no issuer at all, whatever its value.
    let given_issuer = match profile {
        Profile::Oidc => string(options, "issuer", false)?,
        Profile::Atproto => (!get(options, "issuer").is_undefined()).then(String::new),
    };
    let issuer = profile.issuer(given_issuer)?;
    let client_id = string(options, "clientId", true)?.unwrap_or_default();
    let redirect_uri = string(options, "redirectUri", true)?.unwrap_or_default();
    // Checked as the browser reads it (the app's spelling is what is sent:
    // it must match the registration exactly).
    let parsed_redirect = absolute_url("redirectUri", &redirect_uri)?;
    check_redirect_uri(&parsed_redirect, &page_origin(), allow_insecure_loopback)?;
    let scope = profile.scope(string(options, "scope", false)?)?;
    let storage = StorageKind::of_option(string(options, "storage", false)?.as_deref())?;
    let refresh_leeway_seconds = seconds(options, "refreshLeewaySeconds", REFRESH_LEEWAY)?;
    let refresh_timeout_seconds = seconds(options, "refreshTimeoutSeconds", REFRESH_TIMEOUT)?;
    Ok(ClientOptions {
        issuer,
        client_id,
        redirect_uri,
        scope,
        storage,
        refresh_leeway_seconds,
        refresh_timeout_seconds,
        is_token_expired: function(options, "isTokenExpired")?,
        refresh: function(options, "refresh")?,
        allow_insecure_loopback,
        par: profile.requires(flag(options, "par", false)?),
        dpop: profile.requires(flag(options, "dpop", false)?),
        allowed_origins: allowed_origins(options, allow_insecure_loopback)?,
        overrides: EndpointOverrides {
            authorization: string(options, "authorizationEndpoint", false)?,
            token: string(options, "tokenEndpoint", false)?,
            revocation: string(options, "revocationEndpoint", false)?,
            end_session: string(options, "endSessionEndpoint", false)?,
            jwks_uri: string(options, "jwksUri", false)?,
            userinfo: string(options, "userinfoEndpoint", false)?,
            par: string(options, "pushedAuthorizationRequestEndpoint", false)?,
        },
        atproto,
    })
}

/// `handleResolver` (required) and `plcDirectoryUrl` of the atproto
/// profile, checked like endpoints.
fn atproto_resolver(options: &JsValue, allow_insecure_loopback: bool) -> Result<Resolver, Error> {
    let handle_resolver = string(options, "handleResolver", true)?.unwrap_or_default();
    check_endpoint_url("handleResolver", &handle_resolver, allow_insecure_loopback)?;
    let plc_directory = string(options, "plcDirectoryUrl", false)?
        .unwrap_or_else(|| atproto::DEFAULT_PLC_DIRECTORY.to_owned());
    check_endpoint_url("plcDirectoryUrl", &plc_directory, allow_insecure_loopback)?;
    Ok(Resolver {
        handle_resolver,
        plc_directory,
        allow_insecure_loopback,
    })
}
