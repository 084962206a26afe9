//! The README is the front door and `docs/` holds the guides: every relative link in them must
//! lead to a file or folder that exists, so that a guide moved or renamed is found here rather
//! than by a reader.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The targets of a Markdown text's inline links, `[text](target)`.
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = markdown;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

#[test]
fn every_relative_link_of_the_readme_and_the_guides_resolves() {
    let root = repository();
    let mut documents = vec![root.join("README.md")];
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path);
        }
    }
    assert!(documents.len() >= 10, "{documents:?}");
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in &documents {
        let text = std::fs::read_to_string(document).unwrap();
        for target in link_targets(&text) {
            let target = target.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let resolved = document.parent().unwrap().join(target);
            if !resolved.exists() {
                broken.push(format!("{}: {target}", document.display()));
            }
        }
    }
    assert!(checked > 20, "only {checked} links checked");
    assert!(broken.is_empty(), "\n{}", broken.join("\n"));
}

#[test]
fn every_guide_the_readme_promises_exists() {
    let root = repository();
    for guide in [
        "ios.md",
        "android-and-desktop.md",
        "web.md",
        "javascript.md",
        "server.md",
        "doctor.md",
        "transfer.md",
        "webhooks.md",
        "security.md",
        "performance.md",
        "testing.md",
        "apple-protocol.md",
    ] {
        assert!(root.join("docs").join(guide).is_file(), "docs/{guide}");
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 250,
        "the README has {lines} lines: its depth belongs in docs/"
    );
}
