use super::*;

fn origin(text: &str) -> String {
    Origin::parse(text).unwrap().to_string()
}

fn url_origin(url: &str) -> Option<String> {
    Origin::of_url(url).map(|o| o.to_string())
}

fn entry(origin: &str, placement: TokenPlacement) -> OriginEntry {
    OriginEntry {
        origin: origin.into(),
        placement,
    }
}

fn header(origin: &str) -> OriginEntry {
    entry(origin, TokenPlacement::Header)
}

const PAGE: &str = "https://app.example";

fn list(entries: &[OriginEntry]) -> AllowedOrigins {
    AllowedOrigins::from_entries(entries, PAGE, true).unwrap()
}

fn refused(entries: &[OriginEntry], loopback: bool) -> String {
    match AllowedOrigins::from_entries(entries, PAGE, loopback) {
        Err(Error::InvalidOption { field, reason }) => {
            assert_eq!(field, "allowedOrigins");
            reason
        }
        other => panic!("expected invalid_option, got {other:?}"),
    }
}

fn not_allowed(origins: &AllowedOrigins, url: &str) -> String {
    match origins.placement_for(url) {
        Err(error @ Error::OriginNotAllowed { .. }) => {
            assert_eq!(error.code(), "origin_not_allowed");
            error.to_string()
        }
        other => panic!("expected origin_not_allowed for {url}, got {other:?}"),
    }
}

#[test]
fn entries_are_normalised_as_new_url_serialises_origins() {
    assert_eq!(origin("https://api.example.com"), "https://api.example.com");
    assert_eq!(origin("HTTPS://API.Example.COM"), "https://api.example.com");
    assert_eq!(
        origin("https://api.example.com/"),
        "https://api.example.com"
    );
    assert_eq!(
        origin("https://api.example.com:443"),
        "https://api.example.com"
    );
    assert_eq!(
        origin("https://api.example.com:0443/"),
        "https://api.example.com"
    );
    assert_eq!(
        origin("http://api.example.com:80"),
        "http://api.example.com"
    );
    assert_eq!(
        origin("https://api.example.com:80"),
        "https://api.example.com:80"
    );
    assert_eq!(
        origin("http://api.example.com:443"),
        "http://api.example.com:443"
    );
    assert_eq!(
        origin("https://api.example.com:8443"),
        "https://api.example.com:8443"
    );
    assert_eq!(
        origin("https://api.example.com:"),
        "https://api.example.com"
    );
    assert_eq!(origin("http://127.0.0.1:9402"), "http://127.0.0.1:9402");
}

#[test]
fn ipv6_hosts_are_compressed_and_lowercased() {
    assert_eq!(origin("http://[::1]:8080"), "http://[::1]:8080");
    assert_eq!(origin("http://[0:0:0:0:0:0:0:1]"), "http://[::1]");
    assert_eq!(
        origin("https://[2001:DB8:0:0:1:0:0:1]"),
        "https://[2001:db8::1:0:0:1]"
    );
    assert_eq!(
        origin("https://[2001:db8:0:1:0:0:0:1]"),
        "https://[2001:db8:0:1::1]"
    );
    assert_eq!(
        origin("https://[2001:db8:1:1:1:1:0:1]"),
        "https://[2001:db8:1:1:1:1:0:1]"
    );
    assert_eq!(
        origin("https://[::ffff:127.0.0.1]"),
        "https://[::ffff:7f00:1]"
    );
    assert_eq!(origin("https://[::]"), "https://[::]");
}

