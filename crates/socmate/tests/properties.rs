//! Property tests for the code that stands between input and secrets or outbound URLs: the
//! credential envelope, the id validators, and URL building with hostile ids.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use secrecy::{ExposeSecret as _, SecretString};
use socmate::crypto::{Keyring, MasterKey, envelope_key_id, provider_secret_binding};
use socmate::id::ResourceId;
use socmate::sentinel::cloud::join_segments;
use socmate::sentinel::connection::is_domain;
use socmate::siem::fields::is_guid;
use url::Url;

/// Strings an attacker would try in an id: separators, traversal, escapes, credentials, CR/LF,
/// unicode, and very long values — alone, combined, and around arbitrary text.
fn hostile() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "/",
        "..",
        ".",
        "%2F",
        "%2f",
        "%2E%2E",
        "@",
        "\r\n",
        "\n",
        "?",
        "#",
        "\\",
        ":",
        "%00",
        "ü",
        "\u{202e}",
        "\u{0}",
        " ",
        "a",
        "00000000-0000-0000-0000-000000000000",
        "contoso.onmicrosoft.com",
        "evil.com",
        "http://evil.com",
    ]);
    prop_oneof![
        prop::sample::select(vec![".", "..", "\r\n", "\t", "%2E%2E"]).prop_map(str::to_owned),
        any::<String>(),
        prop::collection::vec(pieces, 1..12).prop_map(|p| p.concat()),
        (any::<String>(), 1usize..4).prop_map(|(s, n)| s.repeat(n)),
        "[a-z/.%@]{10240}",
    ]
}

fn base(host: &str) -> Url {
    Url::parse(&format!("https://{host}/v1/workspaces")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_joined_id_is_one_segment_on_the_same_origin(id in hostile()) {
        let base = base("api.loganalytics.io");
        let url = join_segments(&base, &[&id, "query"]);
        prop_assert_eq!(url.scheme(), "https");
        prop_assert_eq!(url.host_str(), Some("api.loganalytics.io"));
        prop_assert_eq!(url.port(), None);
        prop_assert_eq!(url.username(), "");
        prop_assert!(url.query().is_none() && url.fragment().is_none());
        let segments: Vec<&str> = url.path_segments().unwrap().collect();
        prop_assert_eq!(segments.len(), 4, "{}", url);
        prop_assert_eq!(&segments[..2], &["v1", "workspaces"]);
        prop_assert_eq!(segments[3], "query");
        // Every id decodes back to itself, but `.` and `..`, which are escaped twice so that no
        // normaliser ever resolves them.
        let expected = match id.as_str() {
            "." => "%2E".to_owned(),
            ".." => "%2E%2E".to_owned(),
            other => other.to_owned(),
        };
        prop_assert_eq!(percent_decode(segments[2]), expected);
        // What we send is what we built: re-parsing changes nothing.
        prop_assert_eq!(Url::parse(url.as_str()).unwrap(), url.clone());
    }

    #[test]
    fn validators_accept_only_their_shapes(value in hostile()) {
        if is_guid(&value) {
            prop_assert_eq!(value.len(), 36);
            prop_assert!(value.chars().all(|c| c.is_ascii_hexdigit() || c == '-'));
        }
        if is_domain(&value) {
            prop_assert!(value.len() <= 253);
            prop_assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            prop_assert!(!value.contains(".."));
        }
        if let Some(id) = ResourceId::parse(&value) {
            prop_assert_eq!(id.as_str().len(), 24);
            prop_assert!(value.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        }
        // Whatever a validator lets through needs no escaping in a URL path.
        if is_guid(&value) || is_domain(&value) || ResourceId::parse(&value).is_some() {
            let url = join_segments(&base("login.microsoftonline.com"), &[&value]);
            prop_assert_eq!(url.path_segments().unwrap().next_back(), Some(value.as_str()));
        }
    }

    #[test]
    fn generated_guids_and_domains_are_accepted(
        guid in "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
        labels in prop::collection::vec("[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", 1..5),
        tld in "[a-z]{2,10}",
    ) {
        prop_assert!(is_guid(&guid));
        let domain = format!("{}.{tld}", labels.join("."));
        prop_assert!(is_domain(&domain), "{}", domain);
    }

    #[test]
    fn envelopes_round_trip_and_reject_any_change(
        secret in "\\PC{1,200}",
        key in any::<[u8; 32]>(),
        row in "[0-9a-f]{24}",
        flip in any::<prop::sample::Index>(),
    ) {
        let master = MasterKey::from_bytes(key);
        let key_id = master.id().to_owned();
        let ring = Keyring::new(&[master]).unwrap();
        let binding = provider_secret_binding(&row);
        let envelope = ring.encrypt_secret(&SecretString::from(secret.clone()), binding);

        let prefix = format!("v1:{key_id}:");
        prop_assert!(envelope.starts_with(&prefix));
        prop_assert_eq!(envelope_key_id(&envelope), Some(key_id.as_str()));
        prop_assert!(!envelope.contains(&secret) || secret.len() < 4);
        let body = &envelope[envelope.rfind(':').unwrap() + 1..];
        prop_assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let decrypted = ring.decrypt_secret(&envelope, binding).unwrap();
        prop_assert_eq!(decrypted.expose_secret(), secret.as_str());

        // Any one changed character: an error, never another plaintext.
        let mut bytes = envelope.clone().into_bytes();
        let at = flip.index(bytes.len());
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        if tampered != envelope {
            prop_assert!(ring.decrypt_secret(&tampered, binding).is_err());
        }
        // Another row's binding: an error.
        let other_row = format!("{}0", &row[..23]);
        if other_row != row {
            prop_assert!(ring.decrypt_secret(&envelope, provider_secret_binding(&other_row)).is_err());
        }
    }

    #[test]
    fn arbitrary_text_is_never_decrypted(text in hostile(), key in any::<[u8; 32]>()) {
        let ring = Keyring::new(&[MasterKey::from_bytes(key)]).unwrap();
        prop_assert!(ring.decrypt_secret(&text, provider_secret_binding("aaaaaaaaaaaaaaaaaaaaaaaa")).is_err());
    }
}

fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&segment[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
