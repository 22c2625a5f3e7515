//! Habits that keep the code base easy to grow, checked over the whole
//! workspace: every Rust file opens with a `//!` comment saying what it owns; no
//! source file outside the tests is longer than [`MAX_LINES`]; every dependency
//! a crate declares is used by it.

use std::path::{Path, PathBuf};

/// Longest non-test source file, in lines.
const MAX_LINES: usize = 800;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn crates() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(workspace().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// A unit-test module (`tests.rs`, or anything under a `tests` folder).
fn is_test(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

#[test]
fn every_rust_file_says_what_it_owns() {
    let mut files = Vec::new();
    for dir in crates() {
        rust_files(&dir.join("src"), &mut files);
        rust_files(&dir.join("tests"), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let root = workspace();
    let bare: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        bare.is_empty(),
        "these files do not open with a `//!` comment saying what they own:\n  {}",
        bare.join("\n  ")
    );
}

#[test]
fn no_source_file_outside_the_tests_is_too_long() {
    let root = workspace();
    let mut long = Vec::new();
    for dir in crates() {
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files.iter().filter(|f| !is_test(f)) {
            let lines = std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .count();
            if lines > MAX_LINES {
                let name = f.strip_prefix(&root).unwrap_or(f).display().to_string();
                long.push(format!("{name}: {lines} lines"));
            }
        }
    }
    assert!(
        long.is_empty(),
        "split these files (at most {MAX_LINES} lines each, tests aside):\n  {}",
        long.join("\n  ")
    );
}

/// The dependency names of one `[section]` of a Cargo.toml.
fn section_deps(manifest: &str, section: &str) -> Vec<String> {
    let mut deps = Vec::new();
    let mut inside = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            inside = line == format!("[{section}]");
            continue;
        }
        if !inside || line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name = line
            .split(['=', '.', ' '])
            .next()
            .unwrap_or_default()
            .trim();
        if !name.is_empty() {
            deps.push(name.to_owned());
        }
    }
    deps
}

fn read_all(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect()
}

fn mentions(texts: &[String], krate: &str) -> bool {
    let ident = krate.replace('-', "_");
    let uses = [
        format!("{ident}::"),
        format!("use {ident}"),
        format!("extern crate {ident}"),
        format!("{ident}!"),
    ];
    texts
        .iter()
        .any(|text| uses.iter().any(|u| text.contains(u.as_str())))
}

#[test]
fn every_declared_dependency_is_used() {
    let mut unused = Vec::new();
    for dir in crates() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut src = Vec::new();
        rust_files(&dir.join("src"), &mut src);
        rust_files(&dir.join("examples"), &mut src);
        let mut tests = Vec::new();
        rust_files(&dir.join("tests"), &mut tests);
        let src = read_all(&src);
        let mut all = read_all(&tests);
        all.extend(src.iter().cloned());
        for dep in section_deps(&manifest, "dependencies") {
            // Unit tests live in src/ too, so a normal dependency used only by
            // them still shows up here; that is acceptable.
            if !mentions(&src, &dep) {
                unused.push(format!("{name}: [dependencies] {dep}"));
            }
        }
        for dep in section_deps(&manifest, "dev-dependencies") {
            if !mentions(&all, &dep) {
                unused.push(format!("{name}: [dev-dependencies] {dep}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "these dependencies are declared but not used (remove them):\n  {}",
        unused.join("\n  ")
    );
}
