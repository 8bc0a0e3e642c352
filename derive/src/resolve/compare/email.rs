//! E-mail addresses and web domains: a company's domain is one of the best
//! keys there is, a free-mail domain says nothing.

use super::strings::{levenshtein_similarity, lower};

/// The same mailbox written differently ("John.Smith+crm@acme.de" vs
/// "john.smith@acme.de").
const SAME_MAILBOX: f64 = 0.95;
/// The same local part at another domain: often the same person at a new
/// provider or employer, often a common name ("info@").
const SAME_LOCAL_PART: f64 = 0.7;
/// Different local parts at different domains score their local parts'
/// similarity times this, staying below `SAME_LOCAL_PART`.
const OTHER_DOMAIN_FACTOR: f64 = 0.6;

/// Free-mail domains, whose addresses say nothing about a company.
const FREE_MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "t-online.de",
    "qq.com",
    "163.com",
    "126.com",
    "icloud.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "mail.ru",
];
/// Free-mail providers under many country domains (yahoo.de, hotmail.co.uk).
const FREE_MAIL_PROVIDERS: &[&str] = &["yahoo", "hotmail", "outlook"];

/// Second-level labels under which registrations sit one level deeper
/// (acme.co.uk, acme.com.cn).
const SECOND_LEVEL_SUFFIXES: &[&str] = &[
    "co", "com", "org", "net", "ac", "gov", "edu", "or", "ne", "gv",
];

/// Similarity of two e-mail addresses in [0, 1], ignoring case: 1.0 equal;
/// `SAME_MAILBOX` when equal but for a "+tag"; `SAME_LOCAL_PART` for the
/// same local part at another domain; otherwise the local parts' Levenshtein
/// similarity, times `OTHER_DOMAIN_FACTOR` across domains. Strings that are
/// not addresses score 1.0 when equal, else 0.0.
pub fn email_similarity(a: &str, b: &str) -> f64 {
    let (a, b) = (lower(a.trim()), lower(b.trim()));
    if a == b {
        return if a.is_empty() { 0.0 } else { 1.0 };
    }
    let (Some((local_a, domain_a)), Some((local_b, domain_b))) =
        (split_address(&a), split_address(&b))
    else {
        return 0.0;
    };
    let same_domain = domain_a == domain_b;
    let (base_a, base_b) = (without_tag(local_a), without_tag(local_b));
    if base_a == base_b {
        return if same_domain {
            SAME_MAILBOX
        } else {
            SAME_LOCAL_PART
        };
    }
    let similarity = levenshtein_similarity(base_a, base_b);
    if same_domain {
        similarity
    } else {
        OTHER_DOMAIN_FACTOR * similarity
    }
}

/// The registrable domain of a web address or of a company's e-mail address,
/// lower case: "https://www.Acme-Corp.de/about" → "acme-corp.de",
/// "jane@sales.acme.co.uk" → "acme.co.uk". `None` for free-mail addresses,
/// IP addresses and anything without a dotted host name.
pub fn web_domain(url_or_email: &str) -> Option<String> {
    let s = lower(url_or_email.trim());
    let is_email = !s.contains("://") && s.contains('@');
    let host = match s.split_once("://") {
        Some((_, rest)) => rest,
        None => &s,
    };
    let host = host.split(['/', '?', '#']).next()?;
    let host = host.rsplit('@').next()?;
    let host = host.split(':').next()?.trim_end_matches('.');
    let labels: Vec<&str> = host.split('.').collect();
    let valid =
        |label: &&str| !label.is_empty() && label.chars().all(|c| c.is_alphanumeric() || c == '-');
    if labels.len() < 2
        || !labels.iter().all(valid)
        || labels[labels.len() - 1].chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let n = labels.len();
    let keep =
        if n >= 3 && labels[n - 1].len() == 2 && SECOND_LEVEL_SUFFIXES.contains(&labels[n - 2]) {
            3
        } else {
            2
        };
    let domain = labels[n - keep..].join(".");
    let free_mail = FREE_MAIL_DOMAINS.contains(&domain.as_str())
        || FREE_MAIL_PROVIDERS.contains(&labels[n - keep]);
    if is_email && free_mail {
        return None;
    }
    Some(domain)
}

/// Local part and domain, both non-empty.
fn split_address(address: &str) -> Option<(&str, &str)> {
    let (local, domain) = address.rsplit_once('@')?;
    (!local.is_empty() && !domain.is_empty()).then_some((local, domain))
}

/// The local part without a "+tag" (sub-addressing).
fn without_tag(local: &str) -> &str {
    match local.split_once('+') {
        Some((base, _)) if !base.is_empty() => base,
        _ => local,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_thresholds() {
        let cases: &[(&str, &str, f64, f64)] = &[
            ("john.smith@acme.de", "John.Smith@ACME.de", 1.0, 1.0),
            ("john.smith+crm@acme.de", "john.smith@acme.de", 0.95, 0.95),
            ("john.smith@acme.de", "john.smith@gmail.com", 0.7, 0.7),
            ("john.smith@acme.de", "jon.smith@acme.de", 0.85, 0.95),
            ("john.smith@acme.de", "jon.smith@other.de", 0.5, 0.6),
            ("john.smith@acme.de", "mary.jones@acme.de", 0.0, 0.5),
            ("not an address", "not an address", 1.0, 1.0),
            ("not an address", "john@acme.de", 0.0, 0.0),
            ("", "", 0.0, 0.0),
        ];
        for &(a, b, lo, hi) in cases {
            let s = email_similarity(a, b);
            assert!((lo..=hi).contains(&s), "{a} vs {b}: {s}");
            assert_eq!(s, email_similarity(b, a), "symmetric: {a} vs {b}");
        }
    }

    #[test]
    fn web_domains() {
        let cases: &[(&str, Option<&str>)] = &[
            ("https://www.Acme-Corp.de/about", Some("acme-corp.de")),
            ("http://shop.acme.com:8080/?q=1", Some("acme.com")),
            ("www.acme.de", Some("acme.de")),
            ("acme.de.", Some("acme.de")),
            ("https://user@intranet.acme.co.uk/x", Some("acme.co.uk")),
            ("jane@sales.acme.co.uk", Some("acme.co.uk")),
            ("Jane.Doe@Acme-Corp.DE", Some("acme-corp.de")),
            ("jane@gmail.com", None),
            ("jane@yahoo.co.uk", None),
            ("jane@hotmail.de", None),
            ("jane@gmx.net", None),
            ("jane@163.com", None),
            ("https://www.yahoo.com", Some("yahoo.com")),
            ("http://192.168.1.1/admin", None),
            ("localhost", None),
            ("not a domain", None),
            ("", None),
        ];
        for &(input, want) in cases {
            assert_eq!(web_domain(input).as_deref(), want, "{input}");
        }
    }
}
