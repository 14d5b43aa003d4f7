//! Embeds the bundled scripts (`scripts/px/*.rhai` at the workspace root) into the crate, so the
//! daemon ships them without a data directory.

use std::{env, error::Error, fmt::Write as _, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn Error>> {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let dir = manifest.join("../../scripts/px").canonicalize()?;
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut scripts = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rhai") {
            println!("cargo:rerun-if-changed={}", path.display());
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .ok_or_else(|| format!("script file name {path:?} is not UTF-8; rename it"))?
                .to_string();
            scripts.push((format!("px/{stem}"), path));
        }
    }
    // NB: sorted so `scripts()` lists them in a stable order whatever the file system says.
    scripts.sort();
    let mut out = String::from("/// Bundled scripts: (name, source), sorted by name.\n");
    out.push_str("pub(crate) static BUNDLED: &[(&str, &str)] = &[\n");
    for (name, path) in &scripts {
        writeln!(
            out,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        )?;
    }
    out.push_str("];\n");
    fs::write(PathBuf::from(env::var("OUT_DIR")?).join("bundled.rs"), out)?;
    Ok(())
}
