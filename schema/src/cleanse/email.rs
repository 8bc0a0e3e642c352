//! E-mail addresses: a syntax check that catches what exports get wrong
//! (missing '@', spaces, no domain), not full RFC 5322. Mailboxes are
//! compared case-insensitively in practice, so the address is lower-cased.

use super::text;

/// RFC 5321 limits: 64 characters before the '@', 254 in all, 63 per
/// domain label.
const MAX_LOCAL: usize = 64;
const MAX_TOTAL: usize = 254;
const MAX_LABEL: usize = 63;

pub fn email(raw: &str) -> Result<String, String> {
    let v = text::clean(raw, true);
    if v.chars().count() > MAX_TOTAL {
        return Err(format!("longer than {MAX_TOTAL} characters"));
    }
    let Some((local, domain)) = v.split_once('@') else {
        return Err("has no '@'".to_string());
    };
    let bad_char = |c: char| c.is_whitespace() || c.is_control() || "@,;:<>()[]\\\"".contains(c);
    if local.is_empty() || local.chars().count() > MAX_LOCAL || local.chars().any(bad_char) {
        return Err("has an invalid part before the '@'".to_string());
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("has a misplaced dot before the '@'".to_string());
    }
    if !domain.contains('.') {
        return Err("has no dot in the domain".to_string());
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars().count() <= MAX_LABEL
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return Err("has an invalid domain".to_string());
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::email;

    #[test]
    fn accepts_and_lower_cases() {
        let cases = [
            ("  Ann@Example.COM ", "ann@example.com"),
            (
                "ann.lee+crm@mail.example.co.uk",
                "ann.lee+crm@mail.example.co.uk",
            ),
            ("ａｎｎ＠ｅｘａｍｐｌｅ．ｃｏｍ", "ann@example.com"),
            ("li@例子.中国", "li@例子.中国"),
        ];
        for (raw, want) in cases {
            assert_eq!(email(raw).as_deref(), Ok(want), "{raw:?}");
        }
    }

    #[test]
    fn rejects_with_the_reason() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let cases = [
            ("ann.example.com", "no '@'"),
            ("ann@example", "no dot in the domain"),
            ("a b@example.com", "before the '@'"),
            ("@example.com", "before the '@'"),
            ("ann@@example.com", "invalid domain"),
            ("ann@exa mple.com", "invalid domain"),
            ("ann@example..com", "invalid domain"),
            ("ann@-example.com", "invalid domain"),
            ("ann.@example.com", "misplaced dot"),
            (long_local.as_str(), "before the '@'"),
        ];
        for (raw, want) in cases {
            let err = email(raw).unwrap_err();
            assert!(err.contains(want), "{raw:?}: {err}");
        }
    }
}
