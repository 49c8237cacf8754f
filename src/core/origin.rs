//! Where `fetchWithAuth` may send the access token: the `allowedOrigins`
//! option, parsed and normalised once, and the check made before every
//! request.
//!
//! An origin is compared as scheme, host and port, normalised the way
//! `new URL(...).origin` serialises them
//! ([WHATWG URL §4](https://url.spec.whatwg.org/#host-serializing),
//! [HTML §7.1.1](https://html.spec.whatwg.org/multipage/browsers.html#ascii-serialisation-of-an-origin)):
//! lowercase scheme and host, no default port, IPv6 in its compressed form.
//! Entries are refused rather than guessed at when they are not plain
//! origins (a path, user information, a query) or when the browser would
//! rewrite their host (IPv4 shorthand such as `127.1`, percent-encoding,
//! non-ASCII names): an entry that silently matches nothing, or something
//! else, is worse than an error at `create()`.

use std::fmt;

use crate::core::quoted::Quoted;
use crate::core::Error;

/// Where the access token goes in a request to an allowed origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPlacement {
    /// `Authorization: Bearer <token>`
    /// ([RFC 6750 §2.1](https://www.rfc-editor.org/rfc/rfc6750#section-2.1)).
    Header,
    /// The `access_token` query parameter
    /// ([RFC 6750 §2.3](https://www.rfc-editor.org/rfc/rfc6750#section-2.3)),
    /// for APIs that accept nothing else: URLs end up in logs and histories.
    Query,
}

/// A tuple origin: `http` or `https`, a normalised host, and a port that is
/// not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    host: String,
    port: Option<u16>,
}

impl Origin {
    /// Parses an `allowedOrigins` entry: `scheme://host[:port]`, with at
    /// most a trailing `/`. The error says what is wrong, for `create()`.
    pub fn parse(entry: &str) -> Result<Origin, &'static str> {
        let (https, rest) = split_scheme(entry).ok_or("must start with https:// or http://")?;
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if !tail.is_empty() && tail != "/" {
            return Err("must be an origin only (no path, query or fragment)");
        }
        if authority.contains('@') {
            return Err("must not contain user information");
        }
        let (host, port) = host_and_port(authority, https)?;
        Ok(Origin { https, host, port })
    }

    /// The origin of an absolute `http(s)` URL, as the browser resolved it;
    /// `None` for any other scheme (`data:`, `blob:`, …) or an unparseable
    /// authority, which no entry ever matches.
    pub fn of_url(url: &str) -> Option<Origin> {
        let (https, rest) = split_scheme(url)?;
        let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
        let authority = &rest[..end];
        // Everything up to the last `@` is user information, not the host.
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        let (host, port) = host_and_port(authority, https).ok()?;
        Some(Origin { https, host, port })
    }

    /// Whether the host is a loopback name or address, the only hosts plain
    /// `http` is accepted for (with `allowInsecureLoopback`), as for
    /// endpoints.
    pub fn is_loopback(&self) -> bool {
        // `localhost` and every name under it, with or without the final
        // dot: browsers resolve them all to the user's own machine.
        let name = self.host.strip_suffix('.').unwrap_or(&self.host);
        let v6 = self
            .host
            .strip_prefix('[')
            .and_then(|host| host.strip_suffix(']'))
            .and_then(ipv6);
        name == "localhost"
            || name.ends_with(".localhost")
            || ipv4(&self.host).is_some_and(|octets| octets[0] == 127 || octets == [0; 4])
            // `::1`, `::` (the unspecified address reaches this machine too)
            // and 127.x mapped into IPv6 (`::ffff:127.0.0.1`).
            || v6.is_some_and(|p| {
                p[..7] == [0; 7] && p[7] <= 1
                    || p[..5] == [0; 5] && p[5] == 0xffff && p[6] >> 8 == 127
            })
    }
}

impl Origin {
    /// Whether this origin may be reached over plain `http` from a page
    /// of origin `page`: `https` always; `http` on a loopback host with
    /// `allow_insecure_loopback`, or when it is the page's own origin (no
    /// less safe than the page itself).
    pub fn secure_enough(&self, page: Option<&Origin>, allow_insecure_loopback: bool) -> bool {
        self.https || (allow_insecure_loopback && self.is_loopback()) || page == Some(self)
    }
}

