//! Writes the fuzz targets' seed corpus (`cokernel::fuzz::seeds`) to `fuzz/corpus/<target>/`, or
//! to the folder given: `cargo run -p cokernel --features fuzz --example fuzz_seeds [DIR]`.
//! Existing files of other names are left alone.

use std::path::PathBuf;

fn main() {
    let root = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus"));
    for s in cokernel::fuzz::seeds() {
        let dir = root.join(s.target);
        let file = dir.join(s.name);
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &s.bytes));
        if let Err(e) = written {
            eprintln!("error: {}: {e}", file.display());
            std::process::exit(1);
        }
        println!("{:>6} bytes  {}", s.bytes.len(), file.display());
    }
}
