//! Apple's private relay addresses ("Hide My Email", docs/apple-protocol.md): an address Apple
//! makes for one user and one developer team, forwarding to the user's own. They were all on
//! `privaterelay.appleid.com`; since June 2026 Apple also issues new ones on
//! `private.icloud.com`. Code that recognises a relay address by its domain must know both;
//! Apple's own `is_private_email` claim, when present, is the first word.

/// The domains of Apple's private relay addresses.
pub const RELAY_DOMAINS: [&str; 2] = ["privaterelay.appleid.com", "private.icloud.com"];

/// Whether `email` is on one of Apple's relay domains (the domain compared without case).
pub fn is_relay_address(email: &str) -> bool {
    email.rsplit_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && RELAY_DOMAINS.iter().any(|d| domain.eq_ignore_ascii_case(d))
    })
}

#[cfg(test)]
mod tests {
    use super::is_relay_address;

    #[test]
    fn both_relay_domains_are_recognised_and_nothing_else() {
        for relay in [
            "abc123@privaterelay.appleid.com",
            "abc123@private.icloud.com",
            "abc123@Private.iCloud.com",
        ] {
            assert!(is_relay_address(relay), "{relay}");
        }
        for other in [
            "jane@icloud.com",
            "jane@example.com",
            "abc@evil.private.icloud.com",
            "abc@private.icloud.com.evil",
            "@private.icloud.com",
            "private.icloud.com",
        ] {
            assert!(!is_relay_address(other), "{other}");
        }
    }
}