/// Checks `createLoginUrl`'s `redirectUri`, an absolute URL, as an
/// `allowedOrigins` entry is checked ([`Origin::secure_enough`]): the
/// authorization code travels to it.
pub fn check_redirect_uri(
    uri: &str,
    page_origin: &str,
    allow_insecure_loopback: bool,
) -> Result<(), Error> {
    let origin = Origin::of_url(uri)
        .ok_or_else(|| Error::invalid_option("redirectUri", "must be an http(s) URL"))?;
    let page = Origin::parse(page_origin).ok();
    match origin.secure_enough(page.as_ref(), allow_insecure_loopback) {
        true => Ok(()),
        false => Err(Error::InsecureEndpoint {
            field: "redirectUri",
        }),
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// `(is https, the rest after "://")`, the scheme matched without regard
/// to case.
fn split_scheme(url: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme.eq_ignore_ascii_case("https") {
        Some((true, rest))
    } else if scheme.eq_ignore_ascii_case("http") {
        Some((false, rest))
    } else {
        None
    }
}

/// The normalised host and the port (`None` when absent, empty or the
/// scheme's default) of an authority without user information.
fn host_and_port(authority: &str, https: bool) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']').ok_or("has an unterminated IPv6 host")?;
        authority.split_at(end + 1)
    } else {
        authority.split_at(authority.find(':').unwrap_or(authority.len()))
    };
    let host = normalise_host(host)?;
    let port = match port {
        "" | ":" => None,
        _ => {
            let digits = port.strip_prefix(':').ok_or("has an invalid host")?;
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("has an invalid port");
            }
            Some(digits.parse::<u16>().map_err(|_| "has an invalid port")?)
        }
    };
    let default = if https { 443 } else { 80 };
    Ok((host, port.filter(|&p| p != default)))
}

/// A host as the browser serialises it, or why latchkey will not guess.
fn normalise_host(host: &str) -> Result<String, &'static str> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or("has an invalid IPv6 host")?;
        let pieces = ipv6(inner).ok_or("has an invalid IPv6 host")?;
        return Ok(format!("[{}]", ipv6_text(&pieces)));
    }
    if host.is_empty() {
        return Err("has no host");
    }
    if !host.is_ascii() {
        return Err("has a non-ASCII host: write it in its ASCII (xn--) form");
    }
    let host = host.to_ascii_lowercase();
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return Err("has an invalid host");
    }
    // A host whose last label is a number is an IPv4 address to the
    // browser, which rewrites shorthand (`127.1`, `0x7f.0.0.1`) to dotted
    // decimal; only that canonical form is accepted.
    let last = host.trim_end_matches('.').rsplit('.').next().unwrap_or("");
    let numeric =
        !last.is_empty() && (last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x"));
    if numeric && ipv4(&host).is_none() {
        return Err("has an IPv4 address not in dotted-decimal form");
    }
    Ok(host)
}

/// The four octets of an address in canonical dotted-decimal form (no
/// leading zeros, each at most 255), the only IPv4 form the browser leaves
/// as it is. (Hand-written rather than `std::net`: every kilobyte of the
/// wasm counts.)
fn ipv4(text: &str) -> Option<[u8; 4]> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let part = parts.next()?;
        let canonical = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'));
        if !canonical {
            return None;
        }
        *octet = part.parse().ok()?;
    }
    parts.next().is_none().then_some(octets)
}

/// The eight pieces of an IPv6 address in the text form of
/// [RFC 4291 §2.2](https://www.rfc-editor.org/rfc/rfc4291#section-2.2):
/// at most one `::`, hex pieces of one to four digits, optionally a
/// dotted IPv4 tail. No zone identifier (URLs have none).
fn ipv6(text: &str) -> Option<[u16; 8]> {
    let (head, tail) = match text.split_once("::") {
        Some((head, tail)) if !tail.contains("::") => (head, Some(tail)),
        Some(_) => return None,
        None => (text, None),
    };
    let pieces = |part: &str| -> Option<Vec<u16>> {
        let mut out = Vec::new();
        if part.is_empty() {
            return Some(out);
        }
        let mut groups = part.split(':').peekable();
        while let Some(group) = groups.next() {
            if groups.peek().is_none() && group.contains('.') {
                let [a, b, c, d] = ipv4(group)?;
                out.push(u16::from_be_bytes([a, b]));
                out.push(u16::from_be_bytes([c, d]));
            } else if (1..=4).contains(&group.len()) && group.bytes().all(|b| b.is_ascii_hexdigit())
            {
                out.push(u16::from_str_radix(group, 16).ok()?);
            } else {
                return None;
            }
        }
        Some(out)
    };
    let head = pieces(head)?;
    // An IPv4 tail may only end the address.
    if tail.is_some() && text.split_once("::").is_some_and(|(h, _)| h.contains('.')) {
        return None;
    }
    let tail = match tail {
        Some(tail) => pieces(tail)?,
        None => Vec::new(),
    };
    let given = head.len() + tail.len();
    let compressed = text.contains("::");
    if given > 8 || (compressed && given > 7) || (!compressed && given != 8) {
        return None;
    }
    let mut address = [0u16; 8];
    address[..head.len()].copy_from_slice(&head);
    address[8 - tail.len()..].copy_from_slice(&tail);
    Some(address)
}

