//! Whether an account is the company's own, by the domain of its email (`[access]
//! internal_domains`): pure, used by access reviews.

use serde::Serialize;

/// Who an account belongs to, by its email's domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    /// The email's domain is one of the company's domains, or a subdomain of one.
    Internal,
    /// It is not.
    External,
    /// No company domains are configured (or the email has no domain).
    Unknown,
}

impl AccountType {
    /// `internal`, `external` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Internal => "internal",
            AccountType::External => "external",
            AccountType::Unknown => "unknown",
        }
    }
}

/// Classifies `email` by `internal_domains` (e.g. `["acme.io"]`): internal when the part after
/// the last `@` is one of them or a subdomain of one (`eu.acme.io`), ASCII case-insensitive and
/// ignoring a trailing dot; external otherwise; unknown when no domain is configured or the
/// email has no domain part.
pub fn account_type(email: &str, internal_domains: &[String]) -> AccountType {
    if internal_domains.is_empty() {
        return AccountType::Unknown;
    }
    let Some((_, domain)) = email.trim().rsplit_once('@') else {
        return AccountType::Unknown;
    };
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if domain.is_empty() {
        return AccountType::Unknown;
    }
    let internal = internal_domains.iter().any(|d| {
        let d = d
            .trim()
            .trim_start_matches('@')
            .trim_end_matches('.')
            .to_ascii_lowercase();
        !d.is_empty()
            && (domain == d
                || domain
                    .strip_suffix(&d)
                    .is_some_and(|rest| rest.ends_with('.')))
    });
    if internal {
        AccountType::Internal
    } else {
        AccountType::External
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domains(d: &[&str]) -> Vec<String> {
        d.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn emails_are_classified_by_domain_and_subdomain() {
        let acme = domains(&["acme.io", "@Acme-Labs.com."]);
        assert_eq!(account_type("ann@acme.io", &acme), AccountType::Internal);
        assert_eq!(account_type("Ann@ACME.IO", &acme), AccountType::Internal);
        assert_eq!(account_type("bo@eu.acme.io", &acme), AccountType::Internal);
        assert_eq!(
            account_type("cy@acme-labs.com", &acme),
            AccountType::Internal
        );
        assert_eq!(account_type("di@notacme.io", &acme), AccountType::External);
        assert_eq!(
            account_type("ed@acme.io.evil.com", &acme),
            AccountType::External
        );
        assert_eq!(account_type("fay@gmail.com", &acme), AccountType::External);
        assert_eq!(account_type("no-domain", &acme), AccountType::Unknown);
        assert_eq!(account_type("x@", &acme), AccountType::Unknown);
        assert_eq!(account_type("ann@acme.io", &[]), AccountType::Unknown);
        assert_eq!(AccountType::External.as_str(), "external");
    }
}
