//! The layering of cog's modules: nothing below the runtime imports `runtime::` (the worker,
//! the scheduler, the engine and the store get what they need as arguments or state of their
//! own), and SQL helpers with positional reads stay in the store.

use std::path::Path;

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((path.display().to_string(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    out
}

#[test]
fn no_module_below_the_runtime_imports_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let offenders: Vec<String> = sources(&src)
        .into_iter()
        .filter(|(path, _)| !path.contains("/src/runtime/") && !path.ends_with("/src/lib.rs"))
        .flat_map(|(path, text)| {
            text.lines()
                .enumerate()
                .filter(|(_, line)| !line.trim_start().starts_with("//") && (line.contains("crate::runtime::") || line.contains("use crate::runtime")))
                .map(|(n, line)| format!("{path}:{}: {}", n + 1, line.trim()))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(offenders.is_empty(), "modules below the runtime import it:\n{}", offenders.join("\n"));
}

#[test]
fn positional_reads_and_placeholder_rewrites_stay_in_the_store() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let offenders: Vec<String> = sources(&src)
        .into_iter()
        .filter(|(path, _)| !path.contains("/src/store/"))
        .filter(|(_, text)| text.contains("try_get_by_index") || text.contains("replace('$'"))
        .map(|(path, _)| path)
        .collect();
    assert!(offenders.is_empty(), "outside src/store: {offenders:?}");
}