/// An IPv6 address as the URL standard serialises it: lowercase hex
/// pieces, the first longest run of two or more zero pieces as `::`, and
/// (unlike Rust's `Display`) never a dotted IPv4 tail.
fn ipv6_text(pieces: &[u16; 8]) -> String {
    let (mut best, mut best_len, mut run, mut run_len) = (0, 0, 0, 0);
    for (i, &piece) in pieces.iter().enumerate() {
        if piece == 0 {
            if run_len == 0 {
                run = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best, best_len) = (run, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    let hex = |range: &[u16]| {
        range
            .iter()
            .map(|p| format!("{p:x}"))
            .collect::<Vec<_>>()
            .join(":")
    };
    if best_len < 2 {
        return hex(pieces);
    }
    format!(
        "{}::{}",
        hex(&pieces[..best]),
        hex(&pieces[best + best_len..])
    )
}

/// `url` with the access token as its `access_token` query parameter
/// ([RFC 6750 §2.3](https://www.rfc-editor.org/rfc/rfc6750#section-2.3)):
/// any `access_token` already there is removed (the API must see exactly
/// one), the other parameters are kept byte for byte (a re-serialised query
/// could break signed URLs), and the fragment stays last.
pub fn with_query_token(url: &str, token: &str) -> String {
    let (url, fragment) = url.split_at(url.find('#').unwrap_or(url.len()));
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let mut out = String::with_capacity(url.len() + token.len() + 16);
    out.push_str(path);
    out.push('?');
    for pair in query.split('&') {
        let name = pair.split('=').next().unwrap_or_default();
        if pair.is_empty() || name == "access_token" {
            continue;
        }
        out.push_str(pair);
        out.push('&');
    }
    out.push_str("access_token=");
    for byte in token.bytes() {
        // The unreserved characters go as they are (every usual token
        // alphabet); anything else is percent-encoded.
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out.push_str(fragment);
    out
}

/// One `allowedOrigins` entry as the app wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginEntry {
    /// The origin text.
    pub origin: String,
    /// Where the token goes for it.
    pub placement: TokenPlacement,
}

/// The origins `fetchWithAuth` sends the access token to, each with its
/// token placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedOrigins {
    allowed: Vec<(Origin, TokenPlacement)>,
}

impl AllowedOrigins {
    /// The default: the page's own origin only (nothing when the page has
    /// an opaque origin, such as a `file:` page or a sandboxed frame).
    pub fn page_only(page_origin: &str) -> AllowedOrigins {
        AllowedOrigins {
            allowed: Origin::parse(page_origin)
                .map(|origin| vec![(origin, TokenPlacement::Header)])
                .unwrap_or_default(),
        }
    }

    /// The app's list. Each entry must be an `https` origin, or `http` on a
    /// loopback host with `allow_insecure_loopback`, or the page's own
    /// origin (no less safe than the default). An origin listed twice with
    /// different placements is refused: which one was meant?
    pub fn from_entries(
        entries: &[OriginEntry],
        page_origin: &str,
        allow_insecure_loopback: bool,
    ) -> Result<AllowedOrigins, Error> {
        let page = Origin::parse(page_origin).ok();
        let mut allowed: Vec<(Origin, TokenPlacement)> = Vec::with_capacity(entries.len());
        for entry in entries {
            let refuse = |reason: &str| {
                Error::invalid_option(
                    "allowedOrigins",
                    format!("entry {} {reason}", Quoted(&entry.origin)),
                )
            };
            let origin = Origin::parse(&entry.origin).map_err(refuse)?;
            if !origin.secure_enough(page.as_ref(), allow_insecure_loopback) {
                return Err(refuse(
                    "must use https (plain http only for loopback hosts with allowInsecureLoopback)",
                ));
            }
            match allowed.iter().find(|(known, _)| *known == origin) {
                Some((_, placement)) if *placement != entry.placement => {
                    return Err(refuse("is listed twice with different tokenIn"));
                }
                Some(_) => {}
                None => allowed.push((origin, entry.placement)),
            }
        }
        Ok(AllowedOrigins { allowed })
    }

    /// Where the token goes in a request to `url` (absolute, as the browser
    /// resolved it), or `origin_not_allowed` naming the URL's origin.
    pub fn placement_for(&self, url: &str) -> Result<TokenPlacement, Error> {
        let origin = Origin::of_url(url);
        origin
            .as_ref()
            .and_then(|origin| self.allowed.iter().find(|(known, _)| known == origin))
            .map(|&(_, placement)| placement)
            .ok_or_else(|| Error::OriginNotAllowed {
                origin: origin.map_or_else(|| "null".to_owned(), |o| o.to_string()),
            })
    }
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
