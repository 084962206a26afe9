//! The server's modules stand in layers, written in `server/src/lib.rs`'s map: each imports
//! only from the layers below its own. So no two modules import each other, directly or around
//! a circle, and a reader knows where a rule can live before searching. This reads the list
//! from `lib.rs` and every `crate::` path in `server/src` (tests left out), and fails on an
//! import that runs sideways or back up, or a module the list does not place.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn source() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The layer of each module, 0 at the top, as `lib.rs` lists them.
fn layers() -> HashMap<String, usize> {
    let lib = std::fs::read_to_string(source().join("lib.rs")).unwrap();
    let list = lib
        .split_once("//! The layers, from the top")
        .expect("lib.rs lists the layers")
        .1;
    list.lines()
        .skip_while(|line| !line.starts_with("//! - "))
        .take_while(|line| line.starts_with("//! - "))
        .enumerate()
        .flat_map(|(layer, line)| {
            line.split('`')
                .skip(1)
                .step_by(2)
                .map(move |module| (module.to_owned(), layer))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The files of `dir`, with the top-level module each belongs to.
fn files(dir: &Path, module: Option<&str>, found: &mut Vec<(String, PathBuf)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let owner = module.map_or(name.clone(), str::to_owned);
        if path.is_dir() {
            files(&path, Some(&owner), found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push((owner, path));
        }
    }
}

/// The top-level modules a file's code (its tests left out) names through `crate::`.
fn imports(code: &str) -> Vec<String> {
    let code = code
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    code.match_indices("crate::")
        .map(|(at, _)| {
            code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|module| !module.is_empty())
        .collect()
}

/// Routes parse and answer: every rule, and so every row, is reached through `accounts`.
#[test]
fn no_route_reaches_the_store() {
    let mut found = Vec::new();
    files(&source(), None, &mut found);
    let reaching: Vec<String> = found
        .iter()
        .filter(|(module, _)| module == "routes")
        .filter(|(_, path)| {
            let code = std::fs::read_to_string(path).unwrap();
            imports(&code).iter().any(|m| m == "store") || code.contains(".store")
        })
        .map(|(_, path)| path.display().to_string())
        .collect();
    assert!(reaching.is_empty(), "{reaching:?}");
}

#[test]
fn every_import_runs_down_the_layers_written_in_lib_rs() {
    let layers = layers();
    assert!(layers.len() > 20, "{layers:?}");
    let mut found = Vec::new();
    files(&source(), None, &mut found);
    let mut wrong = Vec::new();
    for (module, path) in &found {
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let Some(&own) = layers.get(module) else {
            wrong.push(format!("{module}: not in lib.rs's layers"));
            continue;
        };
        let code = std::fs::read_to_string(path).unwrap();
        for target in imports(&code) {
            if target == *module {
                continue;
            }
            match layers.get(&target) {
                Some(&layer) if layer > own => {}
                Some(_) => wrong.push(format!(
                    "{}: imports `{target}`, which is not below `{module}`",
                    path.strip_prefix(source()).unwrap().display()
                )),
                None => wrong.push(format!("{target}: not in lib.rs's layers")),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}
