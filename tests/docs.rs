//! The documentation stays true to the code: every `DOCRE_*` variable the code, tests, benches
//! and tools read is in `docre::settings::VARS` and in the README's Environment table (and the
//! table names nothing else), and every relative link and `docs/` path the README and docs/
//! name exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            files(&p, exts, out);
        } else if p.extension().and_then(|e| e.to_str()).is_some_and(|e| exts.contains(&e)) || exts.contains(&p.file_name().unwrap().to_str().unwrap()) {
            out.push(p);
        }
    }
}

/// `DOCRE_*` names in `text` (a trailing `*` or `_` marks a prefix in prose, not a variable).
fn names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("DOCRE_") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        if name.len() > "DOCRE_".len() && !name.ends_with('_') && !tail[end..].starts_with('*') {
            out.insert(name.to_string());
        }
        rest = &tail[end..];
    }
    out
}

#[test]
fn every_environment_variable_is_in_settings_and_the_readme() {
    let listed: BTreeSet<String> = docre::settings::VARS.iter().map(|v| v.name.to_string()).collect();
    let mut sources = Vec::new();
    for dir in ["src", "tests", "benches", "tools"] {
        files(&root().join(dir), &["rs", "py", "sh", "test-lane"], &mut sources);
    }
    sources.push(root().join(".ci/run"));
    let mut used = BTreeSet::new();
    for f in &sources {
        used.extend(names(&std::fs::read_to_string(f).unwrap()));
    }
    let unlisted: Vec<_> = used.difference(&listed).collect();
    assert!(unlisted.is_empty(), "read by the code but not in settings::VARS: {unlisted:?}");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let start = readme.find("\n## Environment").expect("the README has an Environment section");
    let section = &readme[start..];
    let section = &section[..section[1..].find("\n## ").map_or(section.len(), |e| e + 1)];
    let table: BTreeSet<String> = section.lines().filter(|l| l.starts_with("| `DOCRE_")).flat_map(names).collect();
    assert_eq!(table, listed, "the README's Environment table and settings::VARS differ");
}

/// Markdown links `](target)` and inline `docs/...` paths of a file.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("](") {
        let tail = &text[i + 2..];
        if let Some(end) = tail.find(')') {
            out.push(tail[..end].to_string());
        }
    }
    for (i, _) in text.match_indices("docs/") {
        if i > 0 && (text.as_bytes()[i - 1].is_ascii_alphanumeric() || text.as_bytes()[i - 1] == b'/') {
            continue;
        }
        let tail = &text[i..];
        let end = tail.find(|c: char| c.is_whitespace() || "`)(][\"',;:|".contains(c)).unwrap_or(tail.len());
        out.push(tail[..end].trim_end_matches('.').to_string());
    }
    out
}

#[test]
fn every_relative_link_and_docs_path_exists() {
    let mut pages = vec![root().join("README.md")];
    files(&root().join("docs"), &["md"], &mut pages);
    let mut missing = Vec::new();
    let mut checked = 0;
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        for link in links(&text) {
            let target = link.split('#').next().unwrap();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            // `docs/` paths in prose are relative to the repository root; links to the page.
            let base = if link.starts_with("docs/") && !page.starts_with(root().join("docs")) { root().to_path_buf() } else { page.parent().unwrap().to_path_buf() };
            let found = base.join(target).exists() || (link.starts_with("docs/") && root().join(target).exists());
            checked += 1;
            if !found {
                missing.push(format!("{}: {link}", page.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(checked > 5, "only {checked} links found");
    assert!(missing.is_empty(), "links to nothing:\n{}", missing.join("\n"));
}
