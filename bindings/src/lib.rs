//! UniFFI bindings over siwa-core, generating Swift (filled by a later issue).