#[test]
fn entries_that_are_not_plain_origins_are_refused() {
    for (text, why) in [
        ("https://api.example.com/v1", "no path"),
        ("https://api.example.com//", "no path"),
        ("https://api.example.com?x=1", "no path"),
        ("https://api.example.com/#top", "no path"),
        ("https://user:pw@api.example.com", "user information"),
        ("https://api.example.com@evil.example", "user information"),
        ("api.example.com", "https://"),
        ("//api.example.com", "https://"),
        ("ftp://api.example.com", "https://"),
        ("wss://api.example.com", "https://"),
        ("https://", "no host"),
        ("https://:443", "no host"),
        ("https://api.example.com:99999", "invalid port"),
        ("https://api.example.com:-1", "invalid port"),
        ("https://api.example.com:8o", "invalid port"),
        ("https://api example.com", "invalid host"),
        ("https://api%2eexample.com", "invalid host"),
        ("https://bücher.example", "xn--"),
        ("https://127.1", "dotted-decimal"),
        ("https://0x7f.0.0.1", "dotted-decimal"),
        ("https://127.000.0.1", "dotted-decimal"),
        ("https://256.0.0.1", "dotted-decimal"),
        ("https://[::1", "unterminated"),
        ("https://[fe80::1%25eth0]", "IPv6"),
        ("https://[example.com]", "IPv6"),
        ("https://api.example.com\\x", "no path"),
    ] {
        let reason = refused(&[header(text)], true);
        assert!(
            reason.contains(&format!("{text:?}")),
            "{reason}: names the entry"
        );
        assert!(reason.contains(why), "{text}: {reason}");
    }
}

#[test]
fn plain_http_needs_a_loopback_host_and_the_switch() {
    for text in [
        "http://127.0.0.1:9402",
        "http://127.0.0.2",
        "http://localhost:3000",
        "http://LOCALHOST",
        "http://[::1]:8080",
    ] {
        assert!(
            AllowedOrigins::from_entries(&[header(text)], PAGE, true).is_ok(),
            "{text}"
        );
        let reason = refused(&[header(text)], false);
        assert!(reason.contains("allowInsecureLoopback"), "{reason}");
    }
    for text in [
        "http://api.example.com",
        "http://127.example.com",
        "http://10.0.0.1",
    ] {
        refused(&[header(text)], true);
    }
}

#[test]
fn the_pages_own_http_origin_may_be_listed_without_the_switch() {
    let page = "http://intranet.example:8080";
    let listed = [header("HTTP://intranet.example:8080/")];
    let origins = AllowedOrigins::from_entries(&listed, page, false).unwrap();
    assert_eq!(
        origins.placement_for("http://intranet.example:8080/api"),
        Ok(TokenPlacement::Header)
    );
}

#[test]
fn an_origin_listed_twice_must_agree_on_token_placement() {
    let same = [
        header("https://a.example"),
        header("https://A.example:443/"),
    ];
    assert!(AllowedOrigins::from_entries(&same, PAGE, false).is_ok());
    let both = [
        header("https://a.example"),
        entry("https://a.example/", TokenPlacement::Query),
    ];
    assert!(refused(&both, false).contains("tokenIn"));
}

#[test]
fn request_urls_match_by_scheme_host_and_port() {
    let origins = list(&[
        header("https://api.example.com"),
        entry("https://legacy.example:8443", TokenPlacement::Query),
        header("http://[::1]:9000"),
    ]);
    let placement = |url| origins.placement_for(url);
    assert_eq!(
        placement("https://api.example.com/me"),
        Ok(TokenPlacement::Header)
    );
    assert_eq!(
        placement("https://API.EXAMPLE.COM:443/me?x=1"),
        Ok(TokenPlacement::Header)
    );
    assert_eq!(
        placement("https://api.example.com"),
        Ok(TokenPlacement::Header)
    );
    assert_eq!(
        placement("https://api.example.com?q#f"),
        Ok(TokenPlacement::Header)
    );
    assert_eq!(
        placement("https://legacy.example:8443/x"),
        Ok(TokenPlacement::Query)
    );
    assert_eq!(
        placement("http://[0::1]:9000/x"),
        Ok(TokenPlacement::Header)
    );
    // The listed origins, but with the wrong scheme, port or host.
    for url in [
        "http://api.example.com/me",
        "https://api.example.com:8443/me",
        "https://legacy.example/x",
        "https://api.example.com.evil.example/me",
        "https://evil.example/https://api.example.com/",
        "https://other.api.example.com/me",
        "http://[::1]:9001/",
        "http://127.0.0.1:9000/",
    ] {
        not_allowed(&origins, url);
    }
}

