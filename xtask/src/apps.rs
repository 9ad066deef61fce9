//! Applications: the co-kernel's examples that declare `cokernel::app!` (`cokernel/examples/`),
//! each built into an image of its own. `cargo xtask apps` lists them.

use std::path::Path;

use crate::util::Workspace;

/// The application `build`, `run`, `bench` and the system tests use unless told otherwise.
pub const DEFAULT: &str = "demo";

/// One application: its name (the example's) and its one line (`about:` in its `app!`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct App {
    /// The example's name: `cargo xtask run --app NAME`.
    pub name: String,
    /// What it is.
    pub about: String,
}

/// The `about: "..."` of an `app!` in `source`, if the file declares one.
fn about_of(source: &str) -> Option<String> {
    let at = source.find("cokernel::app!")?;
    let rest = &source[at..];
    let about = rest.find("about:")?;
    let text = rest[about + "about:".len()..].trim_start().strip_prefix('"')?;
    Some(text[..text.find('"')?].to_string())
}

/// Whether `manifest` (cokernel/Cargo.toml) declares example `name` with the `app` feature.
fn declared(manifest: &str, name: &str) -> bool {
    manifest.split("[[example]]").skip(1).any(|block| {
        let block = block.split("\n[").next().unwrap_or("");
        block.contains(&format!("name = \"{name}\"")) && block.contains("required-features = [\"app\"]")
    })
}

fn from_dir(examples: &Path, manifest: &str) -> Result<Vec<App>, String> {
    let mut apps = Vec::new();
    let entries = std::fs::read_dir(examples).map_err(|e| format!("{}: {e}", examples.display()))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) =
            path.file_stem().and_then(|s| s.to_str()).filter(|_| path.extension().is_some_and(|e| e == "rs"))
        else {
            continue;
        };
        let source = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let Some(about) = about_of(&source) else { continue };
        if !declared(manifest, name) {
            return Err(format!(
                "{} declares an application but cokernel/Cargo.toml does not: add\n\n[[example]]\nname = \"{name}\"\nrequired-features = [\"app\"]\n",
                path.display()
            ));
        }
        apps.push(App { name: name.to_string(), about });
    }
    apps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(apps)
}

/// Every application, by name.
pub fn list(ws: &Workspace) -> Result<Vec<App>, String> {
    let manifest_path = ws.root.join("cokernel/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    from_dir(&ws.root.join("cokernel/examples"), &manifest)
}

/// `name` if it is an application; otherwise an error that lists them.
pub fn find(ws: &Workspace, name: &str) -> Result<App, String> {
    let apps = list(ws)?;
    apps.iter().find(|a| a.name == name).cloned().ok_or_else(|| {
        let names: Vec<&str> = apps.iter().map(|a| a.name.as_str()).collect();
        format!("no application `{name}`; there are: {} (cargo xtask apps)", names.join(", "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_application_is_an_example_with_an_app_declaration_and_a_manifest_entry() {
        let dir = std::env::temp_dir().join(format!("hauki-apps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("blink.rs"), "cokernel::app! {\n    about: \"blinks\",\n    start: start,\n}\n")
            .unwrap();
        std::fs::write(dir.join("tool.rs"), "fn main() {}\n").unwrap();
        let manifest = "[[example]]\nname = \"blink\"\nrequired-features = [\"app\"]\n\n[[example]]\nname = \"tool\"\n";
        assert_eq!(from_dir(&dir, manifest), Ok(vec![App { name: "blink".into(), about: "blinks".into() }]));
        let err = from_dir(&dir, "[[example]]\nname = \"tool\"\n").unwrap_err();
        assert!(err.contains("name = \"blink\"") && err.contains("required-features"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_repository_s_applications_include_the_default() {
        let ws = Workspace::locate();
        let apps = list(&ws).unwrap();
        assert!(apps.iter().any(|a| a.name == DEFAULT), "{apps:?}");
        assert!(find(&ws, "no-such-app").unwrap_err().contains(DEFAULT));
    }
}
