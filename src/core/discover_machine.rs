//! Discovery as a machine that does no I/O ([`Discover`]): the issuer's
//! OpenID Connect document first, then RFC 8414's
//! ([`discovery_urls`]); the first readable document is validated against
//! the issuer and decides — a document for another issuer is refused, not
//! passed over — and when neither can be read the failure names both. The
//! driver ([`discover`](crate::core::startup::discover)) performs each `GET`.

use crate::core::drive::{Machine, Next};
use crate::core::platform::HttpReply;
use crate::core::{discovery_urls, Error, ProviderMetadata};

/// The machine's next step: `GET` this document and feed the answer back
/// ([`Discover::on`]), or the issuer's validated metadata (or why there is
/// none).
pub type Step = Next<String, Result<ProviderMetadata, Error>>;

/// One discovery of `issuer`'s metadata.
#[derive(Debug)]
pub struct Discover {
    issuer: String,
    urls: std::vec::IntoIter<String>,
    asked: Option<String>,
    failures: Vec<String>,
}

impl Discover {
    /// The discovery of `issuer` (already checked as a URL); its first
    /// step.
    pub fn start(issuer: &str) -> (Discover, Step) {
        let mut machine = Discover {
            issuer: issuer.to_owned(),
            urls: Vec::from(discovery_urls(issuer)).into_iter(),
            asked: None,
            failures: Vec::new(),
        };
        let step = machine.next();
        (machine, step)
    }

    /// The step after the answer to the last fetch (or why there is none).
    /// Once it has ended, it stays ended.
    pub fn on(&mut self, answer: Result<HttpReply<ProviderMetadata>, Error>) -> Step {
        // Fed with no fetch out (after its end: a driver bug): it is over,
        // and never asks for the next document.
        let Some(url) = self.asked.take() else {
            return Step::Done(Err(Error::Discovery {
                reason: "discovery was fed after its end".into(),
            }));
        };
        let failure = match answer {
            Ok(HttpReply {
                status: 200,
                body: Ok(metadata),
                ..
            }) => return Step::Done(metadata.validate(&self.issuer)),
            Ok(HttpReply {
                status: 200,
                body: Err(reason),
                ..
            }) => reason,
            Ok(HttpReply { status, .. }) => format!("HTTP {status}"),
            Err(error) => error.to_string(),
        };
        self.failures.push(format!("{url}: {failure}"));
        self.next()
    }

    /// The next document, or — none left — the failure naming each.
    fn next(&mut self) -> Step {
        match self.urls.next() {
            Some(url) => {
                self.asked = Some(url.clone());
                Step::Do(url)
            }
            None => Step::Done(Err(Error::Discovery {
                reason: self.failures.join("; "),
            })),
        }
    }
}

impl Machine for Discover {
    type Need = String;
    type Fed = Result<HttpReply<ProviderMetadata>, Error>;
    type Done = Result<ProviderMetadata, Error>;
    type With<'a> = ();

    fn on(&mut self, answer: Self::Fed, (): ()) -> Step {
        Discover::on(self, answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fakes::{raw_reply, read_body};

    const ISSUER: &str = "https://idp.example/realm";

    fn metadata(issuer: &str) -> String {
        format!(
            r#"{{"issuer":"{issuer}","authorization_endpoint":"{issuer}/auth","token_endpoint":"{issuer}/token"}}"#
        )
    }

    fn answer(status: u16, body: &str) -> Result<HttpReply<ProviderMetadata>, Error> {
        Ok(raw_reply(status, body, None).read_body(read_body))
    }

    fn fetches(step: Step) -> String {
        match step {
            Step::Do(url) => url,
            Step::Done(outcome) => panic!("expected a fetch, got {outcome:?}"),
        }
    }

    fn done(step: Step) -> Result<ProviderMetadata, Error> {
        match step {
            Step::Done(outcome) => outcome,
            Step::Do(url) => panic!("expected the end, got a fetch of {url}"),
        }
    }

    #[test]
    fn the_openid_document_is_asked_for_first_and_a_good_one_ends_it() {
        let (mut machine, step) = Discover::start(ISSUER);
        assert_eq!(
            fetches(step),
            "https://idp.example/realm/.well-known/openid-configuration"
        );
        let found = done(machine.on(answer(200, &metadata(ISSUER)))).unwrap();
        assert_eq!(found.token_endpoint, format!("{ISSUER}/token"));
    }

    #[test]
    fn an_unreadable_openid_document_falls_back_to_rfc8414() {
        let (mut machine, _) = Discover::start(ISSUER);
        let step = machine.on(answer(404, "{}"));
        assert_eq!(
            fetches(step),
            "https://idp.example/.well-known/oauth-authorization-server/realm"
        );
        assert!(done(machine.on(answer(200, &metadata(ISSUER)))).is_ok());
    }

    #[test]
    fn a_document_for_another_issuer_is_refused_not_passed_over() {
        let (mut machine, _) = Discover::start(ISSUER);
        let outcome = done(machine.on(answer(200, &metadata("https://evil.example"))));
        assert_eq!(outcome.unwrap_err().code(), "issuer_mismatch");
    }

    #[test]
    fn after_its_end_it_asks_for_nothing_more() {
        let (mut machine, _) = Discover::start(ISSUER);
        let refused = machine.on(answer(200, &metadata("https://evil.example")));
        assert!(done(refused).is_err());
        let again = done(machine.on(answer(404, "{}")));
        assert_eq!(again.unwrap_err().code(), "discovery_failed");
    }

    #[test]
    fn when_neither_can_be_read_the_failure_names_both() {
        let (mut machine, _) = Discover::start(ISSUER);
        machine.on(Err(Error::Network {
            reason: "offline".into(),
        }));
        let outcome = done(machine.on(answer(200, "not json")));
        let error = outcome.unwrap_err();
        assert_eq!(error.code(), "discovery_failed");
        let text = error.to_string();
        assert!(
            text.contains("openid-configuration: network error: offline")
                && text.contains("oauth-authorization-server/realm: "),
            "{text}"
        );
    }
}