#[test]
fn user_information_in_a_url_is_not_its_host() {
    let origins = list(&[header("https://api.example.com")]);
    assert_eq!(
        origins.placement_for("https://user:pw@api.example.com/me"),
        Ok(TokenPlacement::Header)
    );
    let refusal = not_allowed(&origins, "https://api.example.com@evil.example/me");
    assert!(refusal.contains("https://evil.example"), "{refusal}");
    assert!(!refusal.contains("api.example.com"), "{refusal}");
    let refusal = not_allowed(&origins, "https://api.example.com:443@evil.example:8443/");
    assert!(refusal.contains("https://evil.example:8443"), "{refusal}");
    // A backslash ends the authority (as in `new URL` for http(s)).
    let refusal = not_allowed(&origins, "https://evil.example\\@api.example.com/");
    assert!(refusal.contains("https://evil.example"), "{refusal}");
}

#[test]
fn other_schemes_and_garbage_match_nothing() {
    let origins = list(&[header("https://api.example.com")]);
    for url in [
        "data:text/plain,hi",
        "blob:https://api.example.com/5f0c",
        "file:///etc/passwd",
        "about:blank",
        "",
        "https://",
        "https://[::1/x",
        "https://api.example.com:99999/",
    ] {
        let refusal = not_allowed(&origins, url);
        assert!(refusal.contains("null"), "{refusal}");
    }
}

#[test]
fn the_default_is_the_pages_own_origin_only() {
    let origins = AllowedOrigins::page_only("http://127.0.0.1:5173");
    assert_eq!(
        origins.placement_for("http://127.0.0.1:5173/api/me"),
        Ok(TokenPlacement::Header)
    );
    not_allowed(&origins, "http://127.0.0.1:9402/steal");
    not_allowed(&origins, "http://localhost:5173/api/me");
    not_allowed(&origins, "https://127.0.0.1:5173/api/me");
    // An opaque origin (file: page, sandboxed frame) allows nothing.
    let opaque = AllowedOrigins::page_only("null");
    not_allowed(&opaque, "null");
    not_allowed(&opaque, "https://api.example.com/");
}

#[test]
fn an_empty_list_allows_nothing() {
    let origins = list(&[]);
    not_allowed(&origins, "https://app.example/api");
}

#[test]
fn the_refusal_names_the_origin_only() {
    let origins = list(&[header("https://api.example.com")]);
    let refusal = not_allowed(
        &origins,
        "https://evil.example:9402/steal?access_token=SECRET#frag",
    );
    assert!(refusal.contains("https://evil.example:9402"), "{refusal}");
    assert!(!refusal.contains("steal"), "{refusal}");
    assert!(!refusal.contains("SECRET"), "{refusal}");
}

#[test]
fn the_origin_of_a_url_is_serialised_as_the_browser_does() {
    let cases = [
        (
            "https://API.example.com:443/me?x=1#f",
            "https://api.example.com",
        ),
        ("http://127.0.0.1:80/", "http://127.0.0.1"),
        ("http://[0:0::1]:8080/x", "http://[::1]:8080"),
        (
            "https://user:pw@api.example.com:8443",
            "https://api.example.com:8443",
        ),
        ("HTTP://localhost:3000?q", "http://localhost:3000"),
    ];
    for (url, origin) in cases {
        assert_eq!(url_origin(url).as_deref(), Some(origin), "{url}");
    }
    assert_eq!(url_origin("ws://api.example.com/"), None);
}

