//! `docs/security.md` names, for each requirement of RFC 9700 and RFC 8252 that applies, the
//! tests that show siwa meets it. This keeps the names true: every one must be a test that
//! exists (a Rust or Swift test function, a Kotlin test, a browser step), and every row that
//! applies must name one. A renamed or deleted test fails here, not silently in the document.

use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the server is in the workspace")
        .to_path_buf()
}

/// The rows of the document's tables (header and separator rows left out), as cells.
fn rows(document: &str) -> Vec<Vec<String>> {
    document
        .lines()
        .filter(|line| line.starts_with('|') && !line.starts_with("|---"))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| !matches!(cells[0].as_str(), "§" | "threat"))
        .collect()
}

/// The `file::test` names of a cell.
fn named_tests(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Why `name` is not a test of the repository, or `None` when it is.
fn missing(name: &str) -> Option<String> {
    let Some((file, test)) = name.split_once("::") else {
        return Some(format!("{name}: not `file::test`"));
    };
    let Ok(source) = std::fs::read_to_string(repository().join(file)) else {
        return Some(format!("{name}: no file {file}"));
    };
    let found = if let Some(quoted) = test.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        // A Kotlin test (`"name" to {`), a browser step (`step('name'`) or a JavaScript
        // client's test (`t.test('name'`).
        source.contains(&format!("\"{quoted}\" to {{"))
            || source.contains(&format!("step('{quoted}'"))
            || source.contains(&format!("t.test('{quoted}'"))
    } else if file.ends_with(".swift") {
        test.starts_with("test") && source.contains(&format!("func {test}("))
    } else {
        rust_test(&source, test)
    };
    (!found).then(|| format!("{name}: no such test"))
}

/// Whether `source` has a test function `name`: marked `#[test]` or `#[tokio::test]`, or
/// listed in an `on_both_databases!` (which makes one test per database of it).
fn rust_test(source: &str, name: &str) -> bool {
    let lines: Vec<&str> = source.lines().collect();
    let declared = lines.iter().position(|line| {
        let line = line.trim_start();
        line.starts_with(&format!("fn {name}(")) || line.starts_with(&format!("async fn {name}("))
    });
    let Some(at) = declared else {
        return false;
    };
    let marked = lines[at.saturating_sub(4)..at]
        .iter()
        .any(|line| line.contains("#[test]") || line.contains("#[tokio::test"));
    let listed = lines.iter().any(|line| {
        let line = line.trim();
        line == format!("{name},") || line.ends_with(&format!(": {name},"))
    });
    marked || listed
}

#[test]
fn every_test_the_security_checklist_names_exists() {
    let document =
        std::fs::read_to_string(repository().join("docs/security.md")).expect("docs/security.md");
    let rows = rows(&document);
    assert!(rows.len() > 30, "the checklist has {} rows", rows.len());
    let mut problems = Vec::new();
    let mut named = 0;
    for cells in &rows {
        let tests = named_tests(cells.last().expect("a row has cells"));
        let applies = !cells.iter().any(|c| c.starts_with("does not apply"));
        match (applies, tests.is_empty()) {
            (true, true) => problems.push(format!("a row names no test: {}", cells[1])),
            (false, false) => problems.push(format!(
                "a row that does not apply names tests: {}",
                cells[1]
            )),
            _ => {}
        }
        named += tests.len();
        problems.extend(tests.iter().filter_map(|t| missing(t)));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(named > 50, "{named} tests named");
}

#[test]
fn the_checker_finds_what_is_missing() {
    assert!(
        missing("server/tests/security_doc.rs::every_test_the_security_checklist_names_exists")
            .is_none()
    );
    assert!(
        missing("server/tests/security_doc.rs::rows").is_some(),
        "a helper is no test"
    );
    assert!(missing("server/tests/security_doc.rs::no_such_test").is_some());
    assert!(missing("server/tests/nowhere.rs::a_test").is_some());
    assert!(missing("no separator").is_some());
}
