//! The example DAGs written into a new DAG folder on first start.

use std::path::Path;

pub const EXAMPLES: &[(&str, &str)] = &[
    (
        "example_hello.yaml",
        include_str!("../examples/example_hello.yaml"),
    ),
    (
        "example_etl.yaml",
        include_str!("../examples/example_etl.yaml"),
    ),
    (
        "example_rules.yaml",
        include_str!("../examples/example_rules.yaml"),
    ),
];

/// Creates `folder` with the examples if it does not exist yet. Returns whether it did.
pub fn ensure_dags_folder(folder: &Path, with_examples: bool) -> std::io::Result<bool> {
    if folder.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(folder)?;
    if with_examples {
        for (name, text) in EXAMPLES {
            std::fs::write(folder.join(name), text)?;
        }
    }
    Ok(true)
}