#[test]
fn the_query_token_replaces_any_other_and_keeps_the_rest_as_is() {
    let cases = [
        ("https://a.example/x", "https://a.example/x?access_token=t1"),
        (
            "https://a.example/x?",
            "https://a.example/x?access_token=t1",
        ),
        (
            "https://a.example/x?q=a%20b&n=1",
            "https://a.example/x?q=a%20b&n=1&access_token=t1",
        ),
        (
            "https://a.example/x?access_token=old&q=1&access_token=older",
            "https://a.example/x?q=1&access_token=t1",
        ),
        (
            "https://a.example/x?access_token&q",
            "https://a.example/x?q&access_token=t1",
        ),
        (
            "https://a.example/x?access_tokens=k",
            "https://a.example/x?access_tokens=k&access_token=t1",
        ),
        (
            "https://a.example/x?q=1#part?x=y",
            "https://a.example/x?q=1&access_token=t1#part?x=y",
        ),
    ];
    for (url, expected) in cases {
        assert_eq!(with_query_token(url, "t1"), expected, "{url}");
    }
    assert_eq!(
        with_query_token("https://a.example/", "a+b/c=d e"),
        "https://a.example/?access_token=a%2Bb%2Fc%3Dd%20e"
    );
}

#[test]
fn the_hand_written_ip_parsers_agree_with_std() {
    use std::net::{Ipv4Addr, Ipv6Addr};
    for text in [
        "::",
        "::1",
        "1::",
        "1::2",
        "0:0:0:0:0:0:0:1",
        "2001:db8::1:0:0:1",
        "2001:DB8:0:1:0:0:0:1",
        "1:2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7",
        "::ffff:127.0.0.1",
        "1:2:3:4:5:6:1.2.3.4",
        "1.2.3.4::",
        "::1.2.3",
        "::01.2.3.4",
        "1::2::3",
        ":1:2:3:4:5:6:7",
        "1::2:",
        "12345::",
        "g::",
        "fe80::1%eth0",
        "",
        ":",
        ":::",
        "1:::2",
    ] {
        let ours = ipv6(text);
        let std = text.parse::<Ipv6Addr>().ok().map(|a| a.segments());
        assert_eq!(ours, std, "{text}");
    }
    for text in [
        "127.0.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "256.0.0.1",
        "127.1",
        "127.0.0.01",
        "1.2.3.4.5",
        "1..2.3",
        "",
        "a.b.c.d",
        "+1.2.3.4",
        "1.2.3.4 ",
    ] {
        let ours = ipv4(text);
        let std = text.parse::<Ipv4Addr>().ok().map(|a| a.octets());
        assert_eq!(ours, std, "{text}");
    }
}

const LOOPBACK_PAGE: &str = "http://127.0.0.1:8080";

#[test]
fn an_https_redirect_uri_is_accepted_from_any_page() {
    assert_eq!(
        check_redirect_uri("https://app.example/cb", LOOPBACK_PAGE, false),
        Ok(())
    );
}

#[test]
fn a_plain_http_redirect_uri_on_the_page_s_own_origin_is_accepted() {
    assert_eq!(
        check_redirect_uri("http://127.0.0.1:8080/cb", LOOPBACK_PAGE, false),
        Ok(())
    );
    let app = "http://intranet.example";
    assert_eq!(
        check_redirect_uri("http://intranet.example/cb", app, false),
        Ok(())
    );
}

#[test]
fn a_plain_http_redirect_uri_on_loopback_needs_allow_insecure_loopback() {
    let other_port = "http://127.0.0.1:9/cb";
    let refused = check_redirect_uri(other_port, LOOPBACK_PAGE, false).unwrap_err();
    assert_eq!(refused.code(), "insecure_endpoint");
    assert_eq!(check_redirect_uri(other_port, LOOPBACK_PAGE, true), Ok(()));
}

#[test]
fn a_plain_http_redirect_uri_elsewhere_is_refused_even_with_allow_insecure_loopback() {
    let refused = check_redirect_uri("http://app.example/cb", LOOPBACK_PAGE, true).unwrap_err();
    assert_eq!(
        refused,
        Error::InsecureEndpoint {
            field: "redirectUri"
        }
    );
}

#[test]
fn a_redirect_uri_that_is_not_http_is_an_invalid_option() {
    let refused = check_redirect_uri("ftp://app.example/cb", LOOPBACK_PAGE, true).unwrap_err();
    assert_eq!(refused.code(), "invalid_option");
}
